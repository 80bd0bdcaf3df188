"""Clone detection: pair of functions → clone (1) or not (0). BigCloneBench format, or stdlib rewrites.

A pair is fed as a tokenizer text pair (CodeXGLUE concatenates the two functions the same way), so an ordinary
sequence classifier works. The embedded set is BigCloneBench-like: each anchor function of the stdlib gives a twin
(its rewrite: renamed, reformatted, one statement written differently) and a hard negative (the rewrite of another
function of the same module with a similar name or length). The second side is always rewritten, so its surface
never tells clones from non-clones; the code shared with the anchor does.
"""

from __future__ import annotations

import ast
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenprune.tasks.base import Example, Splits, TaskDataError
from greenprune.tasks.bundled import cached, split_sizes
from greenprune.tasks.corpus import CodeFunction, code_tokens, stdlib_functions
from greenprune.tasks.formats import (
    SPLIT_FILES,
    bigclonebench_pair_rows,
    hub_folder,
    load_bigclonebench,
    looks_like_hub_id,
)
from greenprune.tasks.rewrite import RewriteError, _strip_docstrings, rewrite
from greenprune.tasks.train import ClassificationTask

# Each side of a pair stays within this many code tokens (~256 MiniLM word pieces; see corpus.code_tokens), so a
# pair fed at max_length 512 is seen whole and at 256 each side keeps about half.
MAX_SIDE_TOKENS = 220
_NAME_PART = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")


def name_parts(name: str) -> set[str]:
    """Lower-cased words of an identifier (snake_case and CamelCase split): what "similar names" compares."""
    return {p.lower() for p in _NAME_PART.findall(name)}


