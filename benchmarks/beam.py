"""Greedy vs beam search: test BLEU/chrF and decoding speed for each beam width and alpha.

    python benchmarks/beam.py --run runs/quick --out benchmarks/results/beam.json

Decodes the run's test split (Romans for the built-in Bible) with greedy
search and with beam widths 2, 5 and 10 at length penalties alpha 0, 0.6 and
1.0, in batches of 64 through the same in-graph functions that the export
saves, and prints one JSON object: a row per setting (BLEU, chrF, sentences
per second, the median of ``--repeats`` passes) and ``beam5_over_greedy_speed``,
beam K=5's speed at each alpha as a fraction of greedy's.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

from report import emit, machine

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

SETTINGS = [(1, 0.0)] + [(k, alpha) for k in (2, 5, 10) for alpha in (0.0, 0.6, 1.0)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", required=True, help="a trained run folder")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=3, help="timed passes per setting; the median counts")
    parser.add_argument("--settings", help="only these BEAM:ALPHA settings, e.g. 1:0,5:1.0 (default: the full grid)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    settings = SETTINGS
    if args.settings:
        try:
            settings = [(int(b), float(a)) for b, a in (item.split(":") for item in args.settings.split(","))]
        except ValueError:
            parser.error(f"--settings must look like 1:0,5:1.0, got {args.settings!r}")

    import tensorflow as tf

    from translate.evaluation import score
    from translate.prepare import read_split
    from translate.training import load_run

    pairs = read_split(Path(args.run), "test")
    sources, references = [s for s, _ in pairs], [t for _, t in pairs]
    rows = []
    for beam, alpha in settings:
        run = load_run(args.run, [f"decode.beam_size={beam}", f"decode.alpha={alpha}"])
        batches = [sources[i : i + args.batch_size] for i in range(0, len(sources), args.batch_size)]
        run.graph(batches[0])  # trace once, outside the timing
        times = []
        for _ in range(args.repeats):
            started = time.perf_counter()
            hypotheses = [t for batch in batches for t in run.graph(batch)]
            times.append(time.perf_counter() - started)
        seconds = statistics.median(times)
        scores = score(hypotheses, references)
        rows.append({"beam": beam, "alpha": alpha, "bleu": round(scores.bleu, 2), "chrf": round(scores.chrf, 2),
                     "sentences_per_s": round(len(sources) / seconds, 1)})
        print(json.dumps(rows[-1]), file=sys.stderr)
    speed = {(r["beam"], r["alpha"]): r["sentences_per_s"] for r in rows}
    report = {
        "run": args.run,
        "test_sentences": len(sources),
        "batch_size": args.batch_size,
        "machine": machine(),
        "tensorflow": tf.__version__,
        "bleu_signature": scores.bleu_signature,
        "chrf_signature": scores.chrf_signature,
        "rows": rows,
        "beam5_over_greedy_speed": {str(alpha): round(speed[(5, alpha)] / speed[(1, 0.0)], 3)
                                    for alpha in (0.0, 0.6, 1.0) if (5, alpha) in speed and (1, 0.0) in speed},
    }
    emit(report, args.out)


if __name__ == "__main__":
    main()
