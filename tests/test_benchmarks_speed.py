"""The pieces of the speed benchmarks that compute numbers (issue 9): FLOP counts, op-trace reading.

The benchmarks themselves run for minutes; here their arithmetic is checked
on tiny models against counts done by hand.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parent.parent / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))


def tiny_model(attention: str, **sizes):
    from translate.config import ModelConfig
    from translate.model import build_models

    config = ModelConfig(cell="gru", embedding_dim=8, encoder_units=6, decoder_units=12, attention=attention,
                         attention_units=5, **sizes)
    return build_models(config, src_vocab_size=30, tgt_vocab_size=40).training


def test_flops_of_a_luong_dot_model_match_a_count_by_hand():
    from utilization import flops_per_target_token

    model = tiny_model("luong_dot")
    flops = flops_per_target_token(model, "luong_dot", memory_dim=12, attention_units=5, src_len=10, tgt_len=5)
    # Encoder: two directions, each a [8, 18] input kernel and a [6, 18] recurrent kernel, per source piece.
    assert flops["per_source_piece"] == 2 * (2 * 8 * 18 + 2 * 6 * 18)
    # Bridge [12, 12] once per sentence.
    assert flops["per_sentence"] == 2 * 12 * 12
    # Decoder GRU [8, 36] + [12, 36], attentional [24, 12], output layer [12, 40], per target piece.
    assert flops["per_target_piece"] == 2 * (8 * 36 + 12 * 36 + 24 * 12 + 12 * 40)
    # Scores q . h_j and context sum_j a_j h_j over 10 source pieces of width 12.
    assert flops["attention"] == 2 * 10 * 12 * 2
    forward = flops["per_source_piece"] * 10 / 5 + flops["per_sentence"] / 5 + flops["per_target_piece"] + 480
    assert flops["forward"] == round(forward)
    assert flops["training"] == round(3 * forward)


def test_additive_attention_counts_its_query_projection_and_scores():
    from utilization import flops_per_target_token

    model = tiny_model("additive")
    flops = flops_per_target_token(model, "additive", memory_dim=12, attention_units=5, src_len=10, tgt_len=5)
    # W q once per step ([12, 5]), then v^T tanh(.) over 10 positions of 5 units, then the context.
    assert flops["attention"] == 2 * 12 * 5 + 2 * 10 * 5 + 2 * 10 * 12
    # The key projection U [12, 5] runs once per source piece, with the encoder.
    assert flops["per_source_piece"] == 2 * (2 * 8 * 18 + 2 * 6 * 18) + 2 * 12 * 5


def test_a_weight_the_count_cannot_place_is_an_error():
    from utilization import flops_per_target_token

    class Weight:
        path, shape = "mystery/kernel", (3, 4)

    class Model:
        weights = [Weight()]

    with pytest.raises(ValueError, match="mystery/kernel"):
        flops_per_target_token(Model(), "luong_dot", 12, 5, 10, 5)


def test_op_names_lose_their_call_and_loop_prefixes():
    from profiling import readable

    name = "StatefulPartitionedCall/while/body/_169/while/decoder_step_1/decoder_1/attention_1/einsum/Einsum:_MklEinsum"
    assert readable(name) == "decoder_step/decoder/attention/einsum/Einsum:_MklEinsum"


def test_a_trace_of_a_matmul_attributes_time_to_it(tmp_path):
    import tensorflow as tf

    from profiling import op_self_times, traced

    a = tf.random.normal([256, 256])
    work = tf.function(lambda x: tf.reduce_sum(tf.matmul(x, x)))
    work(a)
    traced(lambda: [work(a).numpy() for _ in range(20)], str(tmp_path))
    by_op, by_kind, total = op_self_times(str(tmp_path))
    assert total > 0
    assert sum(by_op.values()) == pytest.approx(total)
    assert max(by_kind, key=by_kind.get).endswith("MatMul")


def test_quality_tables_name_real_config_keys():
    from quality_at_budget import TABLES
    from translate.config import load_config

    for variants in TABLES.values():
        for overrides in variants.values():
            load_config("quick", overrides=overrides)  # raises on an unknown key or a bad value


def test_seed_summary_gives_mean_and_spread_per_variant():
    from quality_at_budget import seed_summary

    rows = [{"variant": f"{name}, seed {seed}", "epochs": 5, "dev_bleu": bleu, "dev_chrf": 30.0,
             "test_bleu": bleu + 1, "test_chrf": 40.0 + seed}
            for name, seed, bleu in (("a", 1, 10.0), ("a", 2, 12.0), ("b", 1, 7.0))]
    rows.append({"variant": "unseeded", "epochs": 1, "dev_bleu": 0, "dev_chrf": 0, "test_bleu": 0, "test_chrf": 0})
    summary = seed_summary(rows)
    assert set(summary) == {"a", "b"}
    assert summary["a"]["seeds"] == 2
    assert summary["a"]["test_bleu"] == {"mean": 12.0, "spread": 2.0}
    assert summary["a"]["test_chrf"] == {"mean": 41.5, "spread": 1.0}
    assert summary["b"]["dev_bleu"] == {"mean": 7.0, "spread": 0.0}


def test_linear_fit_recovers_a_line():
    from scaling import linear_fit

    fit = linear_fit([1, 2, 3, 4], [3.0, 5.0, 7.0, 9.0])
    assert fit == {"intercept": 1.0, "slope": 2.0, "r2": 1.0}


def test_take_turns_alternates_rounds_and_counts_each_runs_own_batches():
    import time
    import types

    import numpy as np

    from gru_step import take_turns

    calls = []

    def contestant(name, batch_size):
        def train_on_batch(x, y):
            calls.append((name, int(x[0].shape[0])))
            time.sleep(0.01)

        model = types.SimpleNamespace(train_on_batch=train_on_batch)
        batches = [((np.zeros((batch_size, 3)), np.zeros((batch_size, 2))), np.zeros((batch_size, 2)))] * 5
        return types.SimpleNamespace(models=types.SimpleNamespace(training=model)), batches

    result = take_turns({"a": contestant("a", 4), "b": contestant("b", 2)}, steps=2, rounds=2, warmup=1)
    # Warm-up of each, then rounds of 2 steps in turns: a a b b a a b b.
    assert [name for name, _ in calls] == ["a", "b", "a", "a", "b", "b", "a", "a", "b", "b"]
    assert set(result["ms_per_step"]) == {"a", "b"} and len(result["rounds_ms_per_step"]["a"]) == 2
    # Sentences per second count the rows of the batches each run trained on.
    seconds_a = 2 * result["ms_per_step"]["a"] / 1000
    assert result["sentences_per_s"]["a"] == pytest.approx(8 / seconds_a, rel=0.5)


def test_a_race_reads_a_prepared_folder_as_it_is_and_refuses_data_overrides(tiny_run):
    from gru_step import race_setup

    run_dir = Path(tiny_run.config.run_dir)
    stats = run_dir / "stats.json"
    before = stats.stat().st_mtime_ns
    config, prepared = race_setup("quick", str(run_dir), ["train.batch_size=4"], "/nonexistent")
    assert stats.stat().st_mtime_ns == before  # not prepared again
    assert config.data == tiny_run.config.data and config.train.batch_size == 4
    assert prepared.src_model == tiny_run.src_model
    with pytest.raises(SystemExit, match="keeps its own data settings; drop data.src_vocab_size=100"):
        race_setup("quick", str(run_dir), ["data.src_vocab_size=100"], "/nonexistent")
    assert stats.stat().st_mtime_ns == before


def test_decoding_is_timed_over_whole_passes_and_counts_their_tokens():
    from timing import decode_passes, time_decoding

    batches = []

    def translate(batch):
        batches.append(len(batch))
        return [sentence.upper() for sentence in batch]

    sentences = [f"verse {i} here" for i in range(10)]
    turn = decode_passes(translate, sentences, 4, lambda t: len(t.split()), passes=2)
    assert batches == [4, 4, 2, 4, 4, 2]
    assert turn["sentences"] == 20 and turn["tokens"] == 60 and turn["seconds"] > 0
    rates = time_decoding(translate, sentences, (4,), repeats=3, count_tokens=lambda t: len(t.split()))
    # A warm-up batch, then 3 passes over the 10 sentences (fewer than the 4 * 4 timed at batch 4).
    assert batches[6:] == [4] + [4, 4, 2] * 3
    # Tokens and sentences come from the same (median) pass: 3 tokens a sentence.
    assert rates["decode_tokens_per_s_batch_4"] == pytest.approx(3 * rates["decode_sentences_per_s_batch_4"], rel=0.01)
