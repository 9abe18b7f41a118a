"""What a run folder holds, and the checks that keep prepare and train from destroying work.

A run folder holds a user's hours of training, and often files of the user's
own. ``prepare`` and ``train`` therefore refuse, with one line that says how
to go on, before they write anything: a refused command leaves the folder as
it was. They replace only the files named here, which the project itself
makes, and a trained model only when ``train.overwrite`` says so.

Kept free of TensorFlow imports so that the command line refuses a run folder
at once; :func:`translate.prepare.prepare` and :func:`translate.training.train`
run the same checks, so the library refuses alike.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
from pathlib import Path

import yaml

from translate.atomic import TEMPORARY_PREFIX

log = logging.getLogger(__name__)

CONFIG = "config.yaml"
DATA_DIR = "data"
STATS = "stats.json"
SPLITS = ("train", "dev", "test")
SENTENCEPIECE_MODELS = ("src.model", "tgt.model")
# Everything prepare writes into data/; any other file there is the user's.
DATA_FILES = tuple(f"{split}.{side}" for split in SPLITS for side in ("src", "tgt"))
BEST_WEIGHTS = "best.weights.h5"
HISTORY = "history.csv"
TEST_SCORES = "test_scores.json"
CHECKPOINTS_DIR = "checkpoints"
CHECKPOINT_PATTERN = re.compile(r"epoch-(\d{3,})\.weights\.h5")
# With train.average_last, best.weights.h5 becomes the average and the best-dev epoch's weights stay here.
BEST_DEV_WEIGHTS = "best-dev.weights.h5"
BACKUP_DIR = "backup"
BACKUP_METADATA = "training_metadata.json"
BACKUP_WEIGHTS_PATTERN = re.compile(r"epoch-(\d{4,})\.weights\.h5")
# train.members: member k's run folder and what its process printed, inside the ensemble's run folder.
MEMBER_DIR = "member-{}"
MEMBER_LOG = "member-{}.log"


def committed_epoch(backup_dir: str | Path) -> int:
    """How many epochs the backup in ``backup_dir`` has finished (0: no backup), read without TensorFlow."""
    try:
        metadata = json.loads((Path(backup_dir) / BACKUP_METADATA).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return 0
    return int(metadata["epoch"]) if metadata else 0


def holds_members(run_dir: str | Path) -> bool:
    """Whether the folder is an ensemble's (``train.members``): it holds a ``member-1/`` folder."""
    return (Path(run_dir) / MEMBER_DIR.format(1)).is_dir()


def best_dev_weights(run_dir: str | Path) -> Path:
    """The weights of the run's epoch with the best dev BLEU: ``checkpoints/best-dev.weights.h5`` when
    ``train.average_last`` made ``best.weights.h5`` an average, else ``best.weights.h5``."""
    kept = Path(run_dir) / CHECKPOINTS_DIR / BEST_DEV_WEIGHTS
    return kept if kept.is_file() else Path(run_dir) / BEST_WEIGHTS


def is_trained(run_dir: str | Path) -> bool:
    """Whether the folder holds trained weights (of a finished run or of an unfinished one)."""
    return (Path(run_dir) / BEST_WEIGHTS).is_file()


def has_backup(run_dir: str | Path) -> bool:
    """Whether the folder holds the backup of an unfinished run, which ``train`` resumes."""
    return (Path(run_dir) / BACKUP_DIR / BACKUP_METADATA).is_file()


def check_run_dir(config) -> None:
    """An empty ``run_dir`` would make the current folder the run folder: refused."""
    if not str(config.run_dir).strip():
        raise ValueError("run_dir is empty: name the run's folder, e.g. run_dir=runs/mine")


def check_prepare(config) -> None:
    """Refuses a prepare that would destroy work: raises ValueError, writes nothing.

    Refused: an empty run_dir; a corpus inside ``data/``, or any file there
    that prepare does not make (it would be replaced or mixed with the
    splits); and, without ``train.overwrite``, a trained run, whose weights
    only fit the SentencePiece models they were trained with.
    """
    check_run_dir(config)
    run_dir = Path(config.run_dir)
    data_dir = run_dir / DATA_DIR
    for key in ("corpus", "dev_corpus", "test_corpus"):
        inside = _corpus_inside(getattr(config.data, key), data_dir)
        if inside:
            raise ValueError(
                f"data.{key} {inside} is inside {data_dir}, the folder prepare writes its splits to: "
                "move the corpus out of it, or use another run_dir"
            )
    if data_dir.exists() and not data_dir.is_dir():
        raise ValueError(
            f"{data_dir} is a file, but prepare writes its splits to a folder there: "
            "move the file, or use another run_dir"
        )
    if data_dir.is_dir():
        foreign = sorted(
            entry.name
            for entry in data_dir.iterdir()
            if not entry.name.startswith(TEMPORARY_PREFIX) and not (entry.name in DATA_FILES and entry.is_file())
        )
        if foreign:
            names = ", ".join(foreign[:5]) + (f" and {len(foreign) - 5} more" if len(foreign) > 5 else "")
            raise ValueError(
                f"{data_dir} holds what prepare does not make ({names}), and prepare replaces the "
                "files in that folder: move them out of it, or use another run_dir"
            )
    if is_trained(run_dir) and not config.train.overwrite:
        raise ValueError(
            f"run folder {run_dir} holds a trained model ({BEST_WEIGHTS}), whose weights only fit its "
            "SentencePiece models: use another run_dir, or set train.overwrite=true to prepare it again "
            "and then train it from scratch"
        )


