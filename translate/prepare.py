"""``python -m translate prepare``: corpus -> cleaned splits, SentencePiece models, stats.

A prepared run folder::

    data/train.src data/train.tgt      one sentence per line, UTF-8, line-aligned
    data/dev.src   data/dev.tgt
    data/test.src  data/test.tgt
    src.model tgt.model                SentencePiece models trained on a train sample
    stats.json                         what was read, changed, removed (by reason), kept

The corpus is streamed twice through files, never held in memory: pass 1
reads, cleans (:mod:`translate.cleaning`), assigns splits and remembers a
64-bit hash per pair and a bounded random sample for SentencePiece; pass 2
drops duplicates (found with numpy on the hashes), drops training pairs that
are too long or too unequal in subword pieces, and writes the final files.
Every file is written under a temporary name beside its final one and
renamed into place at the end (:mod:`translate.atomic`), ``stats.json`` last:
until it is there the folder counts as unprepared, so an interrupted prepare
leaves nothing half-written in use. Prepare replaces only the files it makes;
a run folder whose ``data/`` holds anything else, or that holds a trained
model, is refused before anything is written (:mod:`translate.run_folder`).

Splits do not move: the Bible splits by book; other corpora by a hash of the
cleaned pair (:func:`translate.corpora.hash_split`), so appending or shuffling
lines never moves an existing pair; or explicit ``data.dev_corpus`` /
``data.test_corpus``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import random
import secrets
import shutil
import time
from array import array
from collections import Counter
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import sentencepiece as spm
from tqdm import tqdm

from translate.atomic import (
    TEMPORARY_PREFIX,
    atomic_path,
    make_folders,
    remove_empty_folders,
    remove_stale_temporaries,
)
from translate.cleaning import CleaningCounts, CleaningOptions, clean_pair
from translate.config import Config, DataConfig
from translate.corpora import TSV_MIN_PAIRS_TO_SPLIT, hash_split, read_pairs
from translate.reuse import (
    SYNTHETIC_TAG,
    check_prepared_source,
    has_synthetic_tag,
    init_sentencepiece,
    reused_data,
    same_folder,
    same_source,
    synthetic_spec,
    tag_source,
)
from translate.run_folder import DATA_DIR, DATA_FILES, SENTENCEPIECE_MODELS, SPLITS, STATS, check_prepare
from translate.vocabulary import train_sentencepiece

log = logging.getLogger(__name__)

TOO_LONG = "too long"
RATIO = "length ratio"
DUPLICATE = "duplicate"
IN_DEV_OR_TEST = "also in dev or test"
SYNTHETIC_HELD_OUT = "synthetic, target in dev or test"
# The ratio filter leaves short pairs alone: "Yes." / "Sí, señor." is fine.
RATIO_MIN_PIECES = 6


@dataclass
class Prepared:
    """A prepared run folder."""

    run_dir: Path
    pairs: dict[str, int]
    src_model: bytes
    tgt_model: bytes
    stats: dict

    def files(self, split: str) -> tuple[Path, Path]:
        """(source file, target file) of a split."""
        return split_files(self.run_dir, split)

    def read(self, split: str, limit: int | None = None) -> list[tuple[str, str]]:
        """The first ``limit`` pairs of a split (all when None), in memory: for dev and test sets."""
        return read_split(self.run_dir, split, limit)


def split_files(run_dir: Path, split: str) -> tuple[Path, Path]:
    return run_dir / DATA_DIR / f"{split}.src", run_dir / DATA_DIR / f"{split}.tgt"


def read_split(run_dir: Path, split: str, limit: int | None = None) -> list[tuple[str, str]]:
    """The first ``limit`` pairs (all when None) of a prepared split, in memory."""
    return _read_pairs(*split_files(Path(run_dir), split), limit)


def _read_pairs(src_path: Path, tgt_path: Path, limit: int | None = None) -> list[tuple[str, str]]:
    pairs = []
    with open(src_path, encoding="utf-8") as src, open(tgt_path, encoding="utf-8") as tgt:
        for source, target in zip(src, tgt):
            if limit is not None and len(pairs) >= limit:
                break
            pairs.append((source.rstrip("\n"), target.rstrip("\n")))
    return pairs


def _pair_hash(source: str, target: str) -> int:
    return int.from_bytes(hashlib.blake2b(f"{source}\t{target}".encode(), digest_size=8).digest(), "little")


class _Pass1:
    """Pass 1 state: open split files, hashes, the SentencePiece sample."""

    def __init__(self, scratch: dict[str, tuple[Path, Path]], stack: ExitStack, sample_size: int, seed: int):
        self.files = {
            split: (
                stack.enter_context(open(scratch[split][0], "w", encoding="utf-8")),
                stack.enter_context(open(scratch[split][1], "w", encoding="utf-8")),
            )
            for split in SPLITS
        }
        self.hashes = {split: array("Q") for split in SPLITS}
        # Hashes of the target side alone, to keep synthetic pairs whose target is held out out of training.
        self.target_hashes = {split: array("Q") for split in SPLITS}
        self.sample: list[tuple[str, str]] = []
        self.sample_size = sample_size
        self.seen_train = 0
        self.random = random.Random(seed)

    def add(self, split: str, source: str, target: str) -> None:
        src, tgt = self.files[split]
        src.write(source + "\n")
        tgt.write(target + "\n")
        self.hashes[split].append(_pair_hash(source, target))
        self.target_hashes[split].append(_pair_hash("", target))
        if split == "train":
            # Reservoir sampling (Vitter's algorithm R): a uniform sample in bounded memory.
            self.seen_train += 1
            if len(self.sample) < self.sample_size:
                self.sample.append((source, target))
            else:
                slot = self.random.randrange(self.seen_train)
                if slot < self.sample_size:
                    self.sample[slot] = (source, target)


def _read_cleaned(
    spec: str,
    options: CleaningOptions,
    on_error: str,
    skipped: Counter,
    counts: CleaningCounts,
    read_counts: Counter,
    progress: bool,
    max_line_bytes: int | None = None,
) -> Iterator[tuple[str, str, str | None]]:
    """The corpus' pairs, cleaned; ``read_counts[spec]`` counts every pair read, kept or not."""
    reader = read_pairs(spec, on_error=on_error, skipped=skipped, max_line_bytes=max_line_bytes)
    for source, target, split in tqdm(
        reader, desc=f"reading {spec}", unit=" pairs", disable=not progress, mininterval=2.0
    ):
        read_counts[spec] += 1
        pair = clean_pair(source, target, options, counts)
        if pair is not None:
            yield pair[0], pair[1], split


