"""Where the time goes: one training epoch and one decode of the test split, profiled.

    python benchmarks/profiling.py --preset quick --model saved_models/translator \\
        --out benchmarks/results/profiling.json

Three views, each printed as a top-N list and kept in the JSON:

1. **Python (cProfile)** of one training epoch through ``translate``'s own
   ``fit`` setup (the callbacks included): shows how much of the epoch is the
   compiled step (``TFE_Py_Execute``) and how much is Python around it
   (callbacks, the input pipeline's Python side, logging).
2. **TensorFlow ops of the training step** (``tf.profiler`` trace of
   ``--trace-steps`` steps): the self time of each op, summed over the
   TensorFlow compute threads, grouped by op (layer path and kernel, with
   loop and call prefixes folded away) and by kernel type.
3. **TensorFlow ops of decoding**: the same trace over translating the whole
   test split (Romans for the built-in Bible) in batches of 64 with
   ``--model`` (default: export the model of step 2, untrained: worst case).

The trace is read from the profiler's ``.xplane.pb`` with the protobuf
classes that TensorFlow ships, so no TensorBoard plugin is needed (open the
same folder in TensorBoard's profiler to browse it). Self time: an op's
duration minus that of the ops nested in it on the same thread.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import glob
import os
import pstats
import re
import sys
import tempfile
import time
from pathlib import Path

from report import emit, machine

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Prefixes of a traced op's name that say where it runs, not what it is.
_NOISE = [re.compile(p) for p in (r"(StatefulPartitionedCall|PartitionedCall)(_\d+)?/", r"while/body/_\d+/",
                                  r"while/", r"__inference_[^/]*/", r"_\d+(?=[/:]|$)")]
_BOOKKEEPING = ("ThreadpoolListener", "ExecutorState", "ParallelFor", "EagerExecute", "EagerLocalExecute")


def readable(op_name: str) -> str:
    """``StatefulPartitionedCall/while/body/_169/while/decoder_1/attention_1/einsum/Einsum:_MklEinsum``
    -> ``decoder/attention/einsum/Einsum:_MklEinsum``."""
    for pattern in _NOISE:
        op_name = pattern.sub("", op_name)
    # Gradient ops repeat their forward scope (a/b/a/b/while_grad/...): keep each scope once.
    kept: list[str] = []
    for segment in op_name.split("/"):
        if segment and segment not in kept:
            kept.append(segment)
    return "/".join(kept)


def op_self_times(trace_dir: str) -> tuple[dict[str, float], dict[str, float], float]:
    """Self milliseconds per op and per kernel type from the newest ``.xplane.pb`` under ``trace_dir``."""
    from tensorflow.tsl.profiler.protobuf import xplane_pb2

    files = sorted(glob.glob(os.path.join(trace_dir, "**", "*.xplane.pb"), recursive=True), key=os.path.getmtime)
    if not files:
        raise RuntimeError(f"the profiler wrote no trace under {trace_dir}")
    space = xplane_pb2.XSpace()
    space.ParseFromString(Path(files[-1]).read_bytes())
    by_op: collections.Counter = collections.Counter()
    by_kind: collections.Counter = collections.Counter()
    for plane in space.planes:
        if plane.name != "/host:CPU":
            continue
        for line in plane.lines:
            if not line.name.startswith("tf_Compute"):
                continue
            events = sorted(line.events, key=lambda e: (e.offset_ps, -e.duration_ps))
            stack: list[list] = []  # [end_ps, name, self_ps]
            finished: list[tuple[str, int]] = []
            for event in events:
                name = plane.event_metadata[event.metadata_id].name
                start, end = event.offset_ps, event.offset_ps + event.duration_ps
                while stack and stack[-1][0] <= start:
                    closed = stack.pop()
                    finished.append((closed[1], closed[2]))
                if stack:
                    stack[-1][2] -= event.duration_ps  # the enclosing op does not own this time
                stack.append([end, name, event.duration_ps])
            finished.extend((item[1], item[2]) for item in stack)
            for name, self_ps in finished:
                if name.startswith(_BOOKKEEPING) or ":" not in name:
                    continue
                ms = self_ps / 1e9
                by_op[readable(name)] += ms
                by_kind[name.rsplit(":", 1)[1]] += ms
    total = sum(by_op.values())
    return dict(by_op), dict(by_kind), total


def top(counter: dict[str, float], total: float, n: int) -> list[dict]:
    return [{"name": name, "ms": round(ms, 1), "share": round(ms / total, 3)}
            for name, ms in sorted(counter.items(), key=lambda item: -item[1])[:n]]


def traced(function, trace_dir: str) -> float:
    """Runs ``function`` under the TensorFlow profiler; its wall seconds."""
    import tensorflow as tf

    tf.profiler.experimental.start(trace_dir)
    started = time.perf_counter()
    try:
        function()
    finally:
        seconds = time.perf_counter() - started
        tf.profiler.experimental.stop()
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--model", help="an export to profile decoding with (default: the untrained model)")
    parser.add_argument("--trace-steps", type=int, default=20, help="training steps under the op trace")
    parser.add_argument("--epoch-steps", type=int, help="cut the profiled epoch to this many steps (default: all)")
    parser.add_argument("--top", type=int, default=12)
    parser.add_argument("--trace-dir", help="keep the traces here (default: a temporary folder)")
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    import translate
    from translate.config import load_config
    from translate.export import export
    from translate.prepare import prepare
    from translate.training import build_run, compile_for_training, make_callbacks, training_dataset

    work = tempfile.TemporaryDirectory()
    trace_root = Path(args.trace_dir or work.name)
    config = load_config(args.preset, overrides=[*args.overrides, f"run_dir={work.name}/run",
                                                 "train.tensorboard=false"])
    prepared = prepare(config, progress=False)
    keras.utils.set_random_seed(config.train.seed)
    run = build_run(config, prepared.run_dir, prepared.src_model, prepared.tgt_model)
    compile_for_training(run, config)
    data = training_dataset(run, config, prepared)
    report = {"preset": args.preset, "overrides": args.overrides, "machine": machine(),
              "tensorflow": tf.__version__}

    # 1. One epoch under cProfile, with the callbacks `translate train` uses.
    callbacks = make_callbacks(run, config, prepared.read("dev")[: config.train.dev_sentences])
    profiler = cProfile.Profile()
    started = time.perf_counter()
    profiler.enable()
    epoch = data.take(args.epoch_steps) if args.epoch_steps else data
    run.models.training.fit(epoch, epochs=1, callbacks=callbacks, verbose=0)
    profiler.disable()
    report["epoch_seconds"] = round(time.perf_counter() - started, 1)
    stats = pstats.Stats(profiler)
    rows = sorted(((f"{Path(f).name}:{line}({fn})", s[3]) for (f, line, fn), s in stats.stats.items()),
                  key=lambda r: -r[1])
    report["python_cumulative_s"] = [{"function": name, "seconds": round(s, 1)} for name, s in rows[: args.top]]

    # 2. Ops of the training step.
    batches = list(data.take(args.trace_steps))
    step = run.models.training.train_on_batch
    step(*batches[0])  # warm
    train_dir = str(trace_root / "train")
    seconds = traced(lambda: [step(inputs, target) for inputs, target in batches], train_dir)
    by_op, by_kind, total = op_self_times(train_dir)
    report["train_trace"] = {"steps": len(batches), "wall_seconds": round(seconds, 2), "op_ms": round(total, 1),
                             "top_ops": top(by_op, total, args.top), "top_kinds": top(by_kind, total, args.top)}

    # 3. Ops of decoding the test split, batch 64.
    with tempfile.TemporaryDirectory() as tmp:
        path = args.model or export(run.graph, config, prepared.src_model, prepared.tgt_model, tmp, "profile")
        translator = translate.load(path)
        sources = [s for s, _ in prepared.read("test")]
        batches_of_64 = [sources[i : i + 64] for i in range(0, len(sources), 64)]
        translator(batches_of_64[0])  # warm
        decode_dir = str(trace_root / "decode")
        seconds = traced(lambda: [translator(b) for b in batches_of_64], decode_dir)
    by_op, by_kind, total = op_self_times(decode_dir)
    report["decode_trace"] = {"model": str(args.model or "untrained export"), "sentences": len(sources),
                              "wall_seconds": round(seconds, 2), "op_ms": round(total, 1),
                              "top_ops": top(by_op, total, args.top), "top_kinds": top(by_kind, total, args.top)}
    emit(report, args.out)
    for title, key in (("training step", "train_trace"), ("decoding", "decode_trace")):
        print(f"\n{title}: top ops by self time (share of {report[key]['op_ms']:.0f} ms of op time)", file=sys.stderr)
        for row in report[key]["top_ops"]:
            print(f"  {100 * row['share']:5.1f}%  {row['name']}", file=sys.stderr)


if __name__ == "__main__":
    main()
