"""Fine-tune and evaluate loops shared by all tasks: classification and causal-LM flavours.

One loop serves every task so seeds, warm-up, gradient clipping, evaluation cadence and best-checkpoint keeping
behave the same everywhere; tasks only say how examples become tensors and how a model is scored.
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

from greenprune._utils import progress, seed_everything
from greenprune.errors import require_positive
from greenprune.tasks.base import Example, FinetuneResult, Splits, Task, TaskDataError, TrainConfig, limited
from greenprune.tasks.metrics import classification_metrics, perplexity

IGNORE_INDEX = -100


def _chunks(items: Sequence[Example], size: int) -> Iterator[list[Example]]:
    require_positive(batch_size=size)
    for start in range(0, len(items), size):
        yield list(items[start : start + size])


def model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def to_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    return {k: v.to(device) for k, v in batch.items()}


class ClassificationTask(Task):
    """Sequence (or sequence-pair) classification with an ordinary HF sequence classifier."""

    head = "classification"
    metrics = ("accuracy", "precision", "recall", "f1")
    pair = False

    def _encode(self, tokenizer: Any, chunk: list[Example], max_length: int) -> dict[str, torch.Tensor]:
        texts = [e.text for e in chunk]
        if self.pair:
            pairs = [e.text_pair or "" for e in chunk]
            enc = tokenizer(texts, pairs, truncation="longest_first", max_length=max_length, padding=True,
                            return_tensors="pt")
        else:
            enc = tokenizer(texts, truncation=True, max_length=max_length, padding=True, return_tensors="pt")
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
        return classification_metrics(preds, [int(e.label) for e in examples])  # type: ignore[arg-type]

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

    def train_batches(self, tokenizer: Any, examples: Sequence[Example], batch_size: int = 16, max_length: int = 256
                      ) -> Iterator[dict[str, torch.Tensor]]:
        """input_ids / attention_mask / labels, right-padded; prompt and padding positions are ignored in labels."""
        pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        bos = [tokenizer.bos_token_id] if getattr(tokenizer, "bos_token_id", None) is not None and \
            getattr(tokenizer, "add_bos_token", False) else []
        for chunk in _chunks(examples, batch_size):
            rows: list[tuple[list[int], list[int]]] = []
            for e in chunk:
                prompt, target = self.prompt_and_target(e)
                p_ids = bos + (tokenizer(prompt, add_special_tokens=False)["input_ids"] if prompt else [])
                t_ids = tokenizer(target, add_special_tokens=False)["input_ids"]
                if tokenizer.eos_token_id is not None:
                    t_ids = [*t_ids, tokenizer.eos_token_id]
                ids = (p_ids + t_ids)[:max_length]
                labels = ([IGNORE_INDEX] * len(p_ids) + t_ids)[:max_length]
                rows.append((ids, labels))
            width = max(len(ids) for ids, _ in rows)
            input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
            attention = torch.zeros((len(rows), width), dtype=torch.long)
            labels_t = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
            for i, (ids, labels) in enumerate(rows):
                input_ids[i, : len(ids)] = torch.tensor(ids)
                attention[i, : len(ids)] = 1
                labels_t[i, : len(labels)] = torch.tensor(labels)
            yield {"input_ids": input_ids, "attention_mask": attention, "labels": labels_t}

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


def _better(task: Task, new: float, best: float | None) -> bool:
    if best is None:
        return True
    return new > best if task.higher_is_better else new < best


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


def train_loop(task: ClassificationTask | CausalLMTask, model: nn.Module, tokenizer: Any, splits: Splits,
               config: TrainConfig) -> FinetuneResult:
    """AdamW with linear warm-up/decay, gradient clipping, periodic validation and best-checkpoint restore."""
    from transformers import get_linear_schedule_with_warmup

    if not splits.train:
        raise TaskDataError(f"{task.name}: the train split is empty; nothing to fine-tune on")
    if config.epochs <= 0:
        raise TaskDataError(f"epochs must be positive, got {config.epochs}")
    require_positive(batch_size=config.batch_size, grad_accum=config.grad_accum, max_length=config.max_length)
    seed_everything(config.seed)
    device = config.resolved_device()
    model.to(device)
    valid = limited(splits.valid, config.eval_limit) if splits.valid else []
    batches_per_epoch = math.ceil(len(splits.train) / config.batch_size)
    steps_per_epoch = max(1, batches_per_epoch // config.grad_accum)
    total_steps = config.max_steps or max(1, math.ceil(steps_per_epoch * config.epochs))
    eval_every = config.eval_every or steps_per_epoch
    decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.requires_grad and p.ndim <= 1]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr,
    )
    scheduler = get_linear_schedule_with_warmup(optimizer, int(config.warmup_ratio * total_steps), total_steps)
    generator = torch.Generator().manual_seed(config.seed)
    history: list[dict[str, float]] = []
    best_value: float | None = None
    best_state: dict[str, torch.Tensor] | None = None
    best_metrics: dict[str, float] = {}
    best_step = 0
    step, running, seen = 0, 0.0, 0
    start = time.perf_counter()
    bar = progress(range(total_steps), f"finetune {task.name}", total_steps)
    bar_iter = iter(bar)

    def validate() -> None:
        nonlocal best_value, best_state, best_metrics, best_step
        row: dict[str, float] = {"step": float(step), "train_loss": running / max(seen, 1),
                                 "seconds": time.perf_counter() - start}
        if valid:
            metrics = task.validation_metrics(model, tokenizer, valid, config)
            row.update(metrics)
            value = metrics[task.primary_metric]
            if _better(task, value, best_value):
                best_value, best_metrics, best_step = value, metrics, step
                best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        history.append(row)
        model.train()

    model.train()
    done = False
    groups = shuffle_groups(splits.train)
    while not done:
        order = torch.randperm(len(groups), generator=generator).tolist()
        shuffled = [splits.train[i] for g in order for i in groups[g]]
        optimizer.zero_grad(set_to_none=True)
        for i, batch in enumerate(task.train_batches(tokenizer, shuffled, config.batch_size, config.max_length)):
            batch = to_device(batch, device)
            loss = model(**batch).loss
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{task.name}: training loss became {float(loss)} at step {step}; lower lr")
            (loss / config.grad_accum).backward()
            running += float(loss.detach())
            seen += 1
            if (i + 1) % config.grad_accum:
                continue
            torch.nn.utils.clip_grad_norm_(model.parameters(), config.max_grad_norm)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            next(bar_iter, None)
            if step % eval_every == 0 or step == total_steps:
                validate()
                running, seen = 0.0, 0
            if step >= total_steps:
                done = True
                break
    if hasattr(bar, "close"):
        bar.close()
    if history and history[-1]["step"] != step:
        validate()
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    checkpoint = None
    if config.output_dir:
        checkpoint = str(save_checkpoint(model, tokenizer, Path(config.output_dir) / "best",
                                         overwrite=config.overwrite))
    return FinetuneResult(model, history, best_metrics, best_step, checkpoint)


def save_checkpoint(model: nn.Module, tokenizer: Any, folder: Path, *, overwrite: bool = False) -> Path:
    """A plain HF folder (safetensors) that `from_pretrained` reloads without greenprune."""
    from greenprune.checkpoint import save_hf

    return save_hf(model, tokenizer, folder, kind="finetune", overwrite=overwrite, option="--output")


def deep_copy_model(model: nn.Module) -> nn.Module:
    """A detached copy, e.g. to fine-tune while keeping the original for an A/B comparison."""
    return copy.deepcopy(model)
