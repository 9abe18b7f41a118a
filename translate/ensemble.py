"""Ensembles inside one graph: several trained runs decoded together, as one model to the search.

:class:`Ensemble` holds the members' models (:class:`translate.model.Seq2Seq`)
and offers the two calls the search makes of a model (``encoder`` and
``step``, :mod:`translate.search`), so greedy, beam and sampling search, and
with them every signature of an export, run an ensemble unchanged:

* ``encoder(source_ids)`` runs every member's encoder; the memories and keys
  travel as tuples, one tensor per member (members may differ in width), the
  decoder states as one flat list, the members' states one after another;
* ``step(...)`` runs every member's decoder step and returns, in place of
  logits, the mean over members of their log-probabilities,
  ``mean_m log_softmax(logits_m)`` ``[rows, vocab]``; the attention weights
  returned are the members' mean ``[rows, src_len]`` (what ``align`` shows).

The search turns whatever the step returns into log-probabilities with a
log-softmax, so the ensemble's distribution at each step is the renormalized
geometric mean of the members' distributions, ``p(y) ∝ prod_m p_m(y)^(1/M)``
(a log-linear combination with equal weights). Averaging log-probabilities is
what OpenNMT-py's ensemble decoding does by default (``EnsembleGenerator`` in
``onmt/decoders/ensemble.py``: the mean of the members' log-softmax outputs,
with ``-avg_raw_probs`` for the mean of probabilities instead); fairseq's
``EnsembleModel`` averages probabilities (the log of their mean). Both agree
that M identical members decode exactly as one, which the tests check; the
geometric mean is the sharper of the two, favouring pieces all members find
likely.

The members must share both SentencePiece models (the same piece ids on both
sides): :func:`check_members` compares the runs' ``src.model`` and
``tgt.model`` bytes and refuses, with one line, runs that differ.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from pathlib import Path

from translate.run_folder import BEST_WEIGHTS, CONFIG, SENTENCEPIECE_MODELS

log = logging.getLogger(__name__)


def check_members(run_dirs: Sequence[str | Path]) -> tuple[bytes, bytes]:
    """Refuses (``ValueError``, one line) fewer than two runs, a folder that is no trained run, or runs whose
    SentencePiece models differ; returns the shared ``(src.model, tgt.model)`` bytes. Reads no weights."""
    if len(run_dirs) < 2:
        raise ValueError("an ensemble needs at least two runs")
    shared: tuple[bytes, bytes] | None = None
    for run_dir in map(Path, run_dirs):
        if not (run_dir / CONFIG).is_file():
            raise ValueError(f"not a run folder (no {CONFIG}): {run_dir}")
        if not (run_dir / BEST_WEIGHTS).is_file():
            raise ValueError(f"run folder has no trained weights ({BEST_WEIGHTS}): {run_dir}")
        missing = [name for name in SENTENCEPIECE_MODELS if not (run_dir / name).is_file()]
        if missing:
            raise ValueError(f"run folder has no {' or '.join(missing)}: {run_dir}")
        models = tuple((run_dir / name).read_bytes() for name in SENTENCEPIECE_MODELS)
        if shared is None:
            shared, first = models, run_dir
            continue
        for name, mine, theirs in zip(SENTENCEPIECE_MODELS, models, shared):
            if mine != theirs:
                raise ValueError(
                    f"runs {first} and {run_dir} do not share their SentencePiece models ({name} differs): "
                    "an ensemble's members must use the same vocabularies (train the others with "
                    f"data.reuse_from={first})"
                )
    return shared


class Ensemble:
    """M models with the same vocabularies, as one model to :mod:`translate.search`.

    Args:
        members: objects with ``encoder`` and ``step`` as :func:`translate.model.build_models`
            makes them (outputs in float32), and ``config`` (the member's ``ModelConfig``),
            ``src_vocab_size`` and ``tgt_vocab_size``.

    ``encoder(source_ids [batch, src_len])`` -> ``[memory, keys, source_mask, *states]``:
    memory and keys tuples of M tensors ``[batch, src_len, width_m]``, the mask
    ``bool [batch, src_len]``, the states every member's in turn.

    ``step([prev [rows, 1], memory, keys, source_mask, *states])`` ->
    ``[log_probs [rows, vocab], weights [rows, src_len], *new_states]``, with
    ``log_probs`` the members' mean log-softmax (module docstring).
    """

    def __init__(self, members: Sequence):
        from translate.model import decoder_state_sizes

        members = list(members)
        if len(members) < 2:
            raise ValueError("an ensemble needs at least two models")
        sizes = {(m.src_vocab_size, m.tgt_vocab_size) for m in members}
        if len(sizes) > 1:
            raise ValueError(
                f"the ensemble's members have different vocabulary sizes (source, target): {sorted(sizes)}"
            )
        self.members = members
        self.src_vocab_size, self.tgt_vocab_size = sizes.pop()
        self.config = members[0].config
        self._state_counts = [len(decoder_state_sizes(m.config)) for m in members]

    def _split_states(self, states) -> list[list]:
        """The flat states -> one list per member."""
        out, start = [], 0
        for count in self._state_counts:
            out.append(list(states[start : start + count]))
            start += count
        return out

    def encoder(self, source_ids, training=False):
        outputs = [m.encoder(source_ids, training=training) for m in self.members]
        memory = tuple(out[0] for out in outputs)
        keys = tuple(out[1] for out in outputs)
        states = [state for out in outputs for state in out[3:]]
        return [memory, keys, outputs[0][2], *states]

    def step(self, inputs, training=False):
        import tensorflow as tf

        prev, memory, keys, source_mask, *states = inputs
        log_probs, weights, new_states = [], [], []
        for i, (member, member_states) in enumerate(zip(self.members, self._split_states(states))):
            logits, member_weights, *member_new = member.step(
                [prev, memory[i], keys[i], source_mask, *member_states], training=training
            )
            log_probs.append(tf.nn.log_softmax(logits, axis=-1))
            weights.append(member_weights)
            new_states += member_new
        return [tf.add_n(log_probs) / len(log_probs), tf.add_n(weights) / len(weights), *new_states]


def load_ensemble(run_dirs: Sequence[str | Path], overrides: Sequence[str] = (), decode=None):
    """The runs' best weights as one :class:`translate.inference.TranslationGraph`.

    Decoding settings (beam, alpha, length limits, shards) come from the first
    run's config with ``overrides`` applied, or are ``decode`` (a
    :class:`translate.config.DecodeConfig`) when given. Returns ``(graph,
    config, src_model, tgt_model)`` for :func:`translate.export.export`.

    Raises:
        ValueError: one line, as :func:`check_members`.
    """
    from translate.inference import TranslationGraph
    from translate.training import load_run

    src_model, tgt_model = check_members(run_dirs)
    runs = [load_run(run_dir, list(overrides)) for run_dir in run_dirs]
    config = runs[0].config if decode is None else dataclasses.replace(runs[0].config, decode=decode)
    graph = TranslationGraph(Ensemble([run.models for run in runs]), src_model, tgt_model, config.decode)
    log.info("ensemble of %d runs: %s", len(runs), ", ".join(str(r) for r in run_dirs))
    return graph, config, src_model, tgt_model
