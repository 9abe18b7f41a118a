"""The tf.data pipeline on the tiny corpus: teacher-forcing triples, the length filter, buckets, padding."""

from __future__ import annotations

import numpy as np
import pytest

from translate.testing.tiny import TINY_CORPUS

PAIRS = [tuple(line.split("\t")) for line in TINY_CORPUS.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def tokenizers():
    from translate.text import make_tokenizer, train_sentencepiece

    return tuple(make_tokenizer(train_sentencepiece([pair[side] for pair in PAIRS], vocab_size=400)) for side in (0, 1))


def batches(tokenizers, **options):
    from translate.pipeline import make_dataset, pairs_from_memory

    dataset = make_dataset(pairs_from_memory(PAIRS), *tokenizers, **options)
    return [(s.numpy(), ti.numpy(), to.numpy()) for (s, ti), to in dataset]


def test_every_pair_becomes_a_teacher_forcing_triple(tokenizers):
    from translate.text import BOS_ID, EOS_ID, PAD_ID

    rows = 0
    for source, target_in, target_out in batches(tokenizers, batch_size=8, max_pieces=40):
        assert source.dtype == np.int32 and target_in.shape == target_out.shape and len(source) <= 8
        for s, ti, to in zip(source, target_in, target_out):
            n, m = int(np.sum(s != PAD_ID)), int(np.sum(to != PAD_ID))
            assert s[n - 1] == EOS_ID and not np.any(s[n:])
            # target_in is BOS + the reference, target_out the reference + EOS.
            assert ti[0] == BOS_ID and to[m - 1] == EOS_ID and ti[1:m].tolist() == to[: m - 1].tolist()
        rows += len(source)
    assert rows == len(PAIRS)


def test_pairs_over_max_pieces_are_left_out(tokenizers):
    kept = batches(tokenizers, batch_size=64, max_pieces=6)
    assert 0 < sum(len(b[0]) for b in kept) < len(PAIRS)
    assert all(b[0].shape[1] <= 7 and b[2].shape[1] <= 7 for b in kept)


def test_a_batch_holds_one_length_bucket(tokenizers):
    from translate.text import PAD_ID

    kept = batches(tokenizers, batch_size=64, max_pieces=40)
    assert len(kept) > 1  # every pair would fit in one batch of 64: the buckets split them
    for source, _, target_out in kept:
        lengths = np.maximum(np.sum(source != PAD_ID, axis=1), np.sum(target_out != PAD_ID, axis=1))
        assert lengths.max() - lengths.min() <= 1  # buckets are 2 pieces wide


def test_an_empty_list_of_pairs_is_refused():
    from translate.pipeline import pairs_from_memory

    with pytest.raises(ValueError, match="no sentence pairs"):
        pairs_from_memory([])


def test_a_dropped_iterator_does_not_wait_for_the_autotuning_thread(tokenizers):
    """Keras drops the last epoch's dev iterator at each evaluation; with tf.data's autotuning thread its
    destructor could wait up to a minute (docs/decisions/dev-iterator-stall.md), so there is none."""
    from translate.pipeline import make_dataset, pairs_from_memory

    dataset = make_dataset(pairs_from_memory(PAIRS), *tokenizers, batch_size=8, max_pieces=40, shuffle_buffer=16)
    assert dataset.options().autotune.enabled is False
