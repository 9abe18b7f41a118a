"""Scores with sacrebleu (Post 2018): BLEU, chrF and TER with their signatures.

Scores are computed on detokenized text against raw references, as sacrebleu
intends, so they are comparable with published numbers for the same test set.
Besides corpus scores: several references per sentence (:func:`score` takes
one stream per reference translation), per-sentence scores sorted worst
first (:func:`sentence_scores`), and sacrebleu's paired bootstrap resampling
test between systems (:func:`compare`, Koehn 2004).

:func:`evaluate_systems` is ``python -m translate evaluate``: it reads and
checks every file, then translates with the models and scores. Nothing here
imports TensorFlow until a model translates, so the command line refuses bad
input before a model loads.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import BinaryIO, NamedTuple

from sacrebleu.metrics import BLEU, CHRF, TER

from translate.atomic import atomic_path, write_text

log = logging.getLogger(__name__)

# One reference translation per sentence; None where this reference has no
# text for a sentence (sacrebleu then uses the other references there).
ReferenceStream = Sequence[str | None]


def read_stream_lines(stream: BinaryIO, name: str, max_line_bytes: int | None = None) -> list[str]:
    """The lines of a binary stream of UTF-8 text, without line ends (``\\n`` or ``\\r\\n``).

    Only ``\\n`` ends a line. A line of more than ``max_line_bytes`` bytes
    (default :data:`translate.corpora.MAX_LINE_BYTES`, 1 MiB) is refused as
    soon as that many bytes are read, so a stream without line breaks
    (``/dev/zero``) fails at once instead of filling memory.

    Raises:
        ValueError: naming ``name`` and the line, for an overlong line or invalid UTF-8.
    """
    from translate.corpora import MAX_LINE_BYTES

    limit = MAX_LINE_BYTES if max_line_bytes is None else max_line_bytes
    lines = []
    while raw := stream.readline(limit + 1):
        if len(raw) > limit:
            raise ValueError(f"{name}: line {len(lines) + 1} is longer than {limit:,} bytes: not a file of lines")
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise ValueError(
                f"{name} is not valid UTF-8 ({err.reason} at byte {err.start} of line {len(lines) + 1})"
            ) from None
        lines.append(text.rstrip("\n").rstrip("\r"))
    return lines


def read_lines(path: str | Path, what: str = "file", max_line_bytes: int | None = None) -> list[str]:
    """The lines of a UTF-8 text file, without line ends (see :func:`read_stream_lines`).

    Raises:
        ValueError: naming ``what`` and the path, when the file is missing,
            unreadable (a folder, no permission), not UTF-8 or has a line
            longer than ``max_line_bytes``.
    """
    try:
        with open(path, "rb") as handle:
            return read_stream_lines(handle, f"{what} {path}", max_line_bytes)
    except FileNotFoundError:
        raise ValueError(f"{what} not found: {path}") from None
    except IsADirectoryError:
        raise ValueError(f"{what} is a folder, not a text file: {path}") from None
    except OSError as err:
        raise ValueError(f"cannot read {what} {path}: {err.strerror or err}") from None


def check_counts(named: Sequence[tuple[str, Sequence]]) -> None:
    """Refuses parallel inputs of different lengths, naming every count.

    ``named`` holds ``(description, lines)`` pairs such as
    ``("source test.es", [...])``; an empty input is refused too, since
    scores of nothing would be meaningless.
    """
    counts = [(name, len(lines)) for name, lines in named]
    for name, count in counts:
        if count == 0:
            raise ValueError(f"{name} is empty: nothing to score")
    if len({count for _, count in counts}) > 1:
        listed = ", ".join(f"{name} has {count} line{'' if count == 1 else 's'}" for name, count in counts)
        raise ValueError(f"line counts differ: {listed}; they must be equal")


@dataclass
class Scores:
    """Corpus-level scores and the sacrebleu signatures that make them reproducible."""

    bleu: float
    chrf: float
    ter: float
    bleu_signature: str
    chrf_signature: str
    ter_signature: str
    sentences: int
    references: int = 1  # reference translations per sentence (at most)

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        """Human-readable lines, one per metric, with its signature."""
        return [
            f"BLEU = {self.bleu:.2f}  ({self.bleu_signature})",
            f"chrF = {self.chrf:.2f}  ({self.chrf_signature})",
            f"TER  = {self.ter:.2f}  ({self.ter_signature})",
        ]


def _metrics() -> dict[str, BLEU | CHRF | TER]:
    # sacrebleu's defaults, so that the signatures match published ones.
    return {"bleu": BLEU(), "chrf": CHRF(), "ter": TER()}


def _check_references(hypotheses: Sequence[str], references: Sequence[ReferenceStream]) -> list[list[str | None]]:
    if not references:
        raise ValueError("no references: give at least one reference stream")
    if not hypotheses:
        raise ValueError("nothing to score: no sentences")
    if any(isinstance(stream, str) for stream in references):
        raise ValueError("each reference stream must be a list of strings, not one string")
    streams = [list(stream) for stream in references]
    for i, stream in enumerate(streams, start=1):
        if len(stream) != len(hypotheses):
            which = "references" if len(streams) == 1 else f"references in stream {i}"
            raise ValueError(f"{len(hypotheses)} hypotheses but {len(stream)} {which}: counts must match")
    for j in range(len(hypotheses)):
        if all(stream[j] is None for stream in streams):
            raise ValueError(f"sentence {j + 1} has no reference in any stream")
    return streams


def score(hypotheses: Sequence[str], *references: ReferenceStream) -> Scores:
    """Corpus BLEU, chrF and TER of ``hypotheses`` against one or more reference streams.

    ``score(hyps, refs)`` scores against one reference per sentence;
    ``score(hyps, web, kjv, bbe)`` against three (multi-reference BLEU counts
    an n-gram if any reference has it, and takes the closest reference
    length for the brevity penalty). A stream may hold None for a sentence
    that this reference lacks.
    """
    streams = _check_references(hypotheses, references)
    hypotheses = list(hypotheses)
    metrics = _metrics()
    results = {name: metric.corpus_score(hypotheses, streams) for name, metric in metrics.items()}
    return Scores(
        bleu=results["bleu"].score,
        chrf=results["chrf"].score,
        ter=results["ter"].score,
        bleu_signature=str(metrics["bleu"].get_signature()),
        chrf_signature=str(metrics["chrf"].get_signature()),
        ter_signature=str(metrics["ter"].get_signature()),
        sentences=len(hypotheses),
        references=len(streams),
    )


def per_reference_scores(
    hypotheses: Sequence[str], references: Sequence[ReferenceStream], names: Sequence[str]
) -> dict[str, Scores]:
    """Single-reference scores against each reference stream on its own, keyed by ``names``.

    A sentence that a reference lacks (None) is left out of that
    reference's scores; their ``sentences`` count says how many remained.
    Multi-reference scores are higher than any single-reference one, so
    papers report both.
    """
    if len(names) != len(references):
        raise ValueError(f"{len(names)} names for {len(references)} reference streams")
    result = {}
    for name, stream in zip(names, references):
        kept = [j for j, ref in enumerate(stream) if ref is not None]
        if len(stream) != len(hypotheses):
            raise ValueError(f"{len(hypotheses)} hypotheses but {len(stream)} references in {name}: counts must match")
        result[name] = score([hypotheses[j] for j in kept], [stream[j] for j in kept])
    return result


@dataclass
class SentenceScore:
    """One sentence's scores, for finding what a system gets wrong."""

    line: int  # 1-based line number in the input
    bleu: float
    chrf: float
    source: str
    hypothesis: str
    references: list[str]


