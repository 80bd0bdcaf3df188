"""Defect detection: function → buggy (1) or not (0). CodeXGLUE Devign format, or injected bugs in stdlib code."""

from __future__ import annotations

import ast
import itertools
import math
import random
from pathlib import Path
from typing import Any

from greenprune.tasks.base import Example, Splits, TaskDataError
from greenprune.tasks.bundled import cached, split_sizes
from greenprune.tasks.corpus import CODE_TOKEN, CodeFunction, code_tokens, length_distribution, stdlib_functions
from greenprune.tasks.formats import devign_rows, hub_folder, load_devign, looks_like_hub_id
from greenprune.tasks.mutate import Mutant, mutate
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


# Budget of the embedded set in code tokens (runs of letters/digits, or one punctuation character each, as a
# BERT basic tokenizer splits them). 90 code tokens stay within 128 word pieces of MiniLM's tokenizer on the
# stdlib, so with `--max-length 128` (demo, benchmarks) the whole function - and therefore the bug - is seen.
MAX_CODE_TOKENS = 90


__all__ = ["CODE_TOKEN", "MAX_CODE_TOKENS", "DefectTask", "build_defect_split", "build_long_defect_split",
           "code_tokens", "length_distribution"]


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


# Target of the long-function variant, in code tokens: Devign's C functions have a median of roughly 150-200 and a
# p90 of 700+ word pieces (figures of the project's issue 16, not re-measured here: Devign is not on this machine);
# with MiniLM's ~1.17 word pieces per code token that is a median of ~155 and a p90 of ~600 code tokens.
DEVIGN_LIKE_MEDIAN = 155
DEVIGN_LIKE_P90 = 600
_Z90 = 1.2815516


def lognormal_bin_mass(edges: list[float], median: float, p90: float) -> list[float]:
    """Share of a log-normal length distribution (given by its median and p90) in each bin [edges[i], edges[i+1]),
    renormalised to the covered range, so sampled lengths follow the target's shape."""
    if not 0 < median < p90:
        raise ValueError(f"need 0 < median < p90, got median={median}, p90={p90}")
    mu, sigma = math.log(median), math.log(p90 / median) / _Z90

    def cdf(x: float) -> float:
        return 0.5 * (1 + math.erf((math.log(x) - mu) / (sigma * math.sqrt(2))))

    mass = [cdf(b) - cdf(a) for a, b in itertools.pairwise(edges)]
    total = sum(mass)
    return [m / total for m in mass]


def _quotas(mass: list[float], n: int) -> list[int]:
    """Integer counts summing to n, proportional to mass (largest remainder)."""
    raw = [m * n for m in mass]
    counts = [int(r) for r in raw]
    for i in sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)[: n - sum(counts)]:
        counts[i] += 1
    return counts


def build_long_defect_split(functions: list[CodeFunction], n: int, rng: random.Random, split: str, *,
                            paired: bool = False, median: float = DEVIGN_LIKE_MEDIAN, p90: float = DEVIGN_LIKE_P90,
                            bins: int = 12, min_tokens: int = 24, max_tokens: int = 1600) -> list[Example]:
    """`n` examples whose lengths (code tokens) follow a log-normal with the given median and p90, as far as the
    split's functions allow: functions are drawn per log-spaced length bin up to the bin's share, and a bin that
    runs short is filled from its nearest bins (so the realised tail can be lighter; `length_distribution`
    reports what was built). Labels and pairing as in `build_defect_split`; the result is shuffled (pairs stay
    adjacent) so that any prefix is a sample of the whole distribution."""
    ratio = (max_tokens / min_tokens) ** (1 / bins)
    edges = [min_tokens * ratio**i for i in range(bins + 1)]
    per_function = 2 if paired else 1
    want = _quotas(lognormal_bin_mass(edges, median, p90), math.ceil(n / per_function))
    members: list[list[tuple[CodeFunction, str]]] = [[] for _ in range(bins)]
    for fn in functions:
        try:
            clean = strip_docstring(fn.source)
        except SyntaxError:
            continue
        length = code_tokens(clean)
        if min_tokens <= length < max_tokens:
            members[min(bins - 1, int(math.log(length / min_tokens) / math.log(ratio)))].append((fn, clean))
    chosen: list[list[tuple[CodeFunction, str, Mutant]]] = [[] for _ in range(bins)]
    cursor = [0] * bins

    def take(b: int, count: int) -> int:
        got = 0
        while got < count and cursor[b] < len(members[b]):
            fn, clean = members[b][cursor[b]]
            cursor[b] += 1
            m = mutate(clean, rng)
            if m is not None:
                chosen[b].append((fn, clean, m))
                got += 1
        return got

    short = {b: want[b] - take(b, want[b]) for b in range(bins)}
    for b, missing in short.items():
        for other in sorted(range(bins), key=lambda o: (abs(o - b), -o)):
            if missing <= 0:
                break
            if other != b:
                missing -= take(other, missing)
    picked = [c for group in chosen for c in group]
    rng.shuffle(picked)
    out: list[Example] = []
    for i, (fn, clean, m) in enumerate(picked):
        fid = f"{fn.file}::{fn.qualname}"
        buggy = Example(text=m.mutant, label=1, id=fid,
                        meta={"file": fn.file, "operator": m.operator, "line": m.line, "split": split})
        untouched = Example(text=clean, label=0, id=fid, meta={"file": fn.file, "split": split})
        out.extend([buggy, untouched] if paired else [buggy if i % 2 == 0 else untouched])
    out = out[:n]
    if len(out) < n:
        raise TaskDataError(f"defect-long: the stdlib {split} split yields only {len(out)} examples of "
                            f"{min_tokens}-{max_tokens} code tokens, asked for {n}; use a smaller size")
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

    def embedded_long(self, size: int = 400, seed: int = 0, *, refresh: bool = False) -> Splits:
        """The long-function variant: lengths drawn to resemble Devign's (DEVIGN_LIKE_MEDIAN / _P90 code tokens),
        otherwise as `embedded` (split by file, train paired, valid/test unpaired). Cached as `defect-long`."""
        def build() -> Splits:
            corpus = stdlib_functions(seed, min_lines=4, max_lines=400)
            parts = [build_long_defect_split(corpus[s], n, random.Random(f"defect-long|{seed}|{s}"), s,
                                             paired=s == "train")
                     for s, n in zip(("train", "valid", "test"), split_sizes(size), strict=False)]
            return Splits(*parts, source=f"embedded:stdlib defect-long size={size} seed={seed} "
                                         f"target median={DEVIGN_LIKE_MEDIAN} p90={DEVIGN_LIKE_P90} code tokens "
                                         "train=paired")

        return cached("defect-long", size, seed, build, refresh)

    def load(self, source: str | Path, **kwargs: Any) -> Splits:
        if looks_like_hub_id(str(source)):  # e.g. google/code_x_glue_cc_defect_detection
            return load_devign(hub_folder(str(source), **kwargs))
        path = Path(source)
        if path.is_file():
            return Splits([], [], devign_rows(path), source=str(path))
        if not path.exists():
            raise TaskDataError(f"{path}: no such folder (expected Devign train.jsonl/valid.jsonl/test.jsonl)")
        return load_devign(path)
