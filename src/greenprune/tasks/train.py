"""Fine-tune and evaluate loops shared by all tasks: classification and causal-LM flavours.

Every task fine-tunes through `greenprune.training.train` (the loop LoRA recovery and lottery rounds use too), so
seeds, warm-up, gradient clipping, evaluation cadence and best-checkpoint keeping behave the same everywhere; tasks
only say how examples become tensors and how a model is scored.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from greenprune._utils import progress
from greenprune.checkpoint import save_hf
from greenprune.errors import require_positive
from greenprune.tasks.base import (
    Example,
    FinetuneResult,
    Scores,
    Splits,
    Task,
    TaskDataError,
    TrainConfig,
    limited,
)
from greenprune.tasks.metrics import classification_metrics, perplexity
from greenprune.training import IGNORE_INDEX, LoopConfig, check_seed, model_device, pad_batch, steps_for, train


def _chunks(items: Sequence[Example], size: int) -> Iterator[list[Example]]:
    require_positive(batch_size=size)
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


class ClassificationTask(Task):
    """Sequence (or sequence-pair) classification with an ordinary HF sequence classifier."""

    head = "classification"
    metrics = ("accuracy", "precision", "recall", "f1")
    pair = False

    def _tokenize(self, tokenizer: Any, examples: Sequence[Example], max_length: int, **kwargs: Any) -> Any:
        """The one tokenizer call for this task's inputs (a pair task encodes both texts as one sequence)."""
        texts = [e.text for e in examples]
        if self.pair:
            return tokenizer(texts, [e.text_pair or "" for e in examples], truncation="longest_first",
                             max_length=max_length, **kwargs)
        return tokenizer(texts, truncation=True, max_length=max_length, **kwargs)

    def _encode(self, tokenizer: Any, chunk: list[Example], max_length: int) -> dict[str, torch.Tensor]:
        enc = self._tokenize(tokenizer, chunk, max_length, padding=True, return_tensors="pt")
        batch = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
        if any(e.label is None for e in chunk):
            raise TaskDataError(f"{self.name}: example {chunk[0].id!r} has no label")
        batch["labels"] = torch.tensor([int(e.label) for e in chunk], dtype=torch.long)  # type: ignore[arg-type]
        return batch

    def batches(self, tokenizer: Any, examples: Sequence[Example], batch_size: int = 16, max_length: int = 256
                ) -> Iterator[dict[str, torch.Tensor]]:
        for chunk in _chunks(examples, batch_size):
            yield self._encode(tokenizer, chunk, max_length)

    train_batches = batches

    def token_lengths(self, tokenizer: Any, examples: Sequence[Example], max_length: int = 256) -> list[int]:
        """Each example's length in tokens as `batches` encodes it (special tokens in, before padding)."""
        return [len(ids) for ids in self._tokenize(tokenizer, examples, max_length)["input_ids"]]

    @torch.no_grad()
    def predict(self, model: nn.Module, tokenizer: Any, examples: Sequence[Example], batch_size: int = 16,
                max_length: int = 256) -> list[int]:
        model.eval()
        device = model_device(model)
        preds: list[int] = []
        total = math.ceil(len(examples) / batch_size)
        for batch in progress(self.batches(tokenizer, examples, batch_size, max_length), f"eval {self.name}", total):
            batch.pop("labels")
            logits = model(**to_device(batch, device)).logits
            preds.extend(logits.argmax(-1).tolist())
        return preds

    def evaluate(self, model: nn.Module, tokenizer: Any, examples: Sequence[Example], batch_size: int = 16,
                 max_length: int = 256, limit: int | None = None, **kwargs: Any) -> dict[str, float]:
        examples = limited(examples, limit, batch_size=batch_size, max_length=max_length)
        if not examples:
            raise TaskDataError(f"{self.name}: no examples to evaluate")
        preds = self.predict(model, tokenizer, examples, batch_size, max_length)
        labels = [int(e.label) for e in examples]  # type: ignore[arg-type]
        # per-example predictions travel with the scores: the report's bootstrap intervals and paired tests need them
        per_example = [{"id": e.id or str(i), "label": y, "pred": p}
                       for i, (e, y, p) in enumerate(zip(examples, labels, preds, strict=True))]
        return Scores(classification_metrics(preds, labels), details={"per_example": per_example})

    def validation_metrics(self, model: nn.Module, tokenizer: Any, examples: Sequence[Example], config: TrainConfig
                           ) -> dict[str, float]:
        return self.evaluate(model, tokenizer, examples, config.eval_batch_size or config.batch_size,
                             config.max_length)

    def finetune(self, model: nn.Module, tokenizer: Any, splits: Splits, config: TrainConfig | None = None
                 ) -> FinetuneResult:
        return train_loop(self, model, tokenizer, splits, config or TrainConfig())


