"""Key paths into a recipe, written like `steps[2].alpine.alpha`: parsed, printed and set.

Grid keys are such paths, and every error message names one, so both the schema and the grid expansion use these.
"""

from __future__ import annotations

import re
from typing import Any

_TOKEN_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\.")

KeyPath = tuple[str | int, ...]


def parse_path(path: str) -> KeyPath:
    """`"steps[2].alpine.alpha"` → `("steps", 2, "alpine", "alpha")`; ValueError naming the bad character."""
    parts: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _TOKEN_RE.match(path, pos)
        if not m or m.end() == pos:
            raise ValueError(f"bad grid key {path!r} at character {pos}; write it like steps[2].alpine.alpha")
        if m.group(1) is not None:
            parts.append(m.group(1))
        elif m.group(2) is not None:
            parts.append(int(m.group(2)))
        pos = m.end()
    if not parts:
        raise ValueError("empty grid key")
    return tuple(parts)


def format_path(loc: KeyPath) -> str:
    """`("steps", 2, "alpine", "alpha")` → `"steps[2].alpine.alpha"`."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def set_path(data: Any, path: KeyPath, value: Any, key: str) -> None:
    """Set `value` at `path` inside plain recipe data (dicts and lists), creating mappings on the way."""
    obj = data
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(part, int):
            if not isinstance(obj, list) or part >= len(obj):
                raise ValueError(f"grid key {key!r}: {format_path(path[:i]) or 'pipeline'} has no item [{part}]")
            if last:
                obj[part] = value
            else:
                # a bare step (`- evaluate`) has no mapping to descend into yet
                if isinstance(obj[part], str):
                    obj[part] = {obj[part]: {}}
                obj = obj[part]
        else:
            if not isinstance(obj, dict):
                raise ValueError(f"grid key {key!r}: {format_path(path[:i]) or 'pipeline'} is not a mapping")
            if last:
                obj[part] = value
            else:
                if obj.get(part) is None:
                    obj[part] = {}
                obj = obj[part]


__all__ = ["KeyPath", "format_path", "parse_path", "set_path"]
