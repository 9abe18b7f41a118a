"""Ensembles (translate/ensemble.py, ``export --ensemble``): searched as one model, exported as one."""

from __future__ import annotations

import itertools
import math
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
import yaml

from conftest import one_error_line
from translate.cli import main
from translate.config import DecodeConfig, ModelConfig
from translate.ensemble import Ensemble, check_members
from translate.model import build_models
from translate.search import beam_search, greedy_search
from translate.text import EOS_ID

VOCAB = 8  # ids 0-2 (pad, unk, BOS) are never produced: 5 real choices, EOS included
REAL = [3, 4, 5, 6, 7]
MAX_LEN = 4
DECODE = DecodeConfig(max_length_ratio=0.01, max_length_offset=MAX_LEN, max_length_cap=MAX_LEN, shards=1)


def toy_table(seed: int) -> np.ndarray:
    table = np.random.default_rng(seed).normal(scale=2.0, size=(MAX_LEN + 1, VOCAB, VOCAB)).astype("float32")
    table[:, :, :3] = -1e4
    return table


class ToyModel:
    """Logits depend only on (step, previous piece): ``table[t, prev]``; the one state counts steps.

    Its memory is ``[batch, src_len, width]`` of ``width`` (members of an ensemble may differ in width)."""

    config = ModelConfig()  # one GRU layer: one decoder state, as this toy has
    src_vocab_size = tgt_vocab_size = VOCAB

    def __init__(self, table, width=1):
        self.table, self.width = tf.constant(table), width

    def encoder(self, source_ids, training=False):
        batch, src_len = tf.shape(source_ids)[0], tf.shape(source_ids)[1]
        memory = tf.zeros([batch, src_len, self.width])
        return [memory, memory, source_ids != 0, tf.zeros([batch, 1])]

    def step(self, inputs, training=False):
        prev, memory, _, mask, t = inputs
        assert memory.shape[-1] == self.width  # each member gets its own memory
        logits = tf.gather_nd(self.table, tf.stack([tf.cast(t[:, 0], tf.int32), prev[:, 0]], axis=1))
        weights = tf.cast(mask, tf.float32) / tf.reduce_sum(tf.cast(mask, tf.float32), axis=1, keepdims=True)
        per_sentence = tf.shape(prev)[0] // tf.maximum(tf.shape(mask)[0], 1)
        return [logits, tf.repeat(weights, per_sentence, axis=0), t + 1.0]


def log_softmax(row):
    row = row - row.max()
    return row - math.log(np.exp(row).sum())


def exhaustive(tables, alpha):
    """Every hypothesis with its length-penalized score under the ensemble's distribution, best first:
    at each step the log-softmax of the members' mean log-softmax (translate/ensemble.py)."""
    results = []
    for n in range(1, MAX_LEN + 1):
        for seq in itertools.product(REAL, repeat=n):
            if EOS_ID in seq[:-1] or (n < MAX_LEN and seq[-1] != EOS_ID):
                continue
            prev, logp = 2, 0.0
            for t, token in enumerate(seq):
                mean = np.mean([log_softmax(table[t, prev].astype("float64")) for table in tables], axis=0)
                logp += log_softmax(mean)[token]
                prev = token
            output = list(seq[:-1]) if seq[-1] == EOS_ID else list(seq)
            results.append((logp / ((5 + n) / 6) ** alpha, output))
    return sorted(results, key=lambda r: -r[0])


@pytest.mark.parametrize("alpha", [0.0, 0.6])
def test_an_ensembles_beam_search_finds_the_exhaustive_best(alpha):
    tables = [toy_table(7), toy_table(8), toy_table(9)]
    ensemble = Ensemble([ToyModel(tables[0]), ToyModel(tables[1], width=3), ToyModel(tables[2], width=2)])
    every = exhaustive(tables, alpha)
    result = beam_search(ensemble, tf.constant([[5, 3]]), DECODE, beam_size=len(every), alpha=alpha)
    np.testing.assert_allclose(result.scores.numpy()[0][:20], [s for s, _ in every[:20]], rtol=1e-4, atol=1e-4)
    best_length = int(result.lengths[0, 0])
    assert result.ids.numpy()[0, 0, :best_length].tolist() == every[0][1]
    # The ensemble is not any one member: its best differs from at least one member's alone.
    alone = [exhaustive([table], alpha)[0][1] for table in tables]
    assert any(best != every[0][1] for best in alone)