def sentence_scores(
    sources: Sequence[str] | None, hypotheses: Sequence[str], *references: ReferenceStream
) -> list[SentenceScore]:
    """Sentence BLEU and chrF of every hypothesis, worst first.

    Sentence BLEU uses sacrebleu's effective order (n-gram orders a short
    sentence cannot have are left out), as sacrebleu recommends for single
    sentences; otherwise any sentence without a matching 4-gram would score
    about 0 and the ranking would say little. Ties are broken by chrF,
    then by line number. ``sources`` may be None (hypotheses from a file,
    no source given).
    """
    streams = _check_references(hypotheses, references)
    if sources is not None and len(sources) != len(hypotheses):
        raise ValueError(f"{len(sources)} sources but {len(hypotheses)} hypotheses: counts must match")
    bleu, chrf = BLEU(effective_order=True), CHRF()
    rows = []
    for j, hypothesis in enumerate(hypotheses):
        refs = [stream[j] for stream in streams if stream[j] is not None]
        rows.append(
            SentenceScore(
                line=j + 1,
                bleu=bleu.sentence_score(hypothesis, refs).score,
                chrf=chrf.sentence_score(hypothesis, refs).score,
                source=sources[j] if sources is not None else "",
                hypothesis=hypothesis,
                references=refs,
            )
        )
    rows.sort(key=lambda row: (row.bleu, row.chrf, row.line))
    return rows


