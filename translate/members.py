"""An ensemble's members trained side by side: one ``train`` process per member, each pinned to a CPU core.

One training process gains little from a second core: on the project's
2-core machine a process pinned to one core trains at about 0.8 of its
speed on both (docs/benchmarks.md, the knobs table). So on an N-core machine
N models trained at once, one per core, take about the minutes of one, and
their ensemble (:mod:`translate.ensemble`: the mean of their
log-probabilities at every step of the search) translates better than one
model given every core (docs/serving.md#ensembles, docs/base-preset.md).

``train.members: N`` (N > 1) asks ``train`` for that. The run folder then
holds the preparation, made once, and one complete run folder per member::

    RUN/config.yaml                 the whole config (train.members: N)
    RUN/stats.json, src.model, tgt.model, data/
                                    the one preparation every member trains on
    RUN/member-1/ ... RUN/member-N/ member k: seed train.seed + k - 1; a run folder like any
                                    other, its preparation copied from RUN (data.reuse_from)
    RUN/member-1.log ...            what member k's process printed (appended to on a rerun)
    RUN/test_scores.json            the ensemble's test scores (the command line writes them)

Member k runs ``python -m translate train --no-export --config
RUN/config.yaml`` with its own ``run_dir``, ``train.seed``,
``data.reuse_from=RUN`` and ``train.members=1``, in a process pinned to the
k-th of the cores this process may use (modulo their number). Calling
``train`` again on the folder keeps the members that finished and resumes
the others (each from its own backup, as ``train`` always does);
``train.overwrite`` trains every member again from scratch. A finished
ensemble is refused, as a finished run is; so is a folder that holds one
model's run, and one model is refused an ensemble's folder
(:func:`translate.run_folder.check_train`).

A member that fails, Ctrl-C or SIGTERM stop every member (each keeps its
backup). A SIGKILL of this process cannot: its members train on to their
ends.
"""

from __future__ import annotations

import contextlib
import copy
import csv
import dataclasses
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from translate.config import Config, save_config
from translate.run_folder import (
    BACKUP_DIR,
    CONFIG,
    HISTORY,
    MEMBER_DIR,
    MEMBER_LOG,
    STATS,
    check_prepare,
    check_run_dir,
    check_train,
    committed_epoch,
    has_backup,
    is_trained,
)

log = logging.getLogger(__name__)

# How long a stopped member may take to end before it is killed.
STOP_SECONDS = 60.0


@dataclass(frozen=True)
class Member:
    """Member ``index`` (from 1) of the ensemble ``train.members`` asks for."""

    index: int
    seed: int
    run_dir: Path
    log: Path
    core: int | None  # the CPU core its process is pinned to; None: not pinned (a one-core process)

    @property
    def name(self) -> str:
        return f"member {self.index} (seed {self.seed})"


def plan(config: Config) -> list[Member]:
    """The members of ``config``'s ensemble, in order: folders, seeds, logs and cores."""
    run_dir = Path(config.run_dir)
    cores = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return [
        Member(
            index=k,
            seed=config.train.seed + k - 1,
            run_dir=run_dir / MEMBER_DIR.format(k),
            log=run_dir / MEMBER_LOG.format(k),
            core=cores[(k - 1) % len(cores)] if len(cores) > 1 else None,
        )
        for k in range(1, config.train.members + 1)
    ]


def member_dirs(run_dir: str | Path, config: Config) -> list[Path]:
    """The members' run folders of the ensemble run ``run_dir`` trained with ``config`` (its config.yaml)."""
    return [member.run_dir for member in plan(dataclasses.replace(config, run_dir=str(run_dir)))]


def member_config(config: Config, member: Member) -> Config:
    """The config member ``member`` trains with: its folder and seed, the ensemble's preparation, one member."""
    mine = copy.deepcopy(config)
    mine.run_dir = str(member.run_dir)
    mine.data.reuse_from = str(config.run_dir)
    mine.train.seed = member.seed
    mine.train.members = 1
    return mine.validate()


def _finished(run_dir: Path) -> bool:
    return is_trained(run_dir) and not has_backup(run_dir)


