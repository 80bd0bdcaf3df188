"""Lottery inputs from a greenprune task: training batches, the score rounds maximise, and its name.

Two model shapes summarise code:
- a causal LM (e.g. `smollm2-135m`), prompted and decoded greedily by `greenprune.tasks` ("summarize");
- an HF `EncoderDecoderModel` (`greenprune.tasks.seq2seq`) warm-started from an encoder — the seed study's CodeBERT
  setup. Weight pruning targets its encoder by default.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from greenprune.errors import GreenpruneError
from greenprune.models.families import is_encoder_decoder
from greenprune.tasks.seq2seq import seq2seq_batches, seq2seq_bleu


class CodeToTextError(GreenpruneError, ValueError):
    """A model or task that cannot be used for code-to-text pruning as asked."""


def primary_metric(task: Any) -> str:
    """The metric lottery rounds maximise for a task (BLEU for summarise, else the task's first metric)."""
    return "bleu4_smoothed" if task.name == "summarize" else task.metrics[0]


def lottery_io(task: Any, model: nn.Module, tokenizer: Any, splits: Any, *, batch_size: int = 8,
               max_length: int = 256, eval_limit: int | None = 30, max_new_tokens: int = 24
               ) -> tuple[Callable[[], Iterator[dict[str, torch.Tensor]]], Callable[[nn.Module], float], str]:
    """(training batches factory, evaluate → score, metric name) for lottery rounds on a greenprune task."""
    valid = list(splits.valid)[:eval_limit] if eval_limit else list(splits.valid)
    if not splits.train or not valid:
        raise CodeToTextError(f"task {task.name}: lottery rounds need train and valid examples")
    if is_encoder_decoder(model):
        if task.name != "summarize":
            raise CodeToTextError(f"encoder-decoder models run the summarize task, not {task.name!r}")

        def batches() -> Iterator[dict[str, torch.Tensor]]:
            return seq2seq_batches(tokenizer, splits.train, batch_size, max_length)

        def evaluate(m: nn.Module) -> float:
            return seq2seq_bleu(m, tokenizer, valid, batch_size=batch_size, max_new_tokens=max_new_tokens)[
                "bleu4_smoothed"]

        return batches, evaluate, "bleu4_smoothed"
    metric = primary_metric(task)
    train_batches = getattr(task, "train_batches", task.batches)

    def batches() -> Iterator[dict[str, torch.Tensor]]:
        return train_batches(tokenizer, splits.train, batch_size, max_length)

    def evaluate(m: nn.Module) -> float:
        extra = {"max_new_tokens": max_new_tokens} if task.name == "summarize" else {}
        return float(task.evaluate(m, tokenizer, valid, batch_size=batch_size, max_length=max_length, **extra)[metric])

    return batches, evaluate, metric
