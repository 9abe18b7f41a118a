"""Runs built on other runs: data.reuse_from, train.init_from (fine-tuning) and data.synthetic.

The fast tests prepare the tiny corpus (SentencePiece only, no model); the one that fine-tunes starts from
the shared tiny run (``tiny_run``, slow tier) and takes a single step.
"""

from __future__ import annotations

import hashlib
import json
import shutil

import numpy as np
import pytest

from conftest import TINY_CORPUS, TINY_OVERRIDES, tiny_config
from translate.config import save_config
from translate.corpora import hash_split
from translate.prepare import load_prepared, prepare, prepare_or_load, read_split
from translate.reuse import SYNTHETIC_TAG, check_init_from, has_synthetic_tag, reused_data, same_source

PAIRS = [(f"Sentence number {i} is here.", f"La frase número {i} está aquí.") for i in range(300)]
PREPARED_FILES = (
    "src.model",
    "tgt.model",
    *(f"data/{s}.{side}" for s in ("train", "dev", "test") for side in "src tgt".split()),
)


def write_tsv(path, pairs):
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return path


def files(folder):
    """Every file under ``folder``: its bytes' digest."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*") if p.is_file()
    }


# -- data.reuse_from ---------------------------------------------------------------------------------------


def test_reuse_from_copies_the_sentencepiece_models_and_splits_byte_for_byte(tmp_path):
    corpus = write_tsv(tmp_path / "pairs.tsv", PAIRS)
    source = prepare(tiny_config(tmp_path / "a", f"data.corpus=tsv:{corpus}"), progress=False)
    before = files(source.run_dir)
    # Another seed, vocabulary size and corpus: made on their own, models and splits would all differ.
    other = write_tsv(tmp_path / "other.tsv", PAIRS[::-1][:200])
    config = tiny_config(
        tmp_path / "b",
        f"data.corpus=tsv:{other}",
        "data.src_vocab_size=350",
        "train.seed=99",
        f"data.reuse_from={source.run_dir}",
    )
    # What train calls: the folder is prepared by copying, then reused as it is.
    copy = prepare_or_load(config, progress=False)
    for name in PREPARED_FILES:
        assert (copy.run_dir / name).read_bytes() == (source.run_dir / name).read_bytes(), name
    assert (copy.src_model, copy.tgt_model, copy.pairs) == (source.src_model, source.tgt_model, source.pairs)
    stats = json.loads((copy.run_dir / "stats.json").read_text(encoding="utf-8"))
    assert stats["reused_from"] == str(source.run_dir)
    # The copied preparation's settings hold for the new run; the source is only read.
    assert (stats["data_config"]["corpus"], stats["data_config"]["src_vocab_size"]) == (f"tsv:{corpus}", 400)
    assert reused_data(config).data.corpus == f"tsv:{corpus}"
    assert load_prepared(config).pairs == source.pairs
    assert files(source.run_dir) == before
    # The copy stands on its own: it is still reused once the run it copied is gone.
    shutil.rmtree(source.run_dir)
    assert load_prepared(config).src_model == copy.src_model


def test_a_copied_preparation_is_reused_whatever_spelling_names_the_run_it_came_from(tmp_path, monkeypatch):
    source = prepare(tiny_config(tmp_path / "a"), progress=False)
    prepare_or_load(tiny_config(tmp_path / "b", f"data.reuse_from={source.run_dir}"), progress=False)
    monkeypatch.chdir(tmp_path)
    # A rerun (a resumed member of train.members, say) may name the same run with a slash, relatively or
    # through "..": the same preparation, not "other data settings".
    for spelling in (f"{source.run_dir}/", "a/run", "./a/../a/run/"):
        again = tiny_config(tmp_path / "b", f"data.reuse_from={spelling}")
        assert load_prepared(again).pairs == source.pairs, spelling


def test_reuse_from_a_missing_or_unprepared_run_or_the_run_itself_is_refused(tmp_path, capsys):
    from translate.cli import main

    (tmp_path / "empty").mkdir()
    prepare(tiny_config(tmp_path), progress=False)
    before = files(tmp_path)
    for folder, run_dir, message in [
        ("nowhere", "new", "no such run folder"),
        ("empty", "new", "is not a prepared run folder (no stats.json): prepare it first"),
        ("run", "run", "is this run's own folder"),
    ]:
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            prepare(tiny_config(tmp_path, f"data.reuse_from={tmp_path / folder}"), progress=False)
        # The command line: exit status 2 and one line, before TensorFlow is needed.
        argv = [*TINY_OVERRIDES, f"run_dir={tmp_path / run_dir}", f"data.reuse_from={tmp_path / folder}"]
        assert main(["train", "--no-export", *argv, f"export.models_dir={tmp_path / 'models'}"]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: data.reuse_from=") and message in err, err
    assert files(tmp_path) == before


# -- train.init_from: the checks (a stand-in trained run: a prepared folder with a config and weights) ---------


@pytest.fixture
def trained_stand_in(tmp_path):
    """A run folder as train leaves it, as far as the checks look: config.yaml, best.weights.h5, the models."""
    config = tiny_config(tmp_path / "source")
    prepare(config, progress=False)
    save_config(config, tmp_path / "source" / "run" / "config.yaml")
    (tmp_path / "source" / "run" / "best.weights.h5").write_bytes(b"weights")
    return tmp_path / "source" / "run"


def test_init_from_refuses_another_model_shape_naming_the_field(tmp_path, trained_stand_in, capsys):
    from translate.cli import main

    before = files(trained_stand_in)
    with pytest.raises(ValueError, match=r"model.decoder_units is 64 here but 32 there"):
        check_init_from(tiny_config(tmp_path, f"train.init_from={trained_stand_in}", "model.decoder_units=64"))
    with pytest.raises(ValueError, match=r"model.cell is 'lstm' here but 'gru' there"):
        check_init_from(tiny_config(tmp_path, f"train.init_from={trained_stand_in}", "model.cell=lstm"))
    # Dropout changes no weight; the learning rate and budget are the new run's own.
    check_init_from(
        tiny_config(tmp_path, f"train.init_from={trained_stand_in}", "model.dropout=0.3", "train.learning_rate=0.0001")
    )
    # The command line: exit status 2 and one line, nothing written.
    for argv, extra, message in [
        (["--init-from", str(trained_stand_in)], ["model.decoder_units=64"], "model.decoder_units is 64 here but 32"),
        (["--init-from", str(tmp_path / "nowhere")], [], "no such run folder"),
        (["--init-from", str(tmp_path / "source")], [], "holds no trained model (no config.yaml)"),
    ]:
        overrides = [*TINY_OVERRIDES, f"run_dir={tmp_path / 'new'}", f"export.models_dir={tmp_path / 'models'}"]
        assert main(["train", "--no-export", *argv, *overrides, *extra]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: train.init_from=") and message in err, err
    assert files(trained_stand_in) == before
    assert not (tmp_path / "new").exists()


def test_init_from_refuses_its_own_folder_and_a_folder_prepared_with_other_models(tmp_path, trained_stand_in):
    with pytest.raises(ValueError, match="is this run's own folder"):
        check_init_from(tiny_config(tmp_path / "source", f"train.init_from={trained_stand_in}"))
    prepare(tiny_config(tmp_path, "data.src_vocab_size=350"), progress=False)
    with pytest.raises(ValueError, match="prepared with other SentencePiece models than train.init_from"):
        check_init_from(tiny_config(tmp_path, f"train.init_from={trained_stand_in}", "data.src_vocab_size=350"))


def test_prepare_with_init_from_encodes_with_that_runs_models(tmp_path, trained_stand_in):
    corpus = write_tsv(tmp_path / "pairs.tsv", PAIRS)
    config = tiny_config(
        tmp_path, f"data.corpus=tsv:{corpus}", "data.src_vocab_size=350", f"train.init_from={trained_stand_in}"
    )
    prepared = prepare(config, progress=False)
    assert prepared.src_model == (trained_stand_in / "src.model").read_bytes()
    assert prepared.tgt_model == (trained_stand_in / "tgt.model").read_bytes()
    assert prepared.stats["sentencepiece"]["from"] == str(trained_stand_in)
    assert sum(prepared.pairs.values()) == 300  # the new corpus, not the run's
    check_init_from(config)


# -- data.synthetic --------------------------------------------------------------------------------------


def test_synthetic_pairs_go_to_train_only_tagged_with_one_piece(tmp_path):
    corpus = write_tsv(tmp_path / "pairs.tsv", PAIRS)
    dev_target = next(t for s, t in PAIRS if hash_split(s, t) == "dev")
    synthetic = [(f"Made up source {i}.", f"Frase de monolingüe {i}.") for i in range(20)]
    # A back-translated dev reference would leak the held-out set into training: dropped.
    write_tsv(tmp_path / "bt.tsv", [*synthetic, ("A made up source.", dev_target)])
    config = tiny_config(tmp_path, f"data.corpus=tsv:{corpus}", f"data.synthetic={tmp_path / 'bt.tsv'}")
    prepared = prepare(config, progress=False)

    train = read_split(prepared.run_dir, "train")
    tagged = [(s, t) for s, t in train if s.startswith(SYNTHETIC_TAG)]
    assert tagged == [(f"{SYNTHETIC_TAG} {s}", t) for s, t in synthetic]
    assert not any(SYNTHETIC_TAG in s for s, _ in train if (s, _) not in tagged)
    for split in ("dev", "test"):
        held_out = read_split(prepared.run_dir, split)
        assert held_out and not any(SYNTHETIC_TAG in s or "monolingüe" in t for s, t in held_out)
    assert prepared.stats["synthetic"] == {
        "file": str(tmp_path / "bt.tsv"),
        "tag": "<BT>",
        "pairs_read": 21,
        "in_train": 20,
    }
    assert prepared.stats["pairs_removed"]["train"]["synthetic, target in dev or test"] == 1
    assert prepared.pairs["train"] == sum(hash_split(*p) == "train" for p in PAIRS) + 20

    # The tag is one piece of the source model, in Python and in the graph that training runs.
    import sentencepiece as spm

    from translate.text import make_tokenizer

    assert has_synthetic_tag(prepared.src_model)
    processor = spm.SentencePieceProcessor(model_proto=prepared.src_model)
    tag_id = processor.piece_to_id(SYNTHETIC_TAG)
    assert processor.id_to_piece(tag_id) == SYNTHETIC_TAG
    ids = make_tokenizer(prepared.src_model).tokenize([tagged[0][0]]).to_list()[0]
    assert ids.count(tag_id) == 1 and ids == processor.encode(tagged[0][0])
    # A model made without data.synthetic splits the tag into pieces.
    plain = prepare(tiny_config(tmp_path / "plain", f"data.corpus=tsv:{corpus}"), progress=False)
    assert not has_synthetic_tag(plain.src_model)


def test_synthetic_data_needs_the_tag_in_an_init_from_runs_model(tmp_path, trained_stand_in):
    write_tsv(tmp_path / "bt.tsv", [("Made up.", "Inventado.")])
    config = tiny_config(tmp_path, f"train.init_from={trained_stand_in}", f"data.synthetic={tmp_path / 'bt.tsv'}")
    for check in (check_init_from, lambda c: prepare(c, progress=False)):
        with pytest.raises(ValueError, match=f"data.synthetic needs {SYNTHETIC_TAG} as one piece"):
            check(config)


def test_a_missing_synthetic_file_is_one_line_before_anything_is_written(tmp_path, capsys):
    from translate.cli import main

    assert (
        main(
            [
                "prepare",
                f"data.corpus=tsv:{TINY_CORPUS}",
                f"run_dir={tmp_path / 'run'}",
                f"data.synthetic={tmp_path / 'no.tsv'}",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no.tsv" in err, err
    assert not (tmp_path / "run").exists()


# -- fine-tuning (trains one step: slow tier through tiny_run) ---------------------------------------------


def test_fine_tuning_starts_from_the_source_weights_and_models_and_leaves_the_source_alone(tmp_path, tiny_run):
    from translate.training import build_run, load_run, train

    source = tiny_run.run_dir
    before = files(source)
    # Another corpus (a part of the tiny one) and another vocabulary size asked for: the source's models win.
    lines = TINY_CORPUS.read_text(encoding="utf-8").splitlines(keepends=True)[:30]
    corpus = tmp_path / "domain.tsv"
    corpus.write_text("".join(lines), encoding="utf-8")
    config = tiny_config(
        tmp_path,
        f"data.corpus=tsv:{corpus}",
        "data.src_vocab_size=350",
        f"train.init_from={source}",
        "train.epochs=1",
        "train.steps_per_epoch=1",
        # One Adam step moves each weight by about the learning rate: the weights stay the source's.
        "train.learning_rate=1e-9",
        "train.tensorboard=false",
    )
    tuned = train(config, verbose=0)
    assert (tuned.src_model, tuned.tgt_model) == (
        (source / "src.model").read_bytes(),
        (source / "tgt.model").read_bytes(),
    )
    reference = load_run(source)
    weights = tuned.models.training.get_weights()
    expected = reference.models.training.get_weights()
    assert len(weights) == len(expected)
    for got, want in zip(weights, expected):
        np.testing.assert_allclose(got, want, atol=1e-6)
    # Not a fluke of small weights: a freshly built model of the same shape is far from the source's.
    fresh = build_run(tuned.config, tmp_path, tuned.src_model, tuned.tgt_model).models.training.get_weights()
    assert max(float(np.abs(a - b).max()) for a, b in zip(fresh, expected)) > 1e-2
    assert files(source) == before
    assert (tmp_path / "run" / "best.weights.h5").is_file()
    shutil.rmtree(tmp_path / "run")


def test_the_run_copied_from_is_recognized_however_its_path_is_written():
    # stats.json records the path normalized; the run is found again as ./runs/a/ or runs/a.
    assert same_source("runs/a", "./runs/a/") and same_source("runs/a", "runs/a")
    assert not same_source("runs/a", "runs/b") and not same_source(None, "runs/a")
