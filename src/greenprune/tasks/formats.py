"""Readers of the official dataset formats users already have on disk (and HF datasets ids when online).

- CodeXGLUE Devign (defect): `train.jsonl`, `valid.jsonl`, `test.jsonl`, rows `{"func", "target", "idx"}`.
- CodeXGLUE BigCloneBench (clone): `data.jsonl` rows `{"idx", "func"}` plus `train.txt`/`valid.txt`/`test.txt`
  lines `idx1<TAB>idx2<TAB>label`.
- CodeSearchNet / CodeXGLUE code-to-text: `train.jsonl`/`valid.jsonl`/`test.jsonl` rows with `code` or
  `code_tokens` and `docstring` or `docstring_tokens`.
- HumanEval (`task_id`, `prompt`, `canonical_solution`, `test`, `entry_point`) and MBPP (`task_id`, `text`, `code`,
  `test_list`) JSONL, optionally gzipped.

Every malformed row is reported with its file and line number; a missing split file names the file expected.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from greenprune._utils import read_jsonl as _read_jsonl
from greenprune._utils import read_text_lines
from greenprune.tasks.base import Example, Splits, TaskDataError

SPLIT_FILES = ("train", "valid", "test")


def read_jsonl(path: str | os.PathLike[str]) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-blank line; bad JSON or a non-object row names file and line."""
    return _read_jsonl(path, TaskDataError)


def _field(row: dict[str, Any], names: tuple[str, ...], kind: type | tuple[type, ...], where: str) -> Any:
    for name in names:
        if name in row and row[name] is not None:
            value = row[name]
            if not isinstance(value, kind):
                raise TaskDataError(f"{where}: field {name!r} should be {_kind_name(kind)}, got {type(value).__name__}")
            return value
    raise TaskDataError(f"{where}: missing field {' or '.join(repr(n) for n in names)} (row has {sorted(row)})")


def _kind_name(kind: type | tuple[type, ...]) -> str:
    kinds = kind if isinstance(kind, tuple) else (kind,)
    return " or ".join(k.__name__ for k in kinds)


def _label(value: Any, where: str, name: str) -> int:
    if isinstance(value, bool) or value in (0, 1, "0", "1"):
        return int(value)
    raise TaskDataError(f"{where}: {name} must be 0 or 1, got {value!r}")


def _split_file(folder: Path, split: str, suffixes: tuple[str, ...]) -> Path:
    for suffix in suffixes:
        path = folder / f"{split}{suffix}"
        if path.is_file():
            return path
    raise TaskDataError(f"missing split file: expected {folder / (split + suffixes[0])}")


def _per_split(folder: Path, parse: Callable[[Path], list[Example]], suffixes: tuple[str, ...] = (".jsonl",)
               ) -> Splits:
    if not folder.is_dir():
        raise TaskDataError(f"{folder}: expected a folder holding train/valid/test split files")
    files = {split: _split_file(folder, split, suffixes) for split in SPLIT_FILES}
    parts = {split: parse(path) for split, path in files.items()}
    return Splits(parts["train"], parts["valid"], parts["test"], source=str(folder),
                  files={split: str(path) for split, path in files.items()})


# --- Devign --------------------------------------------------------------------------------------------------

def devign_rows(path: Path) -> list[Example]:
    out = []
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        func = _field(row, ("func",), str, where)
        target = _label(_field(row, ("target",), (int, str, bool), where), where, "target")
        idx = row.get("idx", lineno)
        out.append(Example(text=func, label=target, id=str(idx)))
    return out


def load_devign(folder: str | os.PathLike[str]) -> Splits:
    return _per_split(Path(folder), devign_rows)


# --- BigCloneBench -------------------------------------------------------------------------------------------

