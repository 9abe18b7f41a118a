"""Examples of what translate.corpora gives: one per format, per bad input, per spec rule.

The small corpora are in tests/data/corpora/; the Bible's examples are in
tests/test_bible.py.
"""

import collections
import gzip
import hashlib
import re
import tracemalloc
from pathlib import Path

import pytest

from translate import corpora
from translate.corpora import hash_split, load_corpus, read_pairs
from translate.testing.tiny import TINY_CORPUS

DATA = Path(__file__).parent / "data"


# --------------------------------------------------------------------------
# tsv:PATH — load_corpus (light normalization, dedupe, hash split)


def test_tiny_tsv_uses_every_pair_for_every_split():
    splits = load_corpus(f"tsv:{DATA / 'en_es_attribution.tsv'}")
    assert len(splits.train) == 12
    assert splits.dev == splits.train and splits.test == splits.train
    assert splits.train[0] == ("Good morning.", "Buenos días.")  # attribution column ignored
    assert splits.train[10] == ("What a beautiful day!", "¡Qué día tan bonito!")


def test_shared_tiny_fixture_loads():
    splits = load_corpus(f"tsv:{TINY_CORPUS}")
    assert len(splits.train) == 39 < corpora.TSV_MIN_PAIRS_TO_SPLIT
    assert splits.dev == splits.test == splits.train


def expected_split(source: str, target: str) -> str:
    bucket = int(hashlib.sha1(f"{source}\t{target}".encode()).hexdigest(), 16) % 100
    return "test" if bucket < 5 else "dev" if bucket < 10 else "train"


def test_hash_split_is_the_documented_rule():
    pairs = [(f"Sentence {i}.", f"Frase {i}.") for i in range(300)]
    assert [hash_split(*p) for p in pairs] == [expected_split(*p) for p in pairs]
    assert set(map(lambda p: hash_split(*p), pairs)) == {"train", "dev", "test"}


def test_larger_tsv_is_split_by_a_stable_hash_of_each_pair(tmp_path):
    pairs = [(f"Sentence number {i}.", f"Frase número {i}.") for i in range(400)]
    path = tmp_path / "big.tsv"
    path.write_text("".join(f"{s}\t{t}\n" for s, t in pairs), encoding="utf-8")
    splits = load_corpus(f"tsv:{path}")
    for name in ("train", "dev", "test"):
        got = getattr(splits, name)
        assert got == [p for p in pairs if expected_split(*p) == name]
    assert 0 < len(splits.test) < 40 and 0 < len(splits.dev) < 40

    # A pair keeps its split when the file is reordered or grows.
    reordered = tmp_path / "reordered.tsv"
    reordered.write_text(
        "".join(f"{s}\t{t}\n" for s, t in reversed(pairs + [("One more.", "Una más.")])),
        encoding="utf-8",
    )
    again = load_corpus(f"tsv:{reordered}")
    assert set(splits.test) <= set(again.test) and set(splits.dev) <= set(again.dev)


def test_tsv_whitespace_normalized_blank_lines_bom_and_duplicates_dropped(tmp_path):
    path = tmp_path / "messy.tsv"
    path.write_text(
        "\ufeffHello  there.\t Hola ,  ahí.\r\n\nHello there.\tHola , ahí.\nBye.\tAdiós.\n",
        encoding="utf-8",
    )
    assert load_corpus(f"tsv:{path}").train == [
        ("Hello there.", "Hola , ahí."),
        ("Bye.", "Adiós."),
    ]


def test_load_corpus_drops_pairs_with_an_empty_side(tmp_path):
    # read_pairs yields empty sides (dropping them is cleaning); the
    # in-memory convenience drops them, as the Bible does.
    path = tmp_path / "half.tsv"
    path.write_text("Yes.\tSí.\nNo.\t  \n\tNada.\n", encoding="utf-8")
    assert list(read_pairs(f"tsv:{path}")) == [("Yes.", "Sí.", None), ("No.", "  ", None), ("", "Nada.", None)]
    assert load_corpus(f"tsv:{path}").train == [("Yes.", "Sí.")]


