"""The harness every benchmark shares, so that every model is prepared, timed and reported the same way.

* **Results**: :func:`machine`, :func:`command_line`, :func:`emit` (JSON on
  stdout and in ``--out``), :func:`print_table` (Markdown on stderr),
  :func:`peak_rss_mb`; :func:`subcommand` adds a benchmark to
  ``python -m benchmarks``.
* **Threads**: :data:`THREADS` and :func:`thread_env`, the environments of
  TensorFlow's two thread settings (read once, when TensorFlow starts, so a
  setting needs a process of its own).
* **The corpus**: :func:`prepare_split` (a prepared run folder as it is, or
  the preset's corpus prepared into a temporary folder), :func:`config_for`,
  :func:`build_training` (``translate train``'s compiled model and input
  pipeline).
* **Timing training**: :func:`train_loop`, the one timed loop of train
  steps, and its three uses: :func:`train_for_budget` (a wall-clock budget,
  rates after a warm-up), :func:`train_turn` (one turn of a race) and
  :func:`measure_training` (a warm-up, then a number of steps over batches
  fetched beforehand).
* **Timing decoding**: :func:`decode_passes` and :func:`time_decoding`.
* **Taking turns**: :func:`take_turns` runs the contestants' events round
  after round, their order rotating, so that the machine's drift (over
  minutes, on a shared machine) hits every contestant alike; the median round
  counts. Contestants run in this process (:func:`train_in_turns`) or each
  in its own (:class:`Worker`, answering through :func:`serve`).
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "benchmarks" / "results"

# Sentences timed per batch size: enough passes to average out one slow call,
# few enough that batch 1 stays short.
DECODE_SENTENCES = {1: 64, 64: 256}

# Environment of each thread setting (TensorFlow reads these at start-up).
THREADS = {
    "default": {},
    "serial_ops": {"TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": str(len(os.sched_getaffinity(0)))},
}


# --- Results ---------------------------------------------------------------------------


def machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} CPUs, {platform.system()}, Python {platform.python_version()}"


def command_line() -> str:
    """This benchmark's command as typed: ``python -m benchmarks SUBCOMMAND ...``."""
    return " ".join(["python -m benchmarks", *sys.argv[1:]])


def emit(report: dict, out: str | Path | None) -> None:
    """Prints ``report`` as JSON and, when ``out`` is given, writes it there too."""
    text = json.dumps(report, indent=2)
    print(text)
    if out:
        from translate import atomic

        Path(out).parent.mkdir(parents=True, exist_ok=True)
        atomic.write_text(out, text + "\n")  # a results file is whole or as it was


def print_table(headers: list[str], rows: list[list], numeric: int = 1) -> None:
    """A Markdown table on stderr (stdout carries the JSON); columns from ``numeric`` on are right-aligned."""
    print("\n| " + " | ".join(headers) + " |", file=sys.stderr)
    print("|" + "---|" * numeric + "---:|" * (len(headers) - numeric), file=sys.stderr)
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |", file=sys.stderr)


