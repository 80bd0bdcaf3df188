"""Shared shapes of every task: examples, splits, training config, results, and the Task base class.

A task bundles what pruning experiments need to judge quality: which model head it uses, how its data is
loaded (official formats or the embedded stdlib corpus), how examples become model inputs, and how a model is
scored and fine-tuned. Concrete tasks live in one module each.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from greenprune.errors import GreenpruneError, require_positive


class TaskDataError(GreenpruneError, ValueError):
    """A dataset file or id cannot be used; the message names the file (and line) or the id."""


class UnknownTaskError(GreenpruneError, KeyError):
    """A task name that is not in the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


@dataclass
class Example:
    """One task example; which fields are set depends on the task.

    - defect: `text` (function), `label` (1 = buggy)
    - clone: `text`, `text_pair`, `label` (1 = clone)
    - summarize: `text` (function without docstring), `target` (one-line description)
    - generate: `text` (prompt), `target` (reference body), `meta["test"]`, `meta["entry_point"]`
    - perplexity: `text` (held-out code)
    """

    text: str
    label: int | None = None
    text_pair: str | None = None
    target: str | None = None
    id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


class Scores(dict):
    """Task metrics (name → float) that also carry what a float cannot, in `details`: per-example outcomes (what
    paired tests such as McNemar need) and how the scores were obtained (e.g. the sandbox layers generated code
    ran under). A plain dict to every caller; result records store `details` beside the metrics."""

    def __init__(self, metrics: dict[str, float] | None = None, details: dict[str, Any] | None = None) -> None:
        super().__init__(metrics or {})
        self.details: dict[str, Any] = dict(details or {})


@dataclass
class Splits:
    """Train / valid / test lists of examples; a split may be empty (HumanEval has only a test split)."""

    train: list[Example]
    valid: list[Example]
    test: list[Example]
    source: str = ""
    files: dict[str, str] = field(default_factory=dict)  # split -> the file it was read from, when one per split
    note: str = ""  # how the source was split, for messages (e.g. MBPP's task-id ranges)

    def __getitem__(self, name: str) -> list[Example]:
        if name not in ("train", "valid", "test"):
            raise TaskDataError(f"unknown split {name!r}; expected train, valid or test")
        return getattr(self, name)

    def nonempty(self, name: str) -> list[Example]:
        """The examples of split `name`; an empty one is a user error naming the data, not an empty score."""
        examples = self[name]
        if not examples:
            sizes = ", ".join(f"{split} {n}" for split, n in self.sizes().items())
            where = f"{self.files[name]} has no rows" if name in self.files else f"{self.source or 'the data'} has none"
            note = f"; {self.note}" if self.note else ""
            raise TaskDataError(f"the {name} split is empty: {where} (examples per split: {sizes}){note}")
        return examples

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)}


@dataclass
class TrainConfig:
    """How to fine-tune: the knobs users of CodeXGLUE scripts expect, with CPU-friendly defaults."""

    epochs: float = 1.0
    lr: float = 2e-5
    batch_size: int = 16
    max_length: int = 256
    seed: int = 0
    eval_every: int = 0  # optimizer steps between evaluations; 0 → once per epoch
    output_dir: str | None = None  # best checkpoint written here (safetensors) when set
    overwrite: bool = False  # replace an earlier greenprune checkpoint at output_dir/best
    weight_decay: float = 0.0
    warmup_ratio: float = 0.1
    grad_accum: int = 1
    max_steps: int | None = None
    eval_limit: int | None = None  # evaluate on at most this many validation examples
    eval_batch_size: int | None = None
    device: str = "auto"  # "auto" → cuda when available, else cpu
    max_grad_norm: float = 1.0
    # batches of similar length (transformers' length-grouped sampling), still a fresh random order per epoch and
    # seed: on clone pairs at 256 tokens 0.69x the padded tokens and 0.62x the training time, F1 within its paired
    # interval (one seed; benchmarks/results/group-by-length.md)
    group_by_length: bool = False

    def resolved_device(self) -> torch.device:
        from greenprune.devices import resolve_device

        return resolve_device(self.device)


@dataclass
class FinetuneResult:
    """The fine-tuned model (best checkpoint restored), the evaluation history and the best validation metrics."""

    model: nn.Module
    history: list[dict[str, float]]
    best_metrics: dict[str, float]
    best_step: int = 0
    checkpoint: str | None = None


class Task:
    """A task: its head, metrics, data and loops. Subclasses fill in the data and scoring parts."""

    name: str = ""
    head: str = ""  # "classification" | "causal-lm": the one declaration (registered into models.TASK_HEADS)
    metrics: tuple[str, ...] = ()
    primary_metric: str = ""
    higher_is_better: bool = True
    description: str = ""

    # data -------------------------------------------------------------------------------------------------
    def embedded(self, size: int = 400, seed: int = 0, *, refresh: bool = False) -> Splits:
        """Built from the running interpreter's standard library, deterministic for `seed`, cached on disk."""
        raise NotImplementedError

    def load(self, source: str | Path, **kwargs: Any) -> Splits:
        """Official-format files (a folder or a file), or an HF datasets id when the hub is reachable."""
        raise NotImplementedError

    # model inputs -----------------------------------------------------------------------------------------
    def batches(
        self, tokenizer: Any, examples: Sequence[Example], batch_size: int = 16, max_length: int = 256
    ) -> Iterator[dict[str, torch.Tensor]]:
        """Dicts of input tensors (with `labels` for classification), in example order."""
        raise NotImplementedError

    # scoring ----------------------------------------------------------------------------------------------
    def evaluate(
        self,
        model: nn.Module,
        tokenizer: Any,
        examples: Sequence[Example],
        batch_size: int = 16,
        max_length: int = 256,
        limit: int | None = None,
        **kwargs: Any,
    ) -> dict[str, float]:
        raise NotImplementedError

    def finetune(self, model: nn.Module, tokenizer: Any, splits: Splits, config: TrainConfig | None = None
                 ) -> FinetuneResult:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<task {self.name}: head={self.head}, metrics={', '.join(self.metrics)}>"


def limited(examples: Sequence[Example], limit: int | None, **sizes: int | None) -> list[Example]:
    """The first `limit` examples (all when None), checked where every evaluate starts.

    A zero or negative limit, or any of `sizes` (batch_size=, max_length=, max_new_tokens=, ...), is a user error
    rather than an empty or truncated-to-nothing score.
    """
    if limit is not None and limit <= 0:
        raise TaskDataError(f"--limit must be positive, got {limit}")
    require_positive(**sizes)
    return list(examples) if limit is None else list(examples[:limit])
