"""SIGKILL at random points of ``prepare``, ``train`` and ``export``: every file left is whole, and the next
run goes on.

Each command runs as ``python -m translate ...`` on the tiny model and is killed with SIGKILL after a seeded
random delay. An uninterrupted first run of each command is watched to learn when it writes its results;
most kills come at a random moment of that stretch, counted from the moment the trial itself starts
writing, and some before any result is written (during train's and export's tracing). After every kill
each file in the run folder or the model folder is read back as what its name says it is, and the next run
of the same command goes on from what the killed one left: the trials of one command form a chain, each the
next run of the one before it, and an uninterrupted run ends each chain. Run with ``-s`` to see what each
trial hit.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from conftest import REPO, TINY_CORPUS, TINY_OVERRIDES, file_states

pytestmark = pytest.mark.timeout(1800)

SEED = 18
# Kill trials per command (at least 20 in all). prepare is the cheapest to run (train and export spend
# most of theirs in TensorFlow's import and tracing), so it gets the most.
TRIALS = {"prepare": 15, "train": 3, "export": 2}
EPOCHS = 3

# The tiny model, trained for a few short epochs with every kind of file a run writes (epoch checkpoints
# included), one search loop (decode.shards=1 halves the tracing export pays), short outputs and greedy
# decoding (decode.beam_size=1: every search that train's test scores and export trace is the greedy loop,
# which traces faster than the beam's; what is written, and when, is the same).
KILL_OVERRIDES = [
    *TINY_OVERRIDES,
    f"train.epochs={EPOCHS}",
    "train.steps_per_epoch=3",
    "train.dev_sentences=4",
    "train.keep_checkpoints=2",
    "train.tensorboard=false",
    "decode.shards=1",
    "decode.beam_size=1",
    "decode.max_length_cap=12",
]

_SYLLABLES = ("ka", "lo", "mi", "ne", "su", "ta", "ri", "po", "da", "ve", "chi", "gu", "ba", "fe", "zo", "le")


def _write_corpora(folder: Path) -> list[str]:
    """A synthetic corpus big enough for prepare to write for a while (half a second on an idle core; the
    target is the source's words reversed), and dev and test sets from the tiny corpus small enough for
    train's test scores to be quick; returns the data overrides that name them."""
    rng = random.Random(SEED)
    words = ["".join(rng.choice(_SYLLABLES) for _ in range(rng.randint(1, 3))) for _ in range(400)]
    lines = []
    for _ in range(6000):
        source = [rng.choice(words) for _ in range(rng.randint(3, 12))]
        lines.append(" ".join(source) + "\t" + " ".join(w[::-1] for w in reversed(source)) + "\n")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "corpus.tsv").write_text("".join(lines), encoding="utf-8")
    tiny = TINY_CORPUS.read_text(encoding="utf-8").splitlines(keepends=True)
    (folder / "dev.tsv").write_text("".join(tiny[:20]), encoding="utf-8")
    (folder / "test.tsv").write_text("".join(tiny[20:26]), encoding="utf-8")
    return [
        f"data.corpus=tsv:{folder / 'corpus.tsv'}",
        f"data.dev_corpus=tsv:{folder / 'dev.tsv'}",
        f"data.test_corpus=tsv:{folder / 'test.tsv'}",
    ]


# --------------------------------------------------------------------------
# Running a command and killing it


@dataclass
class Command:
    """One of the CLI commands under test: its arguments, and how the test sees its work."""

    args: list[str]
    started: Callable[[subprocess.Popen, str], bool]  # has the work begun? (the process, its output so far)
    watch: Path  # the folder it writes
    writes: Callable[[str], bool]  # does a new or changed path under ``watch`` mean its results are being written?


@dataclass
class Kill:
    """SIGKILL ``delay`` seconds after the work starts ("start") or after it starts writing results ("writing")."""

    after: str
    delay: float


@dataclass
class Outcome:
    returncode: int
    output: str
    killed: bool  # SIGKILLed (False: it ended by itself first)
    started: float | None  # seconds from launch to the start of the work; None: it never started
    changes: list[tuple[float, str]]  # with ``record``: (seconds since the start, path) of what changed


