"""prepare: cleaning counted by reason, splits that never move, length filters, reuse by train."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from conftest import REPO, TINY_OVERRIDES, tiny_config
from translate.corpora import hash_split
from translate.prepare import load_prepared, prepare, read_split

PAIRS = [(f"Sentence number {i} is here.", f"La frase número {i} está aquí.") for i in range(300)]


def write_tsv(path, pairs):
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    return path


def split_of_each_pair(run_dir):
    return {pair: split for split in ("train", "dev", "test") for pair in read_split(run_dir, split)}


def test_cleaning_steps_and_filters_are_counted(tmp_path):
    dirty = [
        ("<b>Bold</b> words &amp; more.", "Palabras en <i>negrita</i> y más."),  # markup on both sides
        ("Too   many\u00a0spaces .", "Demasiados   espacios."),  # whitespace (NFKC turns the nbsp to a space)
        ("ﬁne ligature.", "Ligadura ﬁna."),  # NFKC: ﬁ -> fi
        ("   ", "Vacío por un lado."),  # empty side
        ("<br/>", "Solo marcas."),  # empty once the markup is gone
        ("Sentence number 1 is here.", "La frase número 1 está aquí."),  # exact duplicate of PAIRS[1]
    ]
    corpus = write_tsv(tmp_path / "dirty.tsv", PAIRS + dirty)
    prepared = prepare(tiny_config(tmp_path, f"data.corpus=tsv:{corpus}"), progress=False)
    stats = json.loads((prepared.run_dir / "stats.json").read_text(encoding="utf-8"))
    assert stats["pairs_read"] == {f"tsv:{corpus}": 306}
    # A removed tag leaves a space behind, so both markup pairs count under whitespace too.
    assert stats["pairs_changed"] == {"markup": 2, "whitespace": 2 + 2, "unicode": 2}
    assert stats["pairs_removed"]["while cleaning"] == {"empty side": 2}
    duplicates = sum(stats["pairs_removed"][split].get("duplicate", 0) for split in ("train", "dev", "test"))
    assert duplicates == 1
    assert sum(stats["pairs"].values()) == 300 + 3
    kept = {pair for split in ("train", "dev", "test") for pair in read_split(prepared.run_dir, split)}
    assert ("Bold words & more.", "Palabras en negrita y más.") in kept
    assert ("fine ligature.", "Ligadura fina.") in kept
    for split in ("train", "dev", "test"):
        assert set(stats["length_pieces"][split]["source"]) == {"p50", "p95", "max"}


def test_splits_do_not_move_when_lines_are_appended_or_shuffled(tmp_path):
    first = prepare(
        tiny_config(tmp_path / "a", f"data.corpus=tsv:{write_tsv(tmp_path / 'a.tsv', PAIRS)}"), progress=False
    )
    before = split_of_each_pair(first.run_dir)
    assert set(before.values()) == {"train", "dev", "test"}
    more = PAIRS + [(f"Another line {i}.", f"Otra línea {i}.") for i in range(100)]
    random.Random(3).shuffle(more)
    second = prepare(
        tiny_config(tmp_path / "b", f"data.corpus=tsv:{write_tsv(tmp_path / 'b.tsv', more)}"), progress=False
    )
    after = split_of_each_pair(second.run_dir)
    assert {pair: after[pair] for pair in before} == before


def test_explicit_dev_and_test_files_take_those_roles(tmp_path):
    train = write_tsv(tmp_path / "train.tsv", PAIRS)
    dev = write_tsv(tmp_path / "dev.tsv", [("Dev one.", "Desarrollo uno."), ("Dev two.", "Desarrollo dos.")])
    test = write_tsv(tmp_path / "test.tsv", [("Test one.", "Prueba uno."), (PAIRS[0][0], PAIRS[0][1])])
    prepared = prepare(
        tiny_config(tmp_path, f"data.corpus=tsv:{train}", f"data.dev_corpus=tsv:{dev}", f"data.test_corpus=tsv:{test}"),
        progress=False,
    )
    assert read_split(prepared.run_dir, "dev") == [("Dev one.", "Desarrollo uno."), ("Dev two.", "Desarrollo dos.")]
    assert len(read_split(prepared.run_dir, "test")) == 2
    # A training pair that is also a test pair is left out of training.
    assert prepared.pairs["train"] == 299
    assert prepared.stats["pairs_removed"]["train"] == {"also in dev or test": 1}


def test_long_and_unequal_training_pairs_are_removed_and_counted(tmp_path):
    # Numbered so that they are not duplicates and some land in train.
    unequal = [(f"Ok {i}.", f"Muy bien {i}, de acuerdo, entonces nos vemos mañana por la tarde.") for i in range(20)]
    too_long = [(f"{i} " + "word " * 80, f"{i} " + "palabra " * 80) for i in range(20)]
    corpus = write_tsv(tmp_path / "c.tsv", PAIRS + unequal + too_long)
    prepared = prepare(
        tiny_config(tmp_path, f"data.corpus=tsv:{corpus}", "data.max_pieces=60", "data.max_length_ratio=2.5"),
        progress=False,
    )
    removed = prepared.stats["pairs_removed"]["train"]
    assert removed.get("too long", 0) >= 1 and removed.get("length ratio", 0) >= 1
    assert prepared.stats["length_pieces"]["train"]["source"]["max"] <= 60
    # Held-out sets keep their long pairs: scores must cover all of them.
    held_out = read_split(prepared.run_dir, "dev") + read_split(prepared.run_dir, "test")
    long_held_out = [pair for pair in too_long if hash_split(*(" ".join(side.split()) for side in pair)) != "train"]
    assert long_held_out, "the fixture should put some long pairs in dev or test"
    assert sum("palabra" in target for _, target in held_out) == len(long_held_out)


def test_a_corpus_empty_after_cleaning_says_which_filter_removed_what(tmp_path):
    corpus = write_tsv(tmp_path / "empty.tsv", [("<p></p>", "algo"), ("   ", "nada")])
    with pytest.raises(ValueError, match="empty after cleaning.*empty side 2"):
        prepare(tiny_config(tmp_path, f"data.corpus=tsv:{corpus}"), progress=False)


def test_skipped_lines_are_counted_in_the_report(tmp_path):
    corpus = tmp_path / "broken.tsv"
    corpus.write_text("".join(f"{s}\t{t}\n" for s, t in PAIRS) + "no tab here\n", encoding="utf-8")
    with pytest.raises(ValueError, match="broken.tsv:301: no tab"):
        prepare(tiny_config(tmp_path / "raise", f"data.corpus=tsv:{corpus}"), progress=False)
    prepared = prepare(
        tiny_config(tmp_path / "skip", f"data.corpus=tsv:{corpus}", "data.on_error=skip"), progress=False
    )
    assert sum(prepared.stats["lines_skipped"].values()) == 1
    assert sum(prepared.pairs.values()) == 300


def test_train_reuses_a_prepared_run_folder_and_refuses_other_data_settings(tmp_path):
    config = tiny_config(tmp_path)
    prepared = prepare(config, progress=False)
    assert load_prepared(config).pairs == prepared.pairs
    with pytest.raises(ValueError, match="prepared with other data settings.*data.max_pieces"):
        load_prepared(tiny_config(tmp_path, "data.max_pieces=10"))


def test_lowercasing_is_off_by_default_and_counted_when_on(tmp_path):
    corpus = write_tsv(tmp_path / "cased.tsv", PAIRS)
    cased = prepare(tiny_config(tmp_path / "a", f"data.corpus=tsv:{corpus}"), progress=False)
    assert "lowercase" not in cased.stats["pairs_changed"]
    assert read_split(cased.run_dir, "train")[0][0].startswith("Sentence")
    lowered = prepare(tiny_config(tmp_path / "b", f"data.corpus=tsv:{corpus}", "data.lowercase=true"), progress=False)
    assert lowered.stats["pairs_changed"]["lowercase"] == 300
    assert read_split(lowered.run_dir, "train")[0][0].startswith("sentence")


def _files(folder):
    """Every file under ``folder`` with its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_prepare_never_deletes_a_users_files_in_data(tmp_path):
    data = tmp_path / "run" / "data"
    data.mkdir(parents=True)
    corpus = write_tsv(data / "corpus.tsv", PAIRS)
    (data / "notes.txt").write_text("notes\n", encoding="utf-8")
    before = _files(tmp_path)
    # The corpus itself lies in data/: refused, and named.
    with pytest.raises(ValueError, match=r"data.corpus .*corpus.tsv is inside .*data"):
        prepare(tiny_config(tmp_path, f"data.corpus=tsv:{corpus}"), progress=False)
    # With the corpus elsewhere, the files in data/ are still in the way.
    outside = write_tsv(tmp_path / "corpus.tsv", PAIRS)
    before[outside.name] = outside.read_bytes()
    with pytest.raises(ValueError, match=r"holds what prepare does not make \(corpus.tsv, notes.txt\)"):
        prepare(tiny_config(tmp_path, f"data.corpus=tsv:{outside}"), progress=False)
    assert _files(tmp_path) == before


