"""Our side of ``benchmarks/compare.py``: train for a time budget, then time the exported SavedModel.

    python benchmarks/ours.py --run-dir runs/quick --preset quick --minutes 15 --out /tmp/ours.json
    python benchmarks/ours.py --run-dir runs/quick --preset quick --set model.encoder_units=256 ...

On a prepared run folder (``python -m translate prepare``; its data settings
come from its ``stats.json``, so the split and the SentencePiece models are
the folder's), with the preset and ``--set key=value`` overrides for the rest:

1. builds the model as ``translate train`` does (its training model class,
   precision policy, optimizer, loss and input pipeline) and runs its
   compiled train step over live batches for ``--minutes``, timed by
   :func:`timing.train_for_budget`, the helper that times the baseline too;
2. exports the trained model twice, greedy (``decode.beam_size=1``) and
   with beam 5 (kept with ``--keep-exports``), and loads each with
   ``translate.load``, as a user would;
3. scores both on the test split (Romans for the built-in Bible) with
   sacrebleu (cased, as ``translate evaluate`` does), and times greedy
   decoding at batch 1 and 64 and beam 5 at batch 64 with
   :func:`timing.time_decoding`. Generated tokens are the SentencePiece
   pieces of the output (re-encoded with the run's target model).

Prints one JSON object; runs in its own process so ``peak_rss_mb`` is its own.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from report import emit, machine
from timing import peak_rss_mb, time_decoding, train_for_budget

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

BEAM = 5


def config_for(run_dir: Path, preset: str, overrides: list[str]):
    """The preset with ``overrides``, and the prepared folder's own data settings and run folder."""
    from translate.config import config_from_dict, load_config

    stats_path = run_dir / "stats.json"
    if not stats_path.is_file():
        raise SystemExit(f"{run_dir} is not a prepared run folder (no stats.json): run python -m translate prepare")
    values = load_config(preset, overrides=overrides).to_dict()
    values["data"] = json.loads(stats_path.read_text(encoding="utf-8"))["data_config"]
    values["run_dir"] = str(run_dir)
    return config_from_dict(values)


def build_training(config, prepared):
    """The compiled model and the repeating input pipeline of ``translate train`` for ``config``.

    Returns ``(run, batches)``: ``run.models.training`` is the training model
    class ``translate train`` uses (its step also tracks the gradient norm),
    compiled under the config's precision policy, and ``batches`` yields
    ``((source, target_in), target_out)`` without end.
    """
    import keras

    from translate.trainer import GradNormModel
    from translate.training import build_run, compile_for_training, precision_policy, training_dataset

    keras.utils.set_random_seed(config.train.seed)
    with precision_policy(config.train.precision):
        run = build_run(config, Path(config.run_dir), prepared.src_model, prepared.tgt_model,
                        training_class=GradNormModel)
        compile_for_training(run, config)
    return run, training_dataset(run, config, prepared, repeat=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run-dir", required=True, help="a prepared run folder")
    parser.add_argument("--preset", default="quick")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="a config override")
    parser.add_argument("--minutes", type=float, default=15.0, help="training budget, wall clock")
    parser.add_argument("--warmup-steps", type=int, default=5, help="training steps left out of the rates")
    parser.add_argument("--repeats", type=int, default=3, help="timed decoding passes; the median counts")
    parser.add_argument("--label", default="ours", help="the name of this run in the report")
    parser.add_argument("--keep-exports", metavar="DIR",
                        help="export into DIR (DIR/greedy, DIR/beam5) and keep them, for benchmarks/race.py")
    parser.add_argument("--out", help="also write the JSON here")
    args = parser.parse_args()

    import keras
    import sentencepiece as spm
    import tensorflow as tf

    import translate
    from translate.evaluation import score
    from translate.export import export
    from translate.inference import TranslationGraph
    from translate.prepare import load_prepared

    run_dir = Path(args.run_dir)
    config = config_for(run_dir, args.preset, args.set)
    prepared = load_prepared(config)
    m, t = config.model, config.train
    report = {"model": args.label, "machine": machine(), "tensorflow": tf.__version__, "keras": keras.__version__,
              "run_dir": str(run_dir), "preset": args.preset, "overrides": args.set, "budget_minutes": args.minutes,
              "batch_size": t.batch_size, "cell": m.cell, "attention": m.attention, "embedding_dim": m.embedding_dim,
              "encoder_units": m.encoder_units, "decoder_units": m.decoder_units,
              "attention_units": m.attention_units, "max_pieces": config.data.max_pieces,
              "src_vocab_size": config.data.src_vocab_size, "tgt_vocab_size": config.data.tgt_vocab_size}

    started = time.perf_counter()
    run, data = build_training(config, prepared)
    report["setup_seconds"] = round(time.perf_counter() - started, 2)

    def step(inputs, target_out):
        return run.models.training.train_on_batch(inputs, target_out, return_dict=True)

    training = train_for_budget(step, data, 60 * args.minutes, args.warmup_steps)
    report["parameters"] = int(run.models.training.count_params())
    report["train_pairs"] = prepared.pairs["train"]
    report.update(training)
    report["epochs"] = round(training["train_sentences"] / prepared.pairs["train"], 3)

    pairs = prepared.read("test")
    sources, references = [s for s, _ in pairs], [r for _, r in pairs]
    pieces = spm.SentencePieceProcessor(model_proto=prepared.tgt_model)

    def count_pieces(text: str) -> int:
        return len(pieces.encode(text))

    with tempfile.TemporaryDirectory() as tmp:
        exports = args.keep_exports or tmp
        for name, beam in (("greedy", 1), (f"beam{BEAM}", BEAM)):
            decode = dataclasses.replace(config.decode, beam_size=beam, alpha=0.0 if beam == 1 else config.decode.alpha)
            export_config = dataclasses.replace(config, decode=decode)
            graph = TranslationGraph(run.models, prepared.src_model, prepared.tgt_model, decode)
            path = export(graph, export_config, prepared.src_model, prepared.tgt_model, exports, name)
            translator = translate.load(path)
            begun = time.perf_counter()
            hypotheses = [h for start in range(0, len(sources), 64) for h in translator(sources[start : start + 64])]
            report[f"{name}_test_decode_seconds"] = round(time.perf_counter() - begun, 2)
            scores = score(hypotheses, references)
            report[f"{name}_test_bleu_cased"] = round(scores.bleu, 2)
            report[f"{name}_test_chrf_cased"] = round(scores.chrf, 2)
            if beam == 1:
                report["test_sentences"] = len(sources)
                report["signature_cased"] = f"{scores.bleu_signature} | {scores.chrf_signature}"
                report["examples"] = [{"source": s, "reference": r, "hypothesis": h}
                                      for s, r, h in list(zip(sources, references, hypotheses))[:3]]
            batch_sizes = (1, 64) if beam == 1 else (64,)
            report.update(time_decoding(translator, sources, batch_sizes, args.repeats, count_pieces, prefix=name))
    report["peak_rss_mb"] = peak_rss_mb()
    emit(report, args.out)


if __name__ == "__main__":
    main()
