"""The top-level API: every name in `greenprune.__all__` imports, and the README's imports work in a fresh process."""

from __future__ import annotations

import re
import subprocess
import sys
import types
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_all_lists_every_public_name_once_and_each_resolves():
    import greenprune

    names = greenprune.__all__
    assert len(names) == len(set(names)), sorted(n for n in names if names.count(n) > 1)
    public = {n for n, v in vars(greenprune).items() if not n.startswith("_") and not isinstance(v, types.ModuleType)}
    assert public == set(names) - {"__version__"}  # nothing exported by accident, nothing listed but missing
    for name in names:
        assert getattr(greenprune, name) is not None, name
    # re-exports are the subpackages' own objects, under the README's names
    from greenprune.tokens import attach, detach
    from greenprune.weights import prune

    assert greenprune.attach_alpine is attach and greenprune.detach_alpine is detach and greenprune.prune is prune


def test_star_import_and_readme_imports_work_in_a_fresh_process():
    lines = re.findall(r"^from greenprune[\w.]* import .+$", README.read_text(encoding="utf-8"), flags=re.MULTILINE)
    assert len(lines) >= 3 and any("attach_alpine" in line for line in lines)
    code = "\n".join([
        "import greenprune",
        "namespace = {}",
        "exec('from greenprune import *', namespace)",
        "missing = sorted(set(greenprune.__all__) - set(namespace))",
        "assert not missing, missing",
        *lines,
        "print('ok')",
    ])
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0 and proc.stdout.strip().endswith("ok"), proc.stderr[-2000:]
