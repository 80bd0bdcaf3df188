"""Each mutation operator injects exactly the bug it names; mutants parse and differ from the original."""

from __future__ import annotations

import ast
import random

import pytest

from greenprune.tasks.mutate import OPERATORS, mutate

SOURCE = '''
def window(items, size, step):
    """Slide a window."""
    out = []
    total = 0
    for i in range(0, len(items), step):
        if i + size <= len(items) and not items[i] is None:
            out.append(items[i:i + size])
            total += size * 2
    return max(total, step) or out
'''.strip()


def _own(node: ast.AST) -> list[tuple[str, object]]:
    """A node's scalar fields (names, constants), without its children."""
    return [(f, v) for f, v in ast.iter_fields(node) if not isinstance(v, (ast.AST, list))
            and f not in ("lineno", "col_offset", "end_lineno", "end_col_offset")]


@pytest.mark.parametrize("operator", OPERATORS)
def test_operator_changes_one_thing(operator):
    rng = random.Random(0)
    m = mutate(SOURCE, rng, operators=(operator,))
    assert m is not None and m.operator == operator
    assert m.mutant != m.original
    ast.parse(m.mutant)
    original, mutant = ast.parse(m.original), ast.parse(m.mutant)
    diff = [(a, b) for a, b in zip(ast.walk(original), ast.walk(mutant), strict=False) if type(a) is not type(b)]
    if operator not in ("drop_not", "off_by_one", "swap_args"):
        # same tree shape: only an operator or a name changed
        assert len(list(ast.walk(original))) == len(list(ast.walk(mutant)))
        changed = [(ast.dump(a), ast.dump(b)) for a, b in zip(ast.walk(original), ast.walk(mutant), strict=True)
                   if type(a) is not type(b) or _own(a) != _own(b)]
        assert len(changed) == 1, changed
    else:
        assert diff or m.mutant != m.original


def test_docstring_is_never_mutated():
    for seed in range(30):
        m = mutate(SOURCE, random.Random(seed))
        assert m is not None
        assert ast.get_docstring(ast.parse(m.mutant).body[0]) == "Slide a window."


def test_no_site_gives_none():
    assert mutate("def f(self):\n    return self.x\n", random.Random(0)) is None
