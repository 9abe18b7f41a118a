"""``train.members``: an ensemble's members trained side by side, one process per core (translate/members.py)."""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from pathlib import Path

import pytest
import yaml

from conftest import TINY_OVERRIDES, file_states, one_error_line, run_main, tiny_config
from translate.config import load_config, save_config
from translate.members import check_train_members, member_command, plan, train_members


def test_two_members_train_side_by_side_and_ship_their_ensemble(tmp_path, capsys, caplog):
    import translate

    run_dir, models_dir = tmp_path / "run", tmp_path / "saved_models"
    # --no-export keeps this test short: export --model below makes the export train would (load_ensemble, export).
    argv = ["train", "--no-export", *TINY_OVERRIDES, f"run_dir={run_dir}", f"export.models_dir={models_dir}"]
    argv += ["train.members=2", "train.epochs=1", "train.seed=7"]
    with caplog.at_level(logging.INFO, logger="translate.members"):
        result = run_main(capsys, argv)
    assert result.returncode == 0, result
    assert "trained 2 members side by side" in result.stdout

    # One preparation, two complete run folders that copied it, seeds 7 and 8.
    for k, seed in ((1, 7), (2, 8)):
        member = run_dir / f"member-{k}"
        assert (member / "best.weights.h5").is_file() and (run_dir / f"member-{k}.log").is_file()
        saved = yaml.safe_load((member / "config.yaml").read_text(encoding="utf-8"))
        assert (saved["train"]["seed"], saved["train"]["members"]) == (seed, 1)
        assert saved["data"]["reuse_from"] == str(run_dir)
        for name in ("src.model", "tgt.model", "data/train.src", "data/test.tgt"):
            assert (member / name).read_bytes() == (run_dir / name).read_bytes()
    assert yaml.safe_load((run_dir / "config.yaml").read_text(encoding="utf-8"))["train"]["members"] == 2
    messages = [r.getMessage() for r in caplog.records if r.name == "translate.members"]
    assert any(m.startswith("member 2 (seed 8): epoch 1 done, dev BLEU") for m in messages), messages
    if len(os.sched_getaffinity(0)) >= 2:
        cores = sorted(os.sched_getaffinity(0))
        for k in (1, 2):
            assert any(
                m.startswith(f"member {k} (seed {6 + k}) training in") and f"(core {cores[k - 1]})" in m
                for m in messages
            ), messages

    # The ensemble's test scores; nothing exported yet.
    assert 0 <= json.loads((run_dir / "test_scores.json").read_text(encoding="utf-8"))["bleu"] <= 100
    assert not models_dir.exists()

    # Trained: a second call is refused with one line and changes nothing.
    before = file_states(tmp_path)
    line = one_error_line(capsys, argv)
    assert line.startswith(f"error: run folder {run_dir} holds a finished ensemble (member-1, member-2 all trained)")
    assert file_states(tmp_path) == before

    # export --model on the ensemble's folder exports the ensemble: every member recorded, translating as one model.
    assert run_main(capsys, ["export", "--model", str(run_dir)]).returncode == 0
    version = models_dir / "translator" / "1"
    record = yaml.safe_load((version / "assets" / "ensemble.yaml").read_text(encoding="utf-8"))
    assert [m["run_dir"] for m in record["members"]] == [str(run_dir / "member-1"), str(run_dir / "member-2")]
    assert len(translate.load(version)(["Good morning.", "Thank you."])) == 2
    line = one_error_line(capsys, ["export", "--model", str(run_dir), "--weights", str(run_dir / "x.weights.h5")])
    assert line == (
        f"error: {run_dir} holds an ensemble of 2 members (train.members): --weights is for one run's checkpoint; "
        f"export one member with --model {run_dir / 'member-1'} --weights"
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.members=0", "train.members must be at least 1 (1: one model), got 0"),
        ("train.strategy=mirrored", "train.members trains each member in a process of its own on one core"),
        ("train.seed=4294967295", "train.seed + train.members - 1 must be at most 4,294,967,295"),
    ],
)
def test_member_settings_that_cannot_work_are_refused_in_one_line(capsys, tmp_path, override, message):
    argv = ["train", *TINY_OVERRIDES, f"run_dir={tmp_path / 'run'}", "train.members=2", override]
    assert message in one_error_line(capsys, argv)
    assert not (tmp_path / "run").exists()