class CausalLMTask(Task):
    """Tasks scored with a causal LM. Training minimises the NLL of the target part (or the whole text)."""

    head = "causal-lm"
    primary_metric = "valid_loss"
    higher_is_better = False

    def prompt_and_target(self, example: Example) -> tuple[str, str]:
        """The conditioning text and the text whose tokens are trained on; default: the whole text is target."""
        return "", example.text

    def batches(self, tokenizer: Any, examples: Sequence[Example], batch_size: int = 16, max_length: int = 256
                ) -> Iterator[dict[str, torch.Tensor]]:
        for batch in self.train_batches(tokenizer, examples, batch_size, max_length):
            batch.pop("labels")
            yield batch

    def _row(self, tokenizer: Any, example: Example, max_length: int) -> tuple[list[int], list[int]]:
        """(token ids, labels) of one example: BOS when the tokenizer adds one, prompt, target, EOS; cut at
        max_length; labels ignore the prompt."""
        bos = [tokenizer.bos_token_id] if getattr(tokenizer, "bos_token_id", None) is not None and \
            getattr(tokenizer, "add_bos_token", False) else []
        prompt, target = self.prompt_and_target(example)
        p_ids = bos + (tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else [])
        t_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
        if tokenizer.eos_token_id is not None:
            t_ids = [*t_ids, tokenizer.eos_token_id]
        return (p_ids + t_ids)[:max_length], ([IGNORE_INDEX] * len(p_ids) + t_ids)[:max_length]

    def train_batches(self, tokenizer: Any, examples: Sequence[Example], batch_size: int = 16, max_length: int = 256
                      ) -> Iterator[dict[str, torch.Tensor]]:
        """input_ids / attention_mask / labels, right-padded; prompt and padding positions are ignored in labels."""
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        for chunk in _chunks(examples, batch_size):
            yield pad_batch([self._row(tokenizer, e, max_length) for e in chunk], pad_id)

    def token_lengths(self, tokenizer: Any, examples: Sequence[Example], max_length: int = 256) -> list[int]:
        """Each example's length in tokens as `train_batches` encodes it (before padding)."""
        return [len(self._row(tokenizer, e, max_length)[0]) for e in examples]

    def scored_tokens(self, tokenizer: Any, examples: Sequence[Example], max_length: int = 256) -> list[int]:
        """Per example, how many tokens `token_nll` scores (its target tokens after the one-token shift), without a
        forward pass: under the original tokenizer, the normaliser that keeps NLL comparable across vocabularies."""
        return [sum(label != IGNORE_INDEX for label in self._row(tokenizer, e, max_length)[1][1:]) for e in examples]

    @torch.no_grad()
    def token_nll(self, model: nn.Module, tokenizer: Any, examples: Sequence[Example], batch_size: int = 8,
                  max_length: int = 256) -> tuple[float, int]:
        """Summed next-token NLL over target tokens and their count (so perplexity is exact across batches)."""
        model.eval()
        device = model_device(model)
        total_nll, total_tokens = 0.0, 0
        count = math.ceil(len(examples) / batch_size)
        for batch in progress(self.train_batches(tokenizer, examples, batch_size, max_length), f"nll {self.name}",
                              count):
            batch = to_device(batch, device)
            labels = batch.pop("labels")
            logits = model(**batch).logits[:, :-1].float()
            target = labels[:, 1:]
            nll = nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)), target.reshape(-1),
                                              ignore_index=IGNORE_INDEX, reduction="sum")
            total_nll += float(nll)
            total_tokens += int((target != IGNORE_INDEX).sum())
        return total_nll, total_tokens

    def validation_metrics(self, model: nn.Module, tokenizer: Any, examples: Sequence[Example], config: TrainConfig
                           ) -> dict[str, float]:
        nll, tokens = self.token_nll(model, tokenizer, examples, config.eval_batch_size or config.batch_size,
                                     config.max_length)
        return {"valid_loss": nll / max(tokens, 1), "valid_perplexity": perplexity(nll, max(tokens, 1))}

    def finetune(self, model: nn.Module, tokenizer: Any, splits: Splits, config: TrainConfig | None = None
                 ) -> FinetuneResult:
        return train_loop(self, model, tokenizer, splits, config or TrainConfig())


