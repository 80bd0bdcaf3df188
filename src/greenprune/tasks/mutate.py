"""Inject exactly one bug into a real function by mutating its AST.

The operators are the classic mutation-testing ones that defect-detection studies use as realistic, single-edit
bugs: flipped comparison, swapped arithmetic or boolean operator, off-by-one in a constant or a `range` bound,
a dropped `not`, two swapped call arguments, and a variable replaced by another one in scope. Both the mutant
and its untouched counterpart are printed with `ast.unparse`, so formatting never gives the label away.
"""

from __future__ import annotations

import ast
import copy
import random
from dataclasses import dataclass

COMPARE_FLIP: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.GtE, ast.GtE: ast.Lt, ast.Gt: ast.LtE, ast.LtE: ast.Gt,
    ast.Eq: ast.NotEq, ast.NotEq: ast.Eq, ast.Is: ast.IsNot, ast.IsNot: ast.Is, ast.In: ast.NotIn, ast.NotIn: ast.In,
}
ARITH_SWAP: dict[type[ast.operator], type[ast.operator]] = {
    ast.Add: ast.Sub, ast.Sub: ast.Add, ast.Mult: ast.FloorDiv, ast.FloorDiv: ast.Mult, ast.Div: ast.Mult,
    ast.Mod: ast.FloorDiv, ast.BitAnd: ast.BitOr, ast.BitOr: ast.BitAnd, ast.LShift: ast.RShift, ast.RShift: ast.LShift,
}
OPERATORS = ("compare", "arith", "boolop", "off_by_one", "drop_not", "swap_args", "other_var")


@dataclass(frozen=True)
class Mutant:
    original: str  # the function, normalised by ast.unparse
    mutant: str  # the same function with one bug, normalised the same way
    operator: str
    line: int  # 1-based line of the mutated node in the source that was mutated


def _nodes(fn: ast.AST) -> list[ast.AST]:
    """Nodes of the function body in a stable order, skipping the docstring and nested defs' docstrings."""
    out = []
    for node in ast.walk(fn):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            continue
        out.append(node)
    return out


def _docstring_ids(fn: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(fn):
        if isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
            ids.update(id(n) for n in ast.walk(node))
    return ids


def _local_names(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[str]:
    names = {a.arg for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]}
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    names.discard("self")
    names.discard("cls")
    return sorted(names)


def _sites(fn: ast.FunctionDef | ast.AsyncFunctionDef) -> list[tuple[str, ast.AST]]:
    skip = _docstring_ids(fn)
    locals_ = _local_names(fn)
    sites: list[tuple[str, ast.AST]] = []
    for node in ast.walk(fn):
        if id(node) in skip:
            continue
        if isinstance(node, ast.Compare) and any(type(op) in COMPARE_FLIP for op in node.ops):
            sites.append(("compare", node))
        elif isinstance(node, (ast.BinOp, ast.AugAssign)) and type(node.op) in ARITH_SWAP:
            # string formatting with % is not arithmetic
            is_format = isinstance(node, ast.BinOp) and isinstance(node.op, ast.Mod) \
                and isinstance(node.left, ast.Constant)
            if not is_format:
                sites.append(("arith", node))
        elif isinstance(node, ast.BoolOp):
            sites.append(("boolop", node))
        elif isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.Not):
            sites.append(("drop_not", node))
        elif isinstance(node, ast.Constant) and type(node.value) is int:
            sites.append(("off_by_one", node))
        elif isinstance(node, ast.Call):
            if isinstance(node.func, ast.Name) and node.func.id == "range" and node.args:
                sites.append(("off_by_one", node))
            positional = [a for a in node.args if not isinstance(a, ast.Starred)]
            if len(positional) == len(node.args) >= 2 and ast.dump(node.args[0]) != ast.dump(node.args[1]):
                sites.append(("swap_args", node))
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load) and node.id in locals_ and len(locals_) > 1:
            sites.append(("other_var", node))
    return sites


