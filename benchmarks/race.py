"""Ours against the baseline in turns: one process per contestant, timed one after another, round after round.

    python benchmarks/race.py --run-dir runs/quick --baseline-weights /tmp/b.weights.h5 \\
        --quick-exports greedy=saved_models/greedy --quick-exports beam5=saved_models/translator \\
        --out /tmp/race.json

``benchmarks/compare.py`` trains and times each side in its own process,
minutes apart. On a shared machine the speed drifts by 10–20% over such
minutes, and a ratio of two figures taken at different times carries that
drift. Here every contestant runs in its own process (so each keeps its own
thread setting, which TensorFlow reads at start-up), and the processes take
turns: in each round every contestant runs one turn of an event, one after
another, so a slow minute slows all of them. Each round gives a ratio; the
median round's counts.

Contestants (``compare.py`` runs this after its sides, on their models):

* ``baseline`` and ``baseline_serial_ops``: the TensorFlow tutorial's model
  (``baselines/tf_tutorial.py``) under TensorFlow's default threads and
  under ``serial_ops``; the ratios take the faster of the two in each round,
  so neither setting is chosen against it;
* ``ours_equal``: our model at the baseline's sizes (training only);
* ``ours_quick``: the quick preset's greedy and beam 5 exports, loaded with
  ``translate.load`` (decoding only).

Events (a turn of each):

* ``train``: compiled train steps over the live input pipeline until
  ``--train-turn-seconds`` have passed; the rate is sentences per second.
  The models start from fresh weights (a step's cost does not depend on
  them); ``--warmup-turns`` turns, left out, trace the step.
* ``greedy_b1``, ``greedy_b64``, ``beam5_b64``: ``--decode-passes`` passes
  over the first test sentences (:data:`timing.DECODE_SENTENCES`) at that
  batch size, in corpus order. The baseline decodes with its trained
  weights (``--baseline-weights``); its cost does not depend on them (its
  traced loop always runs ``--max-length`` steps), but its output, and so
  its token count, does.

Ratios (the median over rounds of each round's ratio): ``train_speedup``
(ours_equal / baseline), ``greedy_speedup_b64`` and ``greedy_speedup_b1``
(ours_quick / baseline), ``beam5_over_greedy_b64`` (ours_quick's beam 5 /
its greedy).

The protocol (:func:`serve`, :class:`Worker`): the parent writes one event
name a line on a worker's stdin; the worker runs it and answers one line,
``RACE`` and a JSON object (``seconds``, ``sentences``, ``tokens``, and the
CPU seconds the process used since its last turn), on its stdout. Other
output goes to stderr or is skipped.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from report import emit, machine
from timing import DECODE_SENTENCES, decode_passes

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PREFIX = "RACE "
BASELINES = ("baseline", "baseline_serial_ops")
# (event, our contestant, what it is measured against: the baselines, or another event of ours)
RATIOS = {
    "train_speedup": ("train", "ours_equal", BASELINES),
    "greedy_speedup_b64": ("greedy_b64", "ours_quick", BASELINES),
    "greedy_speedup_b1": ("greedy_b1", "ours_quick", BASELINES),
    "beam5_over_greedy_b64": ("beam5_b64", "ours_quick", "greedy_b64"),
}


# --- The worker's side ------------------------------------------------------------

def serve(events: dict[str, Callable[[], dict]], lines: Iterator[str] | None = None, out=None) -> None:
    """A worker's loop: announces its events, then runs each event named on ``lines`` (stdin).

    Answers each with ``RACE {json}``: the event's dict, or ``{"error": ...}``
    for an unknown event or one that raised. ``quit`` or the end of input stops.
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