def check_train_members(config: Config) -> list[Member]:
    """Refuses an ensemble's training that would destroy work (ValueError, one line; writes nothing) and
    returns the members left to train: all with ``train.overwrite``, else those not finished yet."""
    from translate.prepare import load_prepared

    check_run_dir(config)
    run_dir, members = Path(config.run_dir), plan(config)
    if is_trained(run_dir) or has_backup(run_dir):
        raise ValueError(
            f"run folder {run_dir} holds one model's run, not an ensemble's members: use another run_dir "
            "for train.members (train.overwrite does not mix the two)"
        )
    if not config.train.overwrite and all(_finished(m.run_dir) for m in members):
        names = ", ".join(MEMBER_DIR.format(m.index) for m in members)
        raise ValueError(
            f"run folder {run_dir} holds a finished ensemble ({names} all trained): use a new run_dir, "
            "or set train.overwrite=true to train every member again from scratch"
        )
    if (run_dir / STATS).is_file():
        load_prepared(config)  # other data settings than the members were trained on: refused
    else:
        check_prepare(config)  # the preparation goes into the ensemble's folder
    for member in members:
        for path, what in ((member.run_dir, "a folder"), (member.log, "a file")):
            if path.exists() and path.is_dir() != (what == "a folder"):
                raise ValueError(f"{path} is not {what}, but {member.name} needs one there: move it")
    left = [m for m in members if config.train.overwrite or not _finished(m.run_dir)]
    for member in left:
        mine = member_config(config, member)
        check_train(mine)  # a member folder that may not be trained: refused now
        if (member.run_dir / STATS).is_file() and (run_dir / STATS).is_file():
            load_prepared(mine)  # a member prepared otherwise (another preparation): refused now
    return left


def member_command(config: Config, member: Member) -> list[str]:
    """The command line that trains ``member``: ``train --no-export`` on the ensemble's config.yaml."""
    overrides = {
        "run_dir": str(member.run_dir),
        "data.reuse_from": str(config.run_dir),
        "train.seed": member.seed,
        "train.members": 1,
    }
    if config.train.overwrite:
        overrides["train.overwrite"] = True  # config.yaml never says so (save_config)
    # JSON strings are YAML's double-quoted strings: any folder name survives the override parser.
    values = [f"{key}={json.dumps(value)}" for key, value in overrides.items()]
    config_file = str(Path(config.run_dir) / CONFIG)
    return [sys.executable, "-m", "translate", "train", "--no-export", "--config", config_file, *values]


def train_members(
    config: Config,
    progress: bool = True,
    poll_seconds: float = 5.0,
    command: Callable[[Config, Member], list[str]] = member_command,
) -> list[Path]:
    """Prepares the corpus once into ``config.run_dir``, trains the members side by side and returns their
    run folders, every member's, in order.

    Each member's process is pinned to its core as soon as it starts (before it imports TensorFlow); what
    it prints goes to its log. The progress of each member (its epochs and dev BLEU, read from its
    history.csv) is logged as it comes. ``command`` makes a member's command line (:func:`member_command`).

    Raises:
        ValueError: one line: a refusal of :func:`check_train_members` (nothing written), or a member that
            stopped with an error (its last line, and the log that holds the rest); the other members are
            then stopped, each keeping its backup, so that calling ``train`` again resumes them.
    """
    from translate.prepare import prepare_or_load

    left = check_train_members(config)
    members = plan(config)
    prepare_or_load(config, progress=progress)
    save_config(config, Path(config.run_dir) / CONFIG)  # what the members' processes read
    for member in members:
        if member not in left:
            log.info("%s finished in an earlier call: kept (%s)", member.name, member.run_dir)
    running: dict[Member, subprocess.Popen] = {}
    with _terminated_as_an_exit():
        try:
            started = time.time()
            epochs = {member: _epochs_done(member, config.train.overwrite) for member in left}
            for member in left:
                _start(member, command(config, member), running)
            _wait(running, epochs, started, poll_seconds)
        finally:
            _stop(running)
    return [member.run_dir for member in members]


