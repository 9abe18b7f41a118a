"""Checkpoint averaging: one ``.weights.h5`` whose every weight is the mean of several checkpoints'.

The average of the last few epochs' weights of one run (Vaswani et al. 2017,
sec. 6.1, averaged the last 5 or 20 checkpoints; Junczys-Dowmunt et al. 2016
the last 4) is a cheap ensemble: one model's decoding cost, and usually a
little better than the last or the best checkpoint alone. fairseq ships it as
``scripts/average_checkpoints.py``, which also averages the files' tensors
one by one.

The files are Keras ``.weights.h5`` files (HDF5), here read and written with
``h5py`` directly, without TensorFlow: every dataset of the first checkpoint is
copied with its folder structure and attributes, and each floating-point
dataset ``[shape]`` is replaced by the element-wise mean of that dataset over
all checkpoints, computed in float64 and stored in the dataset's own dtype.
Integer datasets (the optimizer's step counter, which Keras saves with a
compiled model's weights) are taken from the last checkpoint. The result has the
layout of its inputs, so ``export --weights`` and ``load_weights`` take it as
they take any epoch checkpoint of the run.

Checkpoints must hold the same datasets with the same shapes; otherwise
:func:`average_checkpoints` raises a ``ValueError`` of one line naming the
first difference.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from translate import atomic
from translate.run_folder import BEST_DEV_WEIGHTS, BEST_WEIGHTS, CHECKPOINT_PATTERN, CHECKPOINTS_DIR

log = logging.getLogger(__name__)

WEIGHTS_SUFFIX = ".weights.h5"


def _first_line(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:200]


def checkpoint_layout(path: str | Path) -> dict[str, tuple[tuple[int, ...], str]]:
    """``{dataset path: (shape, dtype name)}`` of a ``.weights.h5`` file, in file order.

    Raises:
        ValueError: the file is missing or not an HDF5 weights file (one line).
    """
    import h5py

    path = Path(path)
    if not path.is_file():
        raise ValueError(f"checkpoint not found: {path}")
    layout: dict[str, tuple[tuple[int, ...], str]] = {}
    try:
        with h5py.File(path, "r") as f:
            f.visititems(
                lambda name, obj: (
                    layout.__setitem__(name, (tuple(obj.shape), obj.dtype.name))
                    if isinstance(obj, h5py.Dataset)
                    else None
                )
            )
    # h5py raises OSError for most damage, RuntimeError or KeyError for a broken object tree.
    except (OSError, RuntimeError, KeyError) as err:
        raise ValueError(f"cannot read checkpoint {path} as a .weights.h5 file: {_first_line(err)}") from None
    if not layout:
        raise ValueError(f"checkpoint {path} holds no weights")
    return layout


def layout_difference(layout, other, name: str, other_name: str) -> str | None:
    """The first difference between two :func:`checkpoint_layout` results, in words; None when they agree."""
    for key, (shape, dtype) in layout.items():
        if key not in other:
            return f"{name} holds {key}, which {other_name} lacks"
        if other[key][0] != shape:
            return f"{key} is {list(shape)} in {name} but {list(other[key][0])} in {other_name}"
        if other[key][1] != dtype:
            return f"{key} is {dtype} in {name} but {other[key][1]} in {other_name}"
    for key in other:
        if key not in layout:
            return f"{other_name} holds {key}, which {name} lacks"
    return None


def check_fits_run(checkpoint: str | Path, run_dir: str | Path) -> None:
    """Refuses (``ValueError``, one line) a checkpoint whose weights do not fit the run's model.

    The run's ``best.weights.h5`` is the reference: any epoch checkpoint or
    average of the run has its layout. A run without it is not checked here
    (loading the run refuses it).
    """
    best = Path(run_dir) / BEST_WEIGHTS
    if not best.is_file():
        return
    difference = layout_difference(checkpoint_layout(checkpoint), checkpoint_layout(best), str(checkpoint), str(best))
    if difference:
        raise ValueError(f"checkpoint {checkpoint} does not fit the model of run {run_dir}: {difference}")


def epoch_checkpoints(run_dir: str | Path) -> list[Path]:
    """The run's epoch checkpoints (``checkpoints/epoch-NNN.weights.h5``, ``train.keep_checkpoints``), oldest first."""
    folder = Path(run_dir) / CHECKPOINTS_DIR
    if not folder.is_dir():
        return []
    found = []
    for path in folder.iterdir():
        match = CHECKPOINT_PATTERN.fullmatch(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return [path for _, path in sorted(found)]


def last_checkpoints(run_dir: str | Path, n: int) -> list[Path]:
    """The run's last ``n`` epoch checkpoints, oldest first; ``ValueError`` (one line) when it has fewer."""
    run_dir = Path(run_dir)
    if n < 2:
        raise ValueError(f"--last must be at least 2 (an average of one checkpoint is that checkpoint), got {n}")
    if not (run_dir / "config.yaml").is_file():
        raise ValueError(f"not a run folder (no config.yaml): {run_dir}")
    found = epoch_checkpoints(run_dir)
    if len(found) < n:
        raise ValueError(
            f"run {run_dir} holds {len(found)} epoch checkpoint{'s' if len(found) != 1 else ''} "
            f"({CHECKPOINTS_DIR}/epoch-NNN{WEIGHTS_SUFFIX}), fewer than --last {n}: train with "
            f"train.keep_checkpoints={n} or more to keep them"
        )
    return found[-n:]


def default_output(run_dir: str | Path, checkpoints: Sequence[Path], last: int | None) -> Path:
    """``RUN/checkpoints/average-last-N.weights.h5`` (``--last N``) or ``average-of-N.weights.h5``."""
    name = f"average-last-{last}" if last else f"average-of-{len(checkpoints)}"
    return Path(run_dir) / CHECKPOINTS_DIR / f"{name}{WEIGHTS_SUFFIX}"


def check_output(out: str | Path) -> Path:
    """Refuses an output that Keras would not load, or that exists (nothing is ever replaced)."""
    out = Path(out)
    if not out.name.endswith(WEIGHTS_SUFFIX):
        raise ValueError(f"the average must be a {WEIGHTS_SUFFIX} file (Keras loads no other name), got {out}")
    if out.exists() or out.is_symlink():
        raise ValueError(f"{out} exists: averaging never replaces a file; choose another --out")
    if out.parent.exists() and not out.parent.is_dir():
        raise ValueError(f"cannot write {out}: {out.parent} is not a folder")
    return out


def check_checkpoints(paths: Sequence[str | Path]) -> dict[str, tuple[tuple[int, ...], str]]:
    """Refuses (``ValueError``, one line) fewer than two checkpoints, or checkpoints of different layouts;
    returns the common layout."""
    if len(paths) < 2:
        raise ValueError("averaging needs at least two checkpoints")
    layout = checkpoint_layout(paths[0])
    for path in paths[1:]:
        difference = layout_difference(layout, checkpoint_layout(path), str(paths[0]), str(path))
        if difference:
            raise ValueError(f"the checkpoints differ in shape: {difference}")
    return layout


def average_checkpoints(paths: Sequence[str | Path], out: str | Path) -> Path:
    """Writes the element-wise mean of the checkpoints ``paths`` to ``out`` (a new file); returns ``out``.

    Each floating-point dataset ``[shape]`` of the result is
    ``sum_i checkpoint_i[shape] / len(paths)`` (float64 sum, stored in the
    dataset's dtype); a path given twice counts twice. The file is written
    under a temporary name and renamed into place without replacing anything
    (:func:`translate.atomic.atomic_path` with ``replace=False``).

    Raises:
        ValueError: fewer than two checkpoints, an unreadable one, different
            layouts, or ``out`` exists or is not a ``.weights.h5`` name.
    """
    import h5py
    import numpy as np

    paths = [Path(p) for p in paths]
    out = check_output(out)
    layout = check_checkpoints(paths)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise ValueError(f"cannot make the folder for {out}: {_first_line(err)}") from None
    try:
        with atomic.atomic_path(out, suffix=WEIGHTS_SUFFIX, replace=False) as tmp:
            files = [h5py.File(p, "r") for p in paths]
            try:
                with h5py.File(tmp, "w") as target:
                    first = files[0]
                    for key, value in first.attrs.items():
                        target.attrs[key] = value
                    for name in first:
                        first.copy(first[name], target, name=name)
                    for key, (_, dtype) in layout.items():
                        if np.issubdtype(np.dtype(dtype), np.floating):
                            total = sum(np.asarray(f[key][()], dtype=np.float64) for f in files)
                            target[key][()] = (total / len(files)).astype(dtype)
                        else:
                            target[key][()] = files[-1][key][()]
            finally:
                for f in files:
                    f.close()
    except FileExistsError:
        raise ValueError(f"{out} exists: averaging never replaces a file; choose another --out") from None
    except (OSError, RuntimeError, KeyError) as err:
        raise ValueError(f"cannot write the average to {out}: {_first_line(err)}") from None
    log.info("averaged %d checkpoints into %s", len(paths), out)
    return out


def ship_average(run_dir: str | Path, n: int) -> list[Path] | None:
    """``train.average_last``: the mean of the run's last ``n`` epoch checkpoints becomes its ``best.weights.h5``.

    The best-dev epoch's weights are first copied to
    ``checkpoints/best-dev.weights.h5`` (never over an existing file), then
    the average replaces ``best.weights.h5`` atomically, so at every moment
    the folder holds a complete ``best.weights.h5``. Returns the averaged
    checkpoints, or None (with a warning; ``best.weights.h5`` stays the
    best-dev epoch) when the run kept fewer than ``n`` or the copy's name is
    taken.
    """
    import shutil

    run_dir = Path(run_dir)
    found = epoch_checkpoints(run_dir)
    best, kept = run_dir / BEST_WEIGHTS, run_dir / CHECKPOINTS_DIR / BEST_DEV_WEIGHTS
    if len(found) < n or not best.is_file():
        log.warning(
            "train.average_last=%d: the run kept %d epoch checkpoint(s); %s stays the best-dev epoch's weights",
            n,
            len(found),
            BEST_WEIGHTS,
        )
        return None
    if kept.exists() or kept.is_symlink():
        log.warning("train.average_last: %s exists and is left alone; %s stays the best-dev epoch's", kept, best.name)
        return None
    checkpoints = found[-n:]
    with atomic.atomic_path(kept, suffix=WEIGHTS_SUFFIX, replace=False) as tmp:
        shutil.copyfile(best, tmp)
    with atomic.atomic_path(best, suffix=WEIGHTS_SUFFIX) as tmp:
        average_checkpoints(checkpoints, tmp)
    log.info(
        "%s: the average of %s (the best-dev epoch's weights are in %s)",
        BEST_WEIGHTS,
        ", ".join(p.name for p in checkpoints),
        kept,
    )
    return checkpoints
