"""Disk cache of embedded datasets: built once per (task, size, seed, interpreter), reloaded as-is afterwards."""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from greenprune._utils import atomic_write_text, cache_dir
from greenprune.tasks.base import Example, Splits, TaskDataError

DATASET_VERSION = 9
FRACTIONS = (0.8, 0.1, 0.1)


def split_sizes(size: int, fractions: tuple[float, float, float] = FRACTIONS) -> tuple[int, int, int]:
    """How many of `size` examples go to train / valid / test (at least one each)."""
    if size < 3:
        raise TaskDataError(f"an embedded dataset needs size >= 3 (one example per split), got {size}")
    valid = max(1, round(size * fractions[1]))
    test = max(1, round(size * fractions[2]))
    return size - valid - test, valid, test


def cache_path(task: str, size: int, seed: int) -> Path:
    key = hashlib.sha256(f"{DATASET_VERSION}|{sys.version}".encode()).hexdigest()[:10]
    return cache_dir("datasets") / f"{task}-n{size}-seed{seed}-{key}.json"


def cached(task: str, size: int, seed: int, build: Callable[[], Splits], refresh: bool = False) -> Splits:
    path = cache_path(task, size, seed)
    if path.is_file() and not refresh:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Splits(*(([Example(**row) for row in data[s]]) for s in ("train", "valid", "test")),
                      source=data.get("source", str(path)))
    splits = build()
    payload = {s: [asdict(e) for e in splits[s]] for s in ("train", "valid", "test")}
    payload["source"] = splits.source  # type: ignore[assignment]
    atomic_write_text(path, json.dumps(payload))
    return splits