def test_tsv_line_without_tab_names_file_and_line():
    with pytest.raises(ValueError, match=r"malformed\.tsv:3: no tab"):
        load_corpus(f"tsv:{DATA / 'malformed.tsv'}")


def test_tsv_invalid_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "latin1.tsv"
    path.write_bytes("Yes.\tSí.\nWhere?\t¿Dónde?\n".encode("latin-1"))
    with pytest.raises(ValueError, match=r"latin1\.tsv:1: invalid UTF-8"):
        load_corpus(f"tsv:{path}")


def test_tsv_missing_file_is_named(tmp_path):
    missing = tmp_path / "nowhere.tsv"
    with pytest.raises(ValueError, match=re.escape(str(missing))):
        load_corpus(f"tsv:{missing}")


def test_tsv_without_pairs_is_refused(tmp_path):
    path = tmp_path / "empty.tsv"
    path.write_text("\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="no sentence pairs"):
        load_corpus(f"tsv:{path}")


def test_load_corpus_reads_every_format_and_can_skip(tmp_path):
    splits = load_corpus(f"moses:{CORPORA / 'europarl'}?src=en&tgt=es")
    assert splits.train[0] == ("Resumption of the session", "Reanudación del período de sesiones")
    assert len(splits.train) == 3  # the blank line pair is dropped
    bad = load_corpus(f"jsonl:{CORPORA / 'bad.jsonl'}?src=en&tgt=es", on_error="skip")
    assert bad.train == [("Yes.", "Sí."), ("Bye.", "Adiós.")]


# --------------------------------------------------------------------------
# read_pairs: one test per format

CORPORA = DATA / "corpora"
PAIRS_TSV = [
    ("Good morning.", "Buenos días.", None),
    ("Thank you.", "Gracias.", None),
    ("Where is the station?", "¿Dónde está la estación?", None),
]
EUROPARL = [
    ("Resumption of the session", "Reanudación del período de sesiones", None),
    ("I declare resumed the session.", "Declaro reanudado el período de sesiones.", None),
    ("", "", None),  # an empty line on both sides: yielded, cleaning drops it
    ("Thank you, Madam President.", "Gracias, señora Presidenta.", None),
]
MEMORY_TMX = [
    ("Good morning.", "Buenos días.", None),
    ("Click Save now.", "Pulse Guardar ahora.", None),
    ("Line break, bold text and code.", "Salto de línea, texto negrita y código.", None),
    ("Empty target.", "", None),
]
PAIRS_JSONL = [
    ("Good night.", "Buenas noches.", None),
    ("See you tomorrow.", "Hasta mañana.", None),
    ('Tab\there, "quotes" and emoji 🙂', "", None),
]


def test_tsv_reads_raw_columns_and_ignores_attribution():
    assert list(read_pairs(f"tsv:{CORPORA / 'pairs.tsv'}")) == PAIRS_TSV


def test_tsv_columns_choose_the_direction():
    swapped = list(read_pairs(f"tsv:{CORPORA / 'pairs.tsv'}?src=1&tgt=0"))
    assert swapped == [(t, s, None) for s, t, _ in PAIRS_TSV]
    attribution = list(read_pairs(f"tsv:{CORPORA / 'pairs.tsv'}?tgt=2"))
    assert attribution[0] == ("Good morning.", "CC0 written for translate tests #1", None)


def test_tsv_is_raw_text(tmp_path):
    # No normalization at this level: spaces, NFD and CRLF's '\r' aside.
    path = tmp_path / "raw.tsv"
    path.write_bytes("\ufeff  Two  spaces\tcafe\u0301\r\n".encode())
    assert list(read_pairs(f"tsv:{path}")) == [("  Two  spaces", "cafe\u0301", None)]


def test_moses_reads_two_line_aligned_files():
    assert list(read_pairs(f"moses:{CORPORA / 'europarl'}?src=en&tgt=es")) == EUROPARL
    reverse = list(read_pairs(f"moses:{CORPORA / 'europarl'}?src=es&tgt=en"))
    assert reverse == [(t, s, None) for s, t, _ in EUROPARL]


def test_tmx_flattens_inline_markup_and_matches_region_codes():
    memory = CORPORA / "memory.tmx"
    # en takes EN-US, en-gb and TMX 1.1's lang="en"; es-ES takes es-ES, else a bare es.
    assert list(read_pairs(f"tmx:{memory}?src=en&tgt=es-ES")) == MEMORY_TMX
    assert next(read_pairs(f"tmx:{memory}?src=EN_us&tgt=es-es")) == MEMORY_TMX[0]
    # A bare es takes the first es-* of the tu: es-MX in the "markup" tu.
    plain_es = list(read_pairs(f"tmx:{memory}?src=en&tgt=es"))
    assert plain_es[2][1] == "Salto de línea, texto negrita y código (MX)."
    reverse = list(read_pairs(f"tmx:{memory}?src=es-ES&tgt=en"))
    assert reverse == [(t, s, None) for s, t, _ in MEMORY_TMX]


def test_tmx_region_asked_for_does_not_fall_back_to_another_region():
    skipped = collections.Counter()
    pairs = list(read_pairs(f"tmx:{CORPORA / 'memory.tmx'}?src=es-MX&tgt=en", "skip", skipped))
    assert [s for s, _, _ in pairs] == ["Pulse Guardar ahora.", "Salto de línea, texto negrita y código (MX)."]
    assert skipped == {"tmx: tu without both languages": 2}


def test_tmx_in_utf16_with_a_namespace(tmp_path):
    text = (CORPORA / "memory.tmx").read_text(encoding="utf-8")
    text = text.replace('encoding="UTF-8"', 'encoding="UTF-16"')
    text = text.replace('<tmx version="1.4">', '<tmx version="1.4" xmlns="http://www.lisa.org/tmx14">')
    path = tmp_path / "memory16.tmx"
    path.write_bytes(text.encode("utf-16"))  # with a BOM, as Windows tools write it
    assert list(read_pairs(f"tmx:{path}?src=en&tgt=es-ES")) == MEMORY_TMX


def test_jsonl_with_custom_keys():
    assert list(read_pairs(f"jsonl:{CORPORA / 'pairs.jsonl'}?src=en&tgt=es")) == PAIRS_JSONL
    reverse = list(read_pairs(f"jsonl:{CORPORA / 'pairs.jsonl'}?src=es&tgt=en"))
    assert reverse == [(t, s, None) for s, t, _ in PAIRS_JSONL]


def test_jsonl_default_keys_and_percent_encoded_key(tmp_path):
    path = tmp_path / "default.jsonl"
    path.write_text('{"source": "Hi.", "target": "Hola.", "source text": "Hey."}\n', encoding="utf-8")
    assert list(read_pairs(f"jsonl:{path}")) == [("Hi.", "Hola.", None)]
    assert list(read_pairs(f"jsonl:{path}?src=source%20text")) == [("Hey.", "Hola.", None)]


def gzip_copy(path: Path, folder: Path) -> Path:
    copy = folder / (path.name + ".gz")
    copy.write_bytes(gzip.compress(path.read_bytes()))
    return copy


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("tsv:{}", PAIRS_TSV),
        ("jsonl:{}?src=en&tgt=es", PAIRS_JSONL),
        ("tmx:{}?src=en&tgt=es-ES", MEMORY_TMX),
    ],
)
def test_gz_files_are_read_transparently(tmp_path, spec, expected):
    name = {"tsv": "pairs.tsv", "jso": "pairs.jsonl", "tmx": "memory.tmx"}[spec[:3]]
    assert list(read_pairs(spec.format(gzip_copy(CORPORA / name, tmp_path)))) == expected