def test_prepare_refuses_a_trained_run_unless_train_overwrite(tmp_path):
    config = tiny_config(tmp_path)
    prepare(config, progress=False)
    (tmp_path / "run" / "best.weights.h5").write_bytes(b"trained on these SentencePiece models")
    before = _files(tmp_path)
    other_vocabulary = tiny_config(tmp_path, "data.src_vocab_size=300")
    with pytest.raises(ValueError, match=r"holds a trained model \(best.weights.h5\).*train.overwrite=true"):
        prepare(other_vocabulary, progress=False)
    assert _files(tmp_path) == before
    other_vocabulary.train.overwrite = True
    prepare(other_vocabulary, progress=False)
    assert (tmp_path / "run" / "src.model").read_bytes() != before["run/src.model"]


def test_a_second_prepare_replaces_only_its_own_files_and_clears_a_killed_runs_temporaries(tmp_path):
    run_dir = tmp_path / "run"
    prepare(tiny_config(tmp_path, f"data.corpus=tsv:{write_tsv(tmp_path / 'a.tsv', PAIRS)}"), progress=False)
    (run_dir / "notes.txt").write_text("mine", encoding="utf-8")  # beside data/, not in it
    (run_dir / ".tmp-stats.json-0a1b2c3d").write_text("{half", encoding="utf-8")  # a killed prepare's
    more = PAIRS + [(f"Another line {i}.", f"Otra línea {i}.") for i in range(100)]
    second = prepare(tiny_config(tmp_path, f"data.corpus=tsv:{write_tsv(tmp_path / 'b.tsv', more)}"), progress=False)
    assert sum(second.pairs.values()) == 400
    assert json.loads((run_dir / "stats.json").read_text(encoding="utf-8"))["pairs"] == second.pairs
    assert sorted(p.name for p in run_dir.iterdir()) == ["data", "notes.txt", "src.model", "stats.json", "tgt.model"]
    assert sorted(p.name for p in (run_dir / "data").iterdir()) == sorted(
        f"{split}.{side}" for split in ("train", "dev", "test") for side in ("src", "tgt")
    )