def load_bigclonebench(folder: str | os.PathLike[str], max_pairs: int | None = None) -> Splits:
    folder = Path(folder)
    if not folder.is_dir():
        raise TaskDataError(f"{folder}: expected a folder with data.jsonl and train.txt/valid.txt/test.txt")
    data_path = folder / "data.jsonl"
    functions: dict[str, str] = {}
    defined_at: dict[str, int] = {}
    for lineno, row in read_jsonl(data_path):
        where = f"{data_path}:{lineno}"
        idx = str(_field(row, ("idx",), (str, int), where))
        if idx in defined_at:  # a pair naming it would silently get whichever function came last
            raise TaskDataError(f"{where}: duplicate idx {idx} (already defined at line {defined_at[idx]})")
        defined_at[idx] = lineno
        functions[idx] = _field(row, ("func",), str, where)

    def pairs(path: Path) -> list[Example]:
        out = []
        for lineno, line in enumerate(read_text_lines(path, TaskDataError), start=1):
            if not line.strip():
                continue
            cols = line.split()
            where = f"{path}:{lineno}"
            if len(cols) != 3:
                raise TaskDataError(f"{where}: expected 'idx1 idx2 label', got {len(cols)} columns")
            a, b, label = cols
            for idx in (a, b):
                if idx not in functions:
                    raise TaskDataError(f"{where}: idx {idx} is not in {data_path}")
            out.append(Example(text=functions[a], text_pair=functions[b], label=_label(label, where, "label"),
                               id=f"{a}-{b}"))
            if max_pairs is not None and len(out) >= max_pairs:
                break
        return out

    return _per_split(folder, pairs, suffixes=(".txt",))


# --- CodeSearchNet / code-to-text ----------------------------------------------------------------------------

def first_sentence(docstring: str) -> str:
    """The first sentence of the first paragraph of a docstring, on one line."""
    para = docstring.strip().split("\n\n", 1)[0]
    line = " ".join(para.split())
    for end in (". ", "? ", "! "):
        if end in line:
            line = line.split(end, 1)[0] + end.strip()
            break
    return line


def _text_or_tokens(row: dict[str, Any], names: tuple[str, ...], where: str) -> str | list[str]:
    """A string field or a token list; a list holding anything but strings names the field and the item."""
    value = _field(row, names, (str, list), where)
    if isinstance(value, list):
        name = next(n for n in names if row.get(n) is value)
        for i, token in enumerate(value):
            if not isinstance(token, str):
                raise TaskDataError(f"{where}: field {name!r} should be a list of strings, item {i} is "
                                    f"{type(token).__name__} ({token!r})")
    return value


def code_to_text_rows(path: Path) -> list[Example]:
    out = []
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        code = _text_or_tokens(row, ("code", "code_tokens", "original_string"), where)
        doc = _text_or_tokens(row, ("docstring_tokens", "docstring"), where)
        code = " ".join(code) if isinstance(code, list) else code
        doc = " ".join(doc) if isinstance(doc, list) else first_sentence(doc)
        if not doc.strip():
            raise TaskDataError(f"{where}: empty docstring")
        out.append(Example(text=code, target=doc, id=str(row.get("url", row.get("idx", lineno)))))
    return out


def load_code_to_text(folder: str | os.PathLike[str]) -> Splits:
    return _per_split(Path(folder), code_to_text_rows)


# --- HumanEval / MBPP ----------------------------------------------------------------------------------------

def humaneval_rows(path: Path) -> list[Example]:
    out = []
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        task_id = _field(row, ("task_id",), str, where)
        out.append(Example(
            text=_field(row, ("prompt",), str, where),
            target=_field(row, ("canonical_solution",), str, where),
            id=task_id,
            meta={"test": _field(row, ("test",), str, where), "entry_point": _field(row, ("entry_point",), str, where),
                  "format": "humaneval"},
        ))
    return out


def mbpp_prompt(text: str, tests: list[str]) -> str:
    """MBPP as a completion prompt: the description and the first test as a docstring, then a def line is generated."""
    return f'"""\n{text.strip()}\n{tests[0].strip() if tests else ""}\n"""\n'


def _mbpp_task_id(row: dict[str, Any], where: str) -> int | None:
    """MBPP's integer task id (it decides the split); a digit string is accepted, anything else names the row."""
    value = row.get("task_id")
    if value is None:
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise TaskDataError(f"{where}: MBPP task_id must be a non-negative integer (it decides the split), got {value!r}")


def mbpp_rows(path: Path) -> list[Example]:
    out = []
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        task_id = _mbpp_task_id(row, where)
        text = _field(row, ("text", "prompt"), str, where)
        tests = _field(row, ("test_list",), list, where)
        if not all(isinstance(t, str) for t in tests):
            raise TaskDataError(f"{where}: test_list must hold strings")
        setup = row.get("test_setup_code") or ""
        out.append(Example(
            text=mbpp_prompt(text, tests),
            target=_field(row, ("code",), str, where),
            id=f"MBPP/{lineno if task_id is None else task_id}",
            meta={"test": "\n".join([setup, *tests]), "entry_point": "", "format": "mbpp", "task_id": task_id},
        ))
    return out


