"""Text <-> subword ids, inside the TensorFlow graph.

SentencePiece models (trained by :mod:`translate.vocabulary`) are applied
with ``tensorflow_text``'s ``SentencepieceTokenizer``, so the same ops run in
the ``tf.data`` pipeline at training time and in the exported SavedModel at
serving time: no Python is needed to serve.

Ids are the same in every vocabulary: 0 pad, 1 unk, 2 BOS, 3 EOS.
"""

from __future__ import annotations

import hashlib

import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow_text.python.ops import sentencepiece_tokenizer as sentencepiece_ops

# Training a model and the ids live in translate.vocabulary, which `prepare` imports without TensorFlow;
# importers of this module find them here too.
from translate.vocabulary import (  # noqa: F401
    BOS_ID,
    EOS_ID,
    MIN_VOCAB_SIZE,
    PAD_ID,
    UNK_ID,
    train_sentencepiece,
    vocab_size_of,
)


class _NamedSentencepieceResource(sentencepiece_ops._SentencepieceModelResource):
    """The tokenizer's model resource, under a name unique to its model.

    tensorflow-text 2.21 creates the resource with an empty ``shared_name``;
    in a reloaded SavedModel two such tokenizers (source and target) then
    resolve to the *same* resource, and the target is detokenized with the
    source model. Naming the resource by a hash of its model keeps different
    models apart and lets equal models share one resource.
    """

    def _create_resource(self):
        digest = hashlib.sha256(self._model).hexdigest()[:24]
        with tf.name_scope(self._name or "SentenceTokenizerInitializer"):
            return sentencepiece_ops.gen_sentencepiece_tokenizer.sentencepiece_op(
                model=self._model, shared_name=f"translate_sentencepiece_{digest}"
            )


def make_tokenizer(model_proto: bytes) -> tf_text.SentencepieceTokenizer:
    """An in-graph tokenizer. Seed random generators *before* calling this:
    ``tf.random.set_seed`` afterwards breaks the tokenizer's resource."""
    tokenizer = tf_text.SentencepieceTokenizer(model=model_proto, out_type=tf.int32, add_bos=False, add_eos=False)
    tokenizer._model_resource = _NamedSentencepieceResource(model_proto, None)
    return tokenizer


def clean_strings(sentences: tf.Tensor) -> tf.Tensor:
    """Makes any bytes safe to tokenize.

    Invalid UTF-8 becomes U+FFFD (instead of an op error that would fail the
    whole batch), then NFKC folds compatibility characters the same way at
    training and serving time.

    Args:
        sentences: ``tf.string [batch]``.
    Returns:
        ``tf.string [batch]``.
    """
    valid = tf.strings.unicode_transcode(
        sentences, input_encoding="UTF-8", output_encoding="UTF-8", errors="replace", replacement_char=0xFFFD
    )
    return tf_text.normalize_utf8(valid, "NFKC")


def encode(
    tokenizer: tf_text.SentencepieceTokenizer,
    sentences: tf.Tensor,
    max_pieces: int | None = None,
    add_bos: bool = False,
    add_eos: bool = False,
) -> tf.RaggedTensor:
    """Strings to ids.

    Args:
        sentences: ``tf.string [batch]``.
        max_pieces: keep at most this many pieces (before BOS/EOS are added).
    Returns:
        ``int32 [batch, (pieces)]`` ragged.
    """
    ids = tokenizer.tokenize(clean_strings(sentences))
    if max_pieces is not None:
        ids = ids[:, :max_pieces]
    return with_specials(ids, add_bos=add_bos, add_eos=add_eos)


def with_specials(ids: tf.RaggedTensor, add_bos: bool = False, add_eos: bool = False) -> tf.RaggedTensor:
    """Puts BOS in front of and/or EOS after each row of ``int32 [batch, (pieces)]``."""
    batch = ids.nrows()[tf.newaxis]
    one_each = tf.ones(batch, tf.int64)
    if add_bos:
        ids = tf.concat([tf.RaggedTensor.from_row_lengths(tf.fill(batch, BOS_ID), one_each), ids], axis=1)
    if add_eos:
        ids = tf.concat([ids, tf.RaggedTensor.from_row_lengths(tf.fill(batch, EOS_ID), one_each)], axis=1)
    return ids


def decode(tokenizer: tf_text.SentencepieceTokenizer, ids: tf.Tensor, lengths: tf.Tensor) -> tf.Tensor:
    """Ids to strings.

    Args:
        ids: ``int32 [batch, time]``; positions at or past ``lengths`` are ignored.
        lengths: ``int32 [batch]``, real pieces per row (EOS not included).
    Returns:
        ``tf.string [batch]``.
    """
    ragged = tf.RaggedTensor.from_tensor(ids, lengths=lengths)
    return tokenizer.detokenize(ragged)