def test_moses_falls_back_to_gz_per_side(tmp_path):
    gzip_copy(CORPORA / "europarl.en", tmp_path)  # europarl.en.gz only
    (tmp_path / "europarl.es").write_bytes((CORPORA / "europarl.es").read_bytes())
    assert list(read_pairs(f"moses:{tmp_path / 'europarl'}?src=en&tgt=es")) == EUROPARL


def test_tmx_memory_stays_flat(tmp_path):
    path = tmp_path / "big.tmx"
    with path.open("w", encoding="utf-8") as f:
        f.write('<?xml version="1.0" encoding="UTF-8"?>\n<tmx version="1.4"><header/><body>\n')
        for i in range(20_000):
            f.write(
                f'<tu tuid="{i}"><tuv xml:lang="en"><seg>Sentence {i} with <hi>some</hi> words.</seg></tuv>'
                f'<tuv xml:lang="es"><seg>Frase {i} con <ph>&lt;x/&gt;</ph>palabras.</seg></tuv></tu>\n'
            )
        f.write("</body></tmx>\n")
    size = path.stat().st_size
    tracemalloc.start()
    try:
        count = sum(1 for _ in read_pairs(f"tmx:{path}?src=en&tgt=es"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 20_000
    # Streaming keeps the peak a small fraction of the file; keeping the parsed tree would cost
    # many times the file's size.
    assert peak < size / 4, (peak, size)


# --------------------------------------------------------------------------
# read_pairs: bad input, one test per case


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_tsv_missing_column(tmp_path):
    path = write(tmp_path / "two.tsv", "Yes.\tSí.\tok\nNo.\tNo.\n")
    with pytest.raises(ValueError, match=r"two\.tsv:2: 2 columns; column 2 \(0-based\) is needed"):
        list(read_pairs(f"tsv:{path}?tgt=2"))


@pytest.mark.parametrize(
    "line, message",
    [
        ('{"source": "Hi."', r"bad\.jsonl:2: not JSON: Expecting ',' delimiter at column 17"),
        ('["Hi.", "Hola."]', r"bad\.jsonl:2: an array, not a JSON object"),
        ('{"source": "Hi."}', r"bad\.jsonl:2: missing key 'target'"),
        ('{"source": "Hi.", "target": null}', r"bad\.jsonl:2: key 'target' holds null, not a string"),
        ('{"source": "\\udc00", "target": "x"}', r"bad\.jsonl:2: key 'source' holds a lone surrogate"),
    ],
)
def test_jsonl_bad_record_names_file_and_line(tmp_path, line, message):
    path = write(tmp_path / "bad.jsonl", f'{{"source": "Yes.", "target": "Sí."}}\n{line}\n')
    with pytest.raises(ValueError, match=message):
        list(read_pairs(f"jsonl:{path}"))


def test_moses_different_line_counts_name_both_files_and_counts():
    reader = read_pairs(f"moses:{CORPORA / 'uneven'}?src=en&tgt=es")
    with pytest.raises(ValueError) as error:
        next(reader)  # counted first: no pair is used before the error
    assert str(error.value) == (
        f"parallel files differ in length: {CORPORA / 'uneven.en'} has 3 lines, {CORPORA / 'uneven.es'} has 2"
    )


def test_moses_mismatch_that_shows_only_while_streaming(monkeypatch):
    # Pipes cannot be counted first (nor files that change while read): the
    # mismatch is then found when one side ends, with the counts seen.
    monkeypatch.setattr(corpora, "_count_lines", lambda path: 0)
    reader = read_pairs(f"moses:{CORPORA / 'uneven'}?src=en&tgt=es")
    assert [next(reader), next(reader)] == [("One.", "Uno.", None), ("Two.", "Dos.", None)]
    with pytest.raises(ValueError, match=r"uneven\.en has 3 lines, .*uneven\.es has 2$"):
        next(reader)


@pytest.mark.parametrize(
    "spec, name",
    [
        ("tsv:{}", "bad.txt"),
        ("jsonl:{}", "bad.txt"),
        ("moses:{}?src=txt&tgt=ok", "bad.txt"),
        ("tsv:{}", "bad.txt.gz"),
    ],
)
def test_invalid_utf8_names_file_line_and_byte(tmp_path, spec, name):
    data = {
        "tsv": "Yes.\tSí.\nOù?\t¿Dónde?\n",
        "jsonl": '{"source": "Yes.", "target": "Sí."}\n{"source": "Où?", "target": "¿Dónde?"}\n',
        "moses": "Yes.\nOù?\n",
    }[spec.partition(":")[0]]
    raw = data.encode("utf-8").replace("Où".encode(), "Où".encode("latin-1"))
    path = tmp_path / name
    path.write_bytes(gzip.compress(raw) if name.endswith(".gz") else raw)
    write(tmp_path / "bad.ok", "Yes.\nWhere?\n")
    byte = 13 if spec.startswith("jsonl") else 1
    message = f"{path}:2: invalid UTF-8 at byte {byte} of the line (b'\\xf9')"
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        list(read_pairs(spec.format(tmp_path / "bad" if spec.startswith("moses") else path)))


def tmx(tmp_path: Path, *tus: str) -> Path:
    body = "\n".join(
        "<tu>" + "".join(f'<tuv xml:lang="{lang}"><seg>{lang} {i}</seg></tuv>' for lang in tu.split()) + "</tu>"
        for i, tu in enumerate(tus)
    )
    return write(tmp_path / "langs.tmx", f'<tmx version="1.4"><header/><body>{body}</body></tmx>')


def test_tmx_language_not_present_lists_the_present_ones(tmp_path):
    path = tmx(tmp_path, "en-US fr-FR", "de-DE en-GB", "en-us FR-fr")
    message = re.escape(f"{path}: no segment in 'es'; the file has: de-DE, en-GB, en-US, fr-FR")
    with pytest.raises(ValueError, match=message):
        list(read_pairs(f"tmx:{path}?src=en&tgt=es"))
    with pytest.raises(ValueError, match=message):  # skipping does not hide it
        list(read_pairs(f"tmx:{path}?src=en&tgt=es", "skip"))


def test_tmx_tu_without_both_languages_names_the_tu(tmp_path):
    path = tmx(tmp_path, "en fr", "en de", "de fr")
    with pytest.raises(ValueError, match=r"langs\.tmx: tu 2 has no segment in 'fr' \(it has: en, de\)"):
        list(read_pairs(f"tmx:{path}?src=en&tgt=fr"))
    skipped = collections.Counter()
    assert list(read_pairs(f"tmx:{path}?src=en&tgt=fr", "skip", skipped)) == [("en 0", "fr 0", None)]
    assert skipped == {"tmx: tu without both languages": 2}


@pytest.mark.parametrize(
    "text, message",
    [
        (
            '<tmx><body><tu><tuv xml:lang="en"><seg>Hi</tuv></tu></body></tmx>',
            r"malformed XML: mismatched tag: line 1",
        ),
        ("<html><body/></html>", r"not a TMX file: the root element is <html>"),
        ("<tmx><header/><body/></tmx>", r"no translation units"),
    ],
)
def test_tmx_that_is_not_tmx_is_named(tmp_path, text, message):
    path = write(tmp_path / "broken.tmx", text)
    with pytest.raises(ValueError, match=re.escape(str(path)) + ": " + message):
        list(read_pairs(f"tmx:{path}?src=en&tgt=es"))


def test_gz_path_that_is_not_gzip_is_named(tmp_path):
    path = write(tmp_path / "plain.tsv.gz", "Yes.\tSí.\n")
    with pytest.raises(ValueError, match=re.escape(f"{path}: bad gzip data after line 0")):
        list(read_pairs(f"tsv:{path}"))


def test_overlong_line_is_refused_or_skipped(tmp_path, monkeypatch):
    monkeypatch.setattr(corpora, "MAX_LINE_BYTES", 16)
    path = write(tmp_path / "long.tsv", "Yes.\tSí.\n" + "x" * 40 + "\tlong\nNo.\tNo.\n" + "y" * 40)
    with pytest.raises(ValueError, match=r"long\.tsv:2: line longer than 16 bytes"):
        list(read_pairs(f"tsv:{path}"))
    skipped = collections.Counter()
    assert list(read_pairs(f"tsv:{path}", "skip", skipped)) == [("Yes.", "Sí.", None), ("No.", "No.", None)]
    assert skipped == {"line too long": 2}  # the last one has no line break


needs_dev_zero = pytest.mark.skipif(not Path("/dev/zero").exists(), reason="needs /dev/zero")


@needs_dev_zero
@pytest.mark.timeout(60)
@pytest.mark.parametrize("spec", ["tsv:/dev/zero", "jsonl:/dev/zero", "moses:/dev/zero?src=en&tgt=es"])
def test_a_corpus_line_without_newline_is_refused_at_the_cap(spec, tmp_path):
    if spec.startswith("moses"):  # /dev/zero.en does not exist: two links to it
        for side in ("en", "es"):
            (tmp_path / f"zero.{side}").symlink_to("/dev/zero")
        spec, path = f"moses:{tmp_path / 'zero'}?src=en&tgt=es", tmp_path / "zero.en"
    else:
        path = "/dev/zero"
    with pytest.raises(ValueError) as refused:
        list(read_pairs(spec))
    assert str(refused.value) == f"{path}:1: line longer than 1,048,576 bytes (data.max_line_bytes)"
    with pytest.raises(ValueError, match=rf"^{re.escape(str(path))}:1: line longer than 1,000 bytes"):
        list(read_pairs(spec, max_line_bytes=1000))
    # Skipping reads past an overlong line, but not forever: a stream without line breaks is no file of lines.
    with pytest.raises(
        ValueError,
        match=rf"^{re.escape(str(path))}:1: no line break in 64,\d{{3}} bytes: "
        "not a file of lines \\(data.max_line_bytes is 1,000\\)$",
    ):
        list(read_pairs(spec, "skip", max_line_bytes=1000))


def test_the_line_cap_is_set_per_read(tmp_path):
    path = write(tmp_path / "long.tsv", "Yes.\tSí.\n" + "x" * 40 + "\tlong\n")
    assert len(list(read_pairs(f"tsv:{path}", max_line_bytes=100))) == 2
    with pytest.raises(ValueError, match=r"long\.tsv:2: line longer than 16 bytes"):
        list(read_pairs(f"tsv:{path}", max_line_bytes=16))
    skipped = collections.Counter()
    assert list(read_pairs(f"tsv:{path}", "skip", skipped, max_line_bytes=16)) == [("Yes.", "Sí.", None)]
    assert skipped == {"line too long": 1}
    with pytest.raises(ValueError, match="max_line_bytes must be a positive integer, got 0"):
        read_pairs(f"tsv:{path}", max_line_bytes=0)


@needs_dev_zero
@pytest.mark.timeout(120)
def test_prepare_refuses_a_corpus_without_line_breaks_in_one_line(tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "translate",
            "prepare",
            "data.corpus=tsv:/dev/zero",
            f"run_dir={tmp_path / 'run'}",
            "data.max_line_bytes=4096",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=100,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    # (TensorFlow's start-up lines and the progress bar come before it.)
    assert result.stderr.splitlines()[-1] == "error: /dev/zero:1: line longer than 4,096 bytes (data.max_line_bytes)"


@pytest.mark.parametrize(
    "spec",
    [
        "tsv:{}/nowhere.tsv",
        "jsonl:{}/nowhere.jsonl",
        "tmx:{}/nowhere.tmx?src=en&tgt=es",
        "moses:{}/nowhere?src=en&tgt=es",
    ],
)
def test_missing_path_is_named_before_reading(tmp_path, spec):
    with pytest.raises(ValueError, match="corpus file not found: " + re.escape(str(tmp_path / "nowhere"))):
        read_pairs(spec.format(tmp_path))  # raised by the call, not on iteration


def test_path_that_is_a_directory_is_named(tmp_path):
    message = f"corpus path is a directory, not a file: {tmp_path}"
    with pytest.raises(ValueError, match=re.escape(message) + "$"):
        read_pairs(f"tsv:{tmp_path}")


@pytest.mark.parametrize(
    "spec, message",
    [
        (
            "csv:x.csv",
            "unknown corpus format 'csv' in 'csv:x.csv': known formats are bible, jsonl, moses, tmx, tsv",
        ),
        ("tsv:x?lang=en", "unknown option 'lang' for tsv in 'tsv:x?lang=en': known options are src, tgt"),
        ("tsv:x?src=x", "bad value 'x' for option 'src' in 'tsv:x?src=x': expected a 0-based column number"),
        ("tsv:x?src=-1", "bad value '-1' for option 'src'"),
        ("tsv:x?src=1&tgt=1", "src and tgt are the same ('1') in 'tsv:x?src=1&tgt=1'"),
        ("tsv:x?src=1&src=2", "option 'src' given twice"),
        ("tsv:x?src", "bad option 'src' in 'tsv:x?src': expected key=value"),
        ("moses:x?src=en", "moses needs option tgt= in 'moses:x?src=en'"),
        ("moses:x?src=../en&tgt=es", "bad value '../en' for option 'src'"),
        ("tmx:x?src=en&tgt=e s", "bad value 'e s' for option 'tgt'"),
        ("tmx:x?src=en-US&tgt=en_us", "src and tgt are the same"),
        ("jsonl:x?src=", "bad value '' for option 'src'"),
        ("tsv:?src=1", "bad corpus spec 'tsv:?src=1': no path"),
    ],
)
def test_bad_spec_is_refused_with_one_line(spec, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        read_pairs(spec)


@pytest.mark.parametrize("spec", ["corpus.tsv", "tsv:", "bible:"])
def test_spec_without_scheme_or_argument_is_refused(spec):
    with pytest.raises(ValueError, match=re.escape(f"bad corpus spec {spec!r}")):
        load_corpus(spec)


def test_path_with_a_question_mark_needs_a_trailing_one(tmp_path):
    path = write(tmp_path / "what?.tsv", "Yes.\tSí.\n")
    assert list(read_pairs(f"tsv:{path}?")) == [("Yes.", "Sí.", None)]


def test_on_error_must_be_known():
    with pytest.raises(ValueError, match="on_error must be one of raise, skip, not 'ignore'"):
        read_pairs(f"tsv:{CORPORA / 'pairs.tsv'}", on_error="ignore")


# --------------------------------------------------------------------------
# on_error="skip"


def test_skip_counts_bad_records_by_reason(tmp_path):
    path = tmp_path / "bad.tsv"
    path.write_bytes(b"Yes.\tS\xc3\xad.\nno tab here\nCaf\xe9\tCaf\xc3\xa9\nonly\ttwo\n\nNo.\tNo.\tok\n")
    skipped = collections.Counter()
    pairs = list(read_pairs(f"tsv:{path}?tgt=2", "skip", skipped))
    assert pairs == [("No.", "ok", None)]
    assert skipped == {"tsv: missing column": 2, "tsv: no tab": 1, "invalid UTF-8": 1}

    # One counter can gather several reads (a prepare run reads corpus, dev, test).
    pairs = list(read_pairs(f"jsonl:{CORPORA / 'bad.jsonl'}?src=en&tgt=es", "skip", skipped))
    assert pairs == [("Yes.", "Sí.", None), ("Bye.", "Adiós.", None)]
    assert skipped == {
        "tsv: missing column": 2,
        "tsv: no tab": 1,
        "invalid UTF-8": 1,
        "jsonl: not JSON": 1,
        "jsonl: not an object": 1,
        "jsonl: missing key": 1,
        "jsonl: not a string": 1,
        "jsonl: lone surrogate": 1,
    }


def test_skip_in_moses_drops_the_pair_and_keeps_alignment(tmp_path):
    (tmp_path / "c.en").write_bytes(b"One.\nTwo \xff.\nThree.\n")
    (tmp_path / "c.es").write_bytes(b"Uno.\nDos.\nTres.\n")
    skipped = collections.Counter()
    assert list(read_pairs(f"moses:{tmp_path / 'c'}?src=en&tgt=es", "skip", skipped)) == [
        ("One.", "Uno.", None),
        ("Three.", "Tres.", None),
    ]
    assert skipped == {"invalid UTF-8": 1}
