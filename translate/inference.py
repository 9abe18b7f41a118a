"""Strings in, strings out: the function that training evaluates and export saves.

``TranslationGraph`` joins the in-graph tokenizers (:mod:`translate.text`), the
encoder and step models (:mod:`translate.model`) and the search
(:mod:`translate.search`) into one ``tf.function`` of ``tf.string [batch]``.
The exported SavedModel runs exactly this function, so what is measured during
training is what is served.
"""

from __future__ import annotations

import tensorflow as tf

from translate.config import DecodeConfig
from translate.model import Seq2Seq
from translate.search import greedy_search
from translate.text import decode, encode, make_tokenizer


class TranslationGraph(tf.Module):
    """Tokenize -> encode -> search -> detokenize, all in the graph.

    Args:
        models: the shared-layer models from :func:`translate.model.build_models`.
        src_model, tgt_model: serialized SentencePiece models.
        decode_config: length limits of the search (fixed once built).
    """

    def __init__(self, models: Seq2Seq, src_model: bytes, tgt_model: bytes, decode_config: DecodeConfig):
        super().__init__(name="translation_graph")
        self.encoder = models.encoder
        self.step = models.step
        self.models = models
        self.src_tokenizer = make_tokenizer(src_model)
        self.tgt_tokenizer = make_tokenizer(tgt_model)
        self.decode_config = decode_config
        self.translate = tf.function(
            self._translate, input_signature=[tf.TensorSpec([None], tf.string, name="sentences")]
        )
        self.align = tf.function(self._align, input_signature=[tf.TensorSpec([None], tf.string, name="sentences")])

    def source_ids(self, sentences: tf.Tensor) -> tf.Tensor:
        """``tf.string [batch]`` -> ``int32 [batch, src_len]``, each row ending in EOS.

        Sources longer than ``decode.max_source_pieces`` are cut there, so the
        encoder's cost stays bounded for any input.
        """
        ids = encode(self.src_tokenizer, sentences, max_pieces=self.decode_config.max_source_pieces, add_eos=True)
        ids = ids.to_tensor(default_value=0)
        # An empty batch has zero columns, and a Keras RNN fails on zero steps.
        return tf.pad(ids, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(ids)[1])]])

    def _search(self, sentences):
        return greedy_search(self.models, self.source_ids(sentences), self.decode_config)

    def _translate(self, sentences):
        result = self._search(sentences)
        translations = decode(self.tgt_tokenizer, result.ids, result.lengths)
        return {"translations": translations, "scores": result.scores}

    def _align(self, sentences):
        """Pieces and attention, for plots: ``[batch, S]``, ``[batch, T]``, ``[batch, T, S]``."""
        source_ids = self.source_ids(sentences)
        result = greedy_search(self.models, source_ids, self.decode_config)
        return {
            "source_pieces": self.src_tokenizer.id_to_string(source_ids),
            "target_pieces": self.tgt_tokenizer.id_to_string(result.ids),
            "attention": result.attention,
        }

    def __call__(self, sentences: list[str]) -> list[str]:
        """Python convenience: a list of ``str`` -> a list of ``str``."""
        out = self.translate(tf.constant(sentences, dtype=tf.string, shape=[len(sentences)]))
        return [t.decode("utf-8") for t in out["translations"].numpy()]