def canonical_form(source: str) -> str:
    """The function with docstrings dropped, its name and every parameter/local replaced by position-numbered
    placeholders: two functions with equal canonical forms are type-1/2 clones (same code up to names/layout)."""
    tree = ast.parse(source)
    fn = tree.body[0]
    if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
        raise ValueError("canonical_form expects source holding one function definition")
    _strip_docstrings(tree)
    local = {a.arg for a in ast.walk(fn) if isinstance(a, ast.arg)}
    local |= {n.id for n in ast.walk(fn) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    local.add(fn.name)
    numbered: dict[str, str] = {}
    for node in ast.walk(fn):
        if isinstance(node, ast.Name) and node.id in local:
            node.id = numbered.setdefault(node.id, f"_v{len(numbered)}")
        elif isinstance(node, ast.arg):
            node.arg = numbered.setdefault(node.arg, f"_v{len(numbered)}")
    fn.name = "_f"
    return ast.dump(tree, annotate_fields=False)


@dataclass
class _Candidate:
    fn: CodeFunction
    tokens: int
    parts: set[str]
    canonical: str


def _candidates(functions: list[CodeFunction], max_tokens: int) -> list[_Candidate]:
    out = []
    for fn in functions:
        tokens = code_tokens(fn.source)
        if tokens > max_tokens:
            continue
        try:
            canonical = canonical_form(fn.source)
        except (SyntaxError, ValueError):
            continue
        out.append(_Candidate(fn, tokens, name_parts(fn.name), canonical))
    return out


def hard_negative(anchor: _Candidate, module: list[_Candidate], rng: random.Random) -> tuple[_Candidate, str] | None:
    """A different function of the anchor's own module (file) that looks alike: the closest in name (most shared
    name words) or, drawn half of the time or when no name is shared, the closest in length. Functions whose
    canonical form equals the anchor's are twins, never negatives."""
    pool = [c for c in module if c.fn.qualname != anchor.fn.qualname and c.canonical != anchor.canonical]
    if not pool:
        return None
    by_name = [(len(anchor.parts & c.parts) / len(anchor.parts | c.parts), c) for c in pool if anchor.parts & c.parts]
    if by_name and rng.random() < 0.5:
        best = max(score for score, _ in by_name)
        return rng.choice([c for score, c in by_name if score == best]), "name"
    gap = min(abs(c.tokens - anchor.tokens) for c in pool)
    if gap > max(8, anchor.tokens // 4) and by_name:  # nothing of similar length: fall back to the name
        best = max(score for score, _ in by_name)
        return rng.choice([c for score, c in by_name if score == best]), "name"
    return rng.choice([c for c in pool if abs(c.tokens - anchor.tokens) == gap]), "length"


def _rewritten(source: str, rng: random.Random) -> tuple[str, str]:
    """The rewrite of `source` and its clone type: T3 (a statement rewritten too) or T2 (renamed/reformatted only,
    when no statement rewrite applies; BigCloneBench mixes both)."""
    try:
        return rewrite(source, rng), "T3"
    except RewriteError:
        return rewrite(source, rng, require_statement=False), "T2"


def build_clone_split(functions: list[CodeFunction], n: int, rng: random.Random, split: str, *,
                      max_tokens: int = MAX_SIDE_TOKENS) -> list[Example]:
    """`n` pairs, alternating twin / hard negative, each anchor giving one of each.

    Twin: the anchor vs its rewrite (locals and name renamed, docstring and comments gone, layout changed, and one
    statement written differently where a rewrite applies). Negative: the anchor vs the rewrite of a different
    function of the same file with a similar name or length (so module vocabulary gives nothing away). Both second
    sides go through the same rewrite, and every side stays within `max_tokens` code tokens.
    """
    pool = _candidates(functions, max_tokens)
    by_file: dict[str, list[_Candidate]] = {}
    for c in pool:
        by_file.setdefault(c.fn.file, []).append(c)
    out: list[Example] = []
    for anchor in pool:
        if len(out) >= n:
            break
        found = hard_negative(anchor, by_file[anchor.fn.file], rng)
        if found is None:
            continue
        other, why = found
        try:
            twin, kind = _rewritten(anchor.fn.source, rng)
            decoy, _ = _rewritten(other.fn.source, rng)
        except (SyntaxError, ValueError):
            continue
        if code_tokens(twin) > max_tokens or code_tokens(decoy) > max_tokens:
            continue
        fid, oid = f"{anchor.fn.file}::{anchor.fn.qualname}", f"{other.fn.file}::{other.fn.qualname}"
        pair = [
            Example(text=anchor.fn.source, text_pair=twin, label=1, id=f"{fid}|{fid}",
                    meta={"file": anchor.fn.file, "pair_file": anchor.fn.file, "split": split, "kind": f"twin:{kind}"}),
            Example(text=anchor.fn.source, text_pair=decoy, label=0, id=f"{fid}|{oid}",
                    meta={"file": anchor.fn.file, "pair_file": other.fn.file, "split": split,
                          "kind": f"hard-negative:{why}"}),
        ]
        if rng.random() < 0.5:
            pair.reverse()
        out.extend(pair[: n - len(out)])
    if len(out) < n:
        raise TaskDataError(f"clone: the stdlib {split} split yields only {len(out)} pairs from {len(pool)} usable "
                            f"functions (of {len(functions)}), asked for {n}; use a smaller size")
    return out


class CloneTask(ClassificationTask):
    name = "clone"
    pair = True
    primary_metric = "f1"
    description = "pair of functions → clone or not (BigCloneBench; embedded: stdlib function vs its rewrite)"

    def embedded(self, size: int = 400, seed: int = 0, *, refresh: bool = False) -> Splits:
        def build() -> Splits:
            corpus = stdlib_functions(seed, min_lines=4, max_lines=40)
            parts = [build_clone_split(corpus[s], n, random.Random(f"clone|{seed}|{s}"), s)
                     for s, n in zip(("train", "valid", "test"), split_sizes(size), strict=False)]
            return Splits(*parts, source=f"embedded:stdlib clone size={size} seed={seed} "
                                         f"max_side_code_tokens={MAX_SIDE_TOKENS} negatives=same-module")

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
