"""Presets, config files and overrides; unknown keys and wrong types are refused by name."""

from __future__ import annotations

import pytest

from translate.config import CONFIGS_DIR, Config, load_config


def test_every_preset_loads():
    for path in CONFIGS_DIR.glob("*.yaml"):
        assert isinstance(load_config(path.stem), Config)


def test_quick_preset_fits_the_laptop_budget():
    config = load_config("quick")
    assert config.data.corpus == "bible:en-es"
    assert config.train.max_minutes <= 15


def test_overrides_come_last_and_are_typed(tmp_path):
    file = tmp_path / "mine.yaml"
    file.write_text("train:\n  epochs: 7\n  learning_rate: 1\nmodel:\n  cell: lstm\n", encoding="utf-8")
    config = load_config("quick", file, ["train.epochs=3", "train.steps_per_epoch=null"])
    assert config.train.epochs == 3
    assert config.train.learning_rate == 1.0 and isinstance(config.train.learning_rate, float)
    assert config.model.cell == "lstm"
    assert config.train.steps_per_epoch is None


def test_exponent_notation_is_a_number():
    # YAML 1.1 reads "1e-4" as a string.
    assert load_config("quick", overrides=["train.min_learning_rate=1e-4"]).train.min_learning_rate == 1e-4
    with pytest.raises(ValueError, match="config key 'train.learning_rate' must be float"):
        load_config("quick", overrides=["train.learning_rate=fast"])


@pytest.mark.parametrize(
    "override, message",
    [
        ("train.epoch=3", "unknown config key 'train.epoch'"),
        ("nosection.x=1", "unknown config key 'nosection'"),
        ("train.epochs=three", "config key 'train.epochs' must be int"),
        ("train.epochs=true", "config key 'train.epochs' must be int"),
        ("data.corpus=5", "config key 'data.corpus' must be str"),
        ("train=5", "config section 'train' must be a mapping"),
        ("data.src_vocab_size=100", "data.src_vocab_size must be at least 300"),
        ("model.attention=luong", "model.attention must be one of bahdanau, additive"),
        ("model.tie_embeddings=true", "model.tie_embeddings needs model.output_dim == model.embedding_dim"),
        ("model.attention=luong_dot model.decoder_units=192", "model.attention=luong_dot needs model.decoder_units == the encoder output"),
        ("model.bidirectional=none", "model.bidirectional must be first or all"),
        ("model.decoder_layers=0", "model.decoder_layers must be at least 1"),
        ("train.optimizer=sgd", "train.optimizer must be one of adam, adamw"),
        ("train.lr_schedule=cosine", "train.lr_schedule must be one of constant, inverse_sqrt, plateau"),
        ("train.label_smoothing=1.0", r"train.label_smoothing must be in \[0, 1\)"),
        ("train.precision=float16", "train.precision must be one of float32, mixed_bfloat16"),
        ("train.strategy=tpu", "train.strategy must be one of default, mirrored, multi_worker"),
        ("decode.shards=0", "decode.shards must be at least 1, got 0"),
    ],
)
def test_bad_values_are_refused_by_name(override, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        load_config("quick", overrides=override.split(" "))


def test_input_feeding_with_attention_in_the_recurrence_is_refused_by_name():
    with pytest.raises(ValueError, match="model.input_feeding is for attention after the decoder RNN"):
        load_config("quick", overrides=["model.attention=bahdanau", "model.input_feeding=true"])


def test_input_feeding_without_attention_is_refused_by_name():
    with pytest.raises(ValueError, match="model.input_feeding needs attention, but model.attention is none"):
        load_config("quick", overrides=["model.attention=none", "model.input_feeding=true"])


def test_xla_with_the_step_by_step_decoder_is_refused_by_name():
    with pytest.raises(ValueError, match="train.jit_compile needs the fused decoder"):
        load_config("quick", overrides=["model.decoder_units=192", "train.jit_compile=true"])
    # luong_dot after the fused RNN compiles
    load_config("quick", overrides=["model.attention=luong_dot", "train.jit_compile=true"])


def test_possible_combinations_are_accepted():
    config = load_config("quick", overrides=["model.attention=luong_general", "model.input_feeding=true",
                                             "model.tie_embeddings=true", "model.output_dim=96",
                                             "model.encoder_layers=2", "model.bidirectional=all"])
    assert config.model.tie_embeddings and config.model.input_feeding


def test_bad_yaml_is_refused(tmp_path):
    file = tmp_path / "bad.yaml"
    file.write_text("train: [unclosed\n", encoding="utf-8")
    with pytest.raises(ValueError, match="not valid YAML"):
        load_config(config_file=file)


def test_bahdanau_attention_is_the_default_in_the_code_and_the_cpu_presets():
    assert load_config().model.attention == "bahdanau"
    for preset in ("quick", "base"):
        for cell in ("gru", "lstm"):
            assert load_config(preset, overrides=[f"model.cell={cell}"]).model.attention == "bahdanau"