def train_turn(step: Callable, batches: Iterator, seconds: float) -> dict:
    """Calls ``step(inputs, target_out)`` on the next batches until ``seconds`` have passed (one step at least)."""
    import numpy as np

    sentences = tokens = steps = 0
    begun = time.perf_counter()
    while True:
        inputs, target_out = next(batches)
        step(inputs, target_out)
        steps += 1
        sentences += int(target_out.shape[0])
        tokens += int(np.count_nonzero(np.asarray(target_out)))
        elapsed = time.perf_counter() - begun
        if elapsed >= seconds:
            return {"seconds": elapsed, "sentences": sentences, "tokens": tokens, "steps": steps}


def decode_events(prefix: str, translate: Callable, sentences: list[str], batch_sizes: tuple[int, ...],
                  count_tokens: Callable[[str], int], passes: int = 1) -> dict[str, Callable[[], dict]]:
    """``{prefix}_b{size}`` events over the first :data:`timing.DECODE_SENTENCES` sentences,
    ``passes`` passes a turn, each first warmed up by one untimed batch."""
    events = {}
    for size in batch_sizes:
        chunk = sentences[: DECODE_SENTENCES.get(size, 4 * size)]
        translate(chunk[:size])
        events[f"{prefix}_b{size}"] = (lambda chunk=chunk, size=size:
                                       decode_passes(translate, chunk, size, count_tokens, passes))
    return events


def baseline_worker(args: argparse.Namespace) -> dict[str, Callable[[], dict]]:
    """The tutorial's model: ``train``, ``greedy_b1`` and ``greedy_b64``."""
    sys.path.insert(0, str(HERE / "baselines"))
    import tf_tutorial

    model, train_ds, _ = tf_tutorial.build(Path(args.run_dir), args.units, args.batch_size, args.seed)
    batches = iter(train_ds.repeat())
    inputs, _ = next(batches)
    model(inputs)  # creates the variables, so that the weights can load
    if args.baseline_weights:
        model.load_weights(args.baseline_weights)
    sources, _ = tf_tutorial.read_split(Path(args.run_dir), "test")
    events = decode_events("greedy", tf_tutorial.translator(model, args.max_length), sources, (1, 64),
                           tf_tutorial.count_words, args.decode_passes)

    def step(inputs, target_out):
        return model.train_on_batch(inputs, target_out)

    events["train"] = lambda: train_turn(step, batches, args.train_turn_seconds)
    return events


def ours_worker(args: argparse.Namespace) -> dict[str, Callable[[], dict]]:
    """Ours: ``train`` (with ``--train``, the preset and overrides), and the decoding events of each
    ``--export NAME=PATH`` (``greedy_b1``, ``greedy_b64`` for ``greedy``; ``NAME_b64`` for others)."""
    sys.path.insert(0, str(REPO))
    import sentencepiece as spm

    import translate
    from ours import build_training, config_for
    from translate.prepare import load_prepared

    config = config_for(Path(args.run_dir), args.preset, args.set)
    prepared = load_prepared(config)
    events = {}
    if args.train:
        run, batches = build_training(config, prepared)
        batches = iter(batches)

        def step(inputs, target_out):
            return run.models.training.train_on_batch(inputs, target_out)

        events["train"] = lambda: train_turn(step, batches, args.train_turn_seconds)
    pieces = spm.SentencePieceProcessor(model_proto=prepared.tgt_model)
    sources = [source for source, _ in prepared.read("test")]
    for spec in args.export:
        name, _, path = spec.partition("=")
        if not name or not path:
            raise SystemExit(f"--export {spec!r}: expected NAME=PATH, e.g. greedy=saved_models/greedy")
        sizes = (1, 64) if name == "greedy" else (64,)
        events.update(decode_events(name, translate.load(path), sources, sizes, lambda t: len(pieces.encode(t)),
                                    args.decode_passes))
    return events


# --- The parent's side ------------------------------------------------------------