def subcommand(
    commands, name: str, function: Callable[[argparse.Namespace], None], summary: str, aliases: Sequence[str] = ()
) -> argparse.ArgumentParser:
    """Adds ``python -m benchmarks NAME``: ``function(args)`` runs it, and its docstring is the description."""
    parser = commands.add_parser(
        name,
        aliases=list(aliases),
        help=summary,
        description=inspect.getdoc(function),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.set_defaults(handler=function)
    return parser


def peak_rss_mb() -> float:
    """Peak resident set size of this process in MiB (Linux reports ``ru_maxrss`` in KiB)."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def thread_env(setting: str) -> dict[str, str]:
    """This process's environment with the thread variables of ``setting`` (:data:`THREADS`) only."""
    env = {key: value for key, value in os.environ.items() if key not in THREADS["serial_ops"]}
    env.update(THREADS[setting])
    return env


# --- The corpus and the model ------------------------------------------------------------


def config_for(run_dir: Path, preset: str, overrides: Sequence[str]):
    """The preset with ``overrides``, and the prepared folder's own data settings and run folder."""
    from translate.config import config_from_dict, load_config

    stats_path = Path(run_dir) / "stats.json"
    if not stats_path.is_file():
        raise SystemExit(f"{run_dir} is not a prepared run folder (no stats.json): run python -m translate prepare")
    values = load_config(preset, overrides=list(overrides)).to_dict()
    values["data"] = json.loads(stats_path.read_text(encoding="utf-8"))["data_config"]
    values["run_dir"] = str(run_dir)
    return config_from_dict(values)


def prepare_split(
    preset: str, overrides: Sequence[str] = (), *, run_dir: str | Path | None = None, tmp: str | Path | None = None
):
    """``(config, prepared)``: the preset with ``overrides`` on ``run_dir`` as it was prepared (its own data
    settings), or, without ``run_dir``, on the preset's corpus prepared into ``tmp/run``.

    A ``data.*`` override with ``run_dir`` is refused: preparing that folder
    again with other data settings would rebuild it, and a run's data with it.
    """
    from translate.config import load_config
    from translate.prepare import load_prepared, prepare

    if not run_dir:
        if tmp is None:
            raise ValueError("prepare_split needs a run_dir, or a tmp folder to prepare into")
        config = load_config(preset, overrides=[*overrides, f"run_dir={Path(tmp) / 'run'}"])
        return config, prepare(config, progress=False)
    data = [o for o in overrides if o.startswith("data.")]
    if data:
        raise SystemExit(
            f"--run-dir {run_dir} keeps its own data settings; drop {', '.join(data)} "
            "(or leave out --run-dir to prepare the corpus afresh)"
        )
    config = config_for(Path(run_dir), preset, overrides)
    return config, load_prepared(config)


def build_training(config, prepared, grad_norm: bool = True):
    """The compiled model and the repeating input pipeline of ``translate train`` for ``config``.

    Returns ``(run, batches)``: ``run.models.training`` is compiled under the
    config's precision policy, as ``translate train``'s model class
    (``GradNormModel``, whose step also tracks the gradient norm) or, with
    ``grad_norm=False``, a plain ``keras.Model``; ``batches`` yields
    ``((source, target_in), target_out)`` without end.
    """
    import keras

    from translate.grad_norm import GradNormModel
    from translate.training import build_run, compile_for_training, precision_policy, training_dataset

    keras.utils.set_random_seed(config.train.seed)
    with precision_policy(config.train.precision):
        run = build_run(
            config,
            Path(config.run_dir),
            prepared.src_model,
            prepared.tgt_model,
            training_class=GradNormModel if grad_norm else keras.Model,
        )
        compile_for_training(run, config)
    return run, training_dataset(run, config, prepared, repeat=True)


def train_step(model) -> Callable:
    """``step(inputs, target_out)``: one synchronous train step of ``model``, returning its logs."""
    return lambda inputs, target_out: model.train_on_batch(inputs, target_out, return_dict=True)


# --- Timing training ---------------------------------------------------------------------


def train_loop(
    step: Callable,
    batches: Iterable,
    *,
    seconds: float | None = None,
    steps: int | None = None,
    warmup_steps: int = 0,
    min_timed_steps: int = 1,
) -> dict:
    """Calls ``step(inputs, target_out)`` on ``batches``: ``warmup_steps`` untimed, then ``steps`` timed steps, or
    until ``seconds`` have passed since the first batch (warm-up included) and ``min_timed_steps`` were timed.

    ``batches`` yields ``(inputs, target_out)`` with ``target_out`` an integer
    ``[batch, time]`` tensor padded with 0; ``step`` is synchronous (as
    ``train_on_batch``), so the clock sees finished work, and may return
    logs with a ``loss``. An iterator is left at the batch after the last.
    Returns the steps, sentences and real target tokens in all and of the
    timed steps, the seconds in all and timed, the first loss and the timed
    steps' losses.
    """
    import numpy as np

    if seconds is None and steps is None:
        raise ValueError("train_loop needs seconds or steps")
    started = time.perf_counter()
    timed_from = started
    done = sentences = tokens = timed_sentences = timed_tokens = 0
    first_loss, losses = None, []
    for inputs, target_out in batches:
        logs = step(inputs, target_out)
        done += 1
        loss = float(logs["loss"]) if isinstance(logs, dict) and "loss" in logs else None
        if first_loss is None:
            first_loss = loss
        count, real = int(target_out.shape[0]), int(np.count_nonzero(np.asarray(target_out)))
        sentences += count
        tokens += real
        now = time.perf_counter()
        if done <= warmup_steps:
            timed_from = now
            continue
        timed_sentences += count
        timed_tokens += real
        if loss is not None:
            losses.append(loss)
        timed = done - warmup_steps
        if (steps is not None and timed >= steps) or (
            seconds is not None and now - started >= seconds and timed >= min_timed_steps
        ):
            break
    else:
        raise ValueError("the batches ran out before the training was timed: pass a repeating dataset")
    return {
        "steps": done,
        "sentences": sentences,
        "tokens": tokens,
        "seconds": now - started,
        "timed_steps": done - warmup_steps,
        "timed_sentences": timed_sentences,
        "timed_tokens": timed_tokens,
        "timed_seconds": now - timed_from,
        "first_loss": first_loss,
        "losses": losses,
    }


def train_for_budget(
    step: Callable, batches: Iterable, seconds: float, warmup_steps: int = 5, min_timed_steps: int = 3
) -> dict:
    """Trains on live ``batches`` until ``seconds`` have passed (:func:`train_loop`); the rates count the steps
    after the first ``warmup_steps`` (tracing, first allocations).

    ``step`` returns the logs of one step (:func:`train_step`). Returns the
    steps, sentences and target tokens trained, the seconds spent, the rates,
    the first step's loss and the mean loss of the last (up to 50) timed
    steps, to see that the model learned.
    """
    r = train_loop(step, batches, seconds=seconds, warmup_steps=warmup_steps, min_timed_steps=min_timed_steps)
    seconds_timed, tail = r["timed_seconds"], r["losses"][-50:]
    return {
        "train_steps": r["steps"],
        "train_sentences": r["sentences"],
        "train_target_tokens": r["tokens"],
        "train_seconds": round(r["seconds"], 2),
        "train_timed_steps": r["timed_steps"],
        "train_timed_seconds": round(seconds_timed, 2),
        "train_sentences_per_s": round(r["timed_sentences"] / seconds_timed, 1),
        "train_target_tokens_per_s": round(r["timed_tokens"] / seconds_timed, 1),
        "train_ms_per_step": round(1000 * seconds_timed / r["timed_steps"], 1),
        "train_first_loss": round(r["first_loss"], 4),
        "train_final_loss": round(sum(tail) / len(tail), 4),
    }


def train_turn(step: Callable, batches: Iterator, seconds: float) -> dict:
    """One turn of a race: train steps on the next batches until ``seconds`` have passed (one step at least)."""
    r = train_loop(step, batches, seconds=seconds)
    return {
        "seconds": r["timed_seconds"],
        "sentences": r["timed_sentences"],
        "tokens": r["timed_tokens"],
        "steps": r["timed_steps"],
    }


def measure_training(config, prepared, warmup: int, steps: int) -> tuple[dict, object]:
    """Target tokens per second of the config's compiled train step (a plain ``keras.Model``, built under
    ``train.precision`` as ``translate train`` builds it) over ``steps`` batches after ``warmup``, all
    fetched beforehand, so that the pipeline is not timed. Returns the figures and the run."""
    run, data = build_training(config, prepared, grad_norm=False)
    batches = list(data.take(warmup + steps))
    r = train_loop(train_step(run.models.training), batches, steps=steps, warmup_steps=warmup)
    return {
        "train_steps_timed": steps,
        "train_batch_size": config.train.batch_size,
        "train_seconds": round(r["timed_seconds"], 2),
        "train_target_tokens_per_s": round(r["timed_tokens"] / r["timed_seconds"], 1),
        "train_ms_per_step": round(1000 * r["timed_seconds"] / steps, 1),
    }, run


# --- Timing decoding ---------------------------------------------------------------------


def decode_passes(
    translate: Callable[[list[str]], list[str]],
    sentences: Sequence[str],
    batch_size: int,
    count_tokens: Callable[[str], int] | None = None,
    passes: int = 1,
) -> dict:
    """``passes`` timed passes of ``translate`` over ``sentences`` in batches of ``batch_size``.

    Returns the seconds, the sentences translated and, with ``count_tokens``,
    the tokens of their translations.
    """
    batches = [list(sentences[start : start + batch_size]) for start in range(0, len(sentences), batch_size)]
    begun = time.perf_counter()
    outputs = [t for _ in range(passes) for batch in batches for t in translate(batch)]
    seconds = time.perf_counter() - begun
    tokens = sum(count_tokens(t) for t in outputs) if count_tokens is not None else None
    return {"seconds": seconds, "sentences": len(outputs), "tokens": tokens}


def time_decoding(
    translate: Callable[[list[str]], list[str]],
    sentences: Sequence[str],
    batch_sizes: Sequence[int] = (1, 64),
    repeats: int = 3,
    count_tokens: Callable[[str], int] | None = None,
    prefix: str = "decode",
) -> dict:
    """Sentences (and, with ``count_tokens``, generated tokens) per second of ``translate``.

    For each batch size the first ``DECODE_SENTENCES[batch]`` sentences (at
    most all of them; ``4 * batch`` for other sizes) are translated in
    batches, once untimed (warm-up) and then ``repeats`` times; the median
    pass counts. Keys: ``{prefix}_sentences_per_s_batch_{b}`` and
    ``{prefix}_tokens_per_s_batch_{b}``, the tokens being those of the
    translations of the median pass, as ``count_tokens`` counts them.
    """
    results = {}
    for batch_size in batch_sizes:
        chunk = list(sentences[: DECODE_SENTENCES.get(batch_size, 4 * batch_size)])
        translate(chunk[:batch_size])  # warm-up: allocations, the first trace of a shape
        passes = [decode_passes(translate, chunk, batch_size, count_tokens) for _ in range(repeats)]
        median = sorted(passes, key=lambda p: p["seconds"])[len(passes) // 2]
        results[f"{prefix}_sentences_per_s_batch_{batch_size}"] = round(len(chunk) / median["seconds"], 2)
        if count_tokens is not None:
            results[f"{prefix}_tokens_per_s_batch_{batch_size}"] = round(median["tokens"] / median["seconds"], 1)
    return results


# --- Taking turns ------------------------------------------------------------------------


def take_turns(
    contestants: dict[str, dict[str, Callable[[], dict]]], rounds: int, warmup_turns: int = 0, label: str = "turns"
) -> dict[str, dict[str, list[dict]]]:
    """``rounds`` rounds; in each, every event of every contestant once, event by event.

    ``contestants`` maps a name to its events, each a function that runs one
    turn and returns its figures. Within an event the contestants' order
    rotates from round to round, so none always runs first (after a pause)
    or last. Before the first round each contestant runs each of its events
    ``warmup_turns`` times, untimed. Returns ``{event: {name: [turn, ...]}}``.
    """
    events = sorted({event for own in contestants.values() for event in own})
    turns: dict[str, dict[str, list[dict]]] = {event: {} for event in events}
    for own in contestants.values():
        for run in own.values():
            for _ in range(warmup_turns):
                run()
    for r in range(rounds):
        for event in events:
            names = [name for name, own in contestants.items() if event in own]
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                turns[event].setdefault(name, []).append(contestants[name][event]())
        print(f"[{label}] round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    return turns


def median(values: Iterable[float], digits: int = 1) -> float:
    return round(float(statistics.median(values)), digits)


def train_in_turns(contestants: dict[str, tuple[Callable, list]], steps: int, rounds: int, warmup: int) -> dict:
    """Train steps of several models in turns, in this process: ``rounds`` rounds of ``steps`` steps each.

    ``contestants`` maps a name to ``(step, batches)``, each list holding at
    least ``warmup + steps * rounds`` batches; each model first trains on its
    ``warmup`` first batches, untimed, then a turn takes its next ``steps``.
    Returns the median round's ms per step and sentences per second of each,
    and every round's ms per step.
    """
    events = {}
    for name, (step, batches) in contestants.items():
        if warmup:
            train_loop(step, batches[:warmup], steps=warmup)
        rest = iter(batches[warmup:])
        events[name] = {"train": lambda step=step, rest=rest: train_loop(step, rest, steps=steps)}
    turns = take_turns(events, rounds, label="train in turns")["train"]
    ms = {name: [1000 * t["timed_seconds"] / steps for t in runs] for name, runs in turns.items()}
    rates = {name: [t["timed_sentences"] / t["timed_seconds"] for t in runs] for name, runs in turns.items()}
    return {
        "ms_per_step": {name: median(values) for name, values in ms.items()},
        "sentences_per_s": {name: median(values) for name, values in rates.items()},
        "rounds_ms_per_step": {name: [round(v, 1) for v in values] for name, values in ms.items()},
    }


# A contestant in a process of its own: the parent writes one event name a line on the worker's stdin; the
# worker runs it and answers one line, PREFIX and a JSON object, on its stdout. Other output goes to stderr.
PREFIX = "RACE "


def serve(events: dict[str, Callable[[], dict]], lines: Iterator[str] | None = None, out=None) -> None:
    """A worker's loop: announces its events, then runs each event named on ``lines`` (stdin).

    Answers each with ``RACE {json}``: the event's dict and the CPU seconds
    the process used since its last turn (``idle_cpu_seconds``), or
    ``{"error": ...}`` for an unknown event or one that raised. ``quit`` or
    the end of input stops.
    """
    lines = sys.stdin if lines is None else lines
    out = sys.stdout if out is None else out

    def answer(reply: dict) -> None:
        out.write(PREFIX + json.dumps(reply) + "\n")
        out.flush()

    answer({"ready": sorted(events)})
    # CPU this process spends between its turns (its input pipeline's threads, say) is taken from
    # the others' turns: each answer reports it, so the parent can show it.
    idle_since = time.process_time()
    for line in lines:
        name = line.strip()
        if name == "quit":
            break
        if not name:
            continue
        if name not in events:
            answer({"error": f"unknown event {name!r}; this worker runs {sorted(events)}"})
            continue
        idle_cpu = time.process_time() - idle_since
        try:
            answer({**events[name](), "idle_cpu_seconds": idle_cpu})
        except Exception as exc:  # the parent names the worker and stops the race
            answer({"error": f"{type(exc).__name__}: {exc}"})
        idle_since = time.process_time()


class Worker:
    """A contestant's process (run from the repository root), answering events (see :func:`serve`)."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]):
        self.name = name
        print(f"[race] {name}: {' '.join(command)}", file=sys.stderr, flush=True)
        self.process = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env, cwd=REPO
        )
        self.events = self._answer()["ready"]

    def _answer(self) -> dict:
        for line in self.process.stdout:
            if line.startswith(PREFIX):
                reply = json.loads(line[len(PREFIX) :])
                if "error" in reply:
                    raise RuntimeError(f"race worker {self.name}: {reply['error']}")
                return reply
        raise RuntimeError(f"race worker {self.name} exited with code {self.process.wait()} before answering")

    def run(self, event: str) -> dict:
        self.process.stdin.write(event + "\n")
        self.process.stdin.flush()
        return self._answer()

    def turns(self) -> dict[str, Callable[[], dict]]:
        """Its events, as :func:`take_turns` takes them."""
        return {event: (lambda event=event: self.run(event)) for event in self.events}

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
                self.process.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()
