"""Semantics-preserving rewrites of a function: the positive side of the embedded clone dataset.

A rewrite is what a type-2/type-3 clone looks like in BigCloneBench: locals and parameters consistently renamed,
docstring and comments gone, formatting changed, and at least one statement written differently but equivalently.
"""

from __future__ import annotations

import ast
import builtins
import copy
import random

NAME_POOL = (
    "value", "item", "result", "data", "node", "key", "index", "count", "buf", "text", "entry", "obj", "elem",
    "total", "current", "target", "source", "part", "chunk", "token", "record", "field", "arg", "val", "tmp",
    "acc", "res", "out", "pos", "size", "name", "path", "line", "parts", "items", "values", "flag", "state",
)
MIRROR: dict[type[ast.cmpop], type[ast.cmpop]] = {
    ast.Lt: ast.Gt, ast.Gt: ast.Lt, ast.LtE: ast.GtE, ast.GtE: ast.LtE, ast.Eq: ast.Eq, ast.NotEq: ast.NotEq,
}


class RewriteError(ValueError):
    """No equivalent statement rewrite applies to this function."""


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
                    and isinstance(body[0].value.value, str):
                node.body = body[1:] or [ast.Pass()]


def _rename_locals(fn: ast.FunctionDef | ast.AsyncFunctionDef, rng: random.Random) -> dict[str, str]:
    """Consistently rename parameters and assigned locals (not globals, attributes, nonlocal/global names)."""
    declared_outside: set[str] = set()
    for node in ast.walk(fn):
        if isinstance(node, (ast.Global, ast.Nonlocal)):
            declared_outside.update(node.names)
    params = [a.arg for a in [*fn.args.posonlyargs, *fn.args.args, *fn.args.kwonlyargs]]
    if fn.args.vararg:
        params.append(fn.args.vararg.arg)
    if fn.args.kwarg:
        params.append(fn.args.kwarg.arg)
    assigned = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    candidates = [n for n in dict.fromkeys([*params, *sorted(assigned)]) if n not in ("self", "cls")]
    candidates = [n for n in candidates if n not in declared_outside]
    # keyword-only names are part of the call interface; renaming them changes behaviour for callers
    kwonly = {a.arg for a in fn.args.kwonlyargs}
    candidates = [n for n in candidates if n not in kwonly]
    used = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)} | {a.arg for a in ast.walk(fn)
                                                                      if isinstance(a, ast.arg)}
    taken = used | set(dir(builtins))
    pool = [p for p in NAME_POOL if p not in taken]
    rng.shuffle(pool)
    mapping: dict[str, str] = {}
    for i, old in enumerate(candidates):
        new = pool[i] if i < len(pool) else f"{old}_{i}"
        mapping[old] = new
    nested_args: set[int] = set()
    for node in ast.walk(fn):  # nested functions/lambdas keep their own parameters
        if node is not fn and isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda)):
            nested_args.update(id(a) for a in ast.walk(node.args) if isinstance(a, ast.arg))
    shadowed = {a.arg for a in ast.walk(fn) if isinstance(a, ast.arg) and id(a) in nested_args}
    mapping = {old: new for old, new in mapping.items() if old not in shadowed}
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and node.id in mapping:
            node.id = mapping[node.id]
        elif isinstance(node, ast.arg) and node.arg in mapping and id(node) not in nested_args:
            node.arg = mapping[node.arg]
    return mapping


VERBS = ("get", "make", "compute", "handle", "process", "build", "find", "check", "parse", "update", "do", "run")


def _rename_function(fn: ast.FunctionDef | ast.AsyncFunctionDef, rng: random.Random) -> None:
    """A new name (recursive calls follow), so a shared name never tells a clone from a non-clone."""
    used = {n.id for n in ast.walk(fn) if isinstance(n, ast.Name)}
    new = f"{rng.choice(VERBS)}_{rng.choice(NAME_POOL)}"
    while new in used or new == fn.name:
        new += "_"
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and node.id == fn.name:
            node.id = new
    fn.name = new


