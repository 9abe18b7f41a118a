"""How close training comes to the machine: model FLOPs per target token, achieved GFLOP/s, matmul peak.

    python benchmarks/utilization.py --preset quick --out benchmarks/results/utilization.json

In one process, one after the other:

1. **FLOPs per target token**, counted from the shapes of the model's weight
   matrices (:func:`flops_per_target_token`): a ``[in, out]`` kernel applied to
   one vector costs ``2 * in * out`` FLOPs (a multiply and an add). Encoder
   kernels (and the attention's key projection) run once per *source* piece,
   so they count ``mean source length / mean target length`` times per target
   piece; the bridge runs once per sentence; the decoder's kernels and the
   output layer once per target piece; the attention adds its scores and its
   context over the mean source length. Backward costs twice the forward (a
   gradient for the input and one for the weight of every matmul), so a
   training step is 3x the forward, the usual count (Kaplan et al. 2020,
   section 2.1). Elementwise work (gates, softmax) is left out: it is small
   next to the matmuls and would not run on the matmul units anyway.
2. **Achieved training rate**: real (non-pad) target pieces per second of
   the compiled train step over live batches (``benchmarks/throughput.py``'s
   loop), times the FLOPs per piece. Padding is work the machine does but not
   useful work, so it is not counted as achieved.
3. **The machine's fp32 matmul rate**, measured here: ``tf.matmul`` of two
   ``2048 x 2048`` float32 matrices on all the process's cores (the best of
   several runs), and, for reference, at the shape of the model's largest
   matmul (the output layer over one batch).

Utilization = achieved / matmul peak. Prints JSON and a one-line summary.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from report import emit, machine

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

# Weight-path prefixes and where they run.
PER_SOURCE = ("encoder", "U/", "W_a/")  # the encoder RNNs; attention keys are projected once per source piece
PER_SENTENCE = ("bridge",)
PER_TARGET = ("decoder/", "logits/")


def matrix_flops(shape) -> int:
    """Forward FLOPs of one vector through a ``[in, out]`` kernel: a multiply and an add per weight."""
    rows, cols = shape
    return 2 * int(rows) * int(cols)


def flops_per_target_token(model, attention: str, memory_dim: int, attention_units: int,
                           src_len: float, tgt_len: float) -> dict:
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
        scores_and_context = (matrix_flops((query_dim, attention_units)) + 2 * src_len * attention_units
                              + 2 * src_len * memory_dim)
    forward = per_source * src_len / tgt_len + per_sentence / tgt_len + per_target + scores_and_context
    return {"per_source_piece": per_source, "per_sentence": per_sentence, "per_target_piece": per_target,
            "attention": round(scores_and_context), "forward": round(forward), "training": round(3 * forward)}


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE")
    args = parser.parse_args()

    import numpy as np
    import tensorflow as tf

    from throughput import measure_training
    from translate.config import load_config, memory_size
    from translate.prepare import prepare

    work = tempfile.TemporaryDirectory()
    config = load_config(args.preset, overrides=[*args.overrides, f"run_dir={work.name}/run"])
    prepared = prepare(config, progress=False)
    training, run = measure_training(config, prepared, args.warmup, args.steps)

    # Mean real lengths of what training sees (the length filter applied), with EOS/BOS as the model sees them.
    from translate.training import training_dataset

    src_real = tgt_real = sentences = 0
    for (source, _), target_out in training_dataset(run, config, prepared):
        src_real += int(np.count_nonzero(source.numpy()))
        tgt_real += int(np.count_nonzero(target_out.numpy()))
        sentences += int(source.shape[0])
    src_len, tgt_len = src_real / sentences, tgt_real / sentences

    m = config.model
    flops = flops_per_target_token(run.models.training, m.attention, memory_size(m), m.attention_units,
                                   src_len, tgt_len)
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
        "precision": config.train.precision,
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
    print(f"{flops['training'] / 1e6:.2f} MFLOP per target piece (training) x "
          f"{training['train_target_tokens_per_s']:,.0f} pieces/s = {achieved:.1f} GFLOP/s; "
          f"fp32 matmul peak {peak:.1f} GFLOP/s; utilization {100 * achieved / peak:.1f}%", file=sys.stderr)


if __name__ == "__main__":
    main()
