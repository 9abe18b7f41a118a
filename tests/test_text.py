"""SentencePiece in the graph: fixed special ids, no character lost, EOS/BOS placement."""

from __future__ import annotations

import pytest
import tensorflow as tf

from conftest import TINY_CORPUS
from translate.text import BOS_ID, EOS_ID, decode, encode, make_tokenizer, train_sentencepiece

SPANISH = [line.split("\t")[1] for line in TINY_CORPUS.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def tokenizer():
    return make_tokenizer(train_sentencepiece(SPANISH, vocab_size=400))


def test_special_ids_are_fixed():
    import sentencepiece as spm

    processor = spm.SentencePieceProcessor(model_proto=train_sentencepiece(SPANISH, vocab_size=400))
    assert [processor.pad_id(), processor.unk_id(), processor.bos_id(), processor.eos_id()] == [0, 1, 2, 3]


def test_any_character_round_trips_through_byte_fallback(tokenizer):
    sentences = ["¿Dónde está la casa?", "emoji 😀 and 中文 never seen in training"]
    ids = encode(tokenizer, tf.constant(sentences))
    assert 1 not in ids.flat_values.numpy()  # never <unk>
    back = decode(tokenizer, ids.to_tensor(), ids.row_lengths())
    assert [b.decode("utf-8") for b in back.numpy()] == sentences


def test_invalid_utf8_becomes_replacement_characters(tokenizer):
    ids = encode(tokenizer, tf.constant([b"caf\xc3 ok"]))
    text = decode(tokenizer, ids.to_tensor(), ids.row_lengths()).numpy()[0].decode("utf-8")
    assert text == "caf\ufffd ok"


def test_bos_and_eos_are_added_where_asked(tokenizer):
    ids = encode(tokenizer, tf.constant(["casa", ""]), add_bos=True, add_eos=True)
    rows = ids.to_list()
    assert rows[0][0] == BOS_ID and rows[0][-1] == EOS_ID
    assert rows[1] == [BOS_ID, EOS_ID]


def test_too_small_a_vocabulary_is_a_clear_error():
    with pytest.raises(ValueError, match="at least 300"):
        train_sentencepiece(SPANISH, vocab_size=100)
    with pytest.raises(ValueError, match="no text"):
        train_sentencepiece(["", "  "], vocab_size=400)


def test_seeding_after_a_tokenizer_exists_keeps_it_working(tokenizer):
    # With tensorflow-text's own (kernel-owned) resource this raised NotFoundError.
    import keras

    before = encode(tokenizer, tf.constant(["¿Dónde está la casa?"])).to_list()
    keras.utils.set_random_seed(7)
    tf.random.set_seed(8)
    assert encode(tokenizer, tf.constant(["¿Dónde está la casa?"])).to_list() == before