def write_sentence_scores(path: str | Path, rows: Sequence[SentenceScore]) -> Path:
    """Writes ``rows`` as a TSV with a header, in the given order (worst first from :func:`sentence_scores`).

    Columns: line, sentence_bleu, sentence_chrf, source, hypothesis,
    reference, then reference_2, ... when there are several. Fields that
    hold a tab or a quote are quoted as the csv module does, so
    spreadsheet programs and ``csv.reader(..., dialect="excel-tab")`` read
    them back unchanged.
    """
    path = Path(path)
    width = max((len(row.references) for row in rows), default=1)
    header = ["line", "sentence_bleu", "sentence_chrf", "source", "hypothesis", "reference"]
    header += [f"reference_{i}" for i in range(2, width + 1)]
    try:
        with atomic_path(path) as tmp, tmp.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, dialect="excel-tab", lineterminator="\n")
            writer.writerow(header)
            for row in rows:
                refs = row.references + [""] * (width - len(row.references))
                writer.writerow([row.line, f"{row.bleu:.2f}", f"{row.chrf:.2f}", row.source, row.hypothesis, *refs])
    except OSError as err:
        raise ValueError(f"cannot write {path}: {err.strerror or err}") from None
    return path


@dataclass
class SystemResult:
    """One system in a paired test: its scores, bootstrap means, 95% CIs and p-values against the baseline."""

    name: str
    scores: dict[str, float]
    means: dict[str, float]
    ci: dict[str, float]
    p_values: dict[str, float | None]  # None for the baseline itself


@dataclass
class Comparison:
    """sacrebleu's paired bootstrap resampling test of systems against the first one (the baseline).

    The p-value of a metric is the probability of a difference at least as
    large as the observed one if the two systems were equally good
    (Koehn 2004, as sacrebleu and Moses implement it): below 0.05 the
    difference is conventionally called significant.
    """

    systems: list[SystemResult]
    signatures: dict[str, str]
    samples: int
    metrics: tuple[str, ...] = ("BLEU", "chrF", "TER")
    significance: float = 0.05

    def to_dict(self) -> dict:
        return {
            "test": "paired bootstrap resampling",
            "samples": self.samples,
            "baseline": self.systems[0].name,
            "signatures": self.signatures,
            "systems": [asdict(system) for system in self.systems],
        }

    def lines(self) -> list[str]:
        """A table like sacrebleu's: score (bootstrap mean ± 95% CI) and p-value per metric and system."""
        labels = [f"{s.name} (baseline)" if i == 0 else s.name for i, s in enumerate(self.systems)]
        name_width = max(len(label) for label in labels) + 2
        block = 36  # "100.00 (100.00 ± 10.00)  p=0.0010*" and a gap
        out = ["system".ljust(name_width) + "".join(m.ljust(block) for m in self.metrics).rstrip()]
        for label, system in zip(labels, self.systems):
            cells = []
            for metric in self.metrics:
                cell = f"{system.scores[metric]:6.2f} ({system.means[metric]:6.2f} ± {system.ci[metric]:5.2f})"
                p = system.p_values[metric]
                if p is not None:
                    cell += f"  p={p:.4f}{'*' if p < self.significance else ''}"
                cells.append(cell.ljust(block))
            out.append((label.ljust(name_width) + "".join(cells)).rstrip())
        out.append(
            f"score (bootstrap mean ± 95% CI); p: paired bootstrap resampling, {self.samples} samples; "
            f"* p < {self.significance}"
        )
        out += [f"{metric}: {self.signatures[metric]}" for metric in self.metrics]
        return out