class Worker:
    """A contestant's process, answering events (see :func:`serve`)."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]):
        self.name = name
        print(f"[race] {name}: {' '.join(command)}", file=sys.stderr, flush=True)
        self.process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        env=env, cwd=REPO)
        self.events = self._answer()["ready"]

    def _answer(self) -> dict:
        for line in self.process.stdout:
            if line.startswith(PREFIX):
                reply = json.loads(line[len(PREFIX):])
                if "error" in reply:
                    raise RuntimeError(f"race worker {self.name}: {reply['error']}")
                return reply
        raise RuntimeError(f"race worker {self.name} exited with code {self.process.wait()} before answering")

    def run(self, event: str) -> dict:
        self.process.stdin.write(event + "\n")
        self.process.stdin.flush()
        return self._answer()

    def close(self) -> None:
        if self.process.poll() is None:
            try:
                self.process.stdin.write("quit\n")
                self.process.stdin.close()
                self.process.wait(timeout=60)
            except (OSError, subprocess.TimeoutExpired):
                self.process.kill()
                self.process.wait()


def take_turns(workers: dict[str, Worker], rounds: int, warmup_turns: int = 2) -> dict[str, dict[str, list[dict]]]:
    """``rounds`` rounds; in each, every event of every worker once, event by event.

    Within an event the workers' order rotates from round to round, so none
    always runs first (after a pause) or last. Before the first round each
    worker runs each of its events ``warmup_turns`` times, untimed: tracing,
    first allocations, and the retracing of Keras's train step for the first
    few new batch shapes. Returns ``{event: {worker: [turn, ...]}}``.
    """
    events = sorted({event for worker in workers.values() for event in worker.events})
    turns: dict[str, dict[str, list[dict]]] = {event: {} for event in events}
    for worker in workers.values():
        for event in worker.events:
            for _ in range(warmup_turns):
                worker.run(event)
    for r in range(rounds):
        for event in events:
            names = [name for name, worker in workers.items() if event in worker.events]
            shift = r % len(names)
            for name in names[shift:] + names[:shift]:
                turns[event].setdefault(name, []).append(workers[name].run(event))
        print(f"[race] round {r + 1}/{rounds} done", file=sys.stderr, flush=True)
    return turns


def rate(turn: dict, key: str = "sentences") -> float:
    return turn[key] / turn["seconds"]


def summarize(turns: dict[str, dict[str, list[dict]]]) -> dict:
    """Each contestant's median rates per event, and the median over rounds of each ratio (:data:`RATIOS`)."""
    report: dict = {"rates": {}, "ratios": {}, "per_round": {}}
    for event, by_name in turns.items():
        report["rates"][event] = {
            name: {"sentences_per_s": round(statistics.median(rate(t) for t in runs), 2),
                   "tokens_per_s": round(statistics.median(rate(t, "tokens") for t in runs), 1)}
            for name, runs in by_name.items()}
    idle = {}
    for by_name in turns.values():
        for name, runs in by_name.items():
            idle[name] = idle.get(name, 0.0) + sum(turn.get("idle_cpu_seconds", 0.0) for turn in runs)
    report["idle_cpu_seconds"] = {name: round(value, 1) for name, value in idle.items()}
    for key, (event, ours, against) in RATIOS.items():
        mine = turns.get(event, {}).get(ours)
        if isinstance(against, str):
            others = [turns.get(against, {}).get(ours)]
        else:
            others = [turns.get(event, {}).get(name) for name in against]
        others = [runs for runs in others if runs]
        if not mine or not others:
            continue
        per_round = [rate(turn) / max(rate(runs[r]) for runs in others) for r, turn in enumerate(mine)]
        report["ratios"][key] = round(statistics.median(per_round), 3)
        report["per_round"][key] = [round(value, 3) for value in per_round]
    return report


def worker_command(kind: str, args: argparse.Namespace, extra: list[str]) -> list[str]:
    shared = ["--run-dir", args.run_dir, "--train-turn-seconds", str(args.train_turn_seconds),
              "--decode-passes", str(args.decode_passes)]
    return [sys.executable, str(Path(__file__).resolve()), "--worker", kind, *shared, *extra]


