"""Atomic writes: a file is either its old self or completely new, never half-written.

Every file the project writes goes through :func:`atomic_path`: the content is
written under a temporary name in the same folder (``.tmp-<name>-<random>``),
flushed and fsynced, then renamed over the final name with ``os.replace``
(atomic on POSIX and Windows within one file system), and the folder is
fsynced so the rename survives a power cut. A process killed before the
rename leaves only the temporary file, which :func:`remove_stale_temporaries`
clears on the next run; nothing ever reads a ``.tmp-`` name as data.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
from collections.abc import Iterator
from pathlib import Path

TEMPORARY_PREFIX = ".tmp-"


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:  # Windows cannot open folders; the rename is still atomic there.
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def atomic_path(path: str | Path, suffix: str = "", replace: bool = True) -> Iterator[Path]:
    """Yields a temporary path beside ``path``; on a clean exit it becomes ``path``.

    For writers that take a file name (``model.save_weights``, sentencepiece,
    matplotlib): write to the yielded path; it is fsynced and renamed when the
    block ends. On an exception the temporary file is removed and ``path`` is
    left as it was.

    ``suffix`` (an ending of ``path``'s name, without ``-``) is repeated at the
    end of the temporary name, because some writers judge a file by its name:
    Keras's ``save_weights`` refuses any name that does not end in
    ``.weights.h5``. :func:`remove_stale_temporaries` knows these names too.

    ``replace=False`` is for commands that make a new file and must never
    replace one they did not create: ``FileExistsError`` when ``path``
    exists, before the block runs and again at the rename, which is then a
    hard link (it fails rather than replaces, so a file made meanwhile by
    another process survives too); where the file system has no hard links,
    a check just before ``os.replace``.
    """
    path = Path(path)
    if suffix and (not path.name.endswith(suffix) or "-" in suffix):
        raise ValueError(f"suffix {suffix!r} must be how {path.name!r} ends and contain no '-'")
    if not replace and os.path.lexists(path):
        raise FileExistsError(errno.EEXIST, "file exists", str(path))
    tmp = path.with_name(f"{TEMPORARY_PREFIX}{path.name}-{secrets.token_hex(4)}{suffix}")
    try:
        yield tmp
        _fsync_file(tmp)
        if replace:
            os.replace(tmp, path)
        else:
            _rename_new(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_dir(path.parent)


def _rename_new(tmp: Path, path: Path) -> None:
    """Renames ``tmp`` to ``path`` unless ``path`` exists (``FileExistsError``)."""
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise
    except OSError:  # no hard links on this file system
        if os.path.lexists(path):
            raise FileExistsError(errno.EEXIST, "file exists", str(path)) from None
        os.replace(tmp, path)
    else:
        tmp.unlink()


def make_folders(folder: str | Path) -> list[Path]:
    """Creates ``folder`` and its missing parents; returns those it created, outermost first.

    Give the list to :func:`remove_empty_folders` when the command fails, so
    that a refused or failed command leaves no folder behind that it made.
    """
    folder = Path(folder)
    missing = [p for p in (folder, *folder.parents) if not p.exists()][::-1]
    folder.mkdir(parents=True, exist_ok=True)
    return missing


def remove_empty_folders(created: list[Path]) -> None:
    """Removes the folders :func:`make_folders` created, innermost first, each only while it is empty."""
    for folder in reversed(created):
        try:
            folder.rmdir()
        except FileNotFoundError:  # removed already
            continue
        except OSError:  # not empty: whatever is in it stays, and so do the folders around it
            return


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Writes ``data`` to ``path`` atomically (see :func:`atomic_path`)."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
    return Path(path)


def write_text(path: str | Path, text: str) -> Path:
    """Writes ``text`` as UTF-8 to ``path`` atomically (see :func:`atomic_path`)."""
    return write_bytes(path, text.encode("utf-8"))


def remove_stale_temporaries(folder: str | Path, name: str | None = None) -> list[Path]:
    """Removes the temporary files a killed writer left in ``folder`` (only for ``name`` when given).

    Only names this module makes (``.tmp-<name>-<8 hex digits>``, followed by
    an ending of ``<name>`` when :func:`atomic_path` was given a suffix) are
    touched. Returns the removed paths.
    """
    folder = Path(folder)
    removed = []
    if not folder.is_dir():
        return removed
    for entry in folder.iterdir():
        stem, _, token = entry.name.rpartition("-")
        digits, suffix = token[:8], token[8:]
        if not stem.startswith(TEMPORARY_PREFIX) or len(digits) != 8 or not entry.is_file():
            continue
        if any(c not in "0123456789abcdef" for c in digits) or not stem.endswith(suffix):
            continue
        if name is not None and stem != f"{TEMPORARY_PREFIX}{name}":
            continue
        entry.unlink(missing_ok=True)
        removed.append(entry)
    return removed


def fsync_folder(folder: str | Path) -> None:
    """Fsyncs a folder, so that a rename into it survives a power cut (a no-op where folders cannot be opened)."""
    _fsync_dir(Path(folder))


def fsync_tree(folder: str | Path) -> None:
    """Fsyncs every file and folder under ``folder`` (and ``folder`` itself).

    For a folder written whole under a temporary name and then renamed into
    place (an export's version): after this, a power cut after the rename
    cannot leave the new name holding empty or half-written files.
    """
    folder = Path(folder)
    for root, _, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            if not path.is_symlink():
                _fsync_file(path)
        _fsync_dir(Path(root))
