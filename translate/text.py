"""Text <-> subword ids, inside the TensorFlow graph.

SentencePiece models (Kudo and Richardson 2018) are trained here with the
``sentencepiece`` package and applied with ``tensorflow_text``'s
``SentencepieceTokenizer``, so the same ops run in the ``tf.data`` pipeline at
training time and in the exported SavedModel at serving time: no Python is
needed to serve.

Ids are the same in every vocabulary: 0 pad, 1 unk, 2 BOS, 3 EOS.
``byte_fallback`` spells any character outside the vocabulary as its UTF-8
bytes, so no input character is ever lost to ``<unk>``.
"""

from __future__ import annotations

import hashlib
import io
import logging
from collections.abc import Iterable

import sentencepiece as spm
import tensorflow as tf
import tensorflow_text as tf_text
from tensorflow_text.python.ops import sentencepiece_tokenizer as sentencepiece_ops

log = logging.getLogger(__name__)

PAD_ID, UNK_ID, BOS_ID, EOS_ID = 0, 1, 2, 3
# 256 byte pieces + 4 special ids + room for a few real pieces.
MIN_VOCAB_SIZE = 300


def train_sentencepiece(
    sentences: Iterable[str],
    vocab_size: int,
    model_type: str = "unigram",
    max_sentences: int = 200_000,
    user_defined_symbols: tuple[str, ...] = (),
) -> bytes:
    """Trains a SentencePiece model and returns its serialized proto.

    Args:
        sentences: training text, one sentence per item.
        vocab_size: pieces in the vocabulary, specials and bytes included.
        model_type: ``unigram`` or ``bpe``.
        max_sentences: SentencePiece samples this many sentences at most.
        user_defined_symbols: pieces kept whole wherever they occur, with ids right after the four
            special ones (the synthetic-data tag, :data:`translate.reuse.SYNTHETIC_TAG`).
    """
    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(f"vocab_size must be at least {MIN_VOCAB_SIZE} with byte fallback, got {vocab_size}")
    sentences = [s for s in sentences if s.strip()]
    if not sentences:
        raise ValueError("cannot train a SentencePiece model on no text")
    model = io.BytesIO()
    try:
        _train(sentences, model, vocab_size, model_type, max_sentences, user_defined_symbols)
    except RuntimeError as err:
        # e.g. a vocabulary smaller than the characters and bytes it must hold.
        raise ValueError(f"SentencePiece training failed: {err}") from None
    return model.getvalue()


def _train(
    sentences: list[str],
    model: io.BytesIO,
    vocab_size: int,
    model_type: str,
    max_sentences: int,
    user_defined_symbols: tuple[str, ...] = (),
) -> None:
    extra = {"user_defined_symbols": list(user_defined_symbols)} if user_defined_symbols else {}
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(sentences),
        model_writer=model,
        vocab_size=vocab_size,
        model_type=model_type,
        byte_fallback=True,
        character_coverage=0.9995,
        pad_id=PAD_ID,
        unk_id=UNK_ID,
        bos_id=BOS_ID,
        eos_id=EOS_ID,
        normalization_rule_name="nfkc",
        input_sentence_size=max_sentences,
        shuffle_input_sentence=True,
        # Small corpora (the test fixtures) have fewer distinct pieces than
        # asked for; a smaller vocabulary is then the right answer.
        hard_vocab_limit=False,
        minloglevel=2,
        num_threads=2,
        **extra,
    )


def vocab_size_of(model_proto: bytes) -> int:
    """How many ids a serialized SentencePiece model has."""
    processor = spm.SentencePieceProcessor(model_proto=model_proto)
    return processor.get_piece_size()


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
