"""SentencePiece vocabularies outside the graph: training a model, its size, the special ids.

SentencePiece models (Kudo and Richardson 2018) are trained here with the
``sentencepiece`` package; :mod:`translate.text` applies them inside the
TensorFlow graph. This module does not import TensorFlow, so that
``translate prepare`` (which trains the models) starts in about a second
instead of waiting for TensorFlow's import.

Ids are the same in every vocabulary: 0 pad, 1 unk, 2 BOS, 3 EOS.
``byte_fallback`` spells any character outside the vocabulary as its UTF-8
bytes, so no input character is ever lost to ``<unk>``.
"""

from __future__ import annotations

import io
from collections.abc import Iterable

import sentencepiece as spm

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
