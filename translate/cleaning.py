"""Cleaning of raw sentence pairs, every step counted.

Text steps change a pair and count how many pairs they changed; filters drop
a pair and count it under their reason. Both end up in the stats report that
``python -m translate prepare`` writes, so a user sees what happened to every
line of their corpus.

Text steps, in order:

* ``markup``: tags such as ``<b>``/``</i>``/``<br/>`` removed, HTML entities
  (``&amp;``, ``&#233;``) decoded;
* ``unicode``: Unicode normalization (NFKC by default: what the model sees in
  the graph at serving time as well);
* ``whitespace``: runs of whitespace (tabs, newlines, no-break spaces) become
  one space, ends are stripped;
* ``lowercase``: off by default.

Filters: ``empty side`` here; length in subword pieces, the source/target
length ratio and exact duplicates in :mod:`translate.prepare`, where the
SentencePiece models and the whole split are known.

:func:`collapse_whitespace_nfc` is the fixed, uncounted light cleaning that
:func:`translate.corpora.load_corpus` and the Bible's own cleaning apply.
"""

from __future__ import annotations

import html
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field

# A tag: <name ...>, </name>, <name/>. Bare "<" and ">" (as in "a < b") stay.
_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9:_-]*(?:\s[^<>]*)?/?>")
_ENTITY = re.compile(r"&(?:[A-Za-z][A-Za-z0-9]{1,31}|#[0-9]{1,7}|#[xX][0-9A-Fa-f]{1,6});")
_SPACE = re.compile(r"\s+")

EMPTY_SIDE = "empty side"


@dataclass(frozen=True)
class CleaningOptions:
    """Which text steps run. ``unicode_form`` is NFC, NFKC, NFD, NFKD or None."""

    strip_markup: bool = True
    unicode_form: str | None = "NFKC"
    lowercase: bool = False

    def __post_init__(self):
        if self.unicode_form not in (None, "NFC", "NFKC", "NFD", "NFKD"):
            raise ValueError(f"unicode form must be NFC, NFKC, NFD, NFKD or null, got {self.unicode_form!r}")


@dataclass
class CleaningCounts:
    """How many pairs each text step changed and each filter removed."""

    changed: Counter = field(default_factory=Counter)
    removed: Counter = field(default_factory=Counter)


def clean_text(text: str, options: CleaningOptions) -> tuple[str, list[str]]:
    """One side, cleaned; with the names of the steps that changed it."""
    changed = []
    if options.strip_markup and ("<" in text or "&" in text):
        stripped = _TAG.sub(" ", text)
        stripped = _ENTITY.sub(lambda m: html.unescape(m.group(0)), stripped)
        if stripped != text:
            changed.append("markup")
            text = stripped
    if options.unicode_form:
        normal = unicodedata.normalize(options.unicode_form, text)
        if normal != text:
            changed.append("unicode")
            text = normal
    spaced = _SPACE.sub(" ", text).strip()
    if spaced != text:
        changed.append("whitespace")
        text = spaced
    if options.lowercase:
        lower = text.lower()
        if lower != text:
            changed.append("lowercase")
            text = lower
    return text, changed


def collapse_whitespace_nfc(text: str) -> str:
    """Collapse whitespace runs (tabs too) to one space, strip, NFC."""
    return unicodedata.normalize("NFC", " ".join(text.split()))


def clean_pair(source: str, target: str, options: CleaningOptions, counts: CleaningCounts) -> tuple[str, str] | None:
    """The pair cleaned, or None when a filter drops it; ``counts`` is updated."""
    source, source_steps = clean_text(source, options)
    target, target_steps = clean_text(target, options)
    for step in set(source_steps) | set(target_steps):
        counts.changed[step] += 1
    if not source or not target:
        counts.removed[EMPTY_SIDE] += 1
        return None
    return source, target
