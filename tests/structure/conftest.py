"""Shared fixtures: real code from the standard library (split into a corpus and held-out files)."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest


def _stdlib_files() -> list[Path]:
    return sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))


@pytest.fixture(scope="session")
def code_corpus() -> list[str]:
    """A handful of stdlib modules: the texts the pruned vocabulary must reproduce exactly."""
    return [p.read_text(encoding="utf-8") for p in _stdlib_files()[:12]]


@pytest.fixture(scope="session")
def held_out_code() -> list[str]:
    """Stdlib modules outside the corpus (disjoint files)."""
    return [p.read_text(encoding="utf-8") for p in _stdlib_files()[80:84]]