def compare(
    systems: Sequence[tuple[str, Sequence[str]]], *references: ReferenceStream, samples: int = 1000
) -> Comparison:
    """Paired bootstrap resampling of each system against ``systems[0]`` on BLEU, chrF and TER.

    Uses sacrebleu's own implementation (``sacrebleu.significance.PairedTest``,
    what ``sacrebleu --paired-bs`` runs), so the p-values and signatures match
    the sacrebleu command line on the same files. The random seed is
    sacrebleu's (environment variable ``SACREBLEU_SEED``, 12345 by default),
    recorded in the signatures.
    """
    from sacrebleu.significance import PairedTest

    if len(systems) < 2:
        raise ValueError("a comparison needs at least two systems")
    if samples < 1:
        raise ValueError(f"bootstrap samples must be positive, got {samples}")
    names = [name for name, _ in systems]
    if len(set(names)) != len(names):
        raise ValueError(f"system names must differ: {names}")
    streams = None
    for name, hypotheses in systems:
        if not hypotheses:
            raise ValueError(f"system {name} has no hypotheses")
        streams = _check_references(hypotheses, references)
    metrics = {"BLEU": BLEU(), "chrF": CHRF(), "TER": TER()}
    test = PairedTest(
        [(name, list(hyps)) for name, hyps in systems], metrics, references=streams, test_type="bs", n_samples=samples
    )
    signatures, table = test()
    # sacrebleu keys results by each score's own name ("chrF2" for chrF with beta 2).
    keys = dict(zip(metrics, [key for key in table if key != "System"]))
    results = []
    for i, name in enumerate(table["System"]):
        result = {metric: table[keys[metric]][i] for metric in metrics}
        results.append(
            SystemResult(
                name=name,
                scores={m: float(r.score) for m, r in result.items()},
                means={m: float(r.mean) for m, r in result.items()},
                ci={m: float(r.ci) for m, r in result.items()},
                p_values={m: None if r.p_value is None else float(r.p_value) for m, r in result.items()},
            )
        )
    baseline = results[0]
    for system in results[1:]:
        for metric, p_value in system.p_values.items():
            if p_value is not None and system.scores[metric] == baseline.scores[metric]:
                # No observed difference, nothing to test. sacrebleu counts resamples whose
                # centred difference is *strictly* above the observed one, so when every
                # resample ties (identical per-sentence statistics) it returns 1/(N+1), which
                # would read as "significant"; the honest p-value of a zero difference is 1.
                system.p_values[metric] = 1.0
    return Comparison(results, {m: str(signatures[keys[m]]) for m in metrics}, test.n_samples)


# --- python -m translate evaluate ---------------------------------------------------------------
#
# The command's logic. Its messages name the command's options (--model, --ref, ...),
# which is how users meet them; cli.py parses the arguments and prints the report.


