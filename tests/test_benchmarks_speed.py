"""The pieces of the benchmark suite that compute numbers (issue 9): FLOP counts, op-trace reading, the
harness's timed loops; and its entry point, ``python -m benchmarks``.

The benchmarks themselves run for minutes; here their arithmetic is checked
on tiny models against counts done by hand.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def tiny_model(attention: str, **sizes):
    from translate.config import ModelConfig
    from translate.model import build_models

    config = ModelConfig(
        cell="gru", embedding_dim=8, encoder_units=6, decoder_units=12, attention=attention, attention_units=5, **sizes
    )
    return build_models(config, src_vocab_size=30, tgt_vocab_size=40).training


def test_flops_of_a_luong_dot_model_match_a_count_by_hand():
    from benchmarks.profiling import flops_per_target_token

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
    from benchmarks.profiling import flops_per_target_token

    model = tiny_model("additive")
    flops = flops_per_target_token(model, "additive", memory_dim=12, attention_units=5, src_len=10, tgt_len=5)
    # W q once per step ([12, 5]), then v^T tanh(.) over 10 positions of 5 units, then the context.
    assert flops["attention"] == 2 * 12 * 5 + 2 * 10 * 5 + 2 * 10 * 12
    # The key projection U [12, 5] runs once per source piece, with the encoder.
    assert flops["per_source_piece"] == 2 * (2 * 8 * 18 + 2 * 6 * 18) + 2 * 12 * 5


def test_a_weight_the_count_cannot_place_is_an_error():
    from benchmarks.profiling import flops_per_target_token

    class Weight:
        path, shape = "mystery/kernel", (3, 4)

    class Model:
        weights = [Weight()]

    with pytest.raises(ValueError, match="mystery/kernel"):
        flops_per_target_token(Model(), "luong_dot", 12, 5, 10, 5)


def test_op_names_lose_their_call_and_loop_prefixes():
    from benchmarks.profiling import readable

    name = "StatefulPartitionedCall/while/body/_169/while/decoder_step_1/decoder_1/attention_1/einsum/Einsum:_MklEinsum"
    assert readable(name) == "decoder_step/decoder/attention/einsum/Einsum:_MklEinsum"


def test_a_trace_of_a_matmul_attributes_time_to_it(tmp_path):
    import tensorflow as tf

    from benchmarks.profiling import op_self_times, traced

    a = tf.random.normal([256, 256])
    work = tf.function(lambda x: tf.reduce_sum(tf.matmul(x, x)))
    work(a)
    traced(lambda: [work(a).numpy() for _ in range(20)], str(tmp_path))
    by_op, by_kind, total = op_self_times(str(tmp_path))
    assert total > 0
    assert sum(by_op.values()) == pytest.approx(total)
    assert max(by_kind, key=by_kind.get).endswith("MatMul")


def test_quality_tables_name_real_config_keys():
    from benchmarks.quality import TABLES
    from translate.config import load_config

    for variants in TABLES.values():
        for overrides in variants.values():
            load_config("quick", overrides=overrides)  # raises on an unknown key or a bad value


def test_seed_summary_gives_mean_and_spread_per_variant():
    from benchmarks.quality import seed_summary

    rows = [
        {
            "variant": f"{name}, seed {seed}",
            "epochs": 5,
            "dev_bleu": bleu,
            "dev_chrf": 30.0,
            "test_bleu": bleu + 1,
            "test_chrf": 40.0 + seed,
        }
        for name, seed, bleu in (("a", 1, 10.0), ("a", 2, 12.0), ("b", 1, 7.0))
    ]
    rows.append({"variant": "unseeded", "epochs": 1, "dev_bleu": 0, "dev_chrf": 0, "test_bleu": 0, "test_chrf": 0})
    summary = seed_summary(rows)
    assert set(summary) == {"a", "b"}
    assert summary["a"]["seeds"] == 2
    assert summary["a"]["test_bleu"] == {"mean": 12.0, "spread": 2.0}
    assert summary["a"]["test_chrf"] == {"mean": 41.5, "spread": 1.0}
    assert summary["b"]["dev_bleu"] == {"mean": 7.0, "spread": 0.0}


def test_linear_fit_recovers_a_line():
    from benchmarks.speed import linear_fit

    fit = linear_fit([1, 2, 3, 4], [3.0, 5.0, 7.0, 9.0])
    assert fit == {"intercept": 1.0, "slope": 2.0, "r2": 1.0}


def test_train_in_turns_rotates_the_order_and_counts_each_runs_own_batches():
    import time

    import numpy as np

    from benchmarks.harness import train_in_turns

    calls = []

    def contestant(name, batch_size):
        def step(x, y):
            calls.append((name, int(x[0].shape[0])))
            time.sleep(0.01)

        batches = [((np.zeros((batch_size, 3)), np.zeros((batch_size, 2))), np.ones((batch_size, 2)))] * 5
        return step, batches

    result = train_in_turns({"a": contestant("a", 4), "b": contestant("b", 2)}, steps=2, rounds=2, warmup=1)
    # Warm-up of each, then rounds of 2 steps in turns, the order rotating: a a b b, then b b a a.
    assert [name for name, _ in calls] == ["a", "b", "a", "a", "b", "b", "b", "b", "a", "a"]
    assert set(result["ms_per_step"]) == {"a", "b"} and len(result["rounds_ms_per_step"]["a"]) == 2
    # Sentences per second count the rows of the batches each run trained on.
    seconds_a = 2 * result["ms_per_step"]["a"] / 1000
    assert result["sentences_per_s"]["a"] == pytest.approx(8 / seconds_a, rel=0.5)


def test_a_benchmark_reads_a_prepared_folder_as_it_is_and_refuses_data_overrides(tiny_run):
    from benchmarks.harness import prepare_split

    run_dir = Path(tiny_run.config.run_dir)
    stats = run_dir / "stats.json"
    before = stats.stat().st_mtime_ns
    config, prepared = prepare_split("quick", ["train.batch_size=4"], run_dir=str(run_dir), tmp="/nonexistent")
    assert stats.stat().st_mtime_ns == before  # not prepared again
    assert config.data == tiny_run.config.data and config.train.batch_size == 4
    assert prepared.src_model == tiny_run.src_model
    with pytest.raises(SystemExit, match="keeps its own data settings; drop data.src_vocab_size=100"):
        prepare_split("quick", ["data.src_vocab_size=100"], run_dir=str(run_dir), tmp="/nonexistent")
    assert stats.stat().st_mtime_ns == before


def test_decoding_is_timed_over_whole_passes_and_counts_their_tokens():
    from benchmarks.harness import decode_passes, time_decoding

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


def test_one_training_loop_serves_the_budget_the_turn_and_the_step_count():
    import numpy as np

    from benchmarks.harness import train_for_budget, train_loop, train_turn

    losses = iter(range(100, 0, -1))

    def step(inputs, target_out):
        return {"loss": float(next(losses))}

    def batches(size=4):
        while True:  # 3 real target tokens a sentence
            yield None, np.array([[5, 6, 7, 0]] * size)

    counted = train_loop(step, batches(), steps=3, warmup_steps=2)
    assert counted["steps"] == 5 and counted["timed_steps"] == 3 and counted["sentences"] == 20
    assert counted["timed_sentences"] == 12 and counted["timed_tokens"] == 36
    assert counted["first_loss"] == 100.0 and counted["losses"] == [98.0, 97.0, 96.0]
    # A budget of no time still times min_timed_steps after the warm-up; the rates count the timed steps only.
    budget = train_for_budget(step, batches(), seconds=0, warmup_steps=1, min_timed_steps=2)
    assert budget["train_steps"] == 3 and budget["train_timed_steps"] == 2 and budget["train_sentences"] == 12
    assert budget["train_target_tokens"] == 36 and budget["train_first_loss"] == 95.0
    assert budget["train_final_loss"] == 93.5
    assert budget["train_target_tokens_per_s"] == pytest.approx(3 * budget["train_sentences_per_s"], rel=0.01)
    turn = train_turn(lambda *_: None, batches(2), seconds=0)  # one step at least, no losses needed
    assert turn["steps"] == 1 and turn["sentences"] == 2 and turn["tokens"] == 6 and turn["seconds"] >= 0
    with pytest.raises(ValueError, match="ran out"):
        train_loop(step, [(None, np.ones((1, 1)))], steps=2)


def test_the_entry_point_runs_every_benchmark_as_a_subcommand():
    repo = Path(__file__).resolve().parent.parent
    listed = subprocess.run(
        [sys.executable, "-m", "benchmarks", "--help"], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    for name in (
        "compare",
        "ours",
        "race",
        "baseline",
        "throughput",
        "knobs",
        "scaling",
        "attention",
        "pipeline",
        "synthetic-corpus",
        "profile",
        "utilization",
        "sizes",
        "corpora",
        "quality",
        "curve",
        "averaging",
        "beam",
        "references",
        "serving",
        "soak",
    ):
        assert f"    {name} " in listed, name
    wrong = subprocess.run(
        [sys.executable, "-m", "benchmarks", "beam", "--run", "r", "--bogus"], cwd=repo, capture_output=True, text=True
    )
    assert wrong.returncode == 2 and "unrecognized arguments: --bogus" in wrong.stderr


def test_a_run_option_does_not_shadow_the_subcommand_it_belongs_to():
    from benchmarks.__main__ import parser
    from benchmarks.quality import averaging, beam

    for name, function in (("beam", beam), ("averaging", averaging)):
        args, rest = parser().parse_known_args([name, "--run", "runs/x"])
        assert args.handler is function and args.run == "runs/x" and not rest


def test_sizes_counts_the_parameters_of_every_preset_at_its_vocabulary_sizes(tmp_path, monkeypatch):
    import argparse
    import json

    from benchmarks.profiling import sizes
    from translate import config as config_module
    from translate.config import ModelConfig
    from translate.model import build_models

    presets = tmp_path / "configs"
    presets.mkdir()
    model = {"cell": "gru", "embedding_dim": 8, "encoder_units": 6, "decoder_units": 12, "attention_units": 5}
    for name, attention, vocab in (("a", "luong_dot", 400), ("b", "bahdanau", 401)):
        fields = ", ".join(f"{key}: {value}" for key, value in {**model, "attention": attention}.items())
        (presets / f"{name}.yaml").write_text(
            f"data: {{src_vocab_size: 300, tgt_vocab_size: {vocab}}}\nmodel: {{{fields}}}\n", encoding="utf-8"
        )
    monkeypatch.setattr(config_module, "CONFIGS_DIR", presets)
    sizes(argparse.Namespace(out=str(tmp_path / "sizes.json")))
    report = json.loads((tmp_path / "sizes.json").read_text(encoding="utf-8"))["presets"]
    assert sorted(report) == ["a", "b"]
    built = build_models(ModelConfig(**model, attention="luong_dot"), src_vocab_size=300, tgt_vocab_size=400)
    assert report["a"]["params"] == built.training.count_params()
    assert report["b"]["attention"] == "bahdanau" and report["b"]["tgt_vocab_size"] == 401
    # One more target piece: one more embedding row (8) and one more output column (12) with its bias.
    built = build_models(ModelConfig(**model, attention="bahdanau"), src_vocab_size=300, tgt_vocab_size=400)
    assert report["b"]["params"] - built.training.count_params() == 8 + 12 + 1


def test_references_scores_one_version_against_each_other_and_all_of_them(tmp_path, monkeypatch):
    import argparse
    import json
    import types

    from benchmarks.quality import references
    from translate import bible

    verses = ["In the beginning was the Word.", "Love your neighbour.", "Where are you going?"]
    streams = {
        "A": verses,
        "B": [verses[0], "Love your neighbor as yourself.", None],  # B lacks the third verse
        "C": [verses[0], None, "Where do you go?"],  # and the hypothesis lacks the second
    }
    fake = types.SimpleNamespace(names=list(streams), references=[list(s) for s in streams.values()])
    monkeypatch.setattr(bible, "read_references", lambda pair, split: fake)
    references(argparse.Namespace(pair="es-en", hypothesis="C", out=str(tmp_path / "r.json")))
    scores = json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["scores"]
    assert list(scores) == ["A", "B", "A + B"]
    assert scores["A"]["sentences"] == 2 and scores["B"]["sentences"] == 1  # only verses both versions have
    assert scores["B"]["bleu"] == pytest.approx(100)  # the one verse they share is the same text
    assert scores["A + B"]["references"] == 2 and scores["A + B"]["bleu"] >= scores["A"]["bleu"]


def test_corpora_counts_the_pairs_of_each_split(tmp_path):
    import json

    from translate.corpora import load_corpus

    repo = Path(__file__).resolve().parent.parent
    spec = "tsv:tests/data/en_es_attribution.tsv"
    out = tmp_path / "corpora.json"
    subprocess.run(
        [sys.executable, "-m", "benchmarks", "corpora", spec, "--prepare", "--out", str(out)],
        cwd=repo,
        check=True,
        capture_output=True,
    )
    report = json.loads(out.read_text(encoding="utf-8"))
    splits = load_corpus(str(repo / "tests/data/en_es_attribution.tsv").join(["tsv:", ""]))
    assert report["pairs"] == {spec: {"train": len(splits.train), "dev": len(splits.dev), "test": len(splits.test)}}
    assert report["prepared"] == {}


def test_quality_refuses_a_root_that_holds_a_variants_run_and_writes_nothing(tmp_path):
    from benchmarks.__main__ import parser
    from benchmarks.quality import _slug

    earlier = tmp_path / "root" / _slug("gru + bahdanau")  # a run of an earlier invocation
    earlier.mkdir(parents=True)
    (earlier / "history.csv").write_text("epoch,dev_bleu\n0,12.5\n", encoding="utf-8")
    args = parser().parse_args(["quality", "--root", str(tmp_path / "root"), "--variants", "gru + bahdanau"])
    with pytest.raises(SystemExit, match=f"run folders exist: {earlier}: name a new --root"):
        args.handler(args)
    assert [p.name for p in (tmp_path / "root").iterdir()] == [earlier.name]  # no prepared/ either
    assert (earlier / "history.csv").read_text(encoding="utf-8") == "epoch,dev_bleu\n0,12.5\n"


def test_synthetic_corpus_makes_a_new_file_and_never_replaces_one(tmp_path):
    import argparse

    from benchmarks.speed import synthetic_corpus

    out = tmp_path / "synthetic.tsv"
    synthetic_corpus(argparse.Namespace(out=str(out), pairs=50, seed=1))
    lines = out.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 50 and all(len(line.split("\t")) == 2 for line in lines)
    out.write_text("the user's own corpus\n", encoding="utf-8")
    with pytest.raises(SystemExit, match="synthetic.tsv exists: name a new file"):
        synthetic_corpus(argparse.Namespace(out=str(out), pairs=50, seed=1))
    assert out.read_text(encoding="utf-8") == "the user's own corpus\n"
    assert [p.name for p in tmp_path.iterdir()] == ["synthetic.tsv"]  # no temporary left behind


def test_a_benchmark_plot_is_a_whole_png_and_leaves_no_temporary(tmp_path):
    from benchmarks.speed import plot

    plot([1, 2, 4], {"ours": [3.0, 5.0, 6.0], "tutorial": [1.0, 2.0, 2.5]}, "batch", "steps/s", "t", tmp_path / "p.png")
    assert (tmp_path / "p.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in tmp_path.iterdir()] == ["p.png"]
