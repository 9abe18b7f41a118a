"""Which speed knobs win: the quick model's train step under each setting, side by side.

    python benchmarks/knobs.py --out benchmarks/results/knobs.json

Runs ``benchmarks/throughput.py --train-only`` once per setting, one after the
other, each in a fresh process (thread settings are read when TensorFlow
starts): the reference (float32, TensorFlow's default thread pools, both
cores), ``mixed_bfloat16`` (bfloat16 matmuls, which this CPU's AMX units
run), XLA (``train.jit_compile``), one intra-op thread, one inter-op thread,
and one core. All at one batch size (``--batch-size``, default 64) so that
only the knob changes. Prints the JSON and a Markdown table: ms per step,
target pieces per second and the ratio to the reference.

XLA compiles the step once per batch shape. The pipeline pads each batch to
its own longest sentence, so shapes keep changing and early steps are mostly
compilation; ``--warmup`` steps are left out of the timing for every row.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from report import emit, machine, print_table

HERE = Path(__file__).resolve().parent

# name -> (extra environment, config overrides, cores: None = all)
SETTINGS = {
    "reference (float32, default threads, 2 cores)": ({}, [], None),
    "mixed_bfloat16": ({}, ["train.precision=mixed_bfloat16"], None),
    "XLA (train.jit_compile=true)": ({}, ["train.jit_compile=true"], None),
    "TF_NUM_INTRAOP_THREADS=1": ({"TF_NUM_INTRAOP_THREADS": "1"}, [], None),
    "TF_NUM_INTEROP_THREADS=1": ({"TF_NUM_INTEROP_THREADS": "1"}, [], None),
    "one core (taskset)": ({}, [], 1),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--settings", help="names from the table, separated by ';' (default: all)")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()
    names = [n.strip() for n in args.settings.split(";")] if args.settings else list(SETTINGS)
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        parser.error(f"unknown settings {unknown}; known: {'; '.join(SETTINGS)}")

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            env_extra, overrides, cores = SETTINGS[name]
            out = Path(tmp) / "row.json"
            command = [sys.executable, str(HERE / "throughput.py"), "--preset", args.preset, "--train-only",
                       "--warmup", str(args.warmup), "--steps", str(args.steps), "--out", str(out),
                       f"train.batch_size={args.batch_size}", *overrides]
            all_cores = sorted(os.sched_getaffinity(0))
            # Called by subprocess.run below, within this iteration.
            pin = (lambda: os.sched_setaffinity(0, set(all_cores[:cores]))) if cores else None  # noqa: B023
            print(f"[knobs] {name}", file=sys.stderr, flush=True)
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, **env_extra},
                           preexec_fn=pin)
            result = json.loads(out.read_text(encoding="utf-8"))
            rows.append({"setting": name, "ms_per_step": result["train_ms_per_step"],
                         "target_tokens_per_s": result["train_target_tokens_per_s"]})
    reference = rows[0]["target_tokens_per_s"]
    for row in rows:
        row["speed_vs_first"] = round(row["target_tokens_per_s"] / reference, 3)
    report = {"preset": args.preset, "batch_size": args.batch_size, "warmup_steps": args.warmup,
              "timed_steps": args.steps, "machine": machine(), "rows": rows}
    emit(report, args.out)
    print_table([f"setting (batch {args.batch_size})", "ms per step", "target pieces/s", "vs first row"],
                [[r["setting"], r["ms_per_step"], f"{r['target_tokens_per_s']:,.0f}", r["speed_vs_first"]]
                 for r in rows])


if __name__ == "__main__":
    main()
