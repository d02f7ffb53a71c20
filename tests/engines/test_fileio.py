"""Atomic writes: a failed build or write never leaves half an output behind."""

from __future__ import annotations

import pytest

from engines.fileio import atomic_folder, atomic_path


def test_atomic_folder_replaces_only_on_success(tmp_path):
    out = tmp_path / "engine"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(out) as tmp:
        (tmp / "manifest.json").write_text("{}")
        raise RuntimeError("export failed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["engine"]  # no temporary folder left
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]
    with atomic_folder(out) as tmp:
        (tmp / "manifest.json").write_text("{}")
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["engine"]


def test_atomic_path_keeps_the_old_file_on_failure(tmp_path):
    out = tmp_path / "a.json"
    out.write_text("old")
    with pytest.raises(ValueError), atomic_path(out) as tmp:
        tmp.write_text("half")
        raise ValueError("bad input")
    assert out.read_text() == "old" and [p.name for p in tmp_path.iterdir()] == ["a.json"]
    with atomic_path(out) as tmp:
        tmp.write_text("new")
    assert out.read_text() == "new"
