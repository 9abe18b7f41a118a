"""The ``tf.data`` input pipeline: text pairs -> padded, length-bucketed batches.

Pairs stream from the prepared split files (:func:`pairs_from_files`), so no
corpus is held in Python memory; small in-memory lists work too
(:func:`pairs_from_memory`). Tokenization runs inside the pipeline with the same in-graph tokenizers that
the SavedModel uses. Each element is ``((source_ids, target_in), target_out)``
as ``fit`` expects, where ``target_in`` is the reference shifted right behind
BOS (teacher forcing) and ``target_out`` is the reference followed by EOS.
"""

from __future__ import annotations

from pathlib import Path

import tensorflow as tf
import tensorflow_text as tf_text

from translate.text import encode, with_specials

# Batches group sentences of similar length so little compute goes to padding.
# Buckets 2 pieces wide up to 64. On the quick preset's split 7.2% of the
# positions in batches of 16 (7.3% at 64) are then padding, against 12.8%
# (13.6%) with the earlier boundaries (8, 12, 16, 20, 24, 32, 40, 48, 64, ...),
# and the benchmark's equal-size model trained 5% more sentences a second
# (benchmarks/results/profiling.json, now and as committed in 88c52d6, and
# train_step_changes.json; docs/decisions/length-buckets.md). Every step's cost grows with
# the padded length, and buckets this narrow still fill: the split has
# hundreds of sentences of each length.
_BUCKET_BOUNDARIES = (*range(4, 65, 2), 72, 80, 90, 100, 114, 128, 160, 200, 256)


def pairs_from_files(source_path: str | Path, target_path: str | Path) -> tf.data.Dataset:
    """Line-aligned text files -> a dataset of ``(source, target)`` strings, streamed."""
    return tf.data.Dataset.zip(tf.data.TextLineDataset(str(source_path)), tf.data.TextLineDataset(str(target_path)))


def pairs_from_memory(pairs: list[tuple[str, str]]) -> tf.data.Dataset:
    """A small list of pairs -> a dataset of ``(source, target)`` strings."""
    if not pairs:
        raise ValueError("no sentence pairs to build a dataset from")
    return tf.data.Dataset.from_tensor_slices(([s for s, _ in pairs], [t for _, t in pairs]))


def make_dataset(
    pairs: tf.data.Dataset,
    src_tokenizer: tf_text.SentencepieceTokenizer,
    tgt_tokenizer: tf_text.SentencepieceTokenizer,
    batch_size: int,
    max_pieces: int,
    shuffle_buffer: int = 0,
    seed: int | None = None,
    repeat: bool = False,
) -> tf.data.Dataset:
    """Builds the training (or dev-loss) dataset.

    Args:
        pairs: a dataset of ``(source, target)`` strings.
        max_pieces: pairs with more pieces on either side are left out.
        shuffle_buffer: 0 keeps the order (for evaluation); else the size of
            the bounded shuffle buffer, in pairs.
    Returns:
        batches of ``((source_ids [b, s], target_in [b, t]), target_out [b, t])``, int32.
    """

    def tokenize(src, tgt):
        # One pair -> three 1-D id vectors.
        source_ids = encode(src_tokenizer, src[tf.newaxis], add_eos=True)
        target_ids = encode(tgt_tokenizer, tgt[tf.newaxis])
        target_in = with_specials(target_ids, add_bos=True)
        target_out = with_specials(target_ids, add_eos=True)
        return source_ids.flat_values, target_in.flat_values, target_out.flat_values

    dataset = pairs.map(tokenize, num_parallel_calls=tf.data.AUTOTUNE)
    dataset = dataset.filter(lambda s, ti, to: (tf.size(s) <= max_pieces + 1) & (tf.size(to) <= max_pieces + 1))
    # Tokenize once: SentencePiece ran again every epoch otherwise, and its CPU
    # time was taken from the training step on a 2-core machine. The ids of a
    # corpus this size are a few MB.
    dataset = dataset.cache()
    if shuffle_buffer:
        dataset = dataset.shuffle(shuffle_buffer, seed=seed, reshuffle_each_iteration=True)
    if repeat:
        dataset = dataset.repeat()
    boundaries = [b for b in _BUCKET_BOUNDARIES if b <= max_pieces + 1]
    dataset = dataset.bucket_by_sequence_length(
        element_length_func=lambda s, ti, to: tf.maximum(tf.size(s), tf.size(to)),
        bucket_boundaries=boundaries,
        bucket_batch_sizes=[batch_size] * (len(boundaries) + 1),
        padded_shapes=([None], [None], [None]),
        padding_values=(0, 0, 0),
    )
    dataset = dataset.map(lambda s, ti, to: ((s, ti), to), num_parallel_calls=tf.data.AUTOTUNE)
    # Under a multi-worker strategy every worker builds this same pipeline (same
    # files, same shuffle seed) and keeps every N-th piece of each global
    # batch. FILE sharding cannot work here: a split is one file per language,
    # read in lockstep, and files would be split by worker before batching.
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    # No autotuning thread. Keras drops the dev iterator of the last epoch when the next evaluation starts, and
    # its destructor waits for that thread, which sleeps up to a minute between optimizations (its period
    # doubles up to 60 s): a training process pinned to one core sat idle for about a minute before every
    # evaluation after the first (docs/decisions/dev-iterator-stall.md). AUTOTUNE still sizes the parallel
    # map (one call per core) and the prefetch buffer (TF's per-op tuning) without it.
    options.autotune.enabled = False
    return dataset.with_options(options).prefetch(tf.data.AUTOTUNE)
