from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_demo_runs_the_shipped_recipe_end_to_end(tmp_path):
    """`make demo`: both paths of recipes/demo.yaml, the table printed, the HTML report written (~15 min)."""
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run([sys.executable, "-m", "greenprune.cli", "demo", "--runs-dir", str(tmp_path)],
                          capture_output=True, text=True, cwd=root, timeout=3600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = " ".join(proc.stdout.split())
    for stack in ("baseline", "alpine(even)", "truncation@", "alpine(even)+ffn20%+int8", "vocab/-2L/ffn10%"):
        assert stack in out
    assert "alpine(even) − this Δ" in out  # ALPINE paired with truncation at its FLOPs
    (run_dir,) = tmp_path.iterdir()
    assert (run_dir / "report" / "report.html").is_file() and "report.html" in out
