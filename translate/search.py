"""Decoding in the graph: a ``tf.while_loop`` over core ops only, batched.

The loop is written with ``tf.while_loop`` (not a Python ``while``) because
``keras.export.ExportArchive`` traces endpoints with autograph off.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import NamedTuple

import tensorflow as tf

from translate.config import DecodeConfig
from translate.model import Seq2Seq
from translate.text import BOS_ID, EOS_ID, PAD_ID


@dataclass
class SearchResult:
    """Output of a search.

    ids: ``int32 [batch, time]``, EOS and what follows it set to pad.
    lengths: ``int32 [batch]``, pieces before EOS.
    scores: ``float32 [batch]``, log P(output | source), EOS included.
    attention: ``float32 [batch, time, src_len]``.
    """

    ids: tf.Tensor
    lengths: tf.Tensor
    scores: tf.Tensor
    attention: tf.Tensor


def max_output_lengths(source_lengths: tf.Tensor, decode: DecodeConfig) -> tf.Tensor:
    """``min(cap, ratio * source_pieces + offset)`` per sentence, ``int32 [batch]``."""
    grown = tf.cast(tf.math.ceil(tf.cast(source_lengths, tf.float32) * decode.max_length_ratio), tf.int32)
    return tf.minimum(grown + decode.max_length_offset, decode.max_length_cap)


def _source_lengths(source_ids: tf.Tensor) -> tf.Tensor:
    """Real (non-pad) pieces per sentence, ``int32 [batch]``."""
    return tf.reduce_sum(tf.cast(source_ids != PAD_ID, tf.int32), axis=1)


def _longest(lengths: tf.Tensor) -> tf.Tensor:
    """The largest of ``lengths [batch]``, 0 for an empty batch."""
    return tf.reduce_max(tf.concat([lengths, [0]], axis=0))


def _length_limits(source_ids: tf.Tensor, decode: DecodeConfig) -> tuple[tf.Tensor, tf.Tensor]:
    """Each sentence's output limit ``[batch]`` and the longest of them (0 for an empty batch)."""
    limits = max_output_lengths(_source_lengths(source_ids), decode)
    return limits, _longest(limits)


# --- the loops' state --------------------------------------------------------------------------
#
# Each loop carries one NamedTuple through ``tf.while_loop``. Its parts say how
# their rows go: ``_Sentences`` (and a beam search's hypotheses) hold a row per
# sentence still decoding, ``_Decoder`` the step model's rows, the rest covers
# the whole batch. ``FIXED_AXES`` names, per field, the axes whose size never
# changes; every other axis may (sentences leave, hypotheses grow, and batch and
# source length are known only when the loop runs), and :func:`_shape_invariants`
# derives the loop's shape invariants from that.


class _Sentences(NamedTuple):
    """A row per sentence still decoding; a done sentence's row leaves (:func:`_retire_done`).

    The encoder's outputs stay one per sentence in beam search too: the
    attention scores a sentence's K beams together (translate.attention), so
    no K copies are made or moved.
    """

    active: tf.Tensor  # int32 [open]: each open sentence's position in the batch
    limits: tf.Tensor  # int32 [open]: its most output pieces (max_output_lengths)
    memory: tf.Tensor  # float32 [open, src_len, memory width] (an ensemble: a tuple, one per member)
    keys: tf.Tensor  # float32 [open, src_len, key width]: the attention's keys, computed once (likewise)
    source_mask: tf.Tensor  # [open, src_len]: the real (non-pad) source pieces

    FIXED_AXES = {"memory": (-1,), "keys": (-1,)}  # the model's widths


class _Decoder(NamedTuple):
    """The step model's rows: one per open sentence in greedy search; K in beam search, row
    ``b * K + j`` holding beam j of open sentence b."""

    last: tf.Tensor  # int32 [rows]: the piece each row chose last (BOS at first)
    states: list[tf.Tensor]  # the recurrent states, each float32 [rows, width]

    FIXED_AXES = {"states": (-1,)}  # the model's widths


