"""LoRA post-training after structural pruning, merged back into a plain checkpoint (Flab-Pruner's recovery).

Pruning removes capacity the remaining weights must compensate for; a low-rank update on code-instruction pairs
restores much of it at a fraction of full fine-tuning's memory. The adapters are merged (`merge_and_unload`)
so the result is an ordinary transformers model: no peft needed to load it, no extra latency per token.

Data: pairs of (prompt, completion). The embedded default is standard-library functions, prompt = signature
plus docstring, completion = body — the same shape as HumanEval. User data: JSONL or CSV with `prompt` /
`completion` or `src` / `tgt` columns. The loss covers completion tokens only.
"""

from __future__ import annotations

import csv
import math
import textwrap
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from greenprune._utils import progress, read_jsonl, read_text_lines, seed_everything
from greenprune.errors import GreenpruneError
from greenprune.models.families import family_of


class RecoveryError(GreenpruneError, ValueError):
    """Recovery data or options greenprune cannot use; the message names the file, line or option."""


@dataclass(frozen=True)
class Pair:
    prompt: str
    completion: str


@dataclass(frozen=True)
class RecoveryConfig:
    """LoRA hyper-parameters and a step budget (CPU-sized defaults).

    `target_modules=None` adapts every attention and FFN projection the family table names.
    """

    r: int = 16
    alpha: int = 32
    dropout: float = 0.05
    target_modules: tuple[str, ...] | None = None
    steps: int = 100
    lr: float = 3e-4
    batch_size: int = 4
    max_len: int = 256
    warmup: int = 10
    seed: int = 0


