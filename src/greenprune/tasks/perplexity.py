"""Perplexity of a causal LM on held-out code: the cheapest quality signal for pruned decoders.

Embedded: stdlib functions, split by file (so the test split's files were never trained on by `finetune`).
Official: any JSONL with a `code`/`content`/`text` field, or a folder of `.py` files (one example per file).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from greenprune._utils import read_code_jsonl
from greenprune.tasks.base import Example, Splits, TaskDataError, limited
from greenprune.tasks.bundled import cached, split_sizes
from greenprune.tasks.corpus import stdlib_functions
from greenprune.tasks.metrics import perplexity
from greenprune.tasks.train import CausalLMTask


def _code_rows(path: Path) -> list[Example]:
    return [Example(text=text, id=f"{path.name}:{lineno}") for lineno, text in read_code_jsonl(path, TaskDataError)]


class PerplexityTask(CausalLMTask):
    name = "perplexity"
    metrics = ("perplexity", "nll_per_token", "tokens")
    description = "held-out code → perplexity (embedded: stdlib functions, split by file)"

    def embedded(self, size: int = 400, seed: int = 0, *, refresh: bool = False) -> Splits:
        def build() -> Splits:
            corpus = stdlib_functions(seed, min_lines=4, max_lines=60)
            parts = []
            for split, n in zip(("train", "valid", "test"), split_sizes(size), strict=False):
                fns = corpus[split][:n]
                if len(fns) < n:
                    raise TaskDataError(f"perplexity: the stdlib {split} split has only {len(fns)} functions")
                parts.append([Example(text=f.source, id=f"{f.file}::{f.qualname}", meta={"file": f.file})
                              for f in fns])
            return Splits(*parts, source=f"embedded:stdlib perplexity size={size} seed={seed}")

        return cached(self.name, size, seed, build, refresh)

    def load(self, source: str | Path, **kwargs: Any) -> Splits:
        path = Path(source)
        if path.is_file():
            return Splits([], [], _code_rows(path), source=str(path))
        if path.is_dir():
            splits = {s: path / f"{s}.jsonl" for s in ("train", "valid", "test")}
            if splits["test"].is_file():
                parts = [(_code_rows(p) if p.is_file() else []) for p in splits.values()]
                return Splits(*parts, source=str(path))
            files = sorted(path.rglob("*.py"))
            if not files:
                raise TaskDataError(f"{path}: expected test.jsonl (with a 'code' field) or .py files")
            return Splits([], [], [Example(text=f.read_text(encoding="utf-8", errors="replace"), id=str(f))
                                   for f in files], source=str(path))
        raise TaskDataError(f"{path}: no such file or folder")

    def evaluate(self, model: nn.Module, tokenizer: Any, examples: Sequence[Example], batch_size: int = 8,
                 max_length: int = 256, limit: int | None = None, **kwargs: Any) -> dict[str, float]:
        examples = limited(examples, limit, batch_size=batch_size, max_length=max_length)
        if not examples:
            raise TaskDataError("perplexity: no examples to evaluate")
        nll, tokens = self.token_nll(model, tokenizer, examples, batch_size, max_length)
        return {"perplexity": perplexity(nll, tokens), "nll_per_token": nll / tokens, "tokens": float(tokens),
                "examples": float(len(examples))}