class _GreedyState(NamedTuple):
    """The greedy loop's variables; its outputs are written for the whole batch at every step."""

    step: tf.Tensor  # int32 []: steps taken
    sentences: _Sentences
    decoder: _Decoder
    lengths: tf.Tensor  # int32 [batch]: pieces before EOS so far
    scores: tf.Tensor  # float32 [batch]: log P(pieces so far | source)
    ids: tf.TensorArray  # int32 [batch] a step; pad for rows no longer open
    attention: tf.TensorArray  # float32 [batch, src_len] a step; zeros for rows no longer open

    FIXED_AXES = {}


class _Alive(NamedTuple):
    """A beam search's K open hypotheses per open sentence."""

    ids: tf.Tensor  # int32 [open, K, t]
    attention: tf.Tensor  # float32 [open, K, t, src_len]; t = 0 without attention
    logp: tf.Tensor  # float32 [open, K]: log P so far; -inf where there is no hypothesis

    FIXED_AXES = {"ids": (1,), "attention": (1,), "logp": (1,)}  # the beam width K


class _Hypotheses(NamedTuple):
    """K finished hypotheses per sentence, best first."""

    ids: tf.Tensor  # int32 [n, K, time]: EOS and what follows it set to pad
    attention: tf.Tensor  # float32 [n, K, time, src_len]; time = 0 without attention
    lengths: tf.Tensor  # int32 [n, K]: pieces before EOS
    scores: tf.Tensor  # float32 [n, K]: log P / length_penalty; -inf where none has finished

    FIXED_AXES = {"ids": (1,), "attention": (1,), "lengths": (1,), "scores": (1,)}  # the beam width K


class _BeamState(NamedTuple):
    """The beam loop's variables."""

    step: tf.Tensor  # int32 []: steps taken
    sentences: _Sentences
    decoder: _Decoder
    alive: _Alive  # [open, K, ...]
    finished: _Hypotheses  # [open, K, ...]: each open sentence's K best finished so far
    out: _Hypotheses  # [batch, K, ...]: the results of the sentences done, time padded to max_steps

    FIXED_AXES = {}


def _shape_invariant(x, fixed_axes: tuple[int, ...]) -> tf.TensorShape:
    """``x``'s shape with every axis free but ``fixed_axes``; any shape for a TensorArray."""
    if isinstance(x, tf.TensorArray):
        return tf.TensorShape(None)
    rank = x.shape.rank
    return tf.TensorShape([x.shape[i] if i in fixed_axes or i - rank in fixed_axes else None for i in range(rank)])


def _shape_invariants(state: NamedTuple) -> NamedTuple:
    """The ``shape_invariants`` of a loop state: the same structure, each tensor's shape with only
    the axes that its NamedTuple's ``FIXED_AXES`` names kept (the beam width K, the model's widths)."""
    fixed = type(state).FIXED_AXES

    def invariants(name, value):
        if hasattr(value, "FIXED_AXES"):
            return _shape_invariants(value)
        axes = fixed.get(name, ())
        return tf.nest.map_structure(lambda x: _shape_invariant(x, axes), value)

    return type(state)(*(invariants(name, value) for name, value in zip(state._fields, state)))


def _open_sentences(models: Seq2Seq, source_ids: tf.Tensor, decode: DecodeConfig):
    """Every sentence open: ``(_Sentences, the decoder's initial states, the longest output limit)``."""
    limits, max_steps = _length_limits(source_ids, decode)
    memory, keys, source_mask, *states = models.encoder(source_ids, training=False)
    # Fresh tensors drop the Keras masks that ``memory`` and ``keys`` carry;
    # the step model takes the mask explicitly as ``source_mask``. (An
    # ensemble's memory and keys are tuples, a tensor per member: translate.ensemble.)
    memory, keys = tf.nest.map_structure(tf.identity, (memory, keys))
    everyone = tf.range(tf.shape(source_ids)[0])
    return _Sentences(everyone, limits, memory, keys, source_mask), states, max_steps


