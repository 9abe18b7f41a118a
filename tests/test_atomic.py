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
