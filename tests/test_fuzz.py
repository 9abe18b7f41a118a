"""Property tests (Hypothesis): whatever a user feeds the corpus readers, the config loader or the translator,
the answer is a result or one line that names the problem (a ValueError), never another exception.

The budget is small (150 to 300 inputs a reader or the config loader, 50 for the translator, whose every
call runs a search) and the runs are derandomized, so CI sees the same examples every time, the ones the
search once found among them (``@example``); raise ``max_examples`` locally to search further.
"""

from __future__ import annotations

import codecs
import collections
import dataclasses
import gzip
import json
import re
import tempfile
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from translate.config import Config, load_config
from translate.corpora import read_pairs


def fuzz_settings(examples: int):
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def assert_one_line(message: str) -> None:
    assert message.strip(), "an empty error message"
    assert message.splitlines() == [message], f"not one line: {message!r}"
    assert len(message) <= 1000, f"{len(message)} characters: {message[:200]!r}..."


# --------------------------------------------------------------------------
# Corpus readers: random text in random encodings, line endings, bytes and gzip damage

# Every character, lone surrogates and controls included (an encoder with surrogatepass turns a lone
# surrogate into bytes that are not UTF-8).
ANY_TEXT = st.text(st.characters(exclude_categories=[]), max_size=12)
WORDS = st.sampled_from(["Hello.", "Hola.", "día", "", " ", "a\tb", "\u2028", "😀", "\x00", "<seg>", "&amp;", "\\u"])
FIELD = st.one_of(WORDS, ANY_TEXT, st.lists(WORDS, max_size=3).map(" ".join))
ENCODINGS = ("utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "latin-1", "cp1252")
LINE_ENDS = st.sampled_from(["\n", "\r\n", "\r"])
LANGS = st.one_of(
    st.sampled_from(["en", "es", "EN-us", "es_ES", "en-GB", "", "e s", "en&#10;x", "es&#x2028;", "&#133;"]),
    st.text(st.characters(codec="ascii", exclude_characters='<&"'), max_size=6).map(escape),
)


@st.composite
def lines_of(draw, line, count: int | None = None) -> str:
    lines = draw(st.lists(line, max_size=8) if count is None else st.lists(line, min_size=count, max_size=count))
    ends = draw(st.lists(LINE_ENDS, min_size=len(lines), max_size=len(lines)))
    return "".join(text + end for text, end in zip(lines, ends)) + draw(st.sampled_from(["", "tail"]))


# Text that XML can hold (no controls but tab and line breaks, no surrogates), for most of a TMX file.
XML_TEXT = st.one_of(
    st.text(
        st.characters(exclude_categories=["Cs", "Cc"], exclude_characters="\ufffe\uffff", include_characters="\t\n\r"),
        max_size=12,
    ),
    st.sampled_from(["Hello.", "Hola.", "día", "", " ", "😀", "<seg>", "&amp;", "a\u2028b"]),
)
TMX_TEXT = st.one_of(XML_TEXT, XML_TEXT, XML_TEXT, FIELD)
TSV_LINE = st.one_of(st.lists(FIELD, min_size=2, max_size=4), st.lists(FIELD, min_size=1, max_size=2)).map("\t".join)
JSON_VALUE = st.one_of(
    FIELD,
    st.none(),
    st.integers(),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
PAIR_RECORD = st.builds(
    lambda source, target, ascii: json.dumps({"source": source, "target": target}, ensure_ascii=ascii),
    FIELD,
    FIELD,
    st.booleans(),
)
JSONL_LINE = st.one_of(
    PAIR_RECORD,
    PAIR_RECORD,
    st.builds(
        lambda record, ascii: json.dumps(record, ensure_ascii=ascii),
        st.dictionaries(st.sampled_from(["source", "target", "src", "x"]), JSON_VALUE, max_size=3),
        st.booleans(),
    ),
    st.sampled_from(
        [
            '{"source": "\\ud800", "target": "x"}',
            "[1, 2]",
            "{",
            "null",
            "[" * 3000,
            "1" * 5000,
            '{"source": "a", "target": "b"}',
        ]
    ),
    FIELD,
)


@st.composite
def tmx_documents(draw, encoding: str) -> str:
    units = []
    for _ in range(draw(st.integers(0, 4))):
        variants = []
        for _ in range(draw(st.integers(0, 3))):
            lang = draw(LANGS)
            seg = escape(draw(TMX_TEXT)) + draw(
                st.sampled_from(["", "<hi>x</hi>", "<ph>{b}</ph>", "<bpt i='1'/>", "<hi><hi>y</hi></hi>"])
            )
            attribute = draw(st.sampled_from(["xml:lang", "lang", "xml:lang"]))
            variants.append(f'<tuv {attribute}="{lang}"><seg>{seg}</seg></tuv>')
        tuid = f" tuid={quoteattr(draw(TMX_TEXT))}" if draw(st.booleans()) else ""
        units.append(f"<tu{tuid}>{''.join(variants)}</tu>")
    declared = draw(
        st.sampled_from(
            [None, None, encoding, encoding, encoding, "utf-8", "utf-16", "ascii", "shift_jis", "no-such-codec"]
        )
    )
    declaration = f'<?xml version="1.0" encoding="{declared}"?>\n' if declared else ""
    root = draw(st.sampled_from(["tmx", "tmx", "tmx", "html", "{http://www.lisa.org/tmx14}tmx"]))
    if root.startswith("{"):
        open_root, close_root = '<tmx xmlns="http://www.lisa.org/tmx14">', "</tmx>"
    else:
        open_root, close_root = f"<{root}>", f"</{root}>"
    body = draw(st.sampled_from(["<body>{}</body>", "<header/><body>{}</body>", "{}"]))
    ends = draw(LINE_ENDS)
    return declaration + open_root + ends + body.format(ends.join(units)) + close_root + ends


@st.composite
def damaged(draw, data: bytes) -> bytes:
    """Random bytes written over, put in or cut off."""
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):  # mostly whole: the readers' own checks then run
        kind = draw(st.sampled_from(["overwrite", "insert", "truncate"]))
        at = draw(st.integers(0, len(data)))
        if kind == "truncate":
            data = data[:at]
        else:
            noise = draw(st.binary(min_size=1, max_size=8))
            data = data[:at] + noise + data[at + (len(noise) if kind == "overwrite" else 0) :]
    return data


@st.composite
def file_bytes(draw, text: str, encoding: str) -> tuple[bytes, bool]:
    """``text`` encoded (lone surrogates as the bytes surrogatepass makes), maybe damaged, maybe gzipped
    (and maybe cut); returns the bytes and whether they are gzip."""
    errors = "surrogatepass" if encoding.startswith("utf") else "replace"
    data = draw(damaged(codecs.encode(text, encoding, errors)))
    compressed = draw(st.booleans())
    if compressed:
        data = gzip.compress(data, mtime=0)
        cut = draw(
            st.sampled_from([None, None, "cut"]).flatmap(lambda cut: st.integers(0, len(data)) if cut else st.none())
        )
        if cut is not None:
            data = data[:cut]
    return data, compressed


def assert_pairs_or_one_line_naming(spec: str, named: str, on_error: str, max_line_bytes: int | None) -> None:
    skipped: collections.Counter = collections.Counter()
    try:
        pairs = list(read_pairs(spec, on_error=on_error, skipped=skipped, max_line_bytes=max_line_bytes))
    except ValueError as err:
        assert_one_line(str(err))
        assert named in str(err), f"the message does not name {named}: {err}"
        event("refused: " + re.sub(r"[\d,]+", "N", str(err).replace(named, "FILE"))[:60])
    else:
        event(f"pairs: {min(len(pairs), 2)}+" if pairs else "no pairs")
        for source, target, split in pairs:
            assert isinstance(source, str) and isinstance(target, str) and split is None
            # What a reader yields is text: it can be written out as UTF-8 (no lone surrogates).
            (source + target).encode("utf-8")


READ_OPTIONS = dict(
    on_error=st.sampled_from(["raise", "skip"]), max_line_bytes=st.one_of(st.none(), st.integers(1, 300))
)


@fuzz_settings(150)
@given(data=st.data(), encoding=st.sampled_from(ENCODINGS), **READ_OPTIONS)
@pytest.mark.parametrize("fmt", ["tsv", "jsonl"])
def test_tsv_and_jsonl_readers_give_pairs_or_one_line_naming_the_file(fmt, data, encoding, on_error, max_line_bytes):
    text = data.draw(lines_of(TSV_LINE if fmt == "tsv" else JSONL_LINE))
    raw, compressed = data.draw(file_bytes(text, encoding))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"corpus.{fmt}{'.gz' if compressed else ''}"
        path.write_bytes(raw)
        assert_pairs_or_one_line_naming(f"{fmt}:{path}", str(path), on_error, max_line_bytes)


@fuzz_settings(150)
@given(data=st.data(), encodings=st.tuples(st.sampled_from(ENCODINGS), st.sampled_from(ENCODINGS)), **READ_OPTIONS)
def test_moses_reader_gives_pairs_or_one_line_naming_the_files(data, encodings, on_error, max_line_bytes):
    with tempfile.TemporaryDirectory() as tmp:
        prefix = Path(tmp) / "corpus"
        count = data.draw(st.integers(0, 6))  # mostly files of the same length, whose lines are then read
        for side, encoding in zip(("en", "es"), encodings):
            lines = lines_of(FIELD, data.draw(st.sampled_from([count, count, count, None])))
            raw, compressed = data.draw(file_bytes(data.draw(lines), encoding))
            Path(f"{prefix}.{side}{'.gz' if compressed else ''}").write_bytes(raw)
        assert_pairs_or_one_line_naming(f"moses:{prefix}?src=en&tgt=es", str(prefix), on_error, max_line_bytes)


@fuzz_settings(200)
@given(
    data=st.data(),
    encoding=st.sampled_from(ENCODINGS),
    on_error=READ_OPTIONS["on_error"],
    languages=st.sampled_from(["src=en&tgt=es", "src=es-ES&tgt=en", "src=en-us&tgt=es"]),
)
def test_tmx_reader_gives_pairs_or_one_line_naming_the_file(data, encoding, on_error, languages):
    raw, compressed = data.draw(file_bytes(data.draw(tmx_documents(encoding)), encoding))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / f"memory.tmx{'.gz' if compressed else ''}"
        path.write_bytes(raw)
        assert_pairs_or_one_line_naming(f"tmx:{path}?{languages}", str(path), on_error, None)


@pytest.mark.parametrize(
    "document",
    [
        b'<?xml version="1.0" encoding="no-such-codec"?><tmx><body/></tmx>',  # was a LookupError
        b'<?xml version="1.0" encoding="shift_jis"?><tmx><body/></tmx>',  # was a ValueError naming no file
        b'<tmx><body><tu><tuv xml:lang="en&#10;x"><seg>a</seg></tuv></tu></body></tmx>',  # was two lines
        b'<tmx><body><tu><tuv xml:lang="en"><seg>a</seg></tuv><tuv xml:lang="e&#x2028;s"><seg>b</seg></tuv></tu>'
        b'<tu><tuv xml:lang="es"><seg>c</seg></tuv></tu></body></tmx>',
    ],
)
def test_tmx_files_the_search_found_are_refused_in_one_line_naming_the_file(tmp_path, document):
    path = tmp_path / "memory.tmx"
    path.write_bytes(document)
    with pytest.raises(ValueError) as refused:
        list(read_pairs(f"tmx:{path}?src=en&tgt=es"))
    assert_one_line(str(refused.value))
    assert str(refused.value).startswith(f"{path}: ")


# --------------------------------------------------------------------------
# The config loader: random YAML documents and key=value overrides

KEYS = ["run_dir"] + [
    f"{section}.{field.name}"
    for section in ("data", "model", "train", "decode", "export")
    for field in dataclasses.fields(getattr(Config(), section))
]
# YAML that PyYAML reads into something odd: every tag the safe loader knows, anchors, huge and
# special numbers, dates, merge keys, broken structure.
YAML_SNIPPETS = [
    "",
    "~",
    "null",
    "true",
    "no",
    "on",
    "1",
    "-1",
    "0",
    "3.5",
    "1e-4",
    "1e400",
    "-1e400",
    ".nan",
    ".inf",
    "-.inf",
    "0o777",
    "0x1F",
    "1_000",
    "+12",
    "0:30",
    "190:20:30",
    "2001-12-14t21:59:43.10-05:00",
    "2001-02-30",
    "0000-01-01",
    "!!binary aGVsbG8=",
    "!!binary '%%%'",
    "!!set {a, b}",
    "!!omap [a: 1]",
    "!!pairs [a: 1]",
    "!!timestamp nope",
    "!!float abc",
    "!!int 0x",
    "!!bool maybe",
    "!!str [a]",
    "!!python/object:os.system x",
    "&a 1",
    "*a",
    "&a [*a]",
    "{a: 1",
    "[[[[",
    "[" * 3000 + "]" * 3000,
    "? [a]\n: b",
    "<<: 1",
    "<<: {epochs: 2}",
    "\t",
    "---\n---",
    "%YAML 1.1\n---\n1",
    "'unterminated",
    '"\\ud800"',
    '"\\x00"',
    "\x00",
    "\ufeff",
    "\x85",
    "|\n  text",
    ">-\n folded",
    "- a\n- b",
    "{}",
    "[]",
    "{model: {}}",
    "bahdanau",
    "luong_dot",
    "NFKC",
    "adamw",
]
# Numbers PyYAML reads at any size: binary and hex digits have no length limit in Python.
HUGE_NUMBERS = [
    "0b" + "1" * 5000,
    "-0b" + "1" * 5000,
    "0b" + "1" * 15000,
    "0x" + "f" * 300,
    "-0x" + "f" * 4000,
    "9" * 5000,
    "1" * 400 + ".0",
    str(2**63),
    str(-(2**64)),
]
YAML_VALUE = st.one_of(
    st.sampled_from(YAML_SNIPPETS),
    st.sampled_from(HUGE_NUMBERS),
    st.integers().map(str),
    st.floats().map(repr),
    st.text(max_size=15),
)


KEY = st.one_of(st.sampled_from(KEYS), st.sampled_from(KEYS), st.sampled_from(KEYS), st.text(max_size=8))


@st.composite
def yaml_documents(draw) -> bytes | None:
    """A config file's bytes (None: no file): mostly known keys with odd values, else any text or bytes."""
    kind = draw(st.sampled_from(["none", "keys", "keys", "keys", "keys", "text", "bytes"]))
    if kind == "none":
        return None
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "text":
        text = draw(st.lists(st.one_of(st.sampled_from(YAML_SNIPPETS), ANY_TEXT), max_size=4).map("\n".join))
    else:
        lines = []
        for _ in range(draw(st.integers(0, 5))):
            key = draw(KEY)
            value = draw(YAML_VALUE)
            section, dot, name = key.partition(".")
            lines.append(f"{section}:\n  {name}: {value}" if dot else f"{key}: {value}")
        text = "\n".join(lines)
    return text.encode("utf-8", "surrogatepass")


OVERRIDES = st.lists(
    st.one_of(
        st.builds(lambda key, value: f"{key}={value}", KEY, YAML_VALUE),
        st.builds(lambda key, value: f"{key}={value}", KEY, YAML_VALUE),
        ANY_TEXT,
    ),
    max_size=4,
)


# How the config loader's messages begin, when they do not begin with the key itself.
CONFIG_PROBLEMS = ("config file ", "config key ", "config section ", "unknown config key ", "override ")


@fuzz_settings(300)
@given(document=yaml_documents(), overrides=OVERRIDES)
# What the search found once, kept so that every run tries it.
@example(document=b"train:\n  learning_rate: 0b" + b"1" * 5000, overrides=[])  # beyond a float: OverflowError
@example(document=None, overrides=["decode.beam_size=-0b" + "1" * 15000])  # beyond what Python prints
@example(document=b"run_dir: !!timestamp nope", overrides=[])  # PyYAML: AttributeError
@example(document=None, overrides=["train.epochs=!!bool maybe"])  # PyYAML: KeyError
def test_the_config_loader_gives_a_config_or_one_line(document, overrides):
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "config.yaml"
        if document is not None:
            path.write_bytes(document)
        try:
            config = load_config(config_file=path if document is not None else None, overrides=overrides)
        except ValueError as err:
            assert_one_line(str(err))
            assert str(err).startswith(CONFIG_PROBLEMS) or str(err).split(" ")[0] in KEYS, f"names no key: {err}"
            event("refused: " + re.sub(r"'[^']*'|\S*/config.yaml", "X", str(err))[:50])
        else:
            event("a config")
            assert isinstance(config, Config)
            assert config.validate() is config


# --------------------------------------------------------------------------
# The translator: any Python string

CONTROLS = st.text(st.characters(categories=["Cc", "Cf", "Zl", "Zp"]), min_size=1, max_size=8)
SENTENCE = st.one_of(
    st.text(st.characters(exclude_categories=[]), max_size=40),  # lone surrogates included
    CONTROLS,
    st.sampled_from(
        [
            "",
            " ",
            "\ud800",
            "a\udfffb",
            "\ud83d\ude00",
            "😀" * 50,
            "\u202eevil",
            "e\u0301" * 30,
            "\U0010ffff",
            "\ufeffHello.",
            "Good morning. " * 800,
        ]
    ),
    st.builds(lambda text, times: text * times, st.text(max_size=5), st.integers(100, 3000)),  # long
)


def _encodable(sentence: str) -> bool:
    try:
        sentence.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


@fuzz_settings(50)
@given(sentences=st.lists(SENTENCE, max_size=4))
@example(sentences=["Good morning.", "a\ud800b"])  # was TensorFlow's ValueError, which names no sentence
def test_the_translator_gives_a_string_per_sentence_or_one_line_for_what_is_not_text(tiny_translator, sentences):
    translator = tiny_translator
    bad = [index for index, sentence in enumerate(sentences) if not _encodable(sentence)]
    try:
        translations = translator(sentences)
    except ValueError as err:
        assert_one_line(str(err))
        assert bad, f"refused text that is valid: {err}"
        assert f"sentence {bad[0]}" in str(err), str(err)
    else:
        assert not bad, f"sentences {bad} hold lone surrogates, yet were translated"
        assert isinstance(translations, list) and len(translations) == len(sentences)
        assert all(isinstance(t, str) for t in translations)
    if len(sentences) == 1 and not bad:
        assert isinstance(translator(sentences[0]), str)
