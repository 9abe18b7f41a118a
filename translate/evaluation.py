"""Scores with sacrebleu (Post 2018): BLEU, chrF and TER with their signatures.

Scores are computed on detokenized text against raw references, as sacrebleu
intends, so they are comparable with published numbers for the same test set.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

from sacrebleu.metrics import BLEU, CHRF, TER
from tqdm import tqdm

log = logging.getLogger(__name__)


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

    def to_dict(self) -> dict:
        return asdict(self)

    def lines(self) -> list[str]:
        """Human-readable lines, one per metric, with its signature."""
        return [
            f"BLEU = {self.bleu:.2f}  ({self.bleu_signature})",
            f"chrF = {self.chrf:.2f}  ({self.chrf_signature})",
            f"TER  = {self.ter:.2f}  ({self.ter_signature})",
        ]


def score(hypotheses: Sequence[str], references: Sequence[str]) -> Scores:
    """Corpus BLEU, chrF and TER of ``hypotheses`` against one reference each."""
    if len(hypotheses) != len(references):
        raise ValueError(f"{len(hypotheses)} hypotheses but {len(references)} references: counts must match")
    if not hypotheses:
        raise ValueError("nothing to score: no sentences")
    hypotheses, references = list(hypotheses), [list(references)]
    metrics = {"bleu": BLEU(), "chrf": CHRF(), "ter": TER()}
    results = {name: metric.corpus_score(hypotheses, references) for name, metric in metrics.items()}
    return Scores(
        bleu=results["bleu"].score,
        chrf=results["chrf"].score,
        ter=results["ter"].score,
        bleu_signature=str(metrics["bleu"].get_signature()),
        chrf_signature=str(metrics["chrf"].get_signature()),
        ter_signature=str(metrics["ter"].get_signature()),
        sentences=len(hypotheses),
    )


def translate_in_batches(
    translate: Callable[[list[str]], list[str]],
    sentences: Sequence[str],
    batch_size: int = 64,
    progress: bool = True,
) -> list[str]:
    """Runs ``translate`` over ``sentences`` in batches, with a progress bar.

    Sentences are sorted by length first so each batch pads little, and the
    results are put back in the input order.
    """
    order = sorted(range(len(sentences)), key=lambda i: len(sentences[i]))
    outputs: list[str] = [""] * len(sentences)
    starts = range(0, len(order), batch_size)
    for start in tqdm(starts, desc="translating", unit="batch", disable=not progress, leave=False):
        chunk = order[start : start + batch_size]
        for index, translation in zip(chunk, translate([sentences[i] for i in chunk])):
            outputs[index] = translation
    return outputs
