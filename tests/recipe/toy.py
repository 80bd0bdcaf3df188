"""A small deterministic classification task for testing the recipe machinery on tiny random models.

Labels are whether a snippet contains `return None`: learnable, cheap, and independent of the tasks area.
"""

from __future__ import annotations

import random
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from greenprune.tasks.base import Scores

# a recipe exercising fine-tuning, evaluation, measurement, ALPINE and weight pruning on tiny-bert in seconds
RECIPE = """\
name: toyrun
model: tiny-bert
task: toy
data: {size: 48}
energy: {track: false}
steps:
  - finetune: {epochs: 1, batch_size: 8, max_length: 48, lr: 0.001}
  - evaluate
  - measure: {batches: 2, batch_size: 4, max_length: 48, rounds: 1, energy: false}
  - alpine: {layers: even, alpha: 0.5}
  - prune: {sparsity: 0.3, method: l1}
  - evaluate
  - measure: {batches: 2, batch_size: 4, max_length: 48, rounds: 1, energy: false}
"""


@dataclass
class ToyExample:
    text: str
    label: int
    id: str = ""
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class ToySplits:
    train: list[ToyExample]
    valid: list[ToyExample]
    test: list[ToyExample]
    source: str = "toy"


@dataclass
class ToyResult:
    model: Any
    history: list[dict[str, float]]
    best_metrics: dict[str, float]
    best_step: int = 0


class ToyTask:
    name = "toy"
    head = "classification"
    primary_metric = "accuracy"

    def embedded(self, size: int = 64, seed: int = 0, **_: Any) -> ToySplits:
        rng = random.Random(seed)
        examples = []
        for i in range(size):
            label = i % 2
            body = " ".join(rng.choice(["x = x + 1", "y = f(x)", "z = [a for a in b]", "pass"]) for _ in range(6))
            tail = "return None" if label else "return x"
            examples.append(ToyExample(f"def f{i}(x):\n    {body}\n    {tail}", label, id=str(i)))
        n = size // 2
        return ToySplits(examples[:n], examples[n : n + size // 4], examples[n + size // 4 :])

    def batches(self, tokenizer: Any, examples: Sequence[ToyExample], batch_size: int = 16, max_length: int = 256
                ) -> Iterator[dict[str, torch.Tensor]]:
        for i in range(0, len(examples), batch_size):
            chunk = examples[i : i + batch_size]
            enc = tokenizer([e.text for e in chunk], padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt")
            batch = dict(enc)
            batch["labels"] = torch.tensor([e.label for e in chunk])
            yield batch

    @torch.no_grad()
    def evaluate(self, model: Any, tokenizer: Any, examples: Sequence[ToyExample], batch_size: int = 8,
                 max_length: int = 64, **_: Any) -> Scores:
        """Accuracy, with each example's prediction (what paired tests between stacks need)."""
        model.eval()
        preds: list[int] = []
        for batch in self.batches(tokenizer, examples, batch_size, max_length):
            batch.pop("labels")
            preds += model(**batch).logits.argmax(-1).tolist()
        per_example = [{"id": e.id, "label": e.label, "pred": p} for e, p in zip(examples, preds, strict=True)]
        correct = sum(e["label"] == e["pred"] for e in per_example)
        return Scores({"accuracy": correct / len(examples)}, {"per_example": per_example})

    def finetune(self, model: Any, tokenizer: Any, splits: ToySplits, config: Any) -> ToyResult:
        torch.manual_seed(config.seed)
        optim = torch.optim.AdamW(model.parameters(), lr=config.lr)
        model.train()
        for _ in range(max(1, int(config.epochs))):
            for batch in self.batches(tokenizer, splits.train, config.batch_size, config.max_length):
                loss = model(**batch).loss
                loss.backward()
                optim.step()
                optim.zero_grad()
        model.eval()
        return ToyResult(model, [], self.evaluate(model, tokenizer, splits.valid))


def provider(name: str) -> ToyTask | None:
    return ToyTask() if name == "toy" else None


def setup(mark_dir: str | None = None) -> None:
    """Register the toy task (in this process, or in a Ray worker); optionally leave one file per call, named
    `<pid>-<unique>`, so a test can count the calls and see which processes made them."""
    import os
    import uuid
    from pathlib import Path

    from greenprune.recipe.steps import register_task_provider

    register_task_provider(provider)
    if mark_dir:
        Path(mark_dir).mkdir(parents=True, exist_ok=True)
        (Path(mark_dir) / f"{os.getpid()}-{uuid.uuid4().hex}").touch()