def _step(models: Seq2Seq, sentences: _Sentences, decoder: _Decoder):
    """One decoder step of every row: logits ``[rows, vocab]``, attention ``[rows, src_len]``, new states."""
    logits, weights, *states = models.step(
        [decoder.last[:, None], sentences.memory, sentences.keys, sentences.source_mask, *decoder.states],
        training=False,
    )
    return logits, weights, states


def _retire_done(done, sentences, decoder: _Decoder, beam_width: int = 1, outputs=(), write_out=None):
    """Done sentences leave the batch, as in fairseq's generator: later steps compute only the others.

    Leaving copies the open rows' memory and keys; leaving in groups (once an
    eighth or a quarter of the rows had stopped) was no faster.

    Args:
        done: ``bool [open]``, the open sentences that are done.
        sentences: a structure of tensors with a row per open sentence, ``[open, ...]``.
        decoder: the step model's rows, ``beam_width`` per open sentence.
        outputs: results for the whole batch, returned as they are or, with
            ``write_out``, as ``write_out(finished)`` makes them; ``finished``,
            ``int32 [n]``, holds the done sentences' positions among the open ones.
    Returns:
        ``(sentences, decoder, outputs)``, the first two cut to the sentences not
        done; all unchanged, without copies, when none is done (most steps).
    """

    def retire():
        new_outputs = outputs if write_out is None else write_out(tf.cast(tf.where(done)[:, 0], tf.int32))
        going_on = tf.cast(tf.where(~done)[:, 0], tf.int32)
        rows = going_on if beam_width == 1 else tf.reshape(going_on[:, None] * beam_width + tf.range(beam_width), [-1])
        return (
            tf.nest.map_structure(lambda x: tf.gather(x, going_on), sentences),
            tf.nest.map_structure(lambda x: tf.gather(x, rows), decoder),
            new_outputs,
        )

    return tf.cond(tf.reduce_any(done), retire, lambda: (sentences, decoder, outputs))


def _while_open(body, state, max_steps: tf.Tensor, decode: DecodeConfig):
    """``state = body(state)`` while a sentence is open, at most ``max_steps`` times; the last state."""

    def cond(state):
        # At least one step, so that the outputs have a known shape even for an empty batch.
        return tf.equal(state.step, 0) | ((state.step < max_steps) & (tf.size(state.sentences.active) > 0))

    (state,) = tf.while_loop(
        cond,
        lambda state: (body(state),),
        (state,),
        shape_invariants=(_shape_invariants(state),),
        maximum_iterations=decode.max_length_cap,
    )
    return state


def greedy_search(models: Seq2Seq, source_ids: tf.Tensor, decode: DecodeConfig) -> SearchResult:
    """Greedy decoding: the most likely next piece at every step.

    Each sentence stops at its EOS or at its own maximum length
    (:func:`max_output_lengths`); the loop ends when all have stopped. A
    sentence that stops leaves the batch, as in beam search: later steps
    compute only the rows still open (``active`` holds their positions in the
    batch), and each step's outputs are scattered back to the full batch.
    On Romans a batch of 64 runs to its longest translation, about twice the
    median length, so most steps would otherwise mostly compute padding.

    Args:
        source_ids: ``int32 [batch, src_len]``, 0-padded, each row ending in EOS.
    """

    def most_likely(logits, active):
        token = tf.argmax(logits, axis=-1, output_type=tf.int32)
        # log softmax at the chosen piece only: logit - logsumexp over the vocabulary.
        # The chosen logit is the row's maximum, so it is the shift that keeps
        # exp from overflowing: log p = -log sum_v exp(z_v - z_max), with no
        # second reduction for the maximum (reduce_logsumexp's Max was 3.7% of the greedy
        # decode's op time in benchmarks/results/profiling.json as committed in 88c52d6).
        best = tf.gather(logits, token, batch_dims=1)
        return token, -tf.math.log(tf.reduce_sum(tf.exp(logits - best[:, None]), axis=-1))

    return _piece_by_piece(models, source_ids, decode, most_likely)


