"""Default measurement inputs: real Python source from the running interpreter's standard library.

Cost depends on sequence length and padding, so measuring on real code (not random ids) keeps token counts honest.
"""

from __future__ import annotations

import random
import sysconfig
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def stdlib_snippets(count: int, *, seed: int = 0, lines: int = 40) -> list[str]:
    """`count` chunks of `lines` consecutive lines from standard-library modules, chosen by `seed`."""
    root = Path(sysconfig.get_paths()["stdlib"])
    files = sorted(p for p in root.glob("*.py") if p.stat().st_size > 2000)
    if not files:
        raise FileNotFoundError(f"no standard-library sources under {root}")
    rng = random.Random(seed)
    snippets: list[str] = []
    while len(snippets) < count:
        path = rng.choice(files)
        text = path.read_text(encoding="utf-8", errors="replace").splitlines()
        if len(text) <= lines:
            continue
        start = rng.randrange(0, len(text) - lines)
        snippet = "\n".join(text[start : start + lines]).strip()
        if snippet:
            snippets.append(snippet)
    return snippets


def code_batches(
    tokenizer: Any, *, batch_size: int = 8, seq_len: int = 128, n_batches: int = 4, seed: int = 0
) -> Iterator[dict[str, Any]]:
    """Tokenised batches of stdlib code, padded/truncated to `seq_len`."""
    from greenprune.errors import require_positive

    require_positive(batch_size=batch_size, seq_len=seq_len, n_batches=n_batches)
    texts = stdlib_snippets(batch_size * n_batches, seed=seed)
    for i in range(0, len(texts), batch_size):
        encoded = tokenizer(
            texts[i : i + batch_size], padding="max_length", truncation=True, max_length=seq_len, return_tensors="pt"
        )
        yield dict(encoded)