def _first_occurrences(hashes: np.ndarray) -> np.ndarray:
    """Boolean mask: True at the first occurrence of each hash."""
    keep = np.zeros(len(hashes), dtype=bool)
    if len(hashes):
        _, first = np.unique(hashes, return_index=True)
        keep[first] = True
    return keep


def _percentiles(lengths: np.ndarray) -> dict[str, int]:
    if len(lengths) == 0:
        return {"p50": 0, "p95": 0, "max": 0}
    p50, p95 = np.percentile(lengths, [50, 95])
    return {"p50": int(round(p50)), "p95": int(round(p95)), "max": int(lengths.max())}


def _lengths(processor: spm.SentencePieceProcessor, lines: list[str]) -> np.ndarray:
    return np.fromiter(
        (len(ids) for ids in processor.encode(lines, num_threads=os.cpu_count() or 1)), dtype=np.int64, count=len(lines)
    )


def _chunks(src_path: Path, tgt_path: Path, size: int = 20_000) -> Iterator[tuple[list[str], list[str]]]:
    with open(src_path, encoding="utf-8") as src, open(tgt_path, encoding="utf-8") as tgt:
        sources, targets = [], []
        for source, target in zip(src, tgt):
            sources.append(source.rstrip("\n"))
            targets.append(target.rstrip("\n"))
            if len(sources) == size:
                yield sources, targets
                sources, targets = [], []
        if sources:
            yield sources, targets


def _removal_summary(removed: Counter) -> str:
    return ", ".join(f"{reason} {count:,}" for reason, count in removed.most_common()) or "nothing"


