"""Throughput: training target tokens per second and greedy decoding sentences per second.

    python benchmarks/throughput.py --preset quick --model saved_models/translator

prints one JSON object:

* ``train_target_tokens_per_s``: real (non-pad) target tokens per second of
  ``train_on_batch`` on the built-in corpus, after ``--warmup`` steps, over
  ``--steps`` steps (the same compiled train step that ``fit`` runs);
* ``decode_sentences_per_s``: greedy decoding through the exported
  SavedModel's ``serving_default`` on Romans (the test split), at batch 1
  and batch 64. With ``--model`` the given export is timed (a trained model:
  realistic output lengths); without it, the untrained benchmark model is
  exported and timed, and every output then runs to the max length (worst case);
* ``peak_rss_mb``: the process's peak resident memory.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from report import emit, machine
from timing import peak_rss_mb, time_decoding

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def measure_training(config, prepared, warmup: int, steps: int) -> dict:
    import keras
    import numpy as np

    from translate.training import build_run, compile_for_training, precision_policy, training_dataset

    keras.utils.set_random_seed(config.train.seed)
    # The model is built under train.precision, as `translate train` builds it.
    with precision_policy(config.train.precision):
        run = build_run(config, prepared.run_dir, prepared.src_model, prepared.tgt_model)
        compile_for_training(run, config)
    data = training_dataset(run, config, prepared)
    batches = list(data.repeat().take(warmup + steps))
    for (source, target_in), target_out in batches[:warmup]:
        run.models.training.train_on_batch((source, target_in), target_out)
    tokens = 0
    started = time.perf_counter()
    for (source, target_in), target_out in batches[warmup:]:
        run.models.training.train_on_batch((source, target_in), target_out)
        tokens += int(np.count_nonzero(target_out.numpy()))
    seconds = time.perf_counter() - started
    return {
        "train_steps_timed": steps,
        "train_batch_size": config.train.batch_size,
        "train_seconds": round(seconds, 2),
        "train_target_tokens_per_s": round(tokens / seconds, 1),
        "train_ms_per_step": round(1000 * seconds / steps, 1),
    }, run


def measure_decoding(model_path: Path, sentences: list[str], repeats: int) -> dict:
    import translate

    return time_decoding(translate.load(model_path), sentences, (1, 64), repeats)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--model", help="an export to time decoding on (default: export the untrained model)")
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-only", action="store_true", help="time training only, no decoding")
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("overrides", nargs="*", metavar="KEY=VALUE", help="config overrides (train.batch_size=32 ...)")
    args = parser.parse_args()

    from translate.config import load_config
    from translate.prepare import prepare

    work = tempfile.TemporaryDirectory()
    config = load_config(args.preset, overrides=[*args.overrides, f"run_dir={work.name}/run"])
    prepared = prepare(config, progress=False)
    report = {
        "preset": args.preset,
        "overrides": args.overrides,
        "machine": machine(),
        "threads": {name: os.environ.get(name) for name in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS")},
    }
    import tensorflow as tf

    report["tensorflow"] = tf.__version__
    training, run = measure_training(config, prepared, args.warmup, args.steps)
    report.update(training)
    if args.train_only:
        report["peak_rss_mb"] = peak_rss_mb()
        emit(report, args.out)
        return
    with tempfile.TemporaryDirectory() as tmp:
        if args.model:
            model_path = Path(args.model)
            report["decode_model"] = str(model_path)
        else:
            from translate.export import export

            model_path = export(run.graph, config, run.src_model, run.tgt_model, tmp, "bench")
            report["decode_model"] = "untrained (every output runs to the max length)"
        # Sentences in corpus order, not sorted: batches mix lengths as real traffic does.
        report.update(measure_decoding(model_path, [s for s, _ in prepared.read("test")], args.repeats))
    report["peak_rss_mb"] = peak_rss_mb()
    emit(report, args.out)


if __name__ == "__main__":
    main()
