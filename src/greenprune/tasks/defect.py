"""Defect detection: function → buggy (1) or not (0). CodeXGLUE Devign format, or injected bugs in stdlib code."""

from __future__ import annotations

import ast
import random
import re
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


CODE_TOKEN = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]")
# Budget of the embedded set in code tokens (runs of letters/digits, or one punctuation character each, as a
# BERT basic tokenizer splits them). 90 code tokens stay within 128 word pieces of MiniLM's tokenizer on the
# stdlib, so with `--max-length 128` (demo, benchmarks) the whole function - and therefore the bug - is seen.
MAX_CODE_TOKENS = 90


def code_tokens(text: str) -> int:
    """Length of `text` in tokenizer-independent code tokens (see MAX_CODE_TOKENS)."""
    return len(CODE_TOKEN.findall(text))


def build_defect_split(functions: list[CodeFunction], n: int, rng: random.Random, split: str, *,
                       paired: bool = False, max_tokens: int | None = MAX_CODE_TOKENS) -> list[Example]:
    """`n` examples with balanced classes from functions whose clean and buggy text fit `max_tokens`.

    Unpaired: alternating buggy/clean *different* functions, each function used at most once. Paired: each
    function contributes its clean and its buggy version next to each other, so the only difference between a
    positive and its negative is the injected bug (the contrast the model has to learn). Both variants keep a
    function in the split of its file.
    """
    out: list[Example] = []
    want_bug = True
    usable = 0
    for fn in functions:
        if len(out) >= n:
            break
        clean = strip_docstring(fn.source)
        if max_tokens is not None and code_tokens(clean) > max_tokens:
            continue
        # a mutant is drawn for untouched functions too, so both classes come from the same population
        # (functions with a mutation site whose mutant fits the budget): "no site" must not mean "clean"
        m = mutate(clean, rng)
        if m is None or (max_tokens is not None and code_tokens(m.mutant) > max_tokens):
            continue
        usable += 1
        fid = f"{fn.file}::{fn.qualname}"
        buggy = Example(text=m.mutant, label=1, id=fid,
                        meta={"file": fn.file, "operator": m.operator, "line": m.line, "split": split})
        untouched = Example(text=clean, label=0, id=fid, meta={"file": fn.file, "split": split})
        if paired:
            out.extend([buggy, untouched][: n - len(out)])
        else:
            out.append(buggy if want_bug else untouched)
            want_bug = not want_bug
    if len(out) < n:
        raise TaskDataError(f"defect: the stdlib {split} split yields only {len(out)} examples from {usable} "
                            f"usable functions (of {len(functions)}, at most {max_tokens} code tokens), asked for "
                            f"{n}; use a smaller size")
    return out


class DefectTask(ClassificationTask):
    name = "defect"
    primary_metric = "accuracy"
    description = ("function → buggy or not (Devign; embedded: stdlib functions with one AST-injected bug vs "
                   "untouched, train paired clean/buggy)")

    def embedded(self, size: int = 400, seed: int = 0, *, refresh: bool = False) -> Splits:
        """Stdlib functions of at most MAX_CODE_TOKENS code tokens, split by file.

        Train is paired (each function clean and buggy) so the bug is the only thing separating the classes;
        valid and test are unpaired (buggy and untouched *different* functions), so every held-out example is
        an independent function and the accuracy's binomial confidence interval is honest.
        """
        def build() -> Splits:
            corpus = stdlib_functions(seed, min_lines=4, max_lines=40)
            sizes = split_sizes(size)
            parts = [build_defect_split(corpus[s], n, random.Random(f"defect|{seed}|{s}"), s, paired=s == "train")
                     for s, n in zip(("train", "valid", "test"), sizes, strict=False)]
            return Splits(*parts, source=f"embedded:stdlib defect size={size} seed={seed} "
                                         f"max_code_tokens={MAX_CODE_TOKENS} train=paired")

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
