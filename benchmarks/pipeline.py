"""Scale: prepare and the tf.data pipeline on a synthetic corpus of millions of pairs.

    python benchmarks/pipeline.py --pairs 10000000 --work /tmp/pipeline-bench --out benchmarks/results/pipeline.json

1. makes the corpus with ``make_synthetic_corpus.py`` (skipped if the file is there);
2. runs ``python -m translate prepare`` on it in a child process and records
   its wall time and peak resident memory;
3. in another child process, times the input pipeline alone (batches per
   second from the prepared train files, through tokenization, bucketing and
   padding) and then the quick model's train step on batches of the same
   pipeline, and records that process's peak memory.

Prints one JSON object; ``pipeline_over_model`` is how many times faster the
pipeline delivers batches than the model consumes them.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from report import emit, machine

HERE = Path(__file__).resolve().parent
REPO = HERE.parent


def run_child(args: list[str], log_dir: Path) -> tuple[float, float, str]:
    """Runs a Python child; returns (seconds, that child's peak RSS in MB, its stdout)."""
    started = time.monotonic()
    with open(log_dir / "child.out", "w+") as out, open(log_dir / "child.err", "w+") as err:
        child = subprocess.Popen([sys.executable, *args], cwd=REPO, stdout=out, stderr=err)
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.monotonic() - started
        out.seek(0)
        err.seek(0)
        if os.waitstatus_to_exitcode(status) != 0:
            raise SystemExit(f"{' '.join(args)} failed:\n{err.read()[-5000:]}")
        return seconds, usage.ru_maxrss / 1024, out.read()


def time_pipeline(overrides: list[str], batches: int, model_steps: int) -> dict:
    """(In the child.) Pipeline batches/s alone, then the model's train steps/s on the same batches."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.path.insert(0, str(REPO))
    import keras

    from translate.config import load_config
    from translate.pipeline import make_dataset, pairs_from_files
    from translate.prepare import load_prepared
    from translate.training import build_run, compile_for_training

    config = load_config("quick", overrides=overrides)
    keras.utils.set_random_seed(config.train.seed)
    prepared = load_prepared(config)
    run = build_run(config, prepared.run_dir, prepared.src_model, prepared.tgt_model)
    dataset = make_dataset(pairs_from_files(*prepared.files("train")), run.graph.src_tokenizer,
                           run.graph.tgt_tokenizer, config.train.batch_size, config.data.max_pieces,
                           shuffle_buffer=config.train.shuffle_buffer, seed=config.train.seed)
    iterator = iter(dataset)
    for _ in range(20):  # fill the shuffle buffer and warm up
        next(iterator)
    started = time.perf_counter()
    for _ in range(batches):
        next(iterator)
    pipeline_rate = batches / (time.perf_counter() - started)

    compile_for_training(run, config)
    model_batches = [next(iterator) for _ in range(model_steps + 5)]
    for (source, target_in), target_out in model_batches[:5]:
        run.models.training.train_on_batch((source, target_in), target_out)
    started = time.perf_counter()
    for (source, target_in), target_out in model_batches[5:]:
        run.models.training.train_on_batch((source, target_in), target_out)
    model_rate = model_steps / (time.perf_counter() - started)
    return {
        "pipeline_batches_per_s": round(pipeline_rate, 1),
        "model_batches_per_s": round(model_rate, 2),
        "pipeline_over_model": round(pipeline_rate / model_rate, 1),
        "batch_size": config.train.batch_size,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pairs", type=int, default=10_000_000)
    parser.add_argument("--work", default="/tmp/translate-pipeline-bench", help="corpus and run folder go here")
    parser.add_argument("--batches", type=int, default=2000, help="pipeline batches to time")
    parser.add_argument("--model-steps", type=int, default=30, help="model train steps to time")
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(time_pipeline(args.child, args.batches, args.model_steps)))
        return

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    corpus = work / f"synthetic-{args.pairs}.tsv"
    if not corpus.is_file():
        subprocess.run([sys.executable, str(HERE / "make_synthetic_corpus.py"), str(corpus), "--pairs",
                        str(args.pairs)], check=True)
    run_dir = work / "run"
    # The quick preset's model and vocabulary on the synthetic corpus.
    overrides = [f"data.corpus=tsv:{corpus}", f"run_dir={run_dir}"]
    prepare_s, prepare_mb, _ = run_child(["-m", "translate", "prepare", "--preset", "quick", *overrides], work)
    stats = json.loads((run_dir / "stats.json").read_text(encoding="utf-8"))
    pipeline_s, pipeline_mb, out = run_child([str(Path(__file__)), "--batches", str(args.batches), "--model-steps",
                                              str(args.model_steps), "--child", *overrides], work)
    report = {
        "machine": machine(),
        "corpus_pairs": args.pairs,
        "corpus_bytes": corpus.stat().st_size,
        "prepare_seconds": round(prepare_s, 1),
        "prepare_peak_rss_mb": round(prepare_mb, 1),
        "prepared_pairs": stats["pairs"],
        "removed": stats["pairs_removed"],
        "pipeline_process_peak_rss_mb": round(pipeline_mb, 1),
        **json.loads(out.strip().splitlines()[-1]),
    }
    emit(report, args.out)


if __name__ == "__main__":
    main()