def sample_search(
    models: Seq2Seq, source_ids: tf.Tensor, decode: DecodeConfig, temperature: tf.Tensor, top_k: tf.Tensor
) -> SearchResult:
    """Ancestral sampling: each next piece drawn from the model's distribution, one translation per sentence.

    At each step the logits are divided by the sentence's temperature and,
    with ``top_k > 0``, cut to its ``top_k`` most likely pieces (Fan et al.
    2018; pieces tied with the k-th are kept too) before a piece is drawn
    (``tf.random.categorical``, a core op that TF Serving runs). Edunov et al.
    (2018) back-translate with unrestricted sampling (temperature 1, no top-k)
    or top-10 sampling. A temperature of 0 or less takes the most likely
    piece (greedy), and ``top_k = 1`` does too. Stopping and the rows that
    leave are as in :func:`greedy_search`; the draws differ from call to call.

    Args:
        source_ids: ``int32 [batch, src_len]``, 0-padded, each row ending in EOS.
        temperature: ``float32 [batch]``; top_k: ``int32 [batch]``, 0 (or less,
            or more than the vocabulary) for the whole vocabulary.
    Returns:
        A :class:`SearchResult`; its ``scores`` are log P(sample | source) under the
        model itself (untempered, over the whole vocabulary).
    """
    temperature = tf.convert_to_tensor(temperature, tf.float32)
    top_k = tf.convert_to_tensor(top_k, tf.int32)

    def draw(logits, active):
        t, k = tf.gather(temperature, active), tf.gather(top_k, active)
        scaled = _keep_top_k(logits / tf.where(t > 0, t, 1.0)[:, None], k)
        drawn = tf.random.categorical(scaled, 1, dtype=tf.int32)[:, 0]
        token = tf.where(t > 0, drawn, tf.argmax(logits, axis=-1, output_type=tf.int32))
        return token, tf.gather(logits, token, batch_dims=1) - tf.reduce_logsumexp(logits, axis=-1)

    return _piece_by_piece(models, source_ids, decode, draw)


def _keep_top_k(logits: tf.Tensor, k: tf.Tensor) -> tf.Tensor:
    """``logits [rows, vocab]`` with all but each row's ``k [rows]`` largest set to -inf (ties with the
    k-th kept); a row whose k is not in 1..vocab keeps all. No top_k runs when no row restricts."""
    vocab = tf.shape(logits)[1]
    k = tf.where((k > 0) & (k < vocab), k, vocab)

    def restrict():
        values, _ = tf.math.top_k(logits, k=tf.reduce_max(k))
        threshold = tf.gather(values, k - 1, batch_dims=1)
        return tf.where(logits >= threshold[:, None], logits, -float("inf"))

    return tf.cond(tf.reduce_all(k >= vocab), lambda: logits, restrict)


