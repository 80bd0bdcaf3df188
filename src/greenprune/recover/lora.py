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
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from greenprune._utils import read_jsonl, read_text_lines
from greenprune.errors import GreenpruneError
from greenprune.models.families import family_of
from greenprune.training import IGNORE_INDEX, LoopConfig, check_seed, pad_batch, train


class RecoveryError(GreenpruneError, ValueError):
    """Recovery data or options greenprune cannot use; the message names the file, line or option."""


@dataclass(frozen=True)
class Pair:
    prompt: str
    completion: str


@dataclass(frozen=True)
class RecoveryConfig:
    """LoRA hyper-parameters and a step budget (CPU-sized defaults).

    `target_modules=None` adapts every attention and FFN projection the family table names. The learning rate
    warms up linearly from 0 over `warmup` steps, then follows a cosine to 0 at `steps`
    (transformers' `get_cosine_schedule_with_warmup`).
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


def _encode(tokenizer: Any, pairs: Sequence[Pair], max_len: int) -> list[tuple[list[int], list[int]]]:
    """Token ids of prompt+completion+EOS and their labels: prompt tokens get no loss (`IGNORE_INDEX`)."""
    out = []
    eos = [tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else []
    for pair in pairs:
        p = tokenizer.encode(pair.prompt, add_special_tokens=False)
        c = tokenizer.encode(pair.completion, add_special_tokens=False) + eos
        ids = (p + c)[:max_len]
        if len(p) < len(ids):  # at least one completion token survives truncation
            out.append((ids, [IGNORE_INDEX] * len(p) + ids[len(p) :]))
    return out


def _sampled_batches(rows: Sequence[tuple[list[int], list[int]]], batch_size: int, pad_id: int, seed: int
                     ) -> Iterator[dict[str, torch.Tensor]]:
    """Endless batches drawn without replacement; a fresh permutation is appended once fewer than a batch remain."""
    generator = torch.Generator().manual_seed(seed)
    order: list[int] = []
    while True:
        if len(order) < batch_size:
            order += torch.randperm(len(rows), generator=generator).tolist()
        yield pad_batch([rows[order.pop()] for _ in range(min(batch_size, len(rows)))], pad_id)


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
    from transformers import set_seed

    config = config or RecoveryConfig()
    if config.steps < 1 or config.batch_size < 1 or config.r < 1:
        raise RecoveryError(
            f"steps, batch_size and r must be >= 1 (got {config.steps}, {config.batch_size}, {config.r})"
        )
    if config.warmup < 0:
        raise RecoveryError(f"warmup must be >= 0 (got {config.warmup})")
    rows = _encode(tokenizer, pairs, config.max_len)
    if not rows:
        raise RecoveryError("no usable recovery pairs (empty, or prompts longer than max_len)")
    # linear warm-up then cosine decay: stable for short CPU budgets; built (and checked) before peft edits the model
    loop = LoopConfig(steps=config.steps, lr=config.lr, weight_decay=0.0, max_grad_norm=1.0, schedule="cosine",
                      warmup_steps=config.warmup, desc="LoRA recovery")
    check_seed(config.seed)
    set_seed(config.seed)  # before get_peft_model: the LoRA A matrices are drawn from the global RNG
    targets = list(config.target_modules) if config.target_modules else default_target_modules(model)
    lora = LoraConfig(
        r=config.r, lora_alpha=config.alpha, lora_dropout=config.dropout, target_modules=targets,
        bias="none", task_type="CAUSAL_LM",
    )
    peft_model = get_peft_model(model, lora)
    n_trainable = sum(p.numel() for p in peft_model.parameters() if p.requires_grad)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    batches = _sampled_batches(rows, config.batch_size, pad_id, config.seed)
    run = train(peft_model, lambda: batches, loop, loss=lambda m, batch: m(**batch, use_cache=False).loss)
    merged = peft_model.merge_and_unload()
    merged.eval()
    for p in merged.parameters():
        p.requires_grad_(True)
    return RecoveryResult(merged, run.losses, len(rows), run.steps, n_trainable, config, data=data_name)


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
