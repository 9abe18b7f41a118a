"""translate.atomic: a write either completes or leaves the old file as it was."""

from __future__ import annotations

import pytest

from translate import atomic


def test_write_text_replaces_the_file_whole(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("old", encoding="utf-8")
    atomic.write_text(path, "new ✓")
    assert path.read_text(encoding="utf-8") == "new ✓"
    assert [p.name for p in tmp_path.iterdir()] == ["config.yaml"]


def test_a_failed_write_leaves_the_old_file_and_no_temporary(tmp_path):
    path = tmp_path / "best.weights.h5"
    path.write_bytes(b"old weights")
    with pytest.raises(KeyboardInterrupt):
        with atomic.atomic_path(path) as tmp:
            tmp.write_bytes(b"half")
            raise KeyboardInterrupt
    assert path.read_bytes() == b"old weights"
    assert [p.name for p in tmp_path.iterdir()] == ["best.weights.h5"]


def test_stale_temporaries_are_removed_and_nothing_else(tmp_path):
    (tmp_path / ".tmp-history.csv-0a1b2c3d").write_text("half", encoding="utf-8")
    (tmp_path / ".tmp-config.yaml-ffffffff").write_text("half", encoding="utf-8")
    (tmp_path / ".tmp-mine-notes").write_text("a user's file", encoding="utf-8")
    (tmp_path / "history.csv").write_text("kept", encoding="utf-8")
    removed = atomic.remove_stale_temporaries(tmp_path, "history.csv")
    assert [p.name for p in removed] == [".tmp-history.csv-0a1b2c3d"]
    atomic.remove_stale_temporaries(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-mine-notes", "history.csv"]


def test_a_suffix_keeps_the_name_ending_a_writer_insists_on_and_its_stale_temporary_is_removed(tmp_path):
    path = tmp_path / "best.weights.h5"
    with atomic.atomic_path(path, suffix=".weights.h5") as tmp:
        assert tmp.name.startswith(".tmp-best.weights.h5-") and tmp.name.endswith(".weights.h5")
        tmp.write_bytes(b"weights")
    assert path.read_bytes() == b"weights"
    (tmp_path / ".tmp-best.weights.h5-0a1b2c3d.weights.h5").write_bytes(b"half")
    (tmp_path / ".tmp-notes-0a1b2c3d.txt").write_text("a user's file", encoding="utf-8")
    assert [p.name for p in atomic.remove_stale_temporaries(tmp_path)] == [".tmp-best.weights.h5-0a1b2c3d.weights.h5"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".tmp-notes-0a1b2c3d.txt", "best.weights.h5"]
    with pytest.raises(ValueError, match="suffix"):
        with atomic.atomic_path(path, suffix=".h6"):
            pass


def test_replace_false_makes_a_new_file_and_never_replaces_one(tmp_path):
    path = tmp_path / "new.txt"
    with atomic.atomic_path(path, replace=False) as tmp:
        tmp.write_text("made")
    assert path.read_text() == "made"
    with pytest.raises(FileExistsError):
        with atomic.atomic_path(path, replace=False) as tmp:
            tmp.write_text("again")
    # Made by someone else while the block ran: kept, and the temporary is gone.
    other = tmp_path / "raced.txt"
    with pytest.raises(FileExistsError):
        with atomic.atomic_path(other, replace=False) as tmp:
            tmp.write_text("mine")
            other.write_text("theirs")
    assert path.read_text() == "made" and other.read_text() == "theirs"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.txt", "raced.txt"]


def test_folders_made_for_a_command_that_fails_are_removed_and_others_are_not(tmp_path):
    (tmp_path / "mine").mkdir()
    created = atomic.make_folders(tmp_path / "mine" / "a" / "b")
    assert created == [tmp_path / "mine" / "a", tmp_path / "mine" / "a" / "b"]
    assert atomic.make_folders(tmp_path / "mine" / "a") == []  # nothing new to make
    (tmp_path / "mine" / "a" / "kept.txt").write_text("a file in a made folder is never removed")
    atomic.remove_empty_folders(created)
    assert sorted(p.name for p in (tmp_path / "mine").rglob("*")) == ["a", "kept.txt"]
    (tmp_path / "mine" / "a" / "kept.txt").unlink()
    atomic.remove_empty_folders(created)
    assert list((tmp_path / "mine").iterdir()) == []  # the folder that was there before stays