def check_train(config) -> None:
    """Refuses a train that would destroy work: raises ValueError, writes nothing.

    A finished run (best weights, no backup) is refused unless
    ``train.overwrite``; an unfinished one resumes, but only with the model
    settings its backup was trained with. A folder that train will prepare
    must pass :func:`check_prepare`. One model (``train.members: 1``) is
    refused a folder that holds an ensemble's members.
    """
    check_run_dir(config)
    run_dir = Path(config.run_dir)
    if config.train.members == 1 and holds_members(run_dir):
        raise ValueError(
            f"run folder {run_dir} holds an ensemble's members ({MEMBER_DIR.format(1)}/, ...), trained with "
            "train.members: use another run_dir for one model (train.overwrite does not mix the two)"
        )
    if not config.train.overwrite:
        if is_trained(run_dir) and not has_backup(run_dir):
            raise ValueError(
                f"run folder {run_dir} holds a finished run ({BEST_WEIGHTS}, no {BACKUP_DIR}/ to resume "
                f"from) and training would replace its weights, {HISTORY} and {CONFIG}: use a new "
                "run_dir, or set train.overwrite=true to train it again from scratch (only an unfinished "
                f"run, one with a {BACKUP_DIR}/ folder, resumes)"
            )
        if has_backup(run_dir):
            _check_resumable(config, run_dir)
    if not (run_dir / STATS).is_file() or not (run_dir / DATA_DIR).is_dir():
        check_prepare(config)  # train will prepare the folder


def _check_resumable(config, run_dir: Path) -> None:
    """The backup's weights only load into the model they come from."""
    try:
        saved = yaml.safe_load((run_dir / CONFIG).read_text(encoding="utf-8"))["model"]
    except (OSError, UnicodeDecodeError, yaml.YAMLError, KeyError, TypeError):
        return  # no readable config.yaml: nothing to compare with
    if not isinstance(saved, dict):
        return
    wanted = vars(config.model)
    differs = [
        f"model.{key}: {saved.get(key)!r}, not {wanted[key]!r}" for key in wanted if saved.get(key) != wanted[key]
    ]
    if differs:
        raise ValueError(
            f"run folder {run_dir} holds an unfinished run trained with other model settings "
            f"({'; '.join(differs)}): resume it with the same settings, set train.overwrite=true to "
            "train it again from scratch, or use another run_dir"
        )


def _corpus_inside(spec: str | None, data_dir: Path) -> str | None:
    """The corpus file (or Moses prefix) of ``spec`` when it lies in ``data_dir``, else None."""
    if not spec:
        return None
    from translate.corpora import parse_spec

    try:
        parsed = parse_spec(spec)
    except ValueError:
        return None  # reading the corpus names the problem
    if parsed.format == "bible":
        return None
    path = Path(parsed.path).expanduser()
    with contextlib.suppress(OSError):
        if path.resolve().parent == data_dir.resolve():
            return str(path)
    return None


def remove_previous_training(run_dir: Path, backup_dir: Path) -> list[Path]:
    """With ``train.overwrite``: removes what an earlier training of the folder left, before training again.

    Only files training itself makes go: the best weights, the history, the
    test scores, the epoch checkpoints (an old epoch-010 would outlive the new
    run's epoch-001 among the last N kept), ``checkpoints/best-dev.weights.h5``
    (``train.average_last``) and the backup (the new run must
    not resume the old one); the backup's metadata first, so that a kill in
    between never leaves a backup that names missing weights. ``config.yaml``
    is replaced when training starts; TensorBoard's ``logs/`` gains new event
    files beside the old ones. Returns the removed paths.
    """
    removed = [path for path in (run_dir / BEST_WEIGHTS, run_dir / HISTORY, run_dir / TEST_SCORES) if path.is_file()]
    removed += _matching(run_dir / CHECKPOINTS_DIR, CHECKPOINT_PATTERN)
    if (run_dir / CHECKPOINTS_DIR / BEST_DEV_WEIGHTS).is_file():
        removed.append(run_dir / CHECKPOINTS_DIR / BEST_DEV_WEIGHTS)
    for path in removed:
        path.unlink(missing_ok=True)
    removed += remove_backup(backup_dir)
    if removed:
        log.info("train.overwrite: removed the earlier training's %s", ", ".join(str(p) for p in removed))
    return removed


def remove_backup(backup_dir: Path) -> list[Path]:
    """Removes a backup's own files (metadata first), and its folder once empty; other files stay."""
    backup_dir = Path(backup_dir)
    removed = [backup_dir / BACKUP_METADATA] if (backup_dir / BACKUP_METADATA).is_file() else []
    removed += _matching(backup_dir, BACKUP_WEIGHTS_PATTERN)
    for path in removed:
        path.unlink(missing_ok=True)
    with contextlib.suppress(OSError):
        backup_dir.rmdir()  # only when empty: a user's file keeps the folder
    return removed


def _matching(folder: Path, pattern: re.Pattern) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if pattern.fullmatch(p.name) and p.is_file())
