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

Also measured: the share of padding in training batches with and without
length bucketing, and decoding speed over the test split in corpus order
against sorted by length (as ``translate evaluate`` batches).

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


def padding(run, config, prepared) -> dict:
    """Share of padded positions in training batches, with length bucketing (the
    pipeline's batches) and without (the same sentences in shuffled order, cut
    into batches of ``train.batch_size``), source and target counted apart."""
    import numpy as np
    import sentencepiece as spm

    from translate.training import training_dataset

    real = padded = 0
    for (source, _), target_out in training_dataset(run, config, prepared):
        for ids in (source.numpy(), target_out.numpy()):
            real += int(np.count_nonzero(ids))
            padded += ids.size
    # Without bucketing: lengths as the pipeline sees them (+1 for EOS / BOS), same filter.
    limit = config.data.max_pieces + 1
    lengths = []
    for model, path in ((prepared.src_model, prepared.files("train")[0]),
                        (prepared.tgt_model, prepared.files("train")[1])):
        pieces = spm.SentencePieceProcessor(model_proto=model)
        lines = Path(path).read_text(encoding="utf-8").splitlines()
        lengths.append(np.array([len(ids) + 1 for ids in pieces.encode(lines)]))
    keep = (lengths[0] <= limit) & (lengths[1] <= limit)
    pairs = np.stack([lengths[0][keep], lengths[1][keep]], axis=1)
    np.random.default_rng(config.train.seed).shuffle(pairs)
    size = config.train.batch_size
    plain_real = plain_padded = 0
    for start in range(0, len(pairs), size):
        batch = pairs[start : start + size]
        plain_real += int(batch.sum())
        plain_padded += int(batch.max(axis=0).sum()) * len(batch)
    return {"batch_size": size, "bucketed": round(1 - real / padded, 4),
            "not_bucketed": round(1 - plain_real / plain_padded, 4)}


def decode_orders(translator, sentences: list[str], batch_size: int = 64, repeats: int = 3) -> dict:
    """Sentences per second over all ``sentences`` in corpus order and sorted by
    length (what ``translate_in_batches`` does), the median of ``repeats``."""
    from translate.evaluation import translate_in_batches

    def corpus_order():
        return [t for i in range(0, len(sentences), batch_size) for t in translator(sentences[i : i + batch_size])]

    rates = {}
    for name, run_all in (("corpus_order", corpus_order),
                          ("sorted_by_length", lambda: translate_in_batches(translator, sentences, batch_size,
                                                                            progress=False))):
        run_all()
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            run_all()
            times.append(time.perf_counter() - started)
        rates[name] = round(len(sentences) / sorted(times)[len(times) // 2], 1)
    return rates


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
    parser.add_argument("--model", action="append", default=[],
                        help="an export to profile decoding with; repeat for several (default: the untrained model)")
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

    report["padding_fraction"] = padding(run, config, prepared)

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
    for key, column in (("python_cumulative_s", 3), ("python_self_s", 2)):
        rows = sorted(((f"{Path(f).name}:{line}({fn})", s[column]) for (f, line, fn), s in stats.stats.items()),
                      key=lambda r: -r[1])
        report[key] = [{"function": name, "seconds": round(s, 1)} for name, s in rows[: args.top]]

    # 2. Ops of the training step.
    batches = list(data.take(args.trace_steps))
    step = run.models.training.train_on_batch
    step(*batches[0])  # warm
    train_dir = str(trace_root / "train")
    seconds = traced(lambda: [step(inputs, target) for inputs, target in batches], train_dir)
    by_op, by_kind, total = op_self_times(train_dir)
    report["train_trace"] = {"steps": len(batches), "wall_seconds": round(seconds, 2), "op_ms": round(total, 1),
                             "top_ops": top(by_op, total, args.top), "top_kinds": top(by_kind, total, args.top)}

    # 3. Ops of decoding the test split, batch 64, with each model.
    sources = [s for s, _ in prepared.read("test")]
    batches_of_64 = [sources[i : i + 64] for i in range(0, len(sources), 64)]
    report["decode_traces"] = []
    with tempfile.TemporaryDirectory() as tmp:
        paths = args.model or [export(run.graph, config, prepared.src_model, prepared.tgt_model, tmp, "profile")]
        for number, path in enumerate(paths):
            translator = translate.load(path)
            translator(batches_of_64[0])  # warm
            decode_dir = str(trace_root / f"decode-{number}")
            seconds = traced(lambda: [translator(b) for b in batches_of_64], decode_dir)  # noqa: B023 - called at once
            by_op, by_kind, total = op_self_times(decode_dir)
            report["decode_traces"].append({
                "model": str(path) if args.model else "untrained export", "sentences": len(sources),
                "wall_seconds": round(seconds, 2), "op_ms": round(total, 1),
                "sentences_per_s_batch_64": decode_orders(translator, sources),
                "top_ops": top(by_op, total, args.top), "top_kinds": top(by_kind, total, args.top)})
    emit(report, args.out)
    traces = [("training step", report["train_trace"])]
    traces += [(f"decoding with {t['model']}", t) for t in report["decode_traces"]]
    for title, trace in traces:
        print(f"\n{title}: top ops by self time (share of {trace['op_ms']:.0f} ms of op time)", file=sys.stderr)
        for row in trace["top_ops"]:
            print(f"  {100 * row['share']:5.1f}%  {row['name']}", file=sys.stderr)


if __name__ == "__main__":
    main()
