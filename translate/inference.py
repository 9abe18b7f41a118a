"""Strings in, strings out: the functions that training evaluates and export saves.

``TranslationGraph`` joins the in-graph tokenizers (:mod:`translate.text`), the
encoder and step models (:mod:`translate.model`) and the search
(:mod:`translate.search`) into ``tf.function``\\ s of ``tf.string [batch]``.
The exported SavedModel runs exactly these functions, so what is measured
during training is what is served. :func:`translate_in_batches` feeds many
sentences to any such function (or a loaded :class:`translate.Translator`)
in batches sorted by length.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import tensorflow as tf
from tqdm import tqdm

from translate.config import DecodeConfig
from translate.ensemble import Ensemble
from translate.model import Seq2Seq
from translate.search import beam_search, in_shards, sample_search
from translate.text import PAD_ID, decode, encode, make_tokenizer

SENTENCES = tf.TensorSpec([None], tf.string, name="sentences")
# The sample signature's other inputs: one value per sentence, so that TF Serving's batching,
# which joins requests along dimension 0 of every input, can join them too.
TEMPERATURE = tf.TensorSpec([None], tf.float32, name="temperature")
TOP_K = tf.TensorSpec([None], tf.int32, name="top_k")


class _Float32Outputs:
    """Calls a Keras model and casts its floating-point outputs to float32.

    The model itself casts float32 inputs to its compute dtype, so the search
    can feed the states back unchanged. A no-op for float32 models.
    """

    def __init__(self, model):
        self.model = model

    def __call__(self, inputs, training=False):
        outputs = self.model(inputs, training=training)
        cast = lambda t: tf.cast(t, tf.float32) if t.dtype.is_floating and t.dtype != tf.float32 else t  # noqa: E731
        return [cast(t) for t in outputs] if isinstance(outputs, (list, tuple)) else cast(outputs)


class TranslationGraph(tf.Module):
    """Tokenize -> encode -> search -> detokenize, all in the graph.

    Functions (each takes ``sentences: tf.string [batch]``):

    * ``translate``: ``translations [batch]``, ``scores [batch]`` (the best hypothesis);
    * ``nbest``: ``translations [batch, K]``, ``scores [batch, K]``, best first;
    * ``align``: ``source_pieces [batch, S]``, ``target_pieces [batch, T]``,
      ``attention [batch, T, S]`` of the best hypothesis (padding is ``""`` / 0);
    * ``translate_greedy``: as ``translate`` with K = 1 (dev BLEU during training);
    * ``sample`` (also ``temperature: float32 [batch]``, ``top_k: int32 [batch]``):
      ``translations [batch]``, ``scores [batch]``, one translation drawn per sentence
      (:func:`translate.search.sample_search`; top_k 0: the whole vocabulary).

    Scores are log P(translation | source) divided by GNMT's length penalty
    (with alpha = 0: the log-probability itself).

    Args:
        models: the shared-layer models from :func:`translate.model.build_models`, or an
            :class:`translate.ensemble.Ensemble` of several (searched as one model).
        src_model, tgt_model: serialized SentencePiece models.
        decode_config: beam width, length penalty and length limits (fixed once built).
    """

    def __init__(self, models: Seq2Seq | Ensemble, src_model: bytes, tgt_model: bytes, decode_config: DecodeConfig):
        super().__init__(name="translation_graph")
        if decode_config.beam_size > models.tgt_vocab_size:
            raise ValueError(
                f"beam size {decode_config.beam_size} is larger than the target vocabulary "
                f"({models.tgt_vocab_size} pieces)"
            )
        members = models.members if isinstance(models, Ensemble) else [models]
        self.encoder = members[0].encoder
        self.step = members[0].step
        # Every Keras model the functions run, for an export to track (translate.export).
        self.keras_models = [model for member in members for model in (member.encoder, member.step)]
        self.models = models
        # The search keeps scores, states and attention in float32; a model built
        # under a mixed precision policy (train.precision) computes in bfloat16.
        float32 = [
            dataclasses.replace(m, encoder=_Float32Outputs(m.encoder), step=_Float32Outputs(m.step)) for m in members
        ]
        self._search_models = Ensemble(float32) if isinstance(models, Ensemble) else float32[0]
        self.src_tokenizer = make_tokenizer(src_model)
        self.tgt_tokenizer = make_tokenizer(tgt_model)
        self.decode_config = decode_config
        self.greedy_config = dataclasses.replace(decode_config, beam_size=1, alpha=0.0)
        self.translate = tf.function(self._translate, input_signature=[SENTENCES])
        self.nbest = tf.function(self._nbest, input_signature=[SENTENCES])
        self.align = tf.function(self._align, input_signature=[SENTENCES])
        self.translate_greedy = tf.function(self._translate_greedy, input_signature=[SENTENCES])
        self.sample = tf.function(self._sample, input_signature=[SENTENCES, TEMPERATURE, TOP_K])

    def source_ids(self, sentences: tf.Tensor) -> tf.Tensor:
        """``tf.string [batch]`` -> ``int32 [batch, src_len]``, each row ending in EOS.

        Sources longer than ``decode.max_source_pieces`` are cut there, so the
        encoder's cost stays bounded for any input.
        """
        ids = encode(self.src_tokenizer, sentences, max_pieces=self.decode_config.max_source_pieces, add_eos=True)
        ids = ids.to_tensor(default_value=0)
        # An empty batch has zero columns, and a Keras RNN fails on zero steps.
        return tf.pad(ids, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(ids)[1])]])

    def _search(self, sentences, config: DecodeConfig | None = None, source_ids=None, with_attention=False):
        config = config or self.decode_config
        if source_ids is None:
            source_ids = self.source_ids(sentences)
        return beam_search(self._search_models, source_ids, config, config.beam_size, config.alpha, with_attention)

    def _detokenize(self, ids, lengths):
        """``[batch, K, T]`` ids -> ``[batch, K]`` strings."""
        shape = tf.shape(ids)
        flat = decode(self.tgt_tokenizer, tf.reshape(ids, [-1, shape[2]]), tf.reshape(lengths, [-1]))
        return tf.reshape(flat, shape[:2])

    def _translate(self, sentences):
        result = self._search(sentences)
        return {
            "translations": self._detokenize(result.ids[:, :1], result.lengths[:, :1])[:, 0],
            "scores": result.scores[:, 0],
        }

    def _translate_greedy(self, sentences):
        result = self._search(sentences, self.greedy_config)
        return {"translations": self._detokenize(result.ids, result.lengths)[:, 0], "scores": result.scores[:, 0]}

    def _sample(self, sentences, temperature, top_k):
        source_ids = self.source_ids(sentences)
        checks = [
            tf.debugging.assert_equal(tf.size(temperature), tf.size(sentences), message="one temperature a sentence"),
            tf.debugging.assert_equal(tf.size(top_k), tf.size(sentences), message="one top_k a sentence"),
        ]
        with tf.control_dependencies(checks):
            source_ids = tf.identity(source_ids)
        config = self.decode_config
        if config.shards > 1:
            single = dataclasses.replace(config, shards=1)
            result = in_shards(
                lambda part, t, k: sample_search(self._search_models, part, single, t, k),
                source_ids,
                config.shards,
                temperature,
                top_k,
            )
        else:
            result = sample_search(self._search_models, source_ids, config, temperature, top_k)
        return {
            "translations": self._detokenize(result.ids[:, None], result.lengths[:, None])[:, 0],
            "scores": result.scores,
        }

    def _nbest(self, sentences):
        result = self._search(sentences)
        return {"translations": self._detokenize(result.ids, result.lengths), "scores": result.scores}

    def _align(self, sentences):
        source_ids = self.source_ids(sentences)
        result = self._search(sentences, source_ids=source_ids, with_attention=True)
        target_ids, length = result.ids[:, 0], result.lengths[:, 0]
        target_mask = tf.sequence_mask(length, tf.shape(target_ids)[1])
        return {
            "source_pieces": self._pieces(source_ids, source_ids != PAD_ID),
            "target_pieces": self._pieces(target_ids, target_mask, self.tgt_tokenizer),
            "attention": result.attention[:, 0] * tf.cast(target_mask, tf.float32)[:, :, None],
        }

    def _pieces(self, ids, mask, tokenizer=None):
        pieces = (tokenizer or self.src_tokenizer).id_to_string(ids)
        return tf.where(mask, pieces, "")

    def sample_with_scores(
        self, sentences: list[str], temperature: float = 1.0, top_k: int = 0
    ) -> tuple[list[str], list[float]]:
        """Python convenience: one sampled translation per sentence and its log-probability."""
        n = len(sentences)
        out = self.sample(
            tf.constant(sentences, dtype=tf.string, shape=[n]),
            tf.fill([n], tf.constant(temperature, tf.float32)),
            tf.fill([n], tf.constant(top_k, tf.int32)),
        )
        return [t.decode("utf-8") for t in out["translations"].numpy()], [float(x) for x in out["scores"].numpy()]

    def __call__(self, sentences: list[str], greedy: bool = False) -> list[str]:
        """Python convenience: a list of ``str`` -> a list of ``str``."""
        function = self.translate_greedy if greedy else self.translate
        out = function(tf.constant(sentences, dtype=tf.string, shape=[len(sentences)]))
        return [t.decode("utf-8") for t in out["translations"].numpy()]


def translate_in_batches(
    translate: Callable[[list[str]], list[str]],
    sentences: Sequence[str],
    batch_size: int = 64,
    progress: bool = True,
) -> list[str]:
    """Runs ``translate`` over ``sentences`` in batches, with a progress bar.

    Sentences are sorted by length first so each batch pads little, and the
    results are put back in the input order.
    """
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    outputs: list[str] = [""] * len(sentences)
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="translating", unit="batch", disable=not progress, leave=False):
        chunk = order[start : start + batch_size]
        for index, translation in zip(chunk, translate([sentences[i] for i in chunk])):
            outputs[index] = translation
    return outputs
