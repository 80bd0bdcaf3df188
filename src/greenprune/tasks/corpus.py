"""Real functions from the standard library of the running interpreter, split by source file.

The stdlib is real, reviewed code that nobody in this project wrote and that every machine has, so it is the
default corpus of every embedded dataset. Functions are extracted once per interpreter and cached as JSON;
splits are assigned per *file* (never per function), so near-duplicate helpers of one module cannot leak from
train into test. Exact duplicates across files are dropped for the same reason.
"""

from __future__ import annotations

import ast
import hashlib
import json
import random
import re
import statistics
import sys
import sysconfig
import textwrap
from dataclasses import asdict, dataclass
from pathlib import Path

from greenprune._utils import atomic_write_text, cache_dir, progress

CORPUS_VERSION = 2
SKIP_DIRS = {"test", "tests", "idle_test", "site-packages", "dist-packages", "__pycache__", "_bundled", "turtledemo"}
SPLIT_NAMES = ("train", "valid", "test")
_MEMO: dict[str, list[CodeFunction]] = {}  # parsed corpus per cache file, so repeated builds skip the JSON load


@dataclass(frozen=True)
class CodeFunction:
    """One function (or method) as written in its file."""

    source: str  # dedented, def line to last line, docstring and comments included
    name: str
    qualname: str  # Class.method for methods
    docstring: str | None  # cleaned (inspect.cleandoc style)
    signature: str  # `def name(args) -> ret:`
    body: str  # dedented statements after the docstring
    file: str  # path relative to the stdlib folder
    lineno: int

    @property
    def lines(self) -> int:
        return self.source.count("\n") + 1


@dataclass
class CorpusSplits:
    train: list[CodeFunction]
    valid: list[CodeFunction]
    test: list[CodeFunction]

    def __getitem__(self, name: str) -> list[CodeFunction]:
        return getattr(self, name)

    def items(self) -> list[tuple[str, list[CodeFunction]]]:
        return [(n, getattr(self, n)) for n in SPLIT_NAMES]


CODE_TOKEN = re.compile(r"[A-Za-z0-9]+|[^\sA-Za-z0-9]")


def code_tokens(text: str) -> int:
    """Length of `text` in tokenizer-independent code tokens: runs of letters/digits, or one punctuation character
    each, as a BERT basic tokenizer splits them (MiniLM's word pieces are ~1.17x this on the stdlib)."""
    return len(CODE_TOKEN.findall(text))


def _quantile(values: list[int], q: float) -> float:
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def length_distribution(examples: list, tokenizer: object | None = None) -> dict[str, float | int | str]:
    """Median, p90 (and mean, min, max) of the input lengths of a split, to compare with a benchmark's.

    With a tokenizer the unit is its word pieces without special tokens (text and text_pair together, as the
    model sees them before truncation); without, tokenizer-independent code tokens. `examples` are task Examples
    (anything with `.text` and optionally `.text_pair`).
    """
    if not examples:
        raise ValueError("length_distribution: no examples")
    lengths: list[int] = []
    for e in examples:
        texts = [e.text] + ([e.text_pair] if getattr(e, "text_pair", None) else [])
        if tokenizer is None:
            lengths.append(sum(code_tokens(t) for t in texts))
        else:
            encode = tokenizer  # a HF tokenizer: callable, returns input_ids
            lengths.append(sum(len(encode(t, add_special_tokens=False)["input_ids"]) for t in texts))  # type: ignore[operator]
    return {
        "unit": "code tokens" if tokenizer is None else "word pieces",
        "n": len(lengths),
        "median": float(statistics.median(lengths)),
        "p90": float(_quantile(lengths, 0.9)),
        "mean": float(statistics.fmean(lengths)),
        "min": min(lengths),
        "max": max(lengths),
    }


def stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _stdlib_files(root: Path) -> list[Path]:
    files = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root).parts
        if any(p in SKIP_DIRS or p.startswith("config-") for p in rel[:-1]) or rel[-1].startswith("test_"):
            continue
        files.append(path)
    return files


def _functions_of(path: Path, root: Path) -> list[CodeFunction]:
    try:
        text = path.read_text(encoding="utf-8")
        tree = ast.parse(text)
    except (UnicodeDecodeError, SyntaxError, ValueError):
        return []
    lines = text.splitlines()
    rel = path.relative_to(root).as_posix()
    found: list[CodeFunction] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")
            elif isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                fn = _extract(child, lines, rel, prefix)
                if fn is not None:
                    found.append(fn)

    visit(tree, "")
    return found


