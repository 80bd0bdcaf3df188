from __future__ import annotations

import os
import stat

import pytest

from greenprune._utils import atomic_write_text


def test_atomic_write_replaces_and_uses_ordinary_permissions(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]  # no temporary left behind


def test_atomic_write_without_overwrite_keeps_the_existing_file(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "one", overwrite=False)
    with pytest.raises(FileExistsError):
        atomic_write_text(target, "two", overwrite=False)
    assert target.read_text() == "one"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]