def prepare(config: Config, progress: bool = True) -> Prepared:
    """Prepares ``config.run_dir`` from ``config.data`` and returns it.

    Raises:
        ValueError: the run folder may not be prepared (see
            :func:`translate.run_folder.check_prepare`; nothing is written then),
            or the corpus is unreadable or empty after cleaning; ``data.reuse_from`` or
            ``train.init_from`` names no usable run.

    With ``data.reuse_from`` the splits, models and statistics are copied from
    that run (:func:`_copy_preparation`) and no corpus is read; with
    ``train.init_from`` that run's SentencePiece models encode the corpus
    instead of new ones. ``data.synthetic`` pairs join the training split
    only, their sources tagged (:data:`translate.reuse.SYNTHETIC_TAG`); a
    synthetic pair whose target is a dev or test target is dropped.
    """
    config = reused_data(config)
    check_prepare(config)
    if config.data.reuse_from:
        return _copy_preparation(config)
    data = config.data
    fixed_models = init_sentencepiece(config)
    if fixed_models and data.synthetic and not has_synthetic_tag(fixed_models[0]):
        raise ValueError(
            f"data.synthetic needs {SYNTHETIC_TAG} as one piece of the source SentencePiece model, and "
            f"train.init_from={config.train.init_from}'s has none (it was trained without data.synthetic)"
        )
    run_dir = Path(config.run_dir)
    data_dir = run_dir / DATA_DIR
    created = make_folders(data_dir)
    for folder in (run_dir, data_dir):
        remove_stale_temporaries(folder)  # what a killed prepare or train left
    started = time.monotonic()
    options = CleaningOptions(strip_markup=data.strip_markup, unicode_form=data.unicode_form, lowercase=data.lowercase)
    counts = CleaningCounts()
    skipped: Counter = Counter()
    read_counts: Counter = Counter()
    # Pass 1's files are named like atomic temporaries, so a killed run's are cleared like theirs.
    scratch = {
        split: (_scratch_path(data_dir, f"pass1.{split}.src"), _scratch_path(data_dir, f"pass1.{split}.tgt"))
        for split in SPLITS
    }
    synthetic_scratch = (_scratch_path(data_dir, "pass1.synthetic.src"), _scratch_path(data_dir, "pass1.synthetic.tgt"))
    synthetic_hashes, synthetic_target_hashes = array("Q"), array("Q")
    try:
        # Pass 1: read, clean, split, hash, sample.
        with ExitStack() as stack:
            state = _Pass1(scratch, stack, data.sentencepiece_sample, config.train.seed)
            explicit = {"dev": data.dev_corpus, "test": data.test_corpus}
            fixed_splits = False
            for source, target, split in _read_cleaned(
                data.corpus, options, data.on_error, skipped, counts, read_counts, progress, data.max_line_bytes
            ):
                fixed_splits = fixed_splits or split is not None
                if split is None:
                    split = hash_split(source, target)
                if explicit.get(split):
                    split = "train"
                state.add(split, source, target)
            for split, spec in explicit.items():
                if spec:
                    for source, target, _ in _read_cleaned(
                        spec, options, data.on_error, skipped, counts, read_counts, progress, data.max_line_bytes
                    ):
                        state.add(split, source, target)
            if data.synthetic:
                # Into files of their own: they join the training split only after the tiny-corpus merge below.
                out_src = stack.enter_context(open(synthetic_scratch[0], "w", encoding="utf-8"))
                out_tgt = stack.enter_context(open(synthetic_scratch[1], "w", encoding="utf-8"))
                for source, target, _ in _read_cleaned(
                    synthetic_spec(data.synthetic),
                    options,
                    data.on_error,
                    skipped,
                    counts,
                    read_counts,
                    progress,
                    data.max_line_bytes,
                ):
                    tagged = tag_source(source)
                    out_src.write(tagged + "\n")
                    out_tgt.write(target + "\n")
                    synthetic_hashes.append(_pair_hash(tagged, target))
                    synthetic_target_hashes.append(_pair_hash("", target))
        hashes = {split: np.frombuffer(state.hashes[split], dtype=np.uint64) for split in SPLITS}
        total = sum(len(h) for h in hashes.values())
        if total == 0:
            raise ValueError(
                f"corpus {data.corpus} is empty after cleaning: read {sum(read_counts.values()):,} "
                f"pairs; removed: {_removal_summary(counts.removed)}; "
                f"skipped lines: {_removal_summary(skipped)}"
            )
        merged = total < TSV_MIN_PAIRS_TO_SPLIT and not fixed_splits and not any(explicit.values())
        if merged:
            # Too few pairs to hold any out: every split is the whole corpus (tiny test corpora).
            log.warning("only %d pairs: using all of them for train, dev and test alike", total)
            _merge_all_splits(scratch, hashes)
            hashes = {split: np.concatenate([hashes[s] for s in SPLITS]) for split in SPLITS}
            state.sample = _read_pairs(*scratch["train"])
        # The synthetic pairs follow the real ones in the training split; SentencePiece learns from real text only.
        synthetic_from = len(hashes["train"])
        if data.synthetic:
            for side in (0, 1):
                with open(scratch["train"][side], "a", encoding="utf-8") as out:
                    with open(synthetic_scratch[side], encoding="utf-8") as synthetic:
                        shutil.copyfileobj(synthetic, out)
            hashes["train"] = np.concatenate([hashes["train"], np.frombuffer(synthetic_hashes, dtype=np.uint64)])

        removed = {split: Counter() for split in SPLITS}
        if not len(hashes["train"]) or not state.sample:
            raise ValueError(
                f"corpus {data.corpus} has no training pairs after cleaning; removed: "
                f"{_removal_summary(counts.removed)}"
            )
        sample_pairs = len(state.sample)
        if fixed_models:
            log.info("encoding with the SentencePiece models of train.init_from=%s", config.train.init_from)
            src_model, tgt_model = fixed_models
            sample_pairs = 0
        else:
            log.info("training SentencePiece models on a sample of %d pairs", sample_pairs)
            src_model = train_sentencepiece(
                (s for s, _ in state.sample),
                data.src_vocab_size,
                data.subword_model,
                data.sentencepiece_sample,
                user_defined_symbols=(SYNTHETIC_TAG,) if data.synthetic else (),
            )
            tgt_model = train_sentencepiece(
                (t for _, t in state.sample), data.tgt_vocab_size, data.subword_model, data.sentencepiece_sample
            )
        state.sample = []
        processors = (
            spm.SentencePieceProcessor(model_proto=src_model),
            spm.SentencePieceProcessor(model_proto=tgt_model),
        )

        # Every final file is written under its temporary name; leaving this block renames them all, in the
        # reverse order of entering it: the splits, then the models, then stats.json, the one that makes the
        # new preparation count. An error anywhere inside removes the temporaries and leaves the old files.
        with ExitStack() as install:
            stats_tmp = install.enter_context(atomic_path(run_dir / STATS))
            model_tmps = [install.enter_context(atomic_path(run_dir / name)) for name in ("src.model", "tgt.model")]
            split_tmps = {
                split: tuple(install.enter_context(atomic_path(path)) for path in split_files(run_dir, split))
                for split in SPLITS
            }

            # Pass 2: drop duplicates (and train pairs that are in dev/test), then length filters on train.
            held_out = np.concatenate([hashes["dev"], hashes["test"]])
            held_out_targets = np.concatenate(
                [np.frombuffer(state.target_hashes[split], dtype=np.uint64) for split in ("dev", "test")]
            )
            kept, lengths = {}, {}
            synthetic_kept = 0
            for split in SPLITS:
                keep = _first_occurrences(hashes[split])
                removed[split][DUPLICATE] = int((~keep).sum())
                if split == "train" and len(held_out) and not merged:
                    in_held_out = np.isin(hashes[split], held_out) & keep
                    removed[split][IN_DEV_OR_TEST] = int(in_held_out.sum())
                    keep &= ~in_held_out
                if split == "train" and data.synthetic and not merged:
                    # A back-translated dev or test target would put the held-out reference into training.
                    targets = np.frombuffer(synthetic_target_hashes, dtype=np.uint64)
                    leaked = np.isin(targets, held_out_targets) & keep[synthetic_from:]
                    removed[split][SYNTHETIC_HELD_OUT] = int(leaked.sum())
                    keep[synthetic_from:] &= ~leaked
                kept[split], lengths[split], in_tail = _write_split(
                    scratch[split],
                    split_tmps[split],
                    split,
                    keep,
                    processors,
                    data,
                    removed[split],
                    progress,
                    tail_from=synthetic_from if split == "train" else None,
                )
                synthetic_kept += in_tail
            for split in ("train", "dev"):
                if kept[split] == 0:
                    raise ValueError(
                        f"corpus {data.corpus} has no {split} pairs after cleaning; removed in {split}: "
                        f"{_removal_summary(removed[split])}; before: {_removal_summary(counts.removed)}"
                    )

            stats = {
                "corpus": data.corpus,
                "dev_corpus": data.dev_corpus,
                "test_corpus": data.test_corpus,
                "pairs_read": dict(read_counts),
                "lines_skipped": dict(skipped),
                "pairs_changed": dict(counts.changed),
                "pairs_removed": {
                    "while cleaning": dict(counts.removed),
                    **{split: {reason: n for reason, n in removed[split].items() if n} for split in SPLITS},
                },
                "pairs": kept,
                "length_pieces": {
                    split: {"source": _percentiles(lengths[split][0]), "target": _percentiles(lengths[split][1])}
                    for split in SPLITS
                },
                "sentencepiece": {
                    "sample_pairs": sample_pairs,
                    "src_vocab": processors[0].get_piece_size(),
                    "tgt_vocab": processors[1].get_piece_size(),
                    **({"from": config.train.init_from} if fixed_models else {}),
                },
                **(
                    {
                        "synthetic": {
                            "file": data.synthetic,
                            "tag": SYNTHETIC_TAG,
                            "pairs_read": len(synthetic_hashes),
                            "in_train": synthetic_kept,
                        }
                    }
                    if data.synthetic
                    else {}
                ),
                "seconds": round(time.monotonic() - started, 1),
                "data_config": dataclasses.asdict(data),
            }
            for tmp, proto in zip(model_tmps, (src_model, tgt_model)):
                tmp.write_bytes(proto)
            stats_tmp.write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            # The old preparation stops counting before its files are replaced: a kill among the renames
            # leaves an unprepared folder, never old statistics over new splits.
            (run_dir / STATS).unlink(missing_ok=True)
    finally:
        for path in (*(path for pair in scratch.values() for path in pair), *synthetic_scratch):
            path.unlink(missing_ok=True)
        remove_empty_folders(created)  # only those a failed prepare left empty
    log.info("prepared %s: %s", run_dir, ", ".join(f"{s} {n:,}" for s, n in kept.items()))
    return Prepared(run_dir, kept, src_model, tgt_model, stats)