def shuffle_groups(examples: Sequence[Example]) -> list[list[int]]:
    """Indices of runs of consecutive examples that share a non-empty id; each run is shuffled as one unit.

    Paired data (defect: a function's clean and buggy versions, stored next to each other) thus lands in the
    same batch, so the function-level part of the gradient cancels and what is left is the contrast the label
    depends on. Unpaired data gives one-element groups, i.e. the ordinary per-example shuffle.
    """
    groups: list[list[int]] = []
    for i, example in enumerate(examples):
        if groups and example.id and examples[groups[-1][-1]].id == example.id:
            groups[-1].append(i)
        else:
            groups.append([i])
    return groups


def epoch_order(groups: Sequence[Sequence[int]], generator: torch.Generator, batch_size: int,
                lengths: Sequence[int] | None = None) -> list[int]:
    """One epoch's example order: the shuffle groups in a random order, or, given token lengths, grouped by length.

    Length grouping is transformers' `get_length_grouped_indices` applied to whole shuffle groups (a group's
    length is its longest member's and the batch size is counted in groups), so a defect pair stays adjacent (and in
    one batch when the batch size is a multiple of the group size) while each batch pads to little more than its own
    length.
    """
    if lengths is None:
        order = torch.randperm(len(groups), generator=generator).tolist()
    else:
        from transformers.trainer_pt_utils import get_length_grouped_indices

        group_lengths = [max(lengths[i] for i in g) for g in groups]
        members = sum(len(g) for g in groups)
        order = get_length_grouped_indices(group_lengths, max(1, round(batch_size * len(groups) / members)),
                                           generator=generator)
    return [i for g in order for i in groups[g]]


def train_loop(task: ClassificationTask | CausalLMTask, model: nn.Module, tokenizer: Any, splits: Splits,
               config: TrainConfig) -> FinetuneResult:
    """Fine-tune on the train split through the shared loop: AdamW with linear warm-up/decay, gradient clipping,
    an evaluation every `eval_every` steps (default once per epoch) and the best validation checkpoint restored."""
    if not splits.train:
        raise TaskDataError(f"{task.name}: the train split is empty; nothing to fine-tune on")
    if config.epochs <= 0:
        raise TaskDataError(f"epochs must be positive, got {config.epochs}")
    require_positive(batch_size=config.batch_size, grad_accum=config.grad_accum, max_length=config.max_length,
                     max_steps=config.max_steps)
    check_seed(config.seed)
    device = config.resolved_device()
    model.to(device)
    valid = limited(splits.valid, config.eval_limit) if splits.valid else []
    steps_per_epoch, total_steps = steps_for(math.ceil(len(splits.train) / config.batch_size), config.epochs,
                                             config.grad_accum)
    total_steps = config.max_steps or total_steps
    groups = shuffle_groups(splits.train)
    generator = torch.Generator().manual_seed(config.seed)
    lengths = task.token_lengths(tokenizer, splits.train, config.max_length) if config.group_by_length else None

    def epoch() -> Iterator[dict[str, torch.Tensor]]:
        order = epoch_order(groups, generator, config.batch_size, lengths)
        shuffled = [splits.train[i] for i in order]
        return task.train_batches(tokenizer, shuffled, config.batch_size, config.max_length)

    history: list[dict[str, float]] = []
    metrics_at: dict[int, dict[str, float]] = {}
    start = time.perf_counter()

    def validate(model: nn.Module, step: int, train_loss: float) -> float | None:
        row: dict[str, float] = {"step": float(step), "train_loss": train_loss, "seconds": time.perf_counter() - start}
        history.append(row)
        if not valid:
            return None
        metrics_at[step] = metrics = task.validation_metrics(model, tokenizer, valid, config)
        row.update(metrics)
        return metrics[task.primary_metric]

    loop = LoopConfig(
        steps=total_steps, lr=config.lr, weight_decay=config.weight_decay, decay_vectors=False,
        max_grad_norm=config.max_grad_norm, grad_accum=config.grad_accum, schedule="linear",
        warmup_steps=int(config.warmup_ratio * total_steps), eval_every=config.eval_every or steps_per_epoch,
        higher_is_better=task.higher_is_better, seed=config.seed, desc=f"finetune {task.name}",
    )
    run = train(model, epoch, loop, evaluate=validate)
    best_step = run.selected_step if run.score is not None else 0
    checkpoint = None
    if config.output_dir:
        checkpoint = str(save_hf(model, tokenizer, Path(config.output_dir) / "best", kind="finetune",
                                 overwrite=config.overwrite, option="--output"))
    return FinetuneResult(model, history, metrics_at.get(best_step, {}), best_step, checkpoint)


def deep_copy_model(model: nn.Module) -> nn.Module:
    """A detached copy, e.g. to fine-tune while keeping the original for an A/B comparison."""
    return copy.deepcopy(model)
