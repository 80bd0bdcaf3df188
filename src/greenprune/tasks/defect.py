"""Defect detection: function → buggy (1) or not (0). CodeXGLUE Devign format, or injected bugs in stdlib code."""

from __future__ import annotations

import ast
import random
from pathlib import Path
from typing import Any

from greenprune.tasks.base import Example, Splits, TaskDataError
from greenprune.tasks.corpus import CodeFunction, stdlib_functions
from greenprune.tasks.embedded import cached, split_sizes
from greenprune.tasks.formats import devign_rows, hub_folder, load_devign, looks_like_hub_id
from greenprune.tasks.mutate import mutate
from greenprune.tasks.train import ClassificationTask


def strip_docstring(source: str) -> str:
    """The function without its docstring (the bug is in the code; the docstring only eats the token budget)."""
    tree = ast.parse(source)
    fn = tree.body[0]
    body = getattr(fn, "body", [])
    if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant) \
            and isinstance(body[0].value.value, str):
        fn.body = body[1:] or [ast.Pass()]  # type: ignore[attr-defined]
    return ast.unparse(tree)


def build_defect_split(functions: list[CodeFunction], n: int, rng: random.Random, split: str) -> list[Example]:
    """`n` examples, alternating buggy/clean so classes are balanced; each function is used at most once."""
    if n > len(functions):
        raise TaskDataError(f"defect: the stdlib {split} split has only {len(functions)} usable functions, "
                            f"asked for {n} examples; use a smaller size")
    out: list[Example] = []
    want_bug = True
    for fn in functions:
        if len(out) >= n:
            break
        clean = strip_docstring(fn.source)
        if want_bug:
            m = mutate(clean, rng)
            if m is None:
                continue
            out.append(Example(text=m.mutant, label=1, id=f"{fn.file}::{fn.qualname}",
                               meta={"file": fn.file, "operator": m.operator, "line": m.line, "split": split}))
        else:
            out.append(Example(text=clean, label=0, id=f"{fn.file}::{fn.qualname}",
                               meta={"file": fn.file, "split": split}))
        want_bug = not want_bug
    if len(out) < n:
        raise TaskDataError(f"defect: the stdlib {split} split yields only {len(out)} examples, asked for {n}; "
                            "use a smaller size")
    return out


class DefectTask(ClassificationTask):
    name = "defect"
    primary_metric = "accuracy"
    description = "function → buggy or not (Devign; embedded: one AST-injected bug vs untouched stdlib functions)"

    def embedded(self, size: int = 400, seed: int = 0, *, refresh: bool = False) -> Splits:
        def build() -> Splits:
            corpus = stdlib_functions(seed, min_lines=4, max_lines=40)
            sizes = split_sizes(size)
            parts = [build_defect_split(corpus[s], n, random.Random(f"defect|{seed}|{s}"), s)
                     for s, n in zip(("train", "valid", "test"), sizes, strict=False)]
            return Splits(*parts, source=f"embedded:stdlib defect size={size} seed={seed}")

        return cached(self.name, size, seed, build, refresh)

    def load(self, source: str | Path, **kwargs: Any) -> Splits:
        if looks_like_hub_id(str(source)):  # e.g. google/code_x_glue_cc_defect_detection
            return load_devign(hub_folder(str(source), **kwargs))
        path = Path(source)
        if path.is_file():
            return Splits([], [], devign_rows(path), source=str(path))
        if not path.exists():
            raise TaskDataError(f"{path}: no such folder (expected Devign train.jsonl/valid.jsonl/test.jsonl)")
        return load_devign(path)