def mbpp_split(examples: list[Example]) -> Splits:
    """The split of the MBPP paper by task id: test 11-510, train 601-974, valid 511-600 (1-10 are few-shot prompts)."""
    def tid(e: Example) -> int:
        return int(e.meta.get("task_id") or 0)

    return Splits(
        train=[e for e in examples if 601 <= tid(e) <= 974],
        valid=[e for e in examples if 511 <= tid(e) <= 600],
        test=[e for e in examples if 11 <= tid(e) <= 510 or tid(e) == 0],
        note="MBPP is split by task_id: test 11-510, valid 511-600, train 601-974",
    )


def detect_problem_format(path: Path) -> str:
    """'humaneval' or 'mbpp', from the first row's fields."""
    for lineno, row in read_jsonl(path):
        if "canonical_solution" in row or "entry_point" in row:
            return "humaneval"
        if "test_list" in row:
            return "mbpp"
        raise TaskDataError(f"{path}:{lineno}: neither HumanEval (prompt, canonical_solution, test, entry_point) "
                            f"nor MBPP (text, code, test_list) fields; row has {sorted(row)}")
    raise TaskDataError(f"{path}: no rows")


def load_problems(path: str | os.PathLike[str]) -> Splits:
    path = Path(path)
    if path.is_dir():
        candidates = sorted([*path.glob("*.jsonl"), *path.glob("*.jsonl.gz")])
        if len(candidates) != 1:
            raise TaskDataError(
                f"{path}: expected exactly one HumanEval/MBPP .jsonl(.gz) file, found {len(candidates)}"
            )
        path = candidates[0]
    if detect_problem_format(path) == "humaneval":
        return Splits([], [], humaneval_rows(path), source=str(path))
    splits = mbpp_split(mbpp_rows(path))
    splits.source = str(path)
    return splits


# --- HF datasets ids -------------------------------------------------------------------------------------------

def looks_like_hub_id(source: str) -> bool:
    return not Path(source).exists() and source.count("/") == 1 and not source.startswith((".", "/", "~"))


def load_hf_rows(dataset_id: str, split_names: dict[str, str] | None = None, **kwargs: Any
                 ) -> dict[str, list[dict[str, Any]]]:
    """Rows of an HF datasets id per split (train/valid/test), when `datasets` is installed and the hub answers."""
    from greenprune.models.hub import hub_reachable

    try:
        import datasets
    except ImportError as exc:
        raise TaskDataError(f"{dataset_id!r} looks like a Hugging Face datasets id: pip install datasets, or pass a "
                            "local folder in the official format") from exc
    if not hub_reachable():
        raise TaskDataError(f"{dataset_id!r}: the Hugging Face Hub is unreachable (offline); pass a local folder in "
                            "the official format instead")
    names = split_names or {"train": "train", "valid": "validation", "test": "test"}
    loaded = datasets.load_dataset(dataset_id, **kwargs)
    out: dict[str, list[dict[str, Any]]] = {}
    for ours, theirs in names.items():
        if theirs not in loaded:
            raise TaskDataError(f"{dataset_id!r} has no split {theirs!r} (has {list(loaded)})")
        out[ours] = [dict(r) for r in loaded[theirs]]
    return out


def rows_to_jsonl_dir(rows: dict[str, list[dict[str, Any]]], folder: Path) -> Path:
    """Write HF rows as split JSONL files so the same official-format readers (and their checks) apply."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, items in rows.items():
        with open(folder / f"{split}.jsonl", "w", encoding="utf-8") as fh:
            for row in items:
                fh.write(json.dumps(row) + "\n")
    return folder


def hub_folder(dataset_id: str, split_names: dict[str, str] | None = None, **kwargs: Any) -> Path:
    """An HF datasets id materialised as split JSONL files in the cache, so the file readers (and checks) apply."""
    from greenprune._utils import cache_dir

    rows = load_hf_rows(dataset_id, split_names, **kwargs)
    return rows_to_jsonl_dir(rows, cache_dir("datasets", "hf", dataset_id.replace("/", "__")))


def bigclonebench_pair_rows(path: Path) -> list[Example]:
    """The HF form of BigCloneBench: one row per pair with `func1`, `func2`, `label`."""
    out = []
    for lineno, row in read_jsonl(path):
        where = f"{path}:{lineno}"
        out.append(Example(text=_field(row, ("func1",), str, where), text_pair=_field(row, ("func2",), str, where),
                           label=_label(_field(row, ("label",), (int, bool, str), where), where, "label"),
                           id=str(row.get("id", lineno))))
    return out