def race(args: argparse.Namespace, env_of: Callable[[str], dict[str, str]]) -> dict:
    """Starts the contestants' workers, takes the turns, and summarizes.

    ``env_of(setting)`` is a thread setting's environment.
    """
    baseline = ["--units", str(args.units), "--batch-size", str(args.batch_size), "--max-length", str(args.max_length),
                *(["--baseline-weights", args.baseline_weights] if args.baseline_weights else [])]
    ours = ["--preset", args.preset, *(f"--set={o}" for o in args.set)]
    plans = {
        "baseline": ("baseline", baseline, "default"),
        "baseline_serial_ops": ("baseline", baseline, "serial_ops"),
        "ours_equal": ("ours", [*ours, "--train", *(f"--set={o}" for o in args.equal_set)], args.ours_threads),
        "ours_quick": ("ours", [*ours, *(f"--export={e}" for e in args.quick_exports)], args.ours_threads),
    }
    workers: dict[str, Worker] = {}
    try:
        for name, (kind, extra, threads) in plans.items():
            if name == "ours_equal" and not args.equal_set:
                continue
            if name == "ours_quick" and not args.quick_exports:
                continue
            workers[name] = Worker(name, worker_command(kind, args, extra), env_of(threads))
        started = time.perf_counter()
        turns = take_turns(workers, args.rounds, args.warmup_turns)
        seconds = time.perf_counter() - started
    finally:
        for worker in workers.values():
            worker.close()
    return {"rounds": args.rounds, "train_turn_seconds": args.train_turn_seconds, "warmup_turns": args.warmup_turns,
            "decode_passes": args.decode_passes,
            "threads": {name: plan[2] for name, plan in plans.items() if name in workers},
            "race_seconds": round(seconds, 1), **summarize(turns)}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The race's options, shared with ``compare.py``."""
    parser.add_argument("--rounds", type=int, default=7, help="rounds of the race in turns")
    parser.add_argument("--train-turn-seconds", type=float, default=15.0, help="training time of one turn")
    parser.add_argument("--warmup-turns", type=int, default=2, help="untimed turns of each event before the rounds")
    parser.add_argument("--decode-passes", type=int, default=3, help="passes over the sentences in a decoding turn")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, help="a prepared run folder")
    add_arguments(parser)
    parser.add_argument("--units", type=int, default=256, help="the baseline's units")
    parser.add_argument("--batch-size", type=int, default=64, help="the baseline's batch size")
    parser.add_argument("--max-length", type=int, default=50, help="the baseline's decoding steps")
    parser.add_argument("--seed", type=int, default=1234)
    parser.add_argument("--baseline-weights", help="the baseline's trained weights (tf_tutorial.py --save-weights)")
    parser.add_argument("--preset", default="quick", help="our preset")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="an override of ours")
    parser.add_argument("--equal-set", action="append", default=[], metavar="KEY=VALUE",
                        help="the overrides of ours at equal size (none: ours_equal does not race)")
    parser.add_argument("--quick-exports", action="append", default=[], metavar="NAME=PATH",
                        help="an export of the quick preset to decode with (greedy=..., beam5=...)")
    parser.add_argument("--ours-threads", default="serial_ops", help="thread setting of our workers")
    parser.add_argument("--out", help="also write the JSON here")
    # A worker's own options.
    parser.add_argument("--worker", choices=("baseline", "ours"), help=argparse.SUPPRESS)
    parser.add_argument("--train", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--export", action="append", default=[], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        # Anything printed (Keras's progress output, ...) goes to stderr; stdout carries the answers.
        answers, sys.stdout = sys.stdout, sys.stderr
        serve(baseline_worker(args) if args.worker == "baseline" else ours_worker(args), out=answers)
        return
    from compare import THREADS, thread_env

    if args.ours_threads not in THREADS:
        parser.error(f"--ours-threads {args.ours_threads!r}: choose one of {sorted(THREADS)}")
    report = {"machine": machine(), "command": " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]),
              **race(args, thread_env)}
    emit(report, args.out)


if __name__ == "__main__":
    main()
