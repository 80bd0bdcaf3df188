"""Clone rewrites keep behaviour (checked by running both versions in the sandbox) and change the surface."""

from __future__ import annotations

import ast
import random

import pytest

from greenprune.tasks.rewrite import RewriteError, rewrite
from greenprune.tasks.sandbox import run_program

FUNCS = [
    '''def clamp(value, lo, hi):
    """Clamp value into [lo, hi]."""
    # the usual
    if value < lo:
        return lo
    elif value > hi:
        return hi
    else:
        return value''',
    '''def total(xs):
    acc = 0
    for x in xs:
        acc += x * x
    return acc + len(xs)''',
    '''def pick(flag, a, b):
    if flag:
        result = a
    else:
        result = b
    return str(result)''',
]
CALLS = ["(5, 0, 3)", "(-1, 0, 3)", "(2, 0, 3)", "([1, 2, 3],)", "([],)", "(True, 1, 2)", "(False, 1, 2)"]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rewrites_are_equivalent(seed):
    rng = random.Random(seed)
    program = []
    for i, src in enumerate(FUNCS):
        clone = rewrite(src, rng)
        assert "#" not in clone and '"""' not in clone
        clone_tree = ast.parse(clone).body[0]
        assert isinstance(clone_tree, ast.FunctionDef) and clone_tree.name != ast.parse(src).body[0].name
        name = ast.parse(src).body[0].name
        program += [src.replace(f"def {name}(", f"def orig{i}(", 1),
                    clone.replace(f"def {clone_tree.name}(", f"def new{i}(", 1)]
    checks = []
    for i in range(len(FUNCS)):
        for call in CALLS:
            checks.append(f"try:\n    a = orig{i}{call}\nexcept Exception as e:\n    a = type(e)\n"
                          f"try:\n    b = new{i}{call}\nexcept Exception as e:\n    b = type(e)\n"
                          f"assert a == b, ({i}, {call!r}, a, b)")
    result = run_program("\n\n".join(program + checks) + "\n")
    assert result.status == "passed", result.stderr


def test_no_rewrite_applies():
    with pytest.raises(RewriteError):
        rewrite("def f(x):\n    return x\n", random.Random(0))