class _Rewriter(ast.NodeTransformer):
    """Equivalent statement rewrites; each site is applied with probability `p` (at least one is forced later)."""

    def __init__(self, rng: random.Random, p: float) -> None:
        self.rng, self.p, self.applied = rng, p, 0

    def _take(self) -> bool:
        if self.rng.random() < self.p:
            self.applied += 1
            return True
        return False

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.AST:
        self.generic_visit(node)
        if isinstance(node.target, ast.Name) and self._take():  # x += y → x = x + y (same for immutable targets)
            load = ast.Name(node.target.id, ast.Load())
            return ast.copy_location(ast.Assign([node.target], ast.BinOp(load, node.op, node.value)), node)
        return node

    def visit_Compare(self, node: ast.Compare) -> ast.AST:
        self.generic_visit(node)
        if len(node.ops) == 1 and type(node.ops[0]) in MIRROR and self._take():  # a < b → b > a
            return ast.copy_location(ast.Compare(node.comparators[0], [MIRROR[type(node.ops[0])]()], [node.left]),
                                     node)
        return node

    def visit_If(self, node: ast.If) -> ast.AST:
        self.generic_visit(node)
        is_elif = len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If)
        if node.orelse and not is_elif and self._take():  # if c: A else: B → if not c: B else: A
            return ast.copy_location(ast.If(ast.UnaryOp(ast.Not(), node.test), node.orelse, node.body), node)
        return node

    def visit_Return(self, node: ast.Return) -> ast.AST | list[ast.AST]:
        if node.value is not None and not isinstance(node.value, (ast.Constant, ast.Name)) and self._take():
            tmp = ast.Name("_ret", ast.Store())  # return f(x) → _ret = f(x); return _ret
            return [ast.copy_location(ast.Assign([tmp], node.value), node),
                    ast.copy_location(ast.Return(ast.Name("_ret", ast.Load())), node)]
        return node


def rewrite(source: str, rng: random.Random, p: float = 0.5, reformat: bool = True, *, require_statement: bool = True
            ) -> str:
    """A clone of the function in `source`: renamed locals, no docstring/comments, ≥1 equivalent rewrite.

    Raises RewriteError when no statement rewrite applies (the caller picks another function), unless
    `require_statement=False`: then such a function comes back renamed and reformatted only (a type-2 clone).
    """
    tree = ast.parse(source)
    fn = tree.body[0]
    if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise ValueError("rewrite expects source holding one function definition")
    _strip_docstrings(tree)
    _rename_locals(fn, rng)
    _rename_function(fn, rng)
    uses_ret = any(isinstance(n, ast.Name) and n.id == "_ret" for n in ast.walk(fn))
    applied = 0
    for attempt_p in (p, 1.0):  # a second pass forces every applicable rewrite if the first took none
        work = copy.deepcopy(tree)
        rewriter = _Rewriter(rng, attempt_p)
        if uses_ret:
            rewriter.visit_Return = lambda node: node  # type: ignore[method-assign]
        work = rewriter.visit(work)
        applied = rewriter.applied
        if applied:
            tree = work
            break
    if not applied and require_statement:
        raise RewriteError("no equivalent statement rewrite applies")
    ast.fix_missing_locations(tree)
    text = ast.unparse(tree)
    if reformat:
        text = _reformat(text, rng)
    compile(text, "<clone>", "exec")
    return text


def _reformat(text: str, rng: random.Random) -> str:
    """Change layout without changing meaning: indentation width and blank lines between statements."""
    width = rng.choice((2, 4, 8))
    lines = []
    for line in text.splitlines():
        stripped = line.lstrip(" ")
        depth = (len(line) - len(stripped)) // 4
        lines.append(" " * (width * depth) + stripped)
        if depth == 1 and stripped and rng.random() < 0.15 and not stripped.endswith(":"):
            lines.append("")
    return "\n".join(lines)