def _piece_by_piece(models: Seq2Seq, source_ids: tf.Tensor, decode: DecodeConfig, pick) -> SearchResult:
    """The loop of :func:`greedy_search` and :func:`sample_search`: one piece per open sentence a step.

    ``pick(logits [open, vocab], active int32 [open])`` gives each open
    sentence's next piece ``int32 [open]`` and its log-probability ``float32 [open]``.
    """
    batch = tf.shape(source_ids)[0]
    src_len = tf.shape(source_ids)[1]
    sentences, states, max_steps = _open_sentences(models, source_ids, decode)

    def body(state: _GreedyState) -> _GreedyState:
        t, sentences = state.step, state.sentences
        logits, weights, new_states = _step(models, sentences, state.decoder)
        token, token_log_prob = pick(logits, sentences.active)
        is_eos = tf.equal(token, EOS_ID)
        where = sentences.active[:, None]
        scores = tf.tensor_scatter_nd_add(state.scores, where, token_log_prob)
        lengths = tf.tensor_scatter_nd_add(state.lengths, where, tf.cast(~is_eos, tf.int32))
        # Rows no longer open get zeros: pad ids (PAD_ID is 0) and no attention.
        ids = state.ids.write(t, tf.scatter_nd(where, tf.where(is_eos, PAD_ID, token), [batch]))
        attention = state.attention.write(t, tf.scatter_nd(where, tf.cast(weights, tf.float32), [batch, src_len]))
        done = is_eos | (t + 1 >= sentences.limits)
        sentences, decoder, _ = _retire_done(done, sentences, _Decoder(token, new_states))
        return _GreedyState(t + 1, sentences, decoder, lengths, scores, ids, attention)

    state = _GreedyState(
        step=tf.constant(0),
        sentences=sentences,
        decoder=_Decoder(tf.fill([batch], BOS_ID), states),
        lengths=tf.zeros([batch], tf.int32),
        scores=tf.zeros([batch], tf.float32),
        ids=tf.TensorArray(tf.int32, size=0, dynamic_size=True, element_shape=[None]),
        attention=tf.TensorArray(tf.float32, size=0, dynamic_size=True, element_shape=[None, None]),
    )
    state = _while_open(body, state, max_steps, decode)
    ids = tf.transpose(state.ids.stack())
    attention = tf.transpose(state.attention.stack(), [1, 0, 2])
    return SearchResult(ids=ids, lengths=state.lengths, scores=state.scores, attention=attention)