def _extract(node: ast.FunctionDef | ast.AsyncFunctionDef, lines: list[str], rel: str, prefix: str
             ) -> CodeFunction | None:
    if node.end_lineno is None:
        return None
    source = textwrap.dedent("\n".join(lines[node.lineno - 1 : node.end_lineno]))
    try:
        parsed = ast.parse(source)
    except SyntaxError:  # a multi-line string less indented than the def: not a standalone snippet
        return None
    fn = parsed.body[0]
    if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
        return None
    docstring = ast.get_docstring(fn, clean=True)
    stmts = fn.body[1:] if docstring is not None else fn.body
    src_lines = source.splitlines()
    body = textwrap.dedent("\n".join(src_lines[stmts[0].lineno - 1 :])) if stmts else ""
    keyword = "async def" if isinstance(fn, ast.AsyncFunctionDef) else "def"
    returns = f" -> {ast.unparse(fn.returns)}" if fn.returns is not None else ""
    signature = f"{keyword} {fn.name}({ast.unparse(fn.args)}){returns}:"
    return CodeFunction(source, fn.name, prefix + fn.name, docstring, signature, body, rel, node.lineno)


def _cache_path(root: Path) -> Path:
    key = hashlib.sha256(f"{CORPUS_VERSION}|{root}|{sys.version}".encode()).hexdigest()[:16]
    return cache_dir("datasets") / f"stdlib-functions-{sys.version_info.major}.{sys.version_info.minor}-{key}.json"


def all_stdlib_functions(root: Path | None = None, *, refresh: bool = False) -> list[CodeFunction]:
    """Every function of the stdlib (deduplicated by AST), in file order; parsed once and cached."""
    root = Path(root) if root is not None else stdlib_dir()
    cache = _cache_path(root)
    if str(cache) in _MEMO and not refresh:
        return list(_MEMO[str(cache)])
    if cache.is_file() and not refresh:
        functions = [CodeFunction(**row) for row in json.loads(cache.read_text(encoding="utf-8"))]
        _MEMO[str(cache)] = functions
        return list(functions)
    seen: set[str] = set()
    functions: list[CodeFunction] = []
    files = _stdlib_files(root)
    for path in progress(files, desc="parsing stdlib", total=len(files)):
        for fn in _functions_of(path, root):
            key = hashlib.sha1(ast.dump(ast.parse(fn.source)).encode()).hexdigest()
            if key in seen:
                continue
            seen.add(key)
            functions.append(fn)
    atomic_write_text(cache, json.dumps([asdict(f) for f in functions]))
    _MEMO[str(cache)] = functions
    return list(functions)


def split_by_file(
    functions: list[CodeFunction], seed: int, fractions: tuple[float, float, float] = (0.8, 0.1, 0.1)
) -> CorpusSplits:
    """Assign whole files to train/valid/test (shuffled by `seed`) so each split gets about its share of functions."""
    if len(fractions) != 3 or any(f < 0 for f in fractions) or sum(fractions) <= 0:
        raise ValueError(f"fractions must be three non-negative numbers, got {fractions}")
    by_file: dict[str, list[CodeFunction]] = {}
    for fn in functions:
        by_file.setdefault(fn.file, []).append(fn)
    files = sorted(by_file)
    random.Random(seed).shuffle(files)
    total = sum(fractions)
    targets = [f / total * len(functions) for f in fractions]
    assigned: list[list[CodeFunction]] = [[], [], []]
    for file in files:
        # the split furthest below its target share takes the next file
        deficits = [targets[i] - len(assigned[i]) if targets[i] > 0 else float("-inf") for i in range(3)]
        assigned[max(range(3), key=lambda i: deficits[i])].extend(by_file[file])
    return CorpusSplits(*assigned)


def stdlib_functions(
    seed: int = 0,
    *,
    min_lines: int = 3,
    max_lines: int = 60,
    require_docstring: bool = False,
    fractions: tuple[float, float, float] = (0.8, 0.1, 0.1),
    root: Path | None = None,
) -> CorpusSplits:
    """Real stdlib functions of `min_lines`..`max_lines` lines, split by source file, deterministic for `seed`.

    Each split is shuffled by `seed` too, so taking the first N of a split is a random sample.
    """
    functions = [
        f for f in all_stdlib_functions(root)
        if min_lines <= f.lines <= max_lines and (f.docstring or not require_docstring)
    ]
    splits = split_by_file(functions, seed, fractions)
    for i, (_, items) in enumerate(splits.items()):
        random.Random(seed * 1000 + i).shuffle(items)
    return splits