@dataclass
class Evaluation:
    """What ``python -m translate evaluate`` reports: the first system's scores, then the others against it."""

    system: str  # the first system: its model folder or file of translations
    title: str  # what was scored: the source file, the first reference file, or "bible:SRC-TGT split"
    reference_names: list[str]
    scores: Scores
    per_reference: dict[str, Scores]  # with several references: the first system against each alone
    comparison: Comparison | None  # with other systems: the paired bootstrap test
    sentences_file: str | None  # where the per-sentence scores went, as given

    def to_dict(self) -> dict:
        result = self.scores.to_dict()
        if self.per_reference:
            result["per_reference"] = {name: s.to_dict() for name, s in self.per_reference.items()}
        if self.comparison is not None:
            result["comparison"] = self.comparison.to_dict()
        if self.sentences_file:
            result["sentences_file"] = str(Path(self.sentences_file))
        return result

    def lines(self) -> list[str]:
        """The report for people: the scores with their signatures, per reference, the paired test."""
        names = self.reference_names
        refs = f"{len(names)} references: {', '.join(names)}" if len(names) > 1 else f"reference {names[0]}"
        out = [f"{self.system} on {self.title} ({self.scores.sentences} sentences, {refs}):"]
        out += ["  " + line for line in self.scores.lines()]
        for name, single in self.per_reference.items():
            out.append(
                f"  only {name} ({single.sentences} sentences): BLEU = {single.bleu:.2f}, "
                f"chrF = {single.chrf:.2f}, TER = {single.ter:.2f}"
            )
        if self.comparison is not None:
            out.append("paired bootstrap resampling against the first system:")
            out += ["  " + line for line in self.comparison.lines()]
        if self.sentences_file:
            out.append(f"per-sentence scores, worst first: {self.sentences_file}")
        return out


class _TestSet(NamedTuple):
    """The sentences to score against: sources (None when only files of translations are scored) and references."""

    title: str
    sources: list[str] | None
    references: list[ReferenceStream]
    reference_names: list[str]
    named: list[tuple[str, Sequence]]  # every input file with a description, for check_counts


def evaluate_systems(
    model: str | None = None,
    hyp: str | None = None,
    others: Sequence[str] = (),
    src: str | None = None,
    refs: Sequence[str] = (),
    builtin: str | None = None,
    split: str | None = None,
    bootstrap: int = 1000,
    sentences: str | None = None,
    output: str | None = None,
    batch_size: int = 64,
    load: Callable[[Path], Callable[[list[str]], list[str]]] | None = None,
    warn: Callable[[str], None] = log.warning,
) -> Evaluation:
    """Scores a model (``model``) or a file of translations (``hyp``), as ``python -m translate evaluate`` does.

    Sentences come from ``src`` and the ``refs`` files, or from the built-in
    corpus (``builtin="bible:SRC-TGT"``, ``split`` default test) with every
    reference it has. Each of ``others`` (``--compare``: model folders or
    files of translations) is tested against the first system with
    ``bootstrap`` samples of paired bootstrap resampling. ``sentences`` names
    a TSV for the per-sentence scores, ``output`` a file for the first
    system's translations.

    Every check that needs no model (paths, line counts, options that go
    together) runs before a model loads. Models are loaded with
    ``load(version folder)`` (default :func:`translate.load`) and translate in
    batches of ``batch_size``; ``warn`` hears of a model trained on another
    language pair than the built-in corpus scored.

    Raises:
        ValueError: one line naming the option or file at fault.
    """
    systems = _systems(model, hyp, others)
    if bootstrap < 1:
        raise ValueError(f"--bootstrap must be at least 1, got {bootstrap}")
    if sentences and Path(sentences).is_dir():
        raise ValueError(f"--sentences {sentences} is a folder: give a file name such as sentences.tsv")
    if builtin:
        test = _builtin_test_set(builtin, split, src, refs)
    else:
        test = _test_set_from_files(split, src, refs, needs_sources=any(isinstance(s, Path) for _, s in systems))
    check_counts(test.named + [(f"hypothesis file {name}", s) for name, s in systems if isinstance(s, list)])
    if builtin:
        _warn_of_other_pairs(systems, builtin, warn)

    hypotheses = [(name, _translate(system, test.sources, batch_size, load)) for name, system in systems]
    first_name, first = hypotheses[0]
    references = test.references
    scores = score(first, *references)
    per_reference = {}
    if len(references) > 1:
        per_reference = per_reference_scores(first, references, test.reference_names)
    comparison = compare(hypotheses, *references, samples=bootstrap) if len(hypotheses) > 1 else None
    if sentences:
        write_sentence_scores(sentences, sentence_scores(test.sources, first, *references))
    if output:
        try:
            write_text(output, "".join(h + "\n" for h in first))
        except OSError as err:
            raise ValueError(f"cannot write --output {output}: {err.strerror or err}") from None
    return Evaluation(first_name, test.title, test.reference_names, scores, per_reference, comparison, sentences)