@dataclass
class RecoveryResult:
    model: nn.Module
    losses: list[float]
    pairs: int
    steps: int
    trainable_params: int
    config: RecoveryConfig
    data: str = ""
    notes: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        head = self.losses[: max(1, len(self.losses) // 10)]
        tail = self.losses[-max(1, len(self.losses) // 10) :]
        return {
            "data": self.data,
            "pairs": self.pairs,
            "steps": self.steps,
            "lora_r": self.config.r,
            "lora_alpha": self.config.alpha,
            "lr": self.config.lr,
            "trainable_params": self.trainable_params,
            "loss_first": round(sum(head) / len(head), 4) if head else None,
            "loss_last": round(sum(tail) / len(tail), 4) if tail else None,
        }


# ---------------------------------------------------------------------------------------------------------------
# data


def stdlib_pairs(limit: int = 2000, seed: int = 0, split: str = "train") -> list[Pair]:
    """Standard-library functions as (signature + docstring → body) pairs, HumanEval-shaped."""
    from greenprune.tasks.corpus import stdlib_functions

    pairs = []
    for fn in stdlib_functions(seed, require_docstring=True)[split]:
        if not fn.body.strip():
            continue
        doc = textwrap.indent(f'"""{fn.docstring}\n"""', "    ")
        pairs.append(Pair(f"{fn.signature}\n{doc}\n", textwrap.indent(fn.body, "    ") + "\n"))
        if len(pairs) >= limit:
            break
    return pairs


_COLUMNS = (("prompt", "completion"), ("src", "tgt"))


def _pair_from(row: dict[str, Any], where: str) -> Pair:
    for a, b in _COLUMNS:
        if a in row and b in row:
            if not isinstance(row[a], str) or not isinstance(row[b], str):
                raise RecoveryError(f"{where}: `{a}` and `{b}` must be strings")
            return Pair(row[a], row[b])
    raise RecoveryError(f"{where}: expected columns prompt/completion or src/tgt, found {sorted(row)}")


def load_pairs(path: str | Path, limit: int | None = None) -> list[Pair]:
    """Read prompt/completion pairs from JSONL or CSV (`prompt`/`completion` or `src`/`tgt`)."""
    path = Path(path)
    if not path.is_file():
        raise RecoveryError(f"{path}: no such recovery data file")
    pairs: list[Pair] = []
    if path.suffix.lower() in (".jsonl", ".json"):
        for lineno, row in read_jsonl(path, RecoveryError):
            pairs.append(_pair_from(row, f"{path}:{lineno}"))
    elif path.suffix.lower() == ".csv":
        for lineno, row in enumerate(csv.DictReader(read_text_lines(path, RecoveryError, newline="")), 2):
            pairs.append(_pair_from(dict(row), f"{path}:{lineno}"))
    else:
        raise RecoveryError(f"{path}: recovery data must be .jsonl or .csv")
    if not pairs:
        raise RecoveryError(f"{path}: no pairs found")
    return pairs[:limit] if limit else pairs


def _encode(tokenizer: Any, pairs: Sequence[Pair], max_len: int) -> list[tuple[list[int], int]]:
    """Token ids of prompt+completion+EOS and where the completion starts (prompt tokens get no loss)."""
    out = []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for pair in pairs:
        p = tokenizer.encode(pair.prompt, add_special_tokens=False)
        c = tokenizer.encode(pair.completion, add_special_tokens=False) + eos
        ids = (p + c)[:max_len]
        if len(p) < len(ids):  # at least one completion token survives truncation
            out.append((ids, len(p)))
    return out


def _collate(rows: Sequence[tuple[list[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (ids, start) in enumerate(rows):
        t = torch.tensor(ids)
        input_ids[i, : len(ids)] = t
        attention[i, : len(ids)] = 1
        labels[i, start : len(ids)] = t[start:]
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels}


# ---------------------------------------------------------------------------------------------------------------
# training


def default_target_modules(model: nn.Module) -> list[str]:
    """Leaf names of every attention and FFN projection (peft matches module-name suffixes)."""
    fam = family_of(model)
    return sorted({name.rsplit(".", 1)[-1] for name in fam.layer_linear_names()})


def recover(
    model: nn.Module,
    tokenizer: Any,
    pairs: Sequence[Pair],
    config: RecoveryConfig | None = None,
    *,
    data_name: str = "",
) -> RecoveryResult:
    """Train LoRA adapters on `pairs`, merge them into the weights and return the plain model."""
    from peft import LoraConfig, get_peft_model

    config = config or RecoveryConfig()
    if config.steps < 1 or config.batch_size < 1 or config.r < 1:
        raise RecoveryError(
            f"steps, batch_size and r must be >= 1 (got {config.steps}, {config.batch_size}, {config.r})"
        )
    rows = _encode(tokenizer, pairs, config.max_len)
    if not rows:
        raise RecoveryError("no usable recovery pairs (empty, or prompts longer than max_len)")
    seed_everything(config.seed)
    targets = list(config.target_modules) if config.target_modules else default_target_modules(model)
    lora = LoraConfig(
        r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout, target_modules=targets,
        bias="none", task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    trainable = [p for p in peft_model.parameters() if p.requires_grad]
    n_trainable = sum(p.numel() for p in trainable)
    optimizer = torch.optim.AdamW(trainable, lr=config.lr, weight_decay=0.0)

    def schedule(step: int) -> float:  # linear warm-up, cosine decay: stable for short CPU budgets
        if step < config.warmup:
            return (step + 1) / config.warmup
        progress_frac = (step - config.warmup) / max(1, config.steps - config.warmup)
        return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress_frac)))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    generator = torch.Generator().manual_seed(config.seed)
    order: list[int] = []
    device = next(model.parameters()).device
    losses: list[float] = []
    peft_model.train()
    for _ in progress(range(config.steps), desc="LoRA recovery"):
        if len(order) < config.batch_size:
            order += torch.randperm(len(rows), generator=generator).tolist()
        batch_rows = [rows[order.pop()] for _ in range(min(config.batch_size, len(rows)))]
        batch = {k: v.to(device) for k, v in _collate(batch_rows, pad_id).items()}
        loss = peft_model(**batch, use_cache=False).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(float(loss.detach()))
    merged = peft_model.merge_and_unload()
    merged.eval()
    for p in merged.parameters():
        p.requires_grad_(True)
    return RecoveryResult(merged, losses, len(rows), config.steps, n_trainable, config, data=data_name)


__all__ = [
    "Pair",
    "RecoveryConfig",
    "RecoveryError",
    "RecoveryResult",
    "default_target_modules",
    "load_pairs",
    "recover",
    "stdlib_pairs",
]