def _apply(kind: str, node: ast.AST, fn: ast.FunctionDef | ast.AsyncFunctionDef, rng: random.Random) -> None:
    if kind == "compare":
        assert isinstance(node, ast.Compare)
        idx = [i for i, op in enumerate(node.ops) if type(op) in COMPARE_FLIP]
        i = rng.choice(idx)
        node.ops[i] = COMPARE_FLIP[type(node.ops[i])]()
    elif kind == "arith":
        assert isinstance(node, (ast.BinOp, ast.AugAssign))
        node.op = ARITH_SWAP[type(node.op)]()
    elif kind == "boolop":
        assert isinstance(node, ast.BoolOp)
        node.op = ast.Or() if isinstance(node.op, ast.And) else ast.And()
    elif kind == "drop_not":
        assert isinstance(node, ast.UnaryOp)
        _replace(fn, node, node.operand)
    elif kind == "off_by_one":
        if isinstance(node, ast.Constant):
            node.value = node.value + rng.choice((1, -1)) if node.value != 0 else 1
        else:
            assert isinstance(node, ast.Call)
            bound = 0 if len(node.args) == 1 else 1
            arg = node.args[bound]
            if isinstance(arg, ast.Constant) and type(arg.value) is int:
                arg.value = arg.value + rng.choice((1, -1))
            else:
                node.args[bound] = ast.BinOp(arg, rng.choice((ast.Add(), ast.Sub())), ast.Constant(1))
    elif kind == "swap_args":
        assert isinstance(node, ast.Call)
        node.args[0], node.args[1] = node.args[1], node.args[0]
    elif kind == "other_var":
        assert isinstance(node, ast.Name)
        others = [n for n in _local_names(fn) if n != node.id]
        node.id = rng.choice(others)
    else:  # pragma: no cover - guarded by OPERATORS
        raise ValueError(kind)


def _replace(root: ast.AST, old: ast.AST, new: ast.AST) -> None:
    for parent in ast.walk(root):
        for fname, value in ast.iter_fields(parent):
            if value is old:
                setattr(parent, fname, new)
                return
            if isinstance(value, list):
                for i, item in enumerate(value):
                    if item is old:
                        value[i] = new
                        return


def normalise(source: str) -> str:
    """The function as `ast.unparse` prints it: what both classes of the defect dataset look like."""
    return ast.unparse(ast.parse(source))


def mutate(source: str, rng: random.Random, operators: tuple[str, ...] = OPERATORS, tries: int = 8) -> Mutant | None:
    """One mutant of the (single) function in `source` with exactly one injected bug, or None if none applies.

    The operator is drawn uniformly among those with a site in the function, then the site uniformly, so rare
    operators are not drowned by integer constants. Every mutant compiles and differs from the original.
    """
    tree = ast.parse(source)
    fn = tree.body[0]
    if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise ValueError("mutate expects source holding one function definition")
    original = ast.unparse(tree)
    sites = [s for s in _sites(fn) if s[0] in operators]
    if not sites:
        return None
    for _ in range(tries):
        kinds = sorted({k for k, _ in sites})
        kind = rng.choice(kinds)
        candidates = [i for i, (k, _) in enumerate(sites) if k == kind]
        index = rng.choice(candidates)
        work = copy.deepcopy(tree)
        work_fn = work.body[0]
        assert isinstance(work_fn, (ast.FunctionDef, ast.AsyncFunctionDef))
        work_sites = [s for s in _sites(work_fn) if s[0] in operators]  # same walk order on the copy
        _, node = work_sites[index]
        line = getattr(node, "lineno", 0)
        _apply(kind, node, work_fn, rng)
        ast.fix_missing_locations(work)
        text = ast.unparse(work)
        if text == original:
            continue
        try:
            compile(text, "<mutant>", "exec")
        except (SyntaxError, ValueError):
            continue
        return Mutant(original, text, kind, line)
    return None