def _systems(model: str | None, hyp: str | None, others: Sequence[str]) -> list[tuple[str, Path | list[str]]]:
    """Each system as ``(name, its model's version folder or its translations)``, the first one first."""
    from translate.versions import saved_model_version

    if (model is None) == (hyp is None):
        raise ValueError("give --model or --hyp, one of them")
    systems = [(model, saved_model_version(model)) if model else (hyp, read_lines(hyp, "hypothesis file"))]
    for other in others:
        if Path(other).is_file():
            systems.append((other, read_lines(other, "hypothesis file")))
        elif Path(other).exists():
            systems.append((other, saved_model_version(other, "--compare")))
        else:
            raise ValueError(f"--compare {other}: no such model folder or file of translations")
    if len({name for name, _ in systems}) != len(systems):
        raise ValueError("the same system is given twice: each --model/--hyp/--compare must differ")
    return systems


def _builtin_test_set(builtin: str, split: str | None, src: str | None, refs: Sequence[str]) -> _TestSet:
    """A split of the built-in corpus with every public-domain reference of its target language."""
    if src or refs:
        raise ValueError("--builtin brings its own sources and references: leave out --src and --ref")
    if not builtin.startswith("bible:"):
        raise ValueError(f"--builtin takes bible:SRC-TGT (e.g. bible:es-en), got {builtin!r}")
    from translate.bible import read_references

    split = split or "test"
    found = read_references(builtin.removeprefix("bible:"), split)
    title = f"{builtin} {split}"
    return _TestSet(title, found.sources, found.references, found.names, [(title, found.sources)])


def _test_set_from_files(split: str | None, src: str | None, refs: Sequence[str], needs_sources: bool) -> _TestSet:
    """Sources (needed to translate with a model) and references from files of lines."""
    if split:
        raise ValueError("--split goes with --builtin")
    if not refs:
        raise ValueError("give --ref FILE (one or more) or --builtin bible:SRC-TGT")
    if needs_sources and not src:
        raise ValueError("--src is needed to translate with a model")
    sources = read_lines(src, "source file") if src else None
    references = [read_lines(path, "reference file") for path in refs]
    named = [(f"source file {src}", sources)] if sources is not None else []
    named += [(f"reference file {path}", lines) for path, lines in zip(refs, references)]
    return _TestSet(src or refs[0], sources, references, list(refs), named)


def _warn_of_other_pairs(systems, builtin: str, warn: Callable[[str], None]) -> None:
    """Warns of each model trained on the built-in corpus for another language pair than ``builtin``'s."""
    pair = builtin.removeprefix("bible:")
    for name, system in systems:
        trained = _trained_corpus(system) if isinstance(system, Path) else None
        # The pair alone: options such as ?sources= change training, not the dev and test verses.
        if trained and trained.startswith("bible:") and trained.removeprefix("bible:").partition("?")[0] != pair:
            warn(f"{name} was trained on {trained}, not {builtin}")


def _trained_corpus(version: Path) -> str | None:
    """The data.corpus an export was trained on, from its config asset (None if unreadable)."""
    import yaml

    try:
        config = yaml.safe_load((version / "assets" / "config.yaml").read_text(encoding="utf-8"))
        return config["data"]["corpus"]
    except (OSError, yaml.YAMLError, KeyError, TypeError):
        return None


def _translate(system: Path | list[str], sources: list[str] | None, batch_size: int, load) -> list[str]:
    """A system's translations of ``sources``: a file's as they are, a model's made now (loading TensorFlow)."""
    if isinstance(system, list):
        return system
    from translate.inference import translate_in_batches

    if load is None:
        from translate.translator import load
    return translate_in_batches(load(system), sources, batch_size)