def in_shards(search, source_ids: tf.Tensor, shards: int, *per_sentence: tf.Tensor):
    """``search`` over ``shards`` contiguous parts of the batch, as one result.

    The parts' loops share no tensors, so TensorFlow's executor runs them at
    the same time, one per inter-op thread. Each part is cut to its own
    longest source; the results are padded back (pad ids, zero attention) to
    the longest output and the full source length, and joined in batch order.

    Args:
        search: ``int32 [part, src_len]`` (and the part's rows of each of
            ``per_sentence``) -> a :class:`SearchResult` or :class:`BeamResult`.
        source_ids: ``int32 [batch, src_len]``; parts differ in size by at most one row.
        per_sentence: tensors ``[batch, ...]`` split as the sentences are (e.g. sampling temperatures).
    """
    batch = tf.shape(source_ids)[0]
    sizes = tf.stack([(batch + i) // shards for i in range(shards)])
    results = []
    others = [tf.split(x, sizes, num=shards) for x in per_sentence]
    for i, part in enumerate(tf.split(source_ids, sizes, num=shards)):
        # At least one column: a Keras RNN fails on zero steps (an empty part).
        results.append(search(part[:, : tf.maximum(1, _longest(_source_lengths(part)))], *(o[i] for o in others)))
    joined = {}
    for field in fields(results[0]):
        parts = [getattr(r, field.name) for r in results]
        full = tf.reduce_max(tf.stack([tf.shape(p) for p in parts]), axis=0)
        if field.name == "attention":  # back to the batch's source length
            full = tf.concat([full[:-1], tf.shape(source_ids)[1:]], axis=0)
        joined[field.name] = tf.concat([_pad_to(p, full) for p in parts], axis=0)
        # Keep the sizes every part knows statically (the beam width K), which padding hid.
        known = [
            dims.pop() if len(dims) == 1 else None
            for dims in ({p.shape[i] for p in parts} for i in range(1, len(parts[0].shape)))
        ]
        if field.name == "attention":
            known[-1] = source_ids.shape[1]
        joined[field.name].set_shape([source_ids.shape[0], *known])
    return type(results[0])(**joined)


def _pad_to(x: tf.Tensor, shape: tf.Tensor) -> tf.Tensor:
    """Zeros after ``x`` along every axis but the first, up to ``shape``."""
    after = tf.concat([[0], shape[1:] - tf.shape(x)[1:]], axis=0)
    return tf.pad(x, tf.stack([tf.zeros_like(after), after], axis=1))


def length_penalty(lengths: tf.Tensor, alpha: float) -> tf.Tensor:
    """GNMT's length penalty ``((5 + |Y|) / 6) ** alpha`` (Wu et al. 2016, eq. 14)."""
    return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, alpha)


def _block_size(vocab: int) -> int:
    """A divisor of ``vocab`` near its square root (no padding needed), or 64 when there is none close."""
    root = max(1, round(vocab**0.5))
    for size in range(root, max(1, root // 2) - 1, -1):
        if vocab % size == 0:
            return size
    return 64


def best_extensions(logits: tf.Tensor, beam_logp: tf.Tensor, count: int):
    """The ``count`` best one-piece extensions of each sentence's beams, exactly.

    The same as ``top_k`` over ``beam_logp[b, j] + log_softmax(logits)[b*K + j, v]``
    for all ``K * vocab`` pairs ``(j, v)``, without sorting them all: the
    vocabulary is cut into blocks, the ``count`` blocks with the highest
    maxima are the only ones that can hold a winner (a block whose maximum is
    below the ``count``-th best value holds no winner), and only their pieces
    are ranked. On CPU a ``top_k`` over ``K * vocab`` values per sentence cost
    more than the rest of the step's bookkeeping together.

    Args:
        logits: ``[batch * K, vocab]``, row ``b * K + j`` extends beam j of sentence b.
        beam_logp: ``[batch, K]``, each beam's log-probability so far.
        count: how many extensions to keep per sentence (at most ``K * vocab``).
    Returns:
        log-probabilities ``[batch, count]`` (descending), beam ``[batch, count]``
        and piece ``[batch, count]`` of each.
    """
    sentences, k = tf.shape(beam_logp)[0], beam_logp.shape[1]
    vocab = logits.shape[-1]
    size = _block_size(vocab)
    pad = -vocab % size
    # log_softmax(x)_v = x_v - logsumexp(x): one offset per row, added to whole blocks at once.
    offsets = tf.reshape(beam_logp, [-1]) - tf.reduce_logsumexp(logits, axis=-1)
    if pad:
        logits = tf.pad(logits, [[0, 0], [0, pad]], constant_values=-float("inf"))
    n_blocks = (vocab + pad) // size
    blocks = tf.reshape(logits, [sentences, k * n_blocks, size])
    block_offsets = tf.repeat(tf.reshape(offsets, [sentences, k]), n_blocks, axis=1)
    block_best = tf.reduce_max(blocks, axis=-1) + block_offsets
    _, chosen = tf.math.top_k(block_best, k=min(count, k * n_blocks))
    values = tf.gather(blocks, chosen, batch_dims=1) + tf.gather(block_offsets, chosen, batch_dims=1)[:, :, None]
    logp, index = tf.math.top_k(tf.reshape(values, [sentences, -1]), k=count)
    block = tf.gather(chosen, index // size, batch_dims=1)
    return logp, block // n_blocks, (block % n_blocks) * size + index % size


@dataclass
class BeamResult:
    """Output of a beam search, best hypothesis first.

    ids: ``int32 [batch, beam, time]``, EOS and what follows it set to pad.
    lengths: ``int32 [batch, beam]``, pieces before EOS.
    scores: ``float32 [batch, beam]``, log P(output | source) / length_penalty, descending.
    attention: ``float32 [batch, beam, time, src_len]``.
    """

    ids: tf.Tensor
    lengths: tf.Tensor
    scores: tf.Tensor
    attention: tf.Tensor


def beam_search(
    models: Seq2Seq,
    source_ids: tf.Tensor,
    decode: DecodeConfig,
    beam_size: int,
    alpha: float = 0.0,
    with_attention: bool = False,
) -> BeamResult:
    """Batched beam search; each sentence keeps its own ``beam_size`` beams.

    At each step every open beam is extended by every piece; the ``2K`` best
    extensions are split into those that end (EOS, or the sentence's max
    length: :func:`max_output_lengths`) and those that go on. Ended ones join
    the sentence's K best finished hypotheses, scored with
    :func:`length_penalty`; the K best open ones are the next beams. A
    sentence is done once K hypotheses have finished (as in fairseq), or when
    it reaches its max length. A done sentence leaves the batch (its results
    go to the outputs, its rows to no further step), so the cost of a step
    follows the sentences still open; the loop ends when none is. Waiting
    instead until no open beam could beat the worst finished one (whose
    bound, with alpha > 0, is the penalty at the max length) keeps every
    sentence in the batch for longer: on the quick model it made beam search
    much slower for a negligible BLEU gain.

    With ``beam_size=1`` this is :func:`greedy_search`, which returns the same
    output faster.

    Args:
        source_ids: ``int32 [batch, src_len]``, 0-padded, each row ending in EOS.
        beam_size: K, the hypotheses kept per sentence.
        alpha: length penalty exponent; 0 ranks by log-probability alone.
        with_attention: keep each hypothesis' attention weights (for alignments);
            off, ``attention`` is ``[batch, beam, 0, src_len]`` and the loop
            does not copy a growing ``[batch, 2K, t, src_len]`` history each step.
    """
    if beam_size < 1:
        raise ValueError(f"beam size must be at least 1, got {beam_size}")
    if alpha < 0:
        raise ValueError(f"length penalty alpha must be >= 0, got {alpha}")
    if decode.shards > 1:
        return in_shards(
            lambda part: beam_search(models, part, replace(decode, shards=1), beam_size, alpha, with_attention),
            source_ids,
            decode.shards,
        )
    if beam_size == 1:
        greedy = greedy_search(models, source_ids, decode)  # its attention costs little: one row a step
        return BeamResult(
            greedy.ids[:, None], greedy.lengths[:, None], greedy.scores[:, None], greedy.attention[:, None]
        )
    k = beam_size
    batch = tf.shape(source_ids)[0]
    src_len = tf.shape(source_ids)[1]
    sentences, states, max_steps = _open_sentences(models, source_ids, decode)
    minus_inf = tf.constant(-float("inf"))

    def gather_beams(x, index):
        """x ``[sentences, beams, ...]``, index ``[sentences, n]`` -> ``[sentences, n, ...]``."""
        return tf.gather(x, index, batch_dims=1)

    def body(state: _BeamState) -> _BeamState:
        t, sentences, alive, finished = state.step, state.sentences, state.alive, state.finished
        open_count = tf.shape(sentences.active)[0]
        logits, weights, new_states = _step(models, sentences, state.decoder)
        cand_logp, cand_beam, cand_token = best_extensions(logits, alive.logp, 2 * k)
        cand_seq = tf.concat([gather_beams(alive.ids, cand_beam), cand_token[:, :, None]], axis=2)
        if with_attention:
            step_weights = gather_beams(tf.reshape(weights, [open_count, k, src_len]), cand_beam)
            cand_attn = tf.concat([gather_beams(alive.attention, cand_beam), step_weights[:, :, None]], axis=2)

        is_eos = tf.equal(cand_token, EOS_ID)
        at_limit = (t + 1 >= sentences.limits)[:, None]
        ends = is_eos | at_limit
        cand_len = tf.where(is_eos, t, t + 1)
        cand_scores = tf.where(ends, cand_logp / length_penalty(t + 1, alpha), minus_inf)

        # The K best of (old finished, newly ended); old ones are padded by one step.
        padded_seq = tf.pad(finished.ids, [[0, 0], [0, 0], [0, 1]])
        ended_seq = tf.where(
            is_eos[:, :, None], tf.concat([cand_seq[:, :, :-1], tf.zeros_like(cand_seq[:, :, :1])], axis=2), cand_seq
        )
        fin_scores, best = tf.math.top_k(tf.concat([finished.scores, cand_scores], axis=1), k=k)
        fin_seq = gather_beams(tf.concat([padded_seq, ended_seq], axis=1), best)
        fin_attn = finished.attention
        if with_attention:
            padded_attn = tf.pad(finished.attention, [[0, 0], [0, 0], [0, 1], [0, 0]])
            fin_attn = gather_beams(tf.concat([padded_attn, cand_attn], axis=1), best)
        fin_len = gather_beams(tf.concat([finished.lengths, cand_len], axis=1), best)
        finished = _Hypotheses(fin_seq, fin_attn, fin_len, fin_scores)

        # The K best extensions that go on, and the states of the beams they extend.
        alive_logp, keep = tf.math.top_k(tf.where(is_eos, minus_inf, cand_logp), k=k)
        alive_attn = gather_beams(cand_attn, keep) if with_attention else alive.attention
        alive = _Alive(gather_beams(cand_seq, keep), alive_attn, alive_logp)
        last = tf.reshape(gather_beams(cand_token, keep), [-1])
        parent_rows = tf.reshape(gather_beams(cand_beam, keep) + (tf.range(open_count) * k)[:, None], [-1])
        decoder = _Decoder(last, [tf.gather(s, parent_rows) for s in new_states])

        done = at_limit[:, 0] | (finished.scores[:, -1] > minus_inf)

        def write_out(done_index):
            """The done sentences' K best go to the outputs, at their places in the batch."""
            where = tf.gather(sentences.active, done_index)[:, None]
            pad = max_steps - tf.shape(finished.ids)[2]

            def put(out, hypotheses):
                hypotheses = tf.gather(hypotheses, done_index)
                if hypotheses.shape.rank > 2:  # ids and attention: padded along time to max_steps
                    hypotheses = tf.pad(hypotheses, [[0, 0], [0, 0], [0, pad]] + [[0, 0]] * (hypotheses.shape.rank - 3))
                return tf.tensor_scatter_nd_update(out, where, hypotheses)

            # Without attention the outputs hold none ([batch, K, 0, src_len]): nothing to write there.
            names = [name for name in _Hypotheses._fields if with_attention or name != "attention"]
            written = {name: put(getattr(state.out, name), getattr(finished, name)) for name in names}
            return state.out._replace(**written)

        (sentences, alive, finished), decoder, out = _retire_done(
            done, (sentences, alive, finished), decoder, k, state.out, write_out
        )
        return _BeamState(t + 1, sentences, decoder, alive, finished, out)

    def no_hypotheses(steps, attention_steps):
        """``[batch, K, ...]``: no hypothesis (score -inf) with room for ``steps`` pieces."""
        return _Hypotheses(
            ids=tf.zeros([batch, k, steps], tf.int32),
            attention=tf.zeros([batch, k, attention_steps, src_len]),
            lengths=tf.zeros([batch, k], tf.int32),
            scores=tf.fill([batch, k], minus_inf),
        )

    state = _BeamState(
        step=tf.constant(0),
        sentences=sentences,
        decoder=_Decoder(tf.fill([batch * k], BOS_ID), [tf.repeat(s, k, axis=0) for s in states]),
        alive=_Alive(
            ids=tf.zeros([batch, k, 0], tf.int32),
            attention=tf.zeros([batch, k, 0, src_len]),
            logp=tf.concat([tf.zeros([batch, 1]), tf.fill([batch, k - 1], minus_inf)], axis=1),  # one beam at first
        ),
        finished=no_hypotheses(0, 0),
        out=no_hypotheses(max_steps, max_steps if with_attention else 0),
    )
    state = _while_open(body, state, max_steps, decode)
    t, out = state.step, state.out
    return BeamResult(
        ids=out.ids[:, :, :t],
        lengths=out.lengths,
        scores=out.scores,
        attention=out.attention[:, :, :t] if with_attention else out.attention,
    )
