"""The whole path: train a few steps -> export -> load elsewhere -> same translations."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from conftest import REPO

SENTENCES = ["Good morning.", "Where is the house?", "Thank you.", "I am tired."]


def run_python(code: str, *args: str) -> str:
    result = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


def test_fresh_process_translates_like_the_training_process(tiny_run, tiny_export):
    in_process = tiny_run.graph(SENTENCES)
    code = (
        "import json, sys\nimport translate\nprint(json.dumps(translate.load(sys.argv[1])(json.loads(sys.argv[2]))))\n"
    )
    # The model folder resolves to its newest version, which is this export.
    loaded = json.loads(run_python(code, str(tiny_export.parent), json.dumps(SENTENCES)))
    assert loaded == in_process
    assert all(isinstance(t, str) for t in loaded)


def test_translator_takes_a_string_or_a_list(tiny_run, tiny_translator):
    translator = tiny_translator
    assert translator("Good morning.") == tiny_run.graph(["Good morning."])[0]
    assert translator(["Good morning.", "Thank you."]) == tiny_run.graph(["Good morning.", "Thank you."])
    assert translator([]) == []


def test_cli_translate_prints_one_line_per_sentence(cli, tiny_run, tiny_export):
    result = cli("translate", "--model", tiny_export, *SENTENCES)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.splitlines() == tiny_run.graph(SENTENCES)


def test_cli_evaluate_prints_bleu_and_chrf_with_signatures(cli, tiny_export, tmp_path):
    src, ref = tmp_path / "test.en", tmp_path / "test.es"
    src.write_text("Good morning.\nThank you.\n", encoding="utf-8")
    ref.write_text("Buenos días.\nGracias.\n", encoding="utf-8")
    result = cli("evaluate", "--model", tiny_export, "--src", src, "--ref", ref, "--json")
    assert result.returncode == 0, result.stderr[-2000:]
    scores = json.loads(result.stdout)
    assert 0 <= scores["bleu"] <= 100 and 0 <= scores["chrf"] <= 100
    assert scores["bleu_signature"].startswith("nrefs:1|") and "version:2." in scores["bleu_signature"]
    assert scores["chrf_signature"].startswith("nrefs:1|")


def test_cli_evaluate_refuses_files_of_different_lengths(cli, tiny_export, tmp_path):
    src, ref = tmp_path / "a.en", tmp_path / "b.es"
    src.write_text("one\ntwo\n", encoding="utf-8")
    ref.write_text("uno\n", encoding="utf-8")
    result = cli("evaluate", "--model", tiny_export, "--src", src, "--ref", ref)
    assert result.returncode == 2
    assert "has 2 lines" in result.stderr and "has 1" in result.stderr


def test_nbest_and_align_from_python_and_the_cli(cli, tiny_run, tiny_export):
    import numpy as np

    import translate

    translator = translate.load(tiny_export, nbest=3)
    (three,) = [translator(["Good morning."])[0]]
    assert len(three) == 3 and three[0] == tiny_run.graph(["Good morning."])[0]
    rows = translator.nbest_with_scores(["Good morning.", "Thank you."])
    assert [len(r) for r in rows] == [5, 5]
    assert all(a[1] >= b[1] for row in rows for a, b in zip(row, row[1:]))
    alignment = translator.align("Good morning.")
    assert alignment["attention"].shape == (len(alignment["target_pieces"]), len(alignment["source_pieces"]))
    np.testing.assert_allclose(alignment["attention"].sum(axis=1), 1.0, rtol=1e-5)
    assert alignment["source_pieces"][-1] == "</s>"

    result = cli("translate", "--model", tiny_export, "--nbest", "3", *SENTENCES[:2])
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line.split("\t") for line in result.stdout.splitlines()]
    assert [(i, r) for i, r, _, _ in lines] == [(str(i), str(r)) for i in range(2) for r in (1, 2, 3)]
    with pytest.raises(ValueError, match="nbest must be between 1 and"):
        translate.load(tiny_export, nbest=6)


def test_export_refuses_bad_beam_settings(cli, tiny_run):
    for args, message in (
        (["--beam", "0"], "decode.beam_size must be at least 1"),
        (["--alpha", "-1"], "decode.alpha must be >= 0"),
        (["--beam", "900"], "larger than the target vocabulary"),
        (["--beam", "100000"], "decode.beam_size must be at most 1,000"),
    ):
        result = cli("export", "--run", tiny_run.run_dir, *args)
        assert result.returncode == 2, result.stderr[-2000:]
        assert message in result.stderr.strip().splitlines()[-1]