def _copy_preparation(config: Config) -> Prepared:
    """``data.reuse_from``: that run's splits, SentencePiece models and statistics, copied byte for byte.

    Written as prepare writes (temporary names, renamed at the end, ``stats.json`` last); the run copied
    from is only read. ``stats.json`` names it (``reused_from``) and records the data settings in force.
    """
    source, run_dir = check_prepared_source(config.data.reuse_from), Path(config.run_dir)
    data_dir = run_dir / DATA_DIR
    try:
        stats = json.loads((source / STATS).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise ValueError(f"data.reuse_from={config.data.reuse_from}: cannot read its {STATS}: {err}") from None
    stats["reused_from"] = os.path.normpath(config.data.reuse_from)
    # The settings that made the files copied here: the source's as it is now.
    stats["data_config"] = {**stats.get("data_config", {}), "reuse_from": config.data.reuse_from}
    names = [*SENTENCEPIECE_MODELS, *(f"{DATA_DIR}/{name}" for name in DATA_FILES)]
    created = make_folders(data_dir)
    for folder in (run_dir, data_dir):
        remove_stale_temporaries(folder)
    try:
        with ExitStack() as install:
            stats_tmp = install.enter_context(atomic_path(run_dir / STATS))
            for name in names:
                shutil.copyfile(source / name, install.enter_context(atomic_path(run_dir / name)))
            stats_tmp.write_text(json.dumps(stats, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
            (run_dir / STATS).unlink(missing_ok=True)
    finally:
        remove_empty_folders(created)  # only those a failed copy left empty
    log.info("prepared %s as a copy of %s (data.reuse_from)", run_dir, source)
    models = tuple((run_dir / name).read_bytes() for name in SENTENCEPIECE_MODELS)
    return Prepared(run_dir, stats["pairs"], models[0], models[1], stats)


def _scratch_path(folder: Path, name: str) -> Path:
    """A temporary file name in :mod:`translate.atomic`'s form, for a file that is never renamed into place."""
    return folder / f"{TEMPORARY_PREFIX}{name}-{secrets.token_hex(4)}"


def _merge_all_splits(scratch: dict[str, tuple[Path, Path]], hashes: dict) -> None:
    for side in (0, 1):
        merged = "".join(scratch[split][side].read_text(encoding="utf-8") for split in SPLITS)
        for split in SPLITS:
            scratch[split][side].write_text(merged, encoding="utf-8")


def _write_split(
    pass1: tuple[Path, Path],
    out: tuple[Path, Path],
    split: str,
    keep: np.ndarray,
    processors,
    data: DataConfig,
    removed: Counter,
    progress: bool,
    tail_from: int | None = None,
) -> tuple[int, tuple[np.ndarray, np.ndarray], int]:
    """Writes the kept pairs of one split from pass 1's files to ``out``; returns the count, the piece
    lengths per side, and how many of the kept pairs come from index ``tail_from`` on (the synthetic ones)."""
    src_lengths, tgt_lengths = [], []
    index = kept = in_tail = 0
    with open(out[0], "w", encoding="utf-8") as w_src, open(out[1], "w", encoding="utf-8") as w_tgt:
        chunks = _chunks(*pass1)
        for sources, targets in tqdm(
            chunks, desc=f"filtering {split}", unit=" chunks", disable=not progress, mininterval=2.0
        ):
            mask = keep[index : index + len(sources)]
            positions = np.arange(index, index + len(sources))[mask]
            index += len(sources)
            sources = [s for s, k in zip(sources, mask) if k]
            targets = [t for t, k in zip(targets, mask) if k]
            if not sources:
                continue
            s_len, t_len = _lengths(processors[0], sources), _lengths(processors[1], targets)
            ok = np.ones(len(sources), dtype=bool)
            if split == "train":
                # Held-out sets are never filtered by length: scores must cover all of them.
                too_long = (s_len > data.max_pieces) | (t_len > data.max_pieces)
                longer, shorter = np.maximum(s_len, t_len), np.maximum(np.minimum(s_len, t_len), 1)
                unequal = ~too_long & (longer >= RATIO_MIN_PIECES) & (longer / shorter > data.max_length_ratio)
                removed[TOO_LONG] += int(too_long.sum())
                removed[RATIO] += int(unequal.sum())
                ok = ~too_long & ~unequal
            for source, target, good in zip(sources, targets, ok):
                if good:
                    w_src.write(source + "\n")
                    w_tgt.write(target + "\n")
            kept += int(ok.sum())
            if tail_from is not None:
                in_tail += int((ok & (positions >= tail_from)).sum())
            src_lengths.append(s_len[ok])
            tgt_lengths.append(t_len[ok])
    join = lambda parts: np.concatenate(parts) if parts else np.zeros(0, np.int64)  # noqa: E731
    return kept, (join(src_lengths), join(tgt_lengths)), in_tail


def load_prepared(config: Config) -> Prepared | None:
    """The preparation in ``config.run_dir`` if there is one; it must match ``config.data``
    (``data.reuse_from``'s settings when it is set: :func:`translate.reuse.reused_data`)."""
    config = reused_data(config)
    run_dir = Path(config.run_dir)
    stats_path = run_dir / STATS
    if not stats_path.is_file() or not (run_dir / DATA_DIR).is_dir():
        return None
    stats = json.loads(stats_path.read_text(encoding="utf-8"))
    wanted = dataclasses.asdict(config.data)
    # A key newer than the preparation was at its default then (data.max_line_bytes: the fixed cap before).
    prepared_with = {**dataclasses.asdict(DataConfig()), **stats.get("data_config", {})}
    differs = sorted(key for key in wanted if prepared_with.get(key) != wanted[key])
    if "reuse_from" in differs and _same_run(prepared_with.get("reuse_from"), wanted["reuse_from"]):
        differs.remove("reuse_from")  # the same run, named otherwise (runs/a, ./runs/a/, its absolute path)
    if differs:
        raise ValueError(
            f"run folder {run_dir} was prepared with other data settings "
            f"({', '.join('data.' + k for k in differs)}): prepare it again or use another run_dir"
        )
    return Prepared(
        run_dir, stats["pairs"], (run_dir / "src.model").read_bytes(), (run_dir / "tgt.model").read_bytes(), stats
    )


def _same_run(recorded, given) -> bool:
    return (
        isinstance(recorded, str)
        and isinstance(given, str)
        and (same_source(recorded, given) or same_folder(recorded, given))
    )


def prepare_or_load(config: Config, progress: bool = True) -> Prepared:
    """Reuses the run folder's preparation, or prepares it."""
    prepared = load_prepared(config)
    if prepared is not None:
        log.info(
            "reusing the prepared data in %s (%s)",
            prepared.run_dir,
            ", ".join(f"{s} {n:,}" for s, n in prepared.pairs.items()),
        )
        return prepared
    return prepare(config, progress)