def _start(member: Member, argv: list[str], running: dict[Member, subprocess.Popen]) -> None:
    member.log.parent.mkdir(parents=True, exist_ok=True)
    with member.log.open("a", encoding="utf-8") as output:
        running[member] = process = subprocess.Popen(
            argv, stdout=output, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
        )
    where = "not pinned"
    if member.core is not None:
        # Pinned before the child's Python has got far: TensorFlow's threads, made later, inherit the core.
        try:
            os.sched_setaffinity(process.pid, {member.core})
            where = f"core {member.core}"
        except OSError as err:  # it has already ended (_wait says how), or the core is gone
            where = f"not pinned: {err.strerror or err}"
    log.info("%s training in %s (%s); its output goes to %s", member.name, member.run_dir, where, member.log)


def _stop(running: dict[Member, subprocess.Popen]) -> None:
    """Stops the members still running (SIGTERM, then SIGKILL after :data:`STOP_SECONDS`), undisturbed by
    a second Ctrl-C or SIGTERM meanwhile; each keeps its backup, which ``train`` resumes."""
    on_main = threading.current_thread() is threading.main_thread()
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in (signal.SIGINT, signal.SIGTERM)} if on_main else {}
    try:
        for process in running.values():
            if process.poll() is None:
                process.terminate()
        deadline = time.monotonic() + STOP_SECONDS
        for process in running.values():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
    finally:
        for sig, handler in previous.items():
            if handler is not None:
                signal.signal(sig, handler)


@contextlib.contextmanager
def _terminated_as_an_exit():
    """SIGTERM ends this process through ``finally`` blocks (as Ctrl-C does), not at once; main thread only."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _exit(signum, frame):
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, _exit)
    try:
        yield
    finally:
        if previous is not None:  # None: a handler installed outside Python, which cannot be put back
            signal.signal(signal.SIGTERM, previous)


def _epochs_done(member: Member, overwrite: bool) -> int:
    """The epochs ``member`` has finished before this call: its backup's (0 for a new or overwritten one)."""
    if overwrite:
        return 0
    try:
        return committed_epoch(member.run_dir / BACKUP_DIR)
    except (OSError, ValueError, KeyError, TypeError):  # a damaged backup: the member's own train refuses it
        return 0


def _wait(running: dict[Member, subprocess.Popen], epochs: dict[Member, int], started: float, poll: float) -> None:
    """Until every member has ended; logs each member's new epochs; raises on the first that failed."""
    while True:
        for member, process in running.items():
            epochs[member] = _log_new_epochs(member, epochs[member], started)
            status = process.poll()
            if status not in (None, 0):
                raise ValueError(
                    f"{member.name} stopped with exit status {status}: {_last_line(member.log)} "
                    f"(its output: {member.log})"
                )
        if all(process.poll() == 0 for process in running.values()):
            for member in running:
                _log_new_epochs(member, epochs[member], started)
            return
        time.sleep(poll)


def _log_new_epochs(member: Member, seen: int, started: float) -> int:
    """Logs the rows of ``member``'s history.csv after the first ``seen``, once this call's training has
    written the file (a file older than ``started`` is an earlier call's); returns the rows logged so far."""
    rows = _history_rows(member, started)
    if rows is None:
        return seen
    for number, row in enumerate(rows[seen:], start=seen + 1):
        log.info(
            "%s: epoch %d done, dev BLEU %s (%.1f minutes in)",
            member.name,
            number,
            _rounded(row.get("dev_bleu")),
            (time.time() - started) / 60,
        )
    return max(seen, len(rows))


def _history_rows(member: Member, since: float) -> list[dict] | None:
    path = member.run_dir / HISTORY
    try:
        if path.stat().st_mtime < since:
            return None
        with path.open(newline="", encoding="utf-8") as f:
            return list(csv.DictReader(f))
    except (OSError, csv.Error, UnicodeDecodeError):
        return None  # not written yet, or being replaced: the next poll reads it


def _rounded(cell: str | None) -> str:
    try:
        return f"{float(cell):.2f}"
    except (TypeError, ValueError):
        return "NA"


def _last_line(path: Path) -> str:
    """The last line ``path`` holds (progress bars rewrite theirs with carriage returns), or a placeholder."""
    try:
        text = path.read_bytes()[-4096:].decode("utf-8", errors="replace")
    except OSError:
        return "(no output)"
    lines = [line.strip() for line in text.replace("\r", "\n").splitlines() if line.strip()]
    return lines[-1] if lines else "(no output)"
