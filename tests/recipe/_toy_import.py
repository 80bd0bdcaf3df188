"""Load tests/recipe/toy.py as one module (`greenprune_test_toy`) whatever pytest's import mode."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

_NAME = "greenprune_test_toy"
if _NAME not in sys.modules:
    _spec = importlib.util.spec_from_file_location(_NAME, Path(__file__).with_name("toy.py"))
    assert _spec is not None and _spec.loader is not None
    _module = importlib.util.module_from_spec(_spec)
    sys.modules[_NAME] = _module
    _spec.loader.exec_module(_module)
toy = sys.modules[_NAME]
