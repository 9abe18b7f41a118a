"""Presets, config files and overrides; unknown keys and wrong types are refused by name."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from conftest import REPO
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
        (
            "model.attention=luong_dot model.decoder_units=192",
            "model.attention=luong_dot needs model.decoder_units == the encoder output",
        ),
        ("model.bidirectional=none", "model.bidirectional must be first or all"),
        ("model.decoder_layers=0", "model.decoder_layers must be at least 1"),
        ("train.optimizer=sgd", "train.optimizer must be one of adam, adamw"),
        ("train.lr_schedule=cosine", "train.lr_schedule must be one of constant, inverse_sqrt, plateau, budget_linear"),
        (
            "train.lr_schedule=budget_linear train.min_learning_rate=0.1",
            "train.min_learning_rate must not exceed train.learning_rate with train.lr_schedule=budget_linear",
        ),
        ("train.label_smoothing=1.0", r"train.label_smoothing must be in \[0, 1\)"),
        ("train.precision=float16", "train.precision must be one of auto, float32, mixed_bfloat16"),
        ("train.strategy=tpu", "train.strategy must be one of default, mirrored, multi_worker"),
        ("decode.shards=0", "decode.shards must be at least 1, got 0"),
        (
            "train.keep_checkpoints=2 train.average_last=3",
            "train.average_last must be 0 .off. or from 2 to train.keep_checkpoints .=2.",
        ),
        ("train.keep_checkpoints=5 train.average_last=1", "the epochs it averages must be kept, got 1"),
    ],
)
def test_bad_values_are_refused_by_name(override, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        load_config("quick", overrides=override.split(" "))


def test_input_feeding_with_attention_in_the_recurrence_is_refused_by_name():
    with pytest.raises(ValueError, match="model.input_feeding is for attention after the decoder RNN"):
        load_config("quick", overrides=["model.attention=bahdanau", "model.input_feeding=true"])


def test_the_presets_query_with_the_input_word_and_other_placements_ignore_it():
    for preset in ("quick", "base"):
        assert load_config(preset).model.attention_query_input
    # A run saved before the key existed has no such line: it loads as the paper's s_{t-1} query.
    assert not load_config().model.attention_query_input
    luong = load_config("quick", overrides=["model.attention=luong_dot"])
    assert luong.model.attention_query_input  # from the preset, and harmless: s_t has read y_{t-1}


def test_input_feeding_without_attention_is_refused_by_name():
    with pytest.raises(ValueError, match="model.input_feeding needs attention, but model.attention is none"):
        load_config("quick", overrides=["model.attention=none", "model.input_feeding=true"])


def test_xla_with_the_step_by_step_decoder_is_refused_by_name():
    with pytest.raises(ValueError, match="train.jit_compile needs the fused decoder"):
        load_config("quick", overrides=["model.decoder_units=192", "train.jit_compile=true"])
    # luong_dot after the fused RNN compiles
    load_config("quick", overrides=["model.attention=luong_dot", "train.jit_compile=true"])


def test_possible_combinations_are_accepted():
    config = load_config(
        "quick",
        overrides=[
            "model.attention=luong_general",
            "model.input_feeding=true",
            "model.tie_embeddings=true",
            "model.output_dim=96",
            "model.encoder_layers=2",
            "model.bidirectional=all",
        ],
    )
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


# --- Hostile config files and values: one line, before anything is read -----------------------------------


def run_cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "translate", *args], capture_output=True, text=True, cwd=REPO, timeout=timeout
    )


def one_error_line(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 2, result.stderr[-2000:]
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("error: ")
    return line


def test_config_naming_a_directory_is_one_line(tmp_path):
    with pytest.raises(ValueError, match=f"config file is a folder, not a file: {re.escape(str(tmp_path))}$"):
        load_config(config_file=tmp_path)
    line = one_error_line(run_cli("prepare", "--config", str(tmp_path)))
    assert line == f"error: config file is a folder, not a file: {tmp_path}"


def test_config_that_is_an_endless_stream_is_refused_at_the_size_cap():
    with pytest.raises(ValueError, match="config file /dev/zero is larger than 1,048,576 bytes"):
        load_config(config_file="/dev/zero")


def alias_bomb(levels: int) -> str:
    """A "billion laughs" value: each level is nine aliases of the one before (9**levels strings)."""
    anchors = ['&l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    anchors += [f"&l{n} [" + ", ".join([f"*l{n - 1}"] * 9) + "]" for n in range(1, levels)]
    return "[" + ", ".join(anchors) + "]"


def test_yaml_alias_bomb_is_refused_without_expanding(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(f"data:\n  corpus: {alias_bomb(6)}\n", encoding="utf-8")
    with pytest.raises(ValueError) as refused:
        load_config(config_file=bomb)
    assert str(refused.value) == (
        f"config file {bomb}: YAML anchors and aliases (&name, *name) are not allowed in a config (line 2, column 12)"
    )
    with pytest.raises(ValueError, match=r"^override 'data.corpus=\[&l0 .*anchors and aliases .* are not allowed"):
        load_config(overrides=[f"data.corpus={alias_bomb(6)}"])
    # A lone anchor is refused too: it is the first half of every alias.
    with pytest.raises(ValueError, match="anchors and aliases"):
        load_config(overrides=["data.corpus=&name tsv:pairs.tsv"])


def test_a_huge_value_is_cut_short_in_the_error_message(tmp_path):
    huge = tmp_path / "huge.yaml"
    huge.write_text(
        "model:\n  cell: " + "x" * 500_000 + "\ntrain:\n  epochs: [" + "[1], " * 50_000 + "1]\n", encoding="utf-8"
    )
    with pytest.raises(ValueError) as refused:
        load_config(config_file=huge)
    assert str(refused.value).startswith("config key 'train.epochs' must be int, got [[1], [1], [1], [1], ...]")
    with pytest.raises(ValueError) as refused:
        load_config(overrides=["model.cell=" + "x" * 500_000])
    assert str(refused.value).startswith("model.cell must be one of gru, lstm, simple_rnn, got 'xxxx")
    assert len(str(refused.value)) < 200


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.src_vocab_size=100000000000", "data.src_vocab_size must be at most 1,000,000, got 100000000000"),
        ("data.tgt_vocab_size=2000000", "data.tgt_vocab_size must be at most 1,000,000, got 2000000"),
        ("data.max_pieces=1000000000", "data.max_pieces must be at most 100,000"),
        ("data.max_line_bytes=10000000000", "data.max_line_bytes must be at most 1,073,741,824"),
        ("model.decoder_units=1000000", "model.decoder_units must be at most 16,384"),
        ("model.encoder_layers=1000", "model.encoder_layers must be at most 64"),
        ("train.batch_size=10000000", "train.batch_size must be at most 65,536"),
        ("train.max_minutes=1e9", "train.max_minutes must be at most 527,040.0"),
        ("train.max_minutes=.inf", "train.max_minutes must be a finite number, got inf"),
        ("train.learning_rate=.nan", "train.learning_rate must be a finite number, got nan"),
        ("train.seed=4294967296", "train.seed must be at most 4,294,967,295"),
        ("train.seed=-1", "train.seed must be >= 0, got -1"),
        ("train.shuffle_buffer=-1", "train.shuffle_buffer must be >= 0 (0 keeps the file's order) or null"),
        ("decode.beam_size=100000", "decode.beam_size must be at most 1,000, got 100000"),
        ("decode.max_length_cap=10000000", "decode.max_length_cap must be at most 100,000"),
    ],
)
def test_numbers_over_their_bound_are_refused_by_name(override, message):
    with pytest.raises(ValueError, match=f"^{re.escape(message)}"):
        load_config("quick", overrides=[override])


@pytest.mark.timeout(120)
def test_vocab_size_over_the_bound_is_refused_before_reading(tmp_path):
    # The corpus is an endless stream: reading any of it would never end.
    config = tmp_path / "big.yaml"
    config.write_text(
        f"run_dir: {tmp_path / 'run'}\ndata:\n  corpus: tsv:/dev/zero\n  src_vocab_size: 100000000000\n",
        encoding="utf-8",
    )
    line = one_error_line(run_cli("prepare", "--config", str(config), timeout=100))
    assert line == "error: data.src_vocab_size must be at most 1,000,000, got 100000000000"
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("name", ["../../x", "a/b", ".hidden", "..", "two\nlines", "", "x" * 129])
def test_export_name_in_a_config_must_be_one_safe_folder_name(name):
    with pytest.raises(ValueError, match="^export.name .* must be a single folder name"):
        load_config(overrides=[f"export.name={name}"] if name else ["export.name=''"])
    assert load_config(overrides=["export.name=en-es_v1.2"]).export.name == "en-es_v1.2"