def test_the_line_cap_reaches_the_corpus_reader_and_older_preparations_are_still_reused(tmp_path):
    corpus = write_tsv(tmp_path / "long.tsv", PAIRS[:60] + [("x" * 300, "long")])
    with pytest.raises(ValueError, match="long.tsv:61: line longer than 256 bytes"):
        prepare(
            tiny_config(tmp_path / "capped", f"data.corpus=tsv:{corpus}", "data.max_line_bytes=256"), progress=False
        )
    config = tiny_config(tmp_path)
    prepare(config, progress=False)
    # A preparation made before data.max_line_bytes existed read with the same fixed cap: still reused.
    stats_path = tmp_path / "run" / "stats.json"
    stats = json.loads(stats_path.read_text(encoding="utf-8"))
    del stats["data_config"]["max_line_bytes"]
    stats_path.write_text(json.dumps(stats), encoding="utf-8")
    assert load_prepared(config) is not None
    with pytest.raises(ValueError, match=r"prepared with other data settings \(data.max_line_bytes\)"):
        load_prepared(tiny_config(tmp_path, "data.max_line_bytes=256"))


# Run in a fresh interpreter: this one has imported TensorFlow for other tests.
_PREPARE_WITHOUT_TENSORFLOW = """
import sys
from translate.cli import main
code = main(["prepare", *sys.argv[1:]])
print("TENSORFLOW" if "tensorflow" in sys.modules else "NO TENSORFLOW", code)
"""


def test_the_prepare_command_does_not_import_tensorflow(tmp_path):
    # prepare trains SentencePiece and writes text: waiting for TensorFlow's import would make it several
    # times slower for a user, and for every prepare the kill tests run.
    result = subprocess.run(
        [sys.executable, "-c", _PREPARE_WITHOUT_TENSORFLOW, *TINY_OVERRIDES, f"run_dir={tmp_path / 'run'}"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines()[-1] == "NO TENSORFLOW 0"
    assert (tmp_path / "run" / "stats.json").is_file()