def test_an_ensembles_greedy_search_takes_the_best_mean_log_probability_each_step():
    tables = [toy_table(7), toy_table(8)]
    result = greedy_search(Ensemble([ToyModel(t) for t in tables]), tf.constant([[5, 3]]), DECODE)
    prev, expected, logp = 2, [], 0.0
    for t in range(MAX_LEN):
        step = log_softmax(np.mean([log_softmax(table[t, prev].astype("float64")) for table in tables], axis=0))
        prev = int(np.argmax(step))
        logp += step[prev]
        if prev == EOS_ID:
            break
        expected.append(prev)
    n = int(result.lengths[0])
    assert result.ids.numpy()[0, :n].tolist() == expected
    np.testing.assert_allclose(result.scores.numpy()[0], logp, rtol=1e-5, atol=1e-5)


def small_model(seed: int):
    keras.utils.set_random_seed(seed)  # fixed weights: no near-tie can flip between runs
    return build_models(ModelConfig(embedding_dim=8, encoder_units=4, decoder_units=8, attention_units=8), 20, 20)


@pytest.mark.parametrize("beam_size", [1, 3])
def test_an_ensemble_of_two_identical_models_searches_as_the_model(beam_size):
    model = small_model(0)
    source = tf.constant([[5, 6, 7, 8, 3], [9, 3, 0, 0, 0], [11, 12, 13, 3, 0]])
    decode = DecodeConfig(max_length_cap=12, shards=1)
    single = beam_search(model, source, decode, beam_size, alpha=0.6, with_attention=True)
    ensemble = beam_search(Ensemble([model, model]), source, decode, beam_size, alpha=0.6, with_attention=True)
    np.testing.assert_array_equal(ensemble.ids.numpy(), single.ids.numpy())
    np.testing.assert_array_equal(ensemble.lengths.numpy(), single.lengths.numpy())
    np.testing.assert_allclose(ensemble.scores.numpy(), single.scores.numpy(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(ensemble.attention.numpy(), single.attention.numpy(), rtol=1e-5, atol=1e-6)


def test_members_with_other_vocabulary_sizes_are_refused():
    with pytest.raises(ValueError, match="different vocabulary sizes"):
        Ensemble([small_model(0), build_models(ModelConfig(embedding_dim=8, encoder_units=4), 20, 30)])
    with pytest.raises(ValueError, match="at least two"):
        Ensemble([small_model(0)])


def fake_run(folder, src=b"src-model", tgt=b"tgt-model"):
    """A run folder as check_members sees it: config, best weights and the two SentencePiece models."""
    folder.mkdir(parents=True)
    (folder / "config.yaml").write_text("model: {}\n", encoding="utf-8")
    (folder / "best.weights.h5").write_bytes(b"weights")
    (folder / "src.model").write_bytes(src)
    (folder / "tgt.model").write_bytes(tgt)
    return folder


def test_export_ensemble_refuses_bad_runs_in_one_line(tmp_path, capsys):
    a = fake_run(tmp_path / "a")
    b = fake_run(tmp_path / "b")
    assert check_members([a, b]) == (b"src-model", b"tgt-model")
    other_target = fake_run(tmp_path / "c", tgt=b"another tgt-model")
    other_source = fake_run(tmp_path / "d", src=b"another src-model")
    line = one_error_line(capsys, ["export", "--ensemble", str(a), str(b), str(other_target)])
    assert f"runs {a} and {other_target} do not share their SentencePiece models (tgt.model differs)" in line
    assert "(src.model differs)" in one_error_line(capsys, ["export", "--ensemble", str(a), str(other_source)])
    assert "not a run folder" in one_error_line(capsys, ["export", "--ensemble", str(a), str(tmp_path / "none")])
    assert "at least two runs" in one_error_line(capsys, ["export", "--ensemble", str(a)])
    (b / "best.weights.h5").unlink()
    assert "no trained weights" in one_error_line(capsys, ["export", "--ensemble", str(a), str(b)])
    assert "--weights is for one run" in one_error_line(
        capsys, ["export", "--ensemble", str(a), str(a), "--weights", str(a / "best.weights.h5")]
    )
    with pytest.raises(SystemExit):  # one or the other, as argparse says
        main(["export", "--ensemble", str(a), str(a), "--model", str(a)])


@pytest.fixture(scope="module")
def ensemble_export(tiny_run, tmp_path_factory):
    """``export --ensemble RUN COPY_OF_RUN`` through the command line: version 1 of ``<tmp>/models/translator``."""
    tmp = tmp_path_factory.mktemp("ensemble")
    run = tmp / "run"
    shutil.copytree(tiny_run.run_dir, run, ignore=shutil.ignore_patterns("logs", "data", "backup", "checkpoints"))
    models_dir = tmp / "models"
    assert main(["export", "--ensemble", str(tiny_run.run_dir), str(run), "--models-dir", str(models_dir)]) == 0
    return models_dir / "translator" / "1"


def test_an_exported_ensemble_of_one_run_twice_translates_as_the_run(tiny_run, ensemble_export):
    """Every signature as the single model's, warm-up records, core ops only."""
    import translate
    from test_op_audit import TEXT_OPS, core_tensorflow_ops, export_ops

    version = ensemble_export
    record = yaml.safe_load((version / "assets" / "ensemble.yaml").read_text(encoding="utf-8"))
    assert [m["run_dir"] for m in record["members"]] == [str(tiny_run.run_dir), str(version.parents[2] / "run")]
    assert record["members"][1]["config"]["model"] == record["members"][0]["config"]["model"]
    ensemble = translate.load(version)
    sentences = ["Good morning.", "Where is the house?", "Thank you.", ""]
    single = tiny_run.graph  # the run alone, in process, with the same decoding settings
    batch = tf.constant(sentences)
    translations, scores = ensemble.translate_with_scores(sentences)
    expected = single.translate(batch)
    assert translations == [t.decode() for t in expected["translations"].numpy()]
    np.testing.assert_allclose(scores, expected["scores"].numpy(), atol=1e-4)
    nbest = single.nbest(batch)
    assert [[t for t, _ in row] for row in ensemble.nbest_with_scores(sentences)] == [
        [t.decode() for t in row] for row in nbest["translations"].numpy()
    ]
    alignment = ensemble.align(sentences[0])
    target_pieces = [p.decode() for p in single.align(batch[:1])["target_pieces"].numpy()[0] if p]
    assert alignment["target_pieces"] == target_pieces
    # Greedy: sampling from the top piece only is greedy search.
    greedy = single.translate_greedy(batch)["translations"].numpy()
    assert ensemble.sample_with_scores(sentences, top_k=1)[0] == [t.decode() for t in greedy]
    assert (version / "assets.extra" / "tf_serving_warmup_requests").stat().st_size > 0
    ops, core = export_ops(version), core_tensorflow_ops()
    assert sorted(op for op in ops if op not in core and op not in TEXT_OPS) == []


@pytest.mark.skipif(shutil.which("g++") is None, reason="needs g++")
def test_cpp_replays_the_ensembles_warmup_records_and_translates_as_python(ensemble_export):
    """The path TF Serving takes (LoadSavedModel + Session::Run), as tests/test_serving_cpp.py for one model."""
    import translate
    from cpp_serving import build_serving_binary, run_signature, run_warmup

    binary = build_serving_binary()
    records = run_warmup(binary, ensemble_export)
    assert {r["signature"] for r in records} == {"serving_default", "nbest", "align", "sample"}
    sentences = ["Good morning.", "Thank you."]
    rows = run_signature(binary, ensemble_export, "serving_default", [s.encode() for s in sentences])
    translations, scores = translate.load(ensemble_export).translate_with_scores(sentences)
    assert [row[1] for row in rows] == translations
    np.testing.assert_allclose([row[0] for row in rows], scores, atol=1e-4)
