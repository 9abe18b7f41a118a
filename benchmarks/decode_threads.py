"""Greedy decoding under TensorFlow's two thread settings, in one loop per batch or in ``decode.shards`` loops.

    python benchmarks/decode_threads.py --run runs/quick --out benchmarks/results/decode_threads.json

Exports the run's best weights as greedy SavedModels with ``decode.shards``
1 and 2 (the outputs are the same; tests/test_search.py), then, in a fresh
process per thread setting (``compare.THREADS``: TensorFlow's default, and
``serial_ops``: one intra-op thread, as many inter-op threads as cores),
loads both and times them on the run's test split at batch 64 in corpus
order. The two exports take turns for ``--rounds`` rounds, so the machine's
drift hits both alike; the median round counts.

Why it matters: a decoding step is a chain of small ops. Under the default,
TensorFlow splits each op over the cores, which these ops are too small to
gain from; with one intra-op thread per op, the shards' independent loops
run side by side, one per core.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from compare import THREADS, thread_env
from report import emit, machine, print_table

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SHARDS = (1, 2)


def time_in_turns(paths: list[str], sentences: list[str], rounds: int, batch_size: int) -> dict:
    """Sentences per second of each export, median of ``rounds`` turns (run in the child process)."""
    import numpy as np

    import translate

    translators = {path: translate.load(path) for path in paths}
    batches = [sentences[start : start + batch_size] for start in range(0, len(sentences), batch_size)]
    for translator in translators.values():
        translator(batches[0])  # warm-up
    rates: dict[str, list[float]] = {path: [] for path in paths}
    for _ in range(rounds):
        for path, translator in translators.items():
            begun = time.perf_counter()
            for batch in batches:
                translator(batch)
            rates[path].append(len(sentences) / (time.perf_counter() - begun))
    return {path: round(float(np.median(values)), 1) for path, values in rates.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a trained run folder (python -m translate train)")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", help="also write the JSON here")
    parser.add_argument("--child", nargs="+", metavar="EXPORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    sentences = (Path(args.run) / "data" / "test.src").read_text(encoding="utf-8").splitlines()
    if args.child:
        print(json.dumps(time_in_turns(args.child, sentences, args.rounds, args.batch_size)))
        return

    from translate.export import export
    from translate.training import load_run

    report = {"machine": machine(), "run": args.run, "batch_size": args.batch_size, "rounds": args.rounds,
              "sentences": len(sentences), "sentences_per_s": {}}
    with tempfile.TemporaryDirectory() as tmp:
        paths = {}
        for shards in SHARDS:
            run = load_run(args.run, ["decode.beam_size=1", "decode.alpha=0", f"decode.shards={shards}"])
            paths[shards] = str(export(run.graph, run.config, run.src_model, run.tgt_model, tmp, f"shards{shards}"))
        for setting in THREADS:
            child = subprocess.run([sys.executable, __file__, "--run", args.run, "--rounds", str(args.rounds),
                                    "--batch-size", str(args.batch_size), "--child", *paths.values()],
                                   check=True, capture_output=True, text=True, env=thread_env(setting))
            rates = json.loads(child.stdout.strip().splitlines()[-1])
            report["sentences_per_s"][setting] = {f"shards_{s}": rates[paths[s]] for s in SHARDS}
    rows = [[setting, *(report["sentences_per_s"][setting][f"shards_{s}"] for s in SHARDS)] for setting in THREADS]
    print_table(["threads", *(f"decode.shards={s}, sentences/s" for s in SHARDS)], rows)
    emit(report, args.out)


if __name__ == "__main__":
    main()
