"""Smoke tests of the side-by-side benchmark (issue 9): the TF tutorial baseline and compare.py's ratios.

The full ``python -m benchmarks compare`` trains three models for 15 minutes each;
here the baseline runs end to end in a tiny setting (a few seconds of
training on the tiny corpus, a 5-step decoding loop), and compare.py's
ratios and table are checked on reports shaped like the real ones.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import compare

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def prepared_tiny(tmp_path_factory):
    from conftest import tiny_config
    from translate.prepare import prepare

    return prepare(tiny_config(tmp_path_factory.mktemp("compare")), progress=False)


@pytest.fixture(scope="module")
def baseline(prepared_tiny, tmp_path_factory):
    out = tmp_path_factory.mktemp("baseline") / "baseline.json"
    # One batch holds the whole tiny split, so every step has the same shape and traces once.
    subprocess.run(
        [
            sys.executable,
            "-m",
            "benchmarks",
            "baseline",
            "--run-dir",
            str(prepared_tiny.run_dir),
            "--minutes",
            "0.02",
            "--units",
            "16",
            "--batch-size",
            "64",
            "--max-length",
            "5",
            "--warmup-steps",
            "1",
            "--repeats",
            "1",
            "--out",
            str(out),
        ],
        check=True,
        cwd=REPO,
        stdout=subprocess.DEVNULL,
        timeout=300,
    )
    return json.loads(out.read_text(encoding="utf-8"))


def test_baseline_reports_positive_figures(baseline, prepared_tiny):
    for key in (
        "parameters",
        "train_steps",
        "train_sentences",
        "train_sentences_per_s",
        "train_target_tokens_per_s",
        "epochs",
        "greedy_sentences_per_s_batch_1",
        "greedy_sentences_per_s_batch_64",
        "peak_rss_mb",
    ):
        assert baseline[key] > 0, key
    for key in ("greedy_tokens_per_s_batch_1", "greedy_tokens_per_s_batch_64"):
        assert baseline[key] >= 0, key  # a barely trained model may stop at once
    for label in ("cased", "lowercased", "normalized"):
        assert 0 <= baseline[f"test_bleu_{label}"] <= 100
        assert 0 <= baseline[f"test_chrf_{label}"] <= 100
    assert baseline["test_sentences"] == prepared_tiny.pairs["test"]
    assert baseline["train_pairs"] == prepared_tiny.pairs["train"]
    assert baseline["tutorial"].startswith("https://www.tensorflow.org/text/tutorials/nmt_with_attention")


def test_compare_ratios_and_table(baseline):
    ours = {
        "parameters": 1000,
        "src_vocab_size": 400,
        "tgt_vocab_size": 400,
        "epochs": 1.0,
        "train_sentences_per_s": 2 * baseline["train_sentences_per_s"],
        "train_target_tokens_per_s": 50.0,
        "greedy_sentences_per_s_batch_1": 10.0,
        "greedy_tokens_per_s_batch_1": 100.0,
        "greedy_sentences_per_s_batch_64": 3 * baseline["greedy_sentences_per_s_batch_64"],
        "greedy_tokens_per_s_batch_64": 1000.0,
        "beam5_sentences_per_s_batch_64": baseline["greedy_sentences_per_s_batch_64"],
        "beam5_tokens_per_s_batch_64": 300.0,
        "greedy_test_bleu_cased": 1.0,
        "greedy_test_chrf_cased": 2.0,
        "beam5_test_bleu_cased": 1.5,
        "peak_rss_mb": 900.0,
    }
    # The probe under the other thread setting: training slower, decoding at batch 64 faster.
    probe = {
        **baseline,
        "train_sentences_per_s": baseline["train_sentences_per_s"] / 2,
        "greedy_sentences_per_s_batch_64": 1.5 * baseline["greedy_sentences_per_s_batch_64"],
    }
    results = {"baseline": baseline, "baseline_serial_ops": probe, "ours_equal": ours, "ours_quick": ours}
    ratios = compare.summarize(results)
    # Each baseline figure is the better of its two settings.
    assert ratios["train_speedup"] == pytest.approx(2, rel=1e-2)
    assert ratios["greedy_speedup_b64"] == pytest.approx(2, rel=1e-2)
    assert ratios["beam5_over_greedy_b64"] == pytest.approx(1 / 3, rel=1e-2)
    text = compare.table(results, ratios)
    assert text.count("\n|") == len(compare.ROWS) + 1
    assert "train_speedup = 2" in text
    # The probe's column shows its speeds but not the quality of a model trained for minutes.
    bleu_row = next(line for line in text.splitlines() if line.startswith("| test BLEU, greedy (cased)"))
    assert bleu_row.split("|")[3].strip() == "–"  # | label | baseline | probe | ...
    # With the race in turns, its rates get a table and its ratios lead; the separate ones follow.
    turns = {
        "rounds": 3,
        "rates": {
            "train": {
                "baseline": {"sentences_per_s": 100.0, "tokens_per_s": 1.0},
                "ours_equal": {"sentences_per_s": 250.0, "tokens_per_s": 1.0},
            }
        },
        "ratios": {"train_speedup": 2.5},
    }
    text = compare.table(results, {**ratios, **turns["ratios"]}, ratios, turns)
    assert "| training | 100.0 | – | 250.0 | – |" in text
    assert "train_speedup = 2.5" in text
    assert "The same ratios from the separate processes: train_speedup = 2" in text


@pytest.mark.filterwarnings("ignore:.*does not support masking:UserWarning", "ignore:.*was called on layer:UserWarning")
def test_baseline_attention_ignores_padding(prepared_tiny):
    """Keras 3 drops masks at custom layers; the port must still mask the padded context, as Keras 2 did."""
    import numpy as np
    import tensorflow as tf

    from benchmarks.baselines import tf_tutorial

    model, dataset, _ = tf_tutorial.build(prepared_tiny.run_dir, units=8, batch_size=8, seed=1)
    (context, target_in), _ = next(iter(dataset))
    padding = (context.numpy() == 0)[:, None, :]
    assert padding.any()
    model((context, target_in))
    assert float(np.sum(model.decoder.last_attention_weights.numpy() * padding)) == 0.0

    texts = tf.constant(["In the beginning God created the heaven and the earth.", "God"])
    padding = (model.encoder.text_processor(texts).to_tensor().numpy() == 0)[:, None, :]
    model.translate(texts, max_length=3)  # eagerly: every step must mask, not only the first
    assert float(np.sum(model.last_attention_weights.numpy() * padding)) == 0.0
