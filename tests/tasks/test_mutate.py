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


def _swapped_back(tree: ast.AST) -> list[str]:
    """Every way of undoing one swap_args: swap the first two arguments of one call back."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and len(node.args) >= 2:
            node.args[0], node.args[1] = node.args[1], node.args[0]
            out.append(ast.unparse(tree))
            node.args[0], node.args[1] = node.args[1], node.args[0]
    return out


def _off_by_one_undone(tree: ast.AST) -> list[str]:
    """Every way of undoing one off_by_one: an int constant moved back by one, or a `± 1` dropped from a range bound."""
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and type(node.value) is int:
            value = node.value
            for back in (value - 1, value + 1):
                node.value = back
                out.append(ast.unparse(tree))
            node.value = value
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "range":
            for i, arg in enumerate(node.args):
                if isinstance(arg, ast.BinOp) and isinstance(arg.op, (ast.Add, ast.Sub)) \
                        and isinstance(arg.right, ast.Constant) and arg.right.value == 1:
                    node.args[i] = arg.left
                    out.append(ast.unparse(tree))
                    node.args[i] = arg
    return out


def _mutants(operator: str, seeds: int = 40) -> list:
    found = [mutate(SOURCE, random.Random(seed), operators=(operator,)) for seed in range(seeds)]
    assert all(m is not None and m.operator == operator for m in found)
    return found


def test_drop_not_removes_exactly_the_not():
    expected = ast.unparse(ast.parse(SOURCE.replace("not items[i] is None", "items[i] is None")))
    for m in _mutants("drop_not", 5):
        assert m.mutant == expected
        nots = [sum(isinstance(n, ast.Not) for n in ast.walk(ast.parse(t))) for t in (m.original, m.mutant)]
        assert nots == [1, 0]


def test_swap_args_swaps_two_arguments_of_one_call():
    seen = set()
    for m in _mutants("swap_args"):
        mutant = ast.parse(m.mutant)
        assert _swapped_back(mutant).count(m.original) == 1, m.mutant
        seen.add(next(line for line in m.mutant.splitlines() if line not in m.original.splitlines()).strip())
    # both two-argument calls of SOURCE get swapped for some seed: range(...) and max(...)
    assert any("range(len(items), 0" in line for line in seen) and any("max(step, total)" in line for line in seen)


def test_off_by_one_moves_one_constant_or_range_bound_by_one():
    kinds = set()
    for m in _mutants("off_by_one"):
        undone = _off_by_one_undone(ast.parse(m.mutant))
        assert m.original in undone, m.mutant
        original_ints = sorted(n.value for n in ast.walk(ast.parse(m.original))
                               if isinstance(n, ast.Constant) and type(n.value) is int)
        mutant_ints = sorted(n.value for n in ast.walk(ast.parse(m.mutant))
                             if isinstance(n, ast.Constant) and type(n.value) is int)
        kinds.add("range" if len(mutant_ints) == len(original_ints) + 1 else "constant")
        if len(mutant_ints) == len(original_ints):
            changed = [(a, b) for a, b in zip(original_ints, mutant_ints, strict=True) if a != b]
            assert len({a for a, _ in changed}) <= 1 and all(abs(a - b) == 1 for a, b in changed), m.mutant
    assert kinds == {"range", "constant"}  # both forms occur in these seeds


def test_docstring_is_never_mutated():
    for seed in range(30):
        m = mutate(SOURCE, random.Random(seed))
        assert m is not None
        assert ast.get_docstring(ast.parse(m.mutant).body[0]) == "Slide a window."


def test_no_site_gives_none():
    assert mutate("def f(self):\n    return self.x\n", random.Random(0)) is None
