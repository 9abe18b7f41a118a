"""Sampling (translate.search.sample_search, the ``sample`` signature, ``translate --sample``) and
back-translation (translate/backtranslation.py, ``python -m translate backtranslate``)."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

from conftest import one_error_line
from translate.backtranslation import backtranslate
from translate.cli import main
from translate.config import DecodeConfig, ModelConfig
from translate.lines import Line, read_lines
from translate.model import build_models
from translate.search import _keep_top_k, greedy_search, sample_search
from translate.text import BOS_ID, EOS_ID

SOURCE = tf.constant([[5, 6, 7, 8, 3], [9, 3, 0, 0, 0], [11, 12, 13, 3, 0]])
DECODE = DecodeConfig(max_length_cap=12, shards=1)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)  # fixed weights: no near-tie can flip between runs
    return build_models(ModelConfig(embedding_dim=8, encoder_units=4, decoder_units=8, attention_units=8), 20, 20)


def per_sentence(value, dtype):
    return tf.fill([SOURCE.shape[0]], tf.constant(value, dtype))


@pytest.mark.parametrize("temperature, top_k", [(1.0, 1), (5.0, 1), (0.0, 0)])
def test_sampling_from_the_top_piece_only_is_greedy_search(model, temperature, top_k):
    greedy = greedy_search(model, SOURCE, DECODE)
    sampled = sample_search(model, SOURCE, DECODE, per_sentence(temperature, tf.float32), per_sentence(top_k, tf.int32))
    np.testing.assert_array_equal(sampled.ids.numpy(), greedy.ids.numpy())
    np.testing.assert_array_equal(sampled.lengths.numpy(), greedy.lengths.numpy())
    np.testing.assert_allclose(sampled.scores.numpy(), greedy.scores.numpy(), rtol=1e-5, atol=1e-5)


class FirstStepModel:
    """Logits ``LOGITS`` at every step from BOS, EOS certain after that: one-piece translations."""

    tgt_vocab_size = 8
    LOGITS = np.array([-1e4, -1e4, -1e4, -1e4, 2.0, 1.5, 1.0, 0.0], np.float32)  # EOS (3) never first

    def encoder(self, source_ids, training=False):
        batch, src_len = tf.shape(source_ids)[0], tf.shape(source_ids)[1]
        return [tf.zeros([batch, src_len, 1]), tf.zeros([batch, src_len, 1]), source_ids != 0, tf.zeros([batch, 1])]

    def step(self, inputs, training=False):
        prev = inputs[0][:, 0]
        eos = tf.one_hot(tf.fill(tf.shape(prev), EOS_ID), 8) * 1e4
        logits = tf.where((prev == BOS_ID)[:, None], tf.constant(self.LOGITS)[None], eos)
        mask = tf.cast(inputs[3], tf.float32)
        return [logits, mask / tf.reduce_sum(mask, axis=1, keepdims=True), inputs[4]]


def test_samples_follow_the_tempered_top_k_distribution_and_are_scored_by_the_model():
    tf.random.set_seed(1)
    n = 4000
    source = tf.fill([n, 2], 5)
    logits = FirstStepModel.LOGITS.astype(np.float64)
    log_p = logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
    for temperature, top_k in [(1.0, 0), (0.5, 0), (1.0, 2), (2.0, 3)]:
        result = sample_search(
            FirstStepModel(), source, DECODE, tf.fill([n], temperature), tf.fill([n], tf.constant(top_k, tf.int32))
        )
        first = result.ids.numpy()[:, 0]
        kept = np.argsort(-logits)[: top_k or len(logits)]
        expected = np.zeros(8)
        expected[kept] = np.exp(logits[kept] / temperature - (logits[kept] / temperature).max())
        expected /= expected.sum()
        frequencies = np.bincount(first, minlength=8) / n
        np.testing.assert_allclose(frequencies, expected, atol=0.04)  # 5 standard deviations at most
        # The score is log P under the model itself, untempered: the piece's, then EOS's (certain).
        np.testing.assert_allclose(result.scores.numpy(), log_p[first], atol=1e-4)


def test_keep_top_k_cuts_each_row_to_its_own_k():
    logits = tf.constant([[1.0, 4.0, 3.0, 2.0], [1.0, 4.0, 3.0, 2.0], [1.0, 1.0, 0.0, 2.0], [0.0, 1.0, 2.0, 3.0]])
    kept = _keep_top_k(logits, tf.constant([1, 0, 2, 9])).numpy()
    inf = -np.inf
    np.testing.assert_array_equal(kept[0], [inf, 4.0, inf, inf])
    np.testing.assert_array_equal(kept[1], [1.0, 4.0, 3.0, 2.0])  # 0: every piece
    np.testing.assert_array_equal(kept[2], [1.0, 1.0, inf, 2.0])  # a tie with the k-th is kept
    np.testing.assert_array_equal(kept[3], [0.0, 1.0, 2.0, 3.0])  # more than the vocabulary: every piece
    assert _keep_top_k(tf.zeros([0, 4]), tf.zeros([0], tf.int32)).shape == (0, 4)


def test_translate_and_backtranslate_refuse_bad_sampling_options_in_one_line(tmp_path, capsys):
    model = str(tmp_path / "no-model")
    assert "need --sample" in one_error_line(capsys, ["translate", "--model", model, "--temperature", "0.5", "x"])
    assert "need --sample" in one_error_line(capsys, ["translate", "--model", model, "--top-k", "5", "x"])
    for temperature in ("0", "1e-30", "1e9", "nan"):
        assert "--temperature must be between 0.001 and 1000" in one_error_line(
            capsys, ["translate", "--model", model, "--sample", "--temperature", temperature, "x"]
        )
    for top_k in ("-1", str(2**31)):
        assert "--top-k must be between 0" in one_error_line(
            capsys, ["translate", "--model", model, "--sample", "--top-k", top_k]
        )
    assert "not with --nbest or --server" in one_error_line(
        capsys, ["translate", "--model", model, "--sample", "--nbest", "2", "x"]
    )
    assert "not with --nbest or --server" in one_error_line(
        capsys, ["translate", "--server", "localhost:1", "--sample", "x"]
    )
    mono = tmp_path / "mono.txt"
    mono.write_text("Hola.\n", encoding="utf-8")
    out = tmp_path / "pairs.tsv"
    back = ["backtranslate", "--model", model, "--mono", str(mono), "--out", str(out)]
    assert "model path does not exist" in one_error_line(capsys, back)
    assert "need --sample" in one_error_line(capsys, [*back, "--top-k", "3"])
    assert "--batch-size must be at least 1" in one_error_line(capsys, [*back, "--batch-size", "0"])
    out.write_text("mine\n", encoding="utf-8")
    assert "exists: backtranslate never replaces a file" in one_error_line(capsys, back)
    assert out.read_text(encoding="utf-8") == "mine\n"


def test_backtranslate_writes_synthetic_source_then_real_target_and_skips_what_it_cannot_pair(tmp_path):
    mono = tmp_path / "mono.txt"
    text = "Buenos días.\n\n   \nUna\tfrase larga con tabulador.\n".encode() + b"mal \xff byte\n"
    mono.write_bytes(text + "Vacía\nHola.\n".encode())
    calls = []

    def fake(texts):
        calls.append(list(texts))
        # A sampled translation may hold a line break (a byte-fallback piece): it must not split the row.
        return ["" if t == "Vacía" else "EN[a\nb]" if t == "Hola." else f"EN[{t}]" for t in texts]

    with open(mono, "rb") as stream:
        stats = backtranslate(fake, read_lines(stream, "mono"), tmp_path / "out" / "pairs.tsv", batch_size=2)
    lines = (tmp_path / "out" / "pairs.tsv").read_text(encoding="utf-8").splitlines()
    assert lines == [
        "EN[Buenos días.]\tBuenos días.",
        "EN[Una frase larga con tabulador.]\tUna frase larga con tabulador.",  # tabs inside became spaces
        "EN[a b]\tHola.",  # so did the line break in its translation
    ]
    assert all(line.count("\t") == 1 for line in lines)
    assert (stats.lines, stats.pairs, stats.empty, stats.invalid_utf8, stats.empty_translation) == (7, 3, 2, 1, 1)
    assert stats.tabs_replaced == 2
    assert all(len(batch) <= 2 for batch in calls)
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["pairs.tsv"]  # no temporary left
    with pytest.raises(ValueError, match="exists: backtranslate never replaces a file"):
        backtranslate(fake, [Line(1, "x")], tmp_path / "out" / "pairs.tsv")


def test_a_failed_backtranslation_leaves_no_file_and_no_folder_it_made(tmp_path):
    def broken(texts):
        raise RuntimeError("the model failed")

    with pytest.raises(RuntimeError, match="the model failed"):
        backtranslate(broken, [Line(1, "Hola.")], tmp_path / "new" / "deeper" / "pairs.tsv")
    assert list(tmp_path.iterdir()) == []


def test_the_sample_signature_from_the_top_piece_is_greedy_and_the_cli_samples(tiny_run, tiny_export, tmp_path, capsys):
    """tiny_export searches in two shards: the sample signature's shards get their rows' settings."""
    import translate

    sentences = ["Good morning.", "Where is the house?", "Thank you.", "", "I love you."]
    greedy = tiny_run.graph.translate_greedy(tf.constant(sentences))
    translator = translate.load(tiny_export)
    translations, scores = translator.sample_with_scores(sentences, temperature=1.0, top_k=1)
    assert translations == [t.decode() for t in greedy["translations"].numpy()]
    np.testing.assert_allclose(scores, greedy["scores"].numpy(), atol=1e-4)
    sampled, sampled_scores = translator.sample_with_scores(sentences * 4)
    assert len(sampled) == 20 and all(s <= 1e-4 for s in sampled_scores)  # log-probabilities

    assert main(["translate", "--model", str(tiny_export), "--sample", "--top-k", "1", *sentences[:3]]) == 0
    assert capsys.readouterr().out.splitlines() == translations[:3]

    mono = tmp_path / "mono.txt"
    mono.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    out = tmp_path / "pairs.tsv"
    argv = ["backtranslate", "--model", str(tiny_export), "--mono", str(mono), "--out", str(out)]
    assert main([*argv, "--sample", "--top-k", "1"]) == 0
    assert capsys.readouterr().out.strip() == str(out)
    expected = [f"{t}\t{s}" for t, s in zip(translations, sentences) if s and t]
    assert out.read_text(encoding="utf-8").splitlines() == expected
    beam = tmp_path / "beam.tsv"
    assert main(["backtranslate", "--model", str(tiny_export), "--mono", str(mono), "--out", str(beam)]) == 0
    best = translator.translate_with_scores(sentences)[0]
    assert beam.read_text(encoding="utf-8").splitlines() == [f"{t}\t{s}" for t, s in zip(best, sentences) if s and t]