def _state(folder: Path) -> dict[str, tuple[int, int]]:
    """Every file and folder under ``folder``, with its size and modification time."""
    state = {}
    for root, folders, files in os.walk(folder):
        for name in folders + files:
            path = os.path.join(root, name)
            try:
                stat = os.stat(path)
            except OSError:  # gone meanwhile
                continue
            state[os.path.relpath(path, folder)] = (stat.st_size, stat.st_mtime_ns)
    return state


def run_command(command: Command, kill: Kill | None = None, record: bool = False, timeout: float = 600) -> Outcome:
    """Runs ``python -m translate ARGS`` and SIGKILLs it as ``kill`` says; with ``record``, notes when each path
    under the watched folder changes."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
    process = subprocess.Popen(
        [sys.executable, "-m", "translate", *command.args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    chunks: list[bytes] = []
    reader = threading.Thread(
        target=lambda: chunks.extend(iter(lambda: process.stdout.read1(1 << 16), b"")), daemon=True
    )
    reader.start()
    launched = time.monotonic()
    start = anchor = None  # when the work started; when the kill's delay started
    changes: list[tuple[float, str]] = []
    state = _state(command.watch)
    killed = False
    while process.poll() is None:
        now = time.monotonic()
        if now - launched > timeout:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()
            raise AssertionError(f"{command.args[0]} ran for more than {timeout} s")
        if start is None and command.started(process, b"".join(chunks).decode("utf-8", "replace")):
            start = now
            anchor = now if kill is not None and kill.after == "start" else None
        if start is not None and (record or (kill is not None and anchor is None)):
            new_state = _state(command.watch)
            changed = [path for path in sorted(set(state) | set(new_state)) if state.get(path) != new_state.get(path)]
            changes += [(now - start, path) for path in changed]
            if anchor is None and any(path in new_state and command.writes(path) for path in changed):
                anchor = now
            state = new_state
        if kill is not None and anchor is not None and now - anchor >= kill.delay:
            os.kill(process.pid, signal.SIGKILL)
            killed = True
            break
        time.sleep(0.002 if anchor is not None else 0.01)
    process.wait()
    reader.join()
    if record and start is not None:
        new_state = _state(command.watch)
        changes += [
            (time.monotonic() - start, path)
            for path in sorted(set(state) | set(new_state))
            if state.get(path) != new_state.get(path)
        ]
    return Outcome(
        process.returncode,
        b"".join(chunks).decode("utf-8", "replace"),
        killed,
        None if start is None else start - launched,
        changes,
    )


def kill_plan(rng: random.Random, count: int, first: Outcome, command: Command) -> list[Kill]:
    """Seeded random kills, timed by the uninterrupted ``first`` run. Most come at a random moment of its
    writing (from its first write of a result to its last change), counted from the moment the trial itself
    starts writing, so that however long it takes to get there (tracing, a loaded CPU) the kill lands among
    the writes or just after them; every fourth, where the work first writes nothing for a second or more,
    comes at a random moment before that. The moments are stratified: the i-th of n falls in the i-th n-th
    of its stretch, so that a few trials still reach every part of it."""
    begin = min(t for t, path in first.changes if command.writes(path))
    span = max(t for t, _ in first.changes) - begin
    early = sum(1 for trial in range(count) if begin >= 1 and trial % 4 == 1)

    def moments(n: int, length: float) -> list[float]:
        spread = [(i + rng.random()) * length / n for i in range(n)]
        rng.shuffle(spread)
        return spread

    starts, writes = moments(early, begin), moments(count - early, span)
    return [
        Kill("start", starts.pop()) if begin >= 1 and trial % 4 == 1 else Kill("writing", writes.pop())
        for trial in range(count)
    ]


def output_says(marker: str):
    return lambda process, output: marker in output


def _tail(outcome: Outcome) -> str:
    return outcome.output[-3000:]


# --------------------------------------------------------------------------
# What a run folder and a model folder may hold after a kill


def _is_temporary(name: str) -> bool:
    from translate.atomic import TEMPORARY_PREFIX

    return name.startswith(TEMPORARY_PREFIX)


def _read_h5(path: Path) -> None:
    """Every dataset of an HDF5 file, read: a truncated file fails here."""
    import h5py

    def read(name, obj):
        if isinstance(obj, h5py.Dataset):
            obj[()]

    with h5py.File(path, "r") as f:
        f.visititems(read)


def _lines(path: Path) -> int:
    data = path.read_bytes()
    data.decode("utf-8")
    assert not data or data.endswith(b"\n"), f"{path} ends inside a line"
    return data.count(b"\n")


def check_run_folder(run_dir: Path) -> dict[str, object]:
    """Reads back every file of a run folder; returns what it found. Hidden temporaries may be there."""
    import sentencepiece as spm
    import yaml

    from translate.config import load_config
    from translate.run_folder import BACKUP_WEIGHTS_PATTERN, CHECKPOINT_PATTERN, DATA_FILES

    found: dict[str, object] = {"temporaries": []}
    for path in sorted(p for p in run_dir.rglob("*") if p.is_file()):
        rel = path.relative_to(run_dir).as_posix()
        if _is_temporary(path.name):
            found["temporaries"].append(rel)
        elif rel == "config.yaml":
            found["config"] = load_config(config_file=path)
            yaml.safe_load(path.read_text(encoding="utf-8"))
        elif rel == "stats.json":
            found["stats"] = json.loads(path.read_text(encoding="utf-8"))
        elif rel in ("src.model", "tgt.model"):
            processor = spm.SentencePieceProcessor(model_file=str(path))
            assert processor.encode("ka lo mi") and processor.get_piece_size() >= 300
            found[rel] = processor.get_piece_size()
        elif rel.startswith("data/") and path.name in DATA_FILES:
            found[rel] = _lines(path)
        elif rel == "history.csv":
            with path.open(newline="", encoding="utf-8") as f:
                rows = list(csv.reader(f))
            assert rows and rows[0][0] == "epoch", f"{rel} has no header: {rows[:1]}"
            assert all(len(row) == len(rows[0]) for row in rows), f"{rel} has a torn row"
            assert [int(row[0]) for row in rows[1:]] == list(range(len(rows) - 1)), f"{rel}: {rows}"
            found["history_epochs"] = len(rows) - 1
        elif rel == "test_scores.json":
            assert "bleu" in json.loads(path.read_text(encoding="utf-8"))
        elif rel == "best.weights.h5" or (rel.startswith("checkpoints/") and CHECKPOINT_PATTERN.fullmatch(path.name)):
            _read_h5(path)
            found.setdefault("weights", []).append(path)
        elif rel == "backup/training_metadata.json":
            metadata = json.loads(path.read_text(encoding="utf-8"))
            assert (path.parent / metadata["weights"]).is_file(), f"{rel} names a missing {metadata['weights']}"
            found["backup_epoch"] = metadata["epoch"]
        elif rel.startswith("backup/") and BACKUP_WEIGHTS_PATTERN.fullmatch(path.name):
            _read_h5(path)  # holds the optimizer too: read whole, not loaded into a bare model
        else:
            raise AssertionError(f"unexpected file in the run folder: {rel}")

    stats = found.get("stats")
    if stats is not None:
        # stats.json comes last: when it is there, every split and both models are the ones it describes.
        for split, count in stats["pairs"].items():
            assert found.get(f"data/{split}.src") == found.get(f"data/{split}.tgt") == count, (split, found)
        assert found.get("src.model") == stats["sentencepiece"]["src_vocab"]
        assert found.get("tgt.model") == stats["sentencepiece"]["tgt_vocab"]
    if found.get("weights"):
        from translate.training import build_run, load_run

        assert "config" in found and "stats" in found, "weights without the config and the data they belong to"
        if (run_dir / "best.weights.h5").is_file():
            run = load_run(run_dir)
        else:
            run = build_run(
                found["config"], run_dir, (run_dir / "src.model").read_bytes(), (run_dir / "tgt.model").read_bytes()
            )
        for weights in found["weights"]:
            run.models.training.load_weights(weights)
    return found


def finished(run_dir: Path) -> bool:
    from translate.run_folder import has_backup, is_trained

    return is_trained(run_dir) and not has_backup(run_dir)


class VersionChecker:
    """Loads each export version once (a version folder never changes after its rename)."""

    def __init__(self):
        self.loaded: dict[int, int] = {}  # version -> inode of its folder when it loaded

    def check(self, model_dir: Path, translate_with_it: bool = False) -> list[int]:
        import translate
        from translate import export as export_module
        from translate.config import load_config
        from translate.versions import resolve_version, versions

        digits, hidden = [], []
        for entry in model_dir.iterdir():
            if entry.name.isascii() and entry.name.isdigit():
                digits.append(int(entry.name))
            elif export_module._TEMPORARY.fullmatch(entry.name):
                # A killed export's folder, which the next export removes: its writer is gone.
                assert export_module._is_stale(entry, export_module._host(), time.time()), entry
                hidden.append(entry.name)
            else:
                raise AssertionError(f"unexpected entry in the model folder: {entry.name}")
        found = versions(model_dir)
        assert found == sorted(digits) == list(range(1, len(found) + 1)), (found, digits, hidden)
        if found:
            assert resolve_version(model_dir) == model_dir / str(found[-1])
        for version in found:
            folder = model_dir / str(version)
            if self.loaded.get(version) == folder.stat().st_ino:
                continue
            load_config(config_file=folder / "assets" / "config.yaml")
            assert (folder / "assets.extra" / export_module.WARMUP_FILE).stat().st_size > 0
            translator = translate.load(folder)  # reads every variable: a short file fails here
            if translate_with_it:  # a first call costs seconds (graph optimization): only where asked
                translations = translator(["ka lo mi", ""])
                assert len(translations) == 2 and all(isinstance(t, str) for t in translations)
            self.loaded[version] = folder.stat().st_ino
        return found


# --------------------------------------------------------------------------
# The three chains


def _report(name: str, first: Outcome, command: Command, trials: list[dict]) -> None:
    """What the trials hit, for the log (pytest -s)."""
    writes = [t for t, path in first.changes if command.writes(path)]
    print(
        f"\n{name}: the uninterrupted run started its work {first.started:.1f} s after launch and wrote results "
        f"from {min(writes):.1f} s to {max(t for t, _ in first.changes):.1f} s into it; "
        f"{sum(t['killed'] for t in trials)} of {len(trials)} trials killed"
    )
    for t in trials:
        print("   ", t)


def _overrides(data: list[str], run_dir: Path) -> list[str]:
    return [*KILL_OVERRIDES, *data, f"run_dir={run_dir}", f"export.models_dir={run_dir.parent / 'saved_models'}"]


def prepare_command(data: list[str], run_dir: Path) -> Command:
    # Its work starts with its first progress bar, and it writes from then on.
    return Command(["prepare", *_overrides(data, run_dir)], output_says("reading tsv:"), run_dir, lambda path: True)


def train_command(data: list[str], run_dir: Path, *extra: str) -> Command:
    # Its results are the epochs' (config.yaml and the epoch-0 backup come before the model is even traced).
    return Command(
        ["train", "--no-export", *_overrides(data, run_dir), *extra],
        output_says("reusing the prepared data"),
        run_dir,
        lambda path: "best.weights.h5" in path or "history.csv" in path,
    )


def export_command(run_dir: Path, models_dir: Path) -> Command:
    # Its work starts with its temporary folder; its results are what that folder comes to hold.
    model_dir = models_dir / "translator"
    return Command(
        ["export", "--model", str(run_dir), "--models-dir", str(models_dir)],
        lambda process, output: any(model_dir.glob(f".export-*-{process.pid}-*")),
        model_dir,
        lambda path: os.sep in path,
    )


def _describe(kill: Kill) -> str:
    return f"{kill.delay:.2f} s after {'the start' if kill.after == 'start' else 'its first write'}"


@pytest.fixture(scope="module")
def corpora(tmp_path_factory):
    """The data overrides: a synthetic corpus, and dev and test sets from tiny.tsv."""
    return _write_corpora(tmp_path_factory.mktemp("corpora"))


@pytest.fixture(scope="module")
def prepared(tmp_path_factory, corpora):
    """A run folder prepared by an uninterrupted run, which shows when prepare writes."""
    run_dir = tmp_path_factory.mktemp("prepared") / "run"
    first = run_command(prepare_command(corpora, run_dir), record=True)
    assert first.returncode == 0 and first.changes, _tail(first)
    return run_dir, first


@pytest.fixture(scope="module")
def trained(tmp_path_factory, corpora, prepared):
    """The prepared folder trained by an uninterrupted run, which shows when train writes."""
    run_dir = tmp_path_factory.mktemp("trained") / "run"
    shutil.copytree(prepared[0], run_dir)
    first = run_command(train_command(corpora, run_dir), record=True)
    assert first.returncode == 0 and "trained in" in first.output, _tail(first)
    # The test scores come after a search is traced: the results that matter end with the backup's removal.
    first.changes = [(t, path) for t, path in first.changes if "test_scores" not in path]
    return run_dir, first


def test_a_prepare_killed_anywhere_leaves_whole_files_and_the_next_prepare_makes_the_same_folder(
    tmp_path, corpora, prepared
):
    reference_dir, first = prepared
    reference = check_run_folder(reference_dir)
    assert not reference["temporaries"]
    run_dir = tmp_path / "run"  # the first trial starts from nothing, each later one from what the last left
    command = prepare_command(corpora, run_dir)
    trials = []
    for kill in kill_plan(random.Random(SEED), TRIALS["prepare"], first, command):
        was_prepared = (run_dir / "stats.json").is_file()
        outcome = run_command(command, kill)
        assert outcome.killed or outcome.returncode == 0, _tail(outcome)
        found = check_run_folder(run_dir) if run_dir.exists() else {"temporaries": []}
        trials.append(
            {
                "kill": _describe(kill),
                "killed": outcome.killed,
                "from": "prepared" if was_prepared else "nothing",
                "left": "prepared" if "stats" in found else "unprepared",
                "temporaries": len(found["temporaries"]),
            }
        )
    last = run_command(command)
    assert last.returncode == 0, _tail(last)
    after = check_run_folder(run_dir)
    assert not after["temporaries"], after["temporaries"]  # what the killed runs left is cleared
    for name in (f"data/{split}.{side}" for split in ("train", "dev", "test") for side in ("src", "tgt")):
        assert (run_dir / name).read_bytes() == (reference_dir / name).read_bytes(), name
    assert after["stats"]["pairs"] == reference["stats"]["pairs"]
    _report("prepare", first, command, trials)
    assert sum(t["killed"] for t in trials) >= len(trials) / 2  # at least half die before they end


def test_a_train_killed_anywhere_leaves_loadable_weights_and_the_next_train_resumes_or_refuses_a_finished_run(
    tmp_path, corpora, trained
):
    trained_dir, first = trained
    found = check_run_folder(trained_dir)
    assert found["history_epochs"] == EPOCHS and finished(trained_dir) and not found["temporaries"]
    run_dir = tmp_path / "run"
    shutil.copytree(trained_dir, run_dir)  # the export test keeps the trained folder as it is
    command = train_command(corpora, run_dir)
    trials = []
    for kill in kill_plan(random.Random(SEED + 1), TRIALS["train"], first, command):
        trial = command
        if finished(run_dir):
            before = file_states(run_dir)
            _assert_refused_as_finished(run_command(command), run_dir)
            assert file_states(run_dir) == before, "a refused train changed the run folder"
            trial = train_command(corpora, run_dir, "train.overwrite=true")  # train it again, and kill that
        backup = _backup_epoch(run_dir)
        outcome = run_command(trial, kill)
        assert outcome.killed or outcome.returncode == 0, _tail(outcome)
        if backup is not None and trial is command and outcome.started is not None:
            assert f"{backup} epoch(s) done, continuing with epoch {backup + 1}" in outcome.output, _tail(outcome)
        found = check_run_folder(run_dir)
        if finished(run_dir):  # what train would refuse to touch must really have trained every epoch
            epochs = found.get("history_epochs", 0)
            assert epochs == EPOCHS, f"killed after {epochs} epoch(s), yet refused as a finished run"
        trials.append(
            {
                "kill": _describe(kill),
                "killed": outcome.killed,
                "from": "overwrite"
                if trial is not command
                else "nothing"
                if backup is None
                else f"backup of epoch {backup}",
                "left": "finished" if finished(run_dir) else f"backup of epoch {found.get('backup_epoch')}",
                "history rows": found.get("history_epochs"),
                "temporaries": len(found["temporaries"]),
            }
        )
    last = run_command(command)
    if last.returncode == 2:
        _assert_refused_as_finished(last, run_dir)  # the last kill came after training had finished
    else:
        assert last.returncode == 0 and "trained in" in last.output, _tail(last)
    found = check_run_folder(run_dir)
    assert finished(run_dir) and found["history_epochs"] == EPOCHS and not (run_dir / "backup").exists()
    _report("train", first, command, trials)
    assert sum(t["killed"] for t in trials) >= len(trials) / 2  # at least half die before they end


def test_an_export_killed_anywhere_leaves_only_whole_versions_and_the_next_export_writes_the_next_one(
    tmp_path, trained
):
    trained_dir, _ = trained
    command = export_command(trained_dir, tmp_path / "saved_models")
    model_dir = command.watch
    checker = VersionChecker()
    first = run_command(command, record=True)  # shows when export writes
    assert first.returncode == 0, _tail(first)
    assert checker.check(model_dir) == [1]
    trials = []
    for kill in kill_plan(random.Random(SEED + 2), TRIALS["export"], first, command):
        before = checker.check(model_dir)
        outcome = run_command(command, kill)
        assert outcome.killed or outcome.returncode == 0, _tail(outcome)
        after = checker.check(model_dir)
        assert after in (before, before + [before[-1] + 1])
        trials.append(
            {
                "kill": _describe(kill),
                "killed": outcome.killed,
                "versions": len(after),
                "killed exports' folders": len(list(model_dir.glob(".export-*"))),
            }
        )
    before = checker.check(model_dir)
    last = run_command(command)
    assert last.returncode == 0, _tail(last)
    assert str(model_dir / str(before[-1] + 1)) in last.output.splitlines(), _tail(last)
    assert checker.check(model_dir, translate_with_it=True) == before + [before[-1] + 1]
    assert not list(model_dir.glob(".export-*")), "the killed exports' folders outlived the next export"
    _report("export", first, command, trials)
    assert sum(t["killed"] for t in trials) >= len(trials) / 2  # at least half die before they end


def test_a_run_killed_after_its_first_best_weights_but_before_its_first_backup_resumes(tmp_path):
    """DevBleu writes best.weights.h5 before ResumableBackup commits the epoch's backup, and a folder with
    best weights and no backup is a finished run, which train refuses: a run killed in between, in its
    first epoch, could not be resumed. A backup of epoch 0 is now committed when training begins."""
    import keras
    import numpy as np

    from translate.callbacks import ResumableBackup
    from translate.config import load_config
    from translate.run_folder import check_train, has_backup

    run_dir = tmp_path / "run"
    (run_dir / "data").mkdir(parents=True)
    (run_dir / "stats.json").write_text("{}", encoding="utf-8")  # prepared
    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(2)(inputs))
    model.compile(keras.optimizers.Adam(), "mse")
    backup = ResumableBackup(run_dir / "backup", {})
    backup.set_model(model)
    backup.on_train_begin()  # what fit does first
    model.save_weights(run_dir / "best.weights.h5")  # DevBleu, at the end of epoch 1; then the kill
    assert has_backup(run_dir) and ResumableBackup.committed_epoch(run_dir / "backup") == 0
    check_train(load_config(overrides=[f"run_dir={run_dir}"]))  # resumes: not refused as a finished run
    started = [w.copy() for w in model.get_weights()]
    model.layers[-1].kernel.assign(np.ones((3, 2)))
    resumed = ResumableBackup(run_dir / "backup", {})
    resumed.set_model(model)
    resumed.on_train_begin()
    assert resumed.resumed_epoch == 0 and model._initial_epoch == 0
    for got, want in zip(model.get_weights(), started):
        np.testing.assert_array_equal(got, want)


def _backup_epoch(run_dir: Path) -> int | None:
    metadata = run_dir / "backup" / "training_metadata.json"
    return json.loads(metadata.read_text(encoding="utf-8"))["epoch"] if metadata.is_file() else None


def _assert_refused_as_finished(outcome: Outcome, run_dir: Path) -> None:
    assert outcome.returncode == 2, _tail(outcome)
    lines = outcome.output.strip().splitlines()
    assert len(lines) == 1 and re.fullmatch(
        rf"error: run folder {re.escape(str(run_dir))} holds a finished run .*", lines[0]
    ), lines
