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


RELOAD_SCRIPT = """
import json, sys, torch
from transformers import AutoModelForCausalLM
m = AutoModelForCausalLM.from_pretrained(sys.argv[1]).eval()
ids = torch.tensor(json.loads(sys.argv[2]))
with torch.no_grad():
    out = m(input_ids=ids).logits[0, -1, :4].tolist()
assert "greenprune" not in sys.modules
print(json.dumps({"params": sum(p.numel() for p in m.parameters()), "config": m.config.to_dict(), "logits": out}))
"""


def reload_plain(folder: Path, input_ids: list[list[int]]) -> dict:
    """Load a saved folder with plain transformers in a fresh process that never imports greenprune."""
    import json
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", RELOAD_SCRIPT, str(folder), json.dumps(input_ids)],
        capture_output=True, text=True, timeout=180,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])
