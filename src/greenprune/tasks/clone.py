"""Clone detection: pair of functions → clone (1) or not (0). BigCloneBench format, or stdlib rewrites.

A pair is fed as a tokenizer text pair (CodeXGLUE concatenates the two functions the same way), so an ordinary
sequence classifier works. In the embedded set both sides of every pair look alike on the surface (the second
side is always renamed, docstring-free and reformatted), so only the meaning tells clones from non-clones.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from greenprune.tasks.base import Example, Splits, TaskDataError
from greenprune.tasks.corpus import CodeFunction, stdlib_functions
from greenprune.tasks.embedded import cached, split_sizes
from greenprune.tasks.formats import (
    SPLIT_FILES,
    bigclonebench_pair_rows,
    hub_folder,
    load_bigclonebench,
    looks_like_hub_id,
)
from greenprune.tasks.rewrite import RewriteError, rewrite
from greenprune.tasks.train import ClassificationTask


def _similar(by_lines: dict[int, list[CodeFunction]], anchor: CodeFunction, rng: random.Random
             ) -> CodeFunction | None:
    """A different function of similar length (within 25% of lines), drawn at random."""
    slack = max(2, anchor.lines // 4)
    near = [f for n in range(anchor.lines - slack, anchor.lines + slack + 1) for f in by_lines.get(n, ())
            if f.qualname != anchor.qualname]
    return rng.choice(near) if near else None


def build_clone_split(functions: list[CodeFunction], n: int, rng: random.Random, split: str) -> list[Example]:
    if n > len(functions):
        raise TaskDataError(f"clone: the stdlib {split} split has only {len(functions)} usable functions, "
                            f"asked for {n} examples; use a smaller size")
    by_lines: dict[int, list[CodeFunction]] = {}
    for f in functions:
        by_lines.setdefault(f.lines, []).append(f)
    out: list[Example] = []
    want_clone = True
    for fn in functions:
        if len(out) >= n:
            break
        other = fn if want_clone else _similar(by_lines, fn, rng)
        if other is None:
            continue
        try:
            second = rewrite(other.source, rng)
        except (RewriteError, SyntaxError):
            continue
        out.append(Example(text=fn.source, text_pair=second, label=int(want_clone),
                           id=f"{fn.file}::{fn.qualname}|{other.file}::{other.qualname}",
                           meta={"file": fn.file, "pair_file": other.file, "split": split}))
        want_clone = not want_clone
    if len(out) < n:
        raise TaskDataError(f"clone: the stdlib {split} split yields only {len(out)} pairs, asked for {n}")
    return out


class CloneTask(ClassificationTask):
    name = "clone"
    pair = True
    primary_metric = "f1"
    description = "pair of functions → clone or not (BigCloneBench; embedded: stdlib function vs its rewrite)"

    def embedded(self, size: int = 400, seed: int = 0, *, refresh: bool = False) -> Splits:
        def build() -> Splits:
            corpus = stdlib_functions(seed, min_lines=5, max_lines=30)
            parts = [build_clone_split(corpus[s], n, random.Random(f"clone|{seed}|{s}"), s)
                     for s, n in zip(("train", "valid", "test"), split_sizes(size), strict=False)]
            return Splits(*parts, source=f"embedded:stdlib clone size={size} seed={seed}")

        return cached(self.name, size, seed, build, refresh)

    def load(self, source: str | Path, max_pairs: int | None = None, **kwargs: Any) -> Splits:
        if looks_like_hub_id(str(source)):  # e.g. google/code_x_glue_cc_clone_detection_big_clone_bench
            folder = hub_folder(str(source), **kwargs)
            parts = [bigclonebench_pair_rows(folder / f"{s}.jsonl")[:max_pairs] for s in SPLIT_FILES]
            return Splits(*parts, source=str(source))
        path = Path(source)
        if not path.exists():
            raise TaskDataError(f"{path}: no such folder (expected BigCloneBench data.jsonl + train/valid/test.txt)")
        return load_bigclonebench(path, max_pairs=max_pairs)