def test_finished_members_are_kept_and_the_others_trained(tmp_path):
    config = tiny_config(tmp_path, "train.members=3")
    first, second, third = plan(config)
    assert [m.seed for m in (first, second, third)] == [1234, 1235, 1236]
    first.run_dir.mkdir(parents=True)
    (first.run_dir / "best.weights.h5").write_bytes(b"trained")  # finished: weights and no backup
    # Killed mid-run: its copy of the preparation, weights and a backup, which train resumes.
    (third.run_dir / "backup").mkdir(parents=True)
    (third.run_dir / "data").mkdir()
    (third.run_dir / "stats.json").write_text("{}")
    (third.run_dir / "best.weights.h5").write_bytes(b"unfinished")
    (third.run_dir / "backup" / "training_metadata.json").write_text('{"epoch": 2}')
    assert check_train_members(config) == [second, third]
    overwrite = tiny_config(tmp_path, "train.members=3", "train.overwrite=true")
    assert check_train_members(overwrite) == [first, second, third]
    # All finished: refused, as a finished run is.
    (third.run_dir / "backup" / "training_metadata.json").unlink()
    (third.run_dir / "backup").rmdir()
    second.run_dir.mkdir()
    (second.run_dir / "best.weights.h5").write_bytes(b"trained")
    with pytest.raises(ValueError, match=r"holds a finished ensemble \(member-1, member-2, member-3 all trained\)"):
        check_train_members(config)


def test_one_model_and_an_ensemble_never_share_a_run_folder(tmp_path):
    from translate.run_folder import check_train

    one_model = tmp_path / "one"
    one_model.mkdir()
    (one_model / "best.weights.h5").write_bytes(b"trained")
    with pytest.raises(ValueError, match="holds one model's run, not an ensemble's members"):
        check_train_members(tiny_config(tmp_path, f"run_dir={one_model}", "train.members=2", "train.overwrite=true"))
    ensemble = tmp_path / "ensemble"
    (ensemble / "member-1").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"holds an ensemble's members \(member-1/, ...\), trained with"):
        check_train(tiny_config(tmp_path, f"run_dir={ensemble}", "train.overwrite=true"))
    check_train(tiny_config(tmp_path, f"run_dir={ensemble}", "train.members=2"))  # the ensemble itself: fine


def test_a_members_command_names_its_folder_exactly_whatever_the_folder_is_called(tmp_path):
    config = tiny_config(tmp_path, "train.members=2")
    config.run_dir = str(tmp_path / "runs: #1, [base] ok")  # YAML would read this unquoted as a mapping
    config_file = Path(config.run_dir) / "config.yaml"
    config_file.parent.mkdir()
    save_config(config, config_file)
    member = plan(config)[1]
    argv = member_command(config, member)
    assert argv[:7] == [sys.executable, "-m", "translate", "train", "--no-export", "--config", str(config_file)]
    loaded = load_config(config_file=argv[6], overrides=argv[7:])
    assert (loaded.run_dir, loaded.data.reuse_from) == (str(member.run_dir), config.run_dir)
    assert (loaded.train.seed, loaded.train.members, loaded.train.overwrite) == (1235, 1, False)


def test_a_member_that_fails_stops_the_others_and_is_named_with_its_log(tmp_path):
    config = tiny_config(tmp_path, "train.members=2")
    pid_file = tmp_path / "sleeper.pid"

    def command(config, member):
        if member.index == 2:
            return [
                sys.executable,
                "-c",
                f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(600)",
            ]
        # Fails once the other has started (written its pid), so that the test can see it stopped.
        wait = f"import os, sys, time\nwhile not os.path.exists({str(pid_file)!r}): time.sleep(0.05)\n"
        return [sys.executable, "-c", wait + "print('error: the corpus is gone'); sys.exit(2)"]

    started = time.monotonic()
    with pytest.raises(ValueError) as raised:
        train_members(config, progress=False, poll_seconds=0.1, command=command)
    log_path = tmp_path / "run" / "member-1.log"
    assert str(raised.value) == (
        f"member 1 (seed 1234) stopped with exit status 2: error: the corpus is gone (its output: {log_path})"
    )
    assert time.monotonic() - started < 60
    # The other member was stopped (and reaped) before the error came back.
    with pytest.raises(ProcessLookupError):
        os.kill(int(pid_file.read_text()), 0)


def test_the_library_train_refuses_an_ensemble_which_trains_in_processes_of_its_own(tmp_path):
    from translate.training import train

    with pytest.raises(ValueError, match=r"train.members=2: an ensemble's members train in processes of their own"):
        train(tiny_config(tmp_path, "train.members=2"))
    assert not (tmp_path / "run").exists()
