"""Calibration data for structural importance scores: fixed-length windows of real code, no padding.

Scores are averages over tokens, so windows cut from one long token stream make every token count and keep
padding out of the statistics.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import torch

from greenprune.errors import GreenpruneError

Batch = dict[str, torch.Tensor]


class CalibrationError(GreenpruneError, ValueError):
    """Calibration data is missing or too short for the requested windows."""


def stdlib_code(limit: int = 40, skip: int = 0, split: str = "train") -> list[str]:
    """Real Python nobody here wrote: the standard library of the running interpreter, in a fixed order.

    Functions of the shared corpus (`greenprune.tasks.corpus.stdlib_functions`), split by file, so calibration
    (`train`) and evaluation (`test`) never share a file.
    """
    from greenprune.tasks.corpus import stdlib_functions

    functions = stdlib_functions(0)[split]
    return [f.source for f in functions[skip : skip + limit]]


def calibration_batches(
    tokenizer: Any,
    texts: Iterable[str],
    *,
    seq_len: int = 256,
    batch_size: int = 4,
    max_batches: int | None = 8,
) -> list[Batch]:
    """Concatenate tokenised texts (separated by EOS) and cut them into `[batch_size, seq_len]` batches."""
    if seq_len < 2 or batch_size < 1:
        raise CalibrationError(f"seq_len must be >= 2 and batch_size >= 1 (got {seq_len}, {batch_size})")
    sep = [tokenizer.eos_token_id] if getattr(tokenizer, "eos_token_id", None) is not None else []
    need = None if max_batches is None else seq_len * batch_size * max_batches
    stream: list[int] = []
    for text in texts:
        stream.extend(tokenizer.encode(text, add_special_tokens=False) + sep)
        if need is not None and len(stream) >= need:
            break
    windows = [stream[i : i + seq_len] for i in range(0, len(stream) - seq_len + 1, seq_len)]
    if not windows:
        raise CalibrationError(f"calibration texts give {len(stream)} tokens, fewer than one window of {seq_len}")
    batches = []
    for i in range(0, len(windows), batch_size):
        ids = torch.tensor(windows[i : i + batch_size], dtype=torch.long)
        batches.append({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
        if max_batches is not None and len(batches) >= max_batches:
            break
    return batches


def as_batches(calib: Iterable[Batch] | Iterator[Batch]) -> list[Batch]:
    """Materialise calibration batches (scores iterate over them many times) and check their shape."""
    batches = list(calib)
    if not batches:
        raise CalibrationError("no calibration batches")
    for i, batch in enumerate(batches):
        if not isinstance(batch, dict) or "input_ids" not in batch:
            raise CalibrationError(
                f"calibration batch {i} must be a dict with `input_ids` (got {type(batch).__name__})"
            )
    return batches


__all__ = ["Batch", "CalibrationError", "InputStats", "as_batches", "calibration_batches", "input_statistics",
           "stdlib_code"]


@dataclass
class InputStats:
    """What one Linear saw on the calibration tokens, per input feature j (padding excluded, float64 sums).

    `abs_sum` gives E|x_j| (structural FFN / KV scores); `sq_sum` gives the L2 norm ||X_j|| over all tokens
    (Wanda's activation factor).
    """

    abs_sum: torch.Tensor  # [in_features] float64, sum over tokens of |x_j|
    sq_sum: torch.Tensor  # [in_features] float64, sum over tokens of x_j²
    tokens: int

    @property
    def abs_mean(self) -> torch.Tensor:
        return (self.abs_sum / max(self.tokens, 1)).float()

    @property
    def l2_norm(self) -> torch.Tensor:
        return self.sq_sum.sqrt().float()


def input_statistics(
    model: torch.nn.Module, calib: Iterable[Batch], linears: list[torch.nn.Module], desc: str
) -> list[InputStats]:
    """One forward pass over the calibration batches with pre-hooks recording each module's input statistics.

    Only real tokens count (the attention mask selects them); eval mode, no autograd, hooks removed afterwards.
    """
    from greenprune._utils import progress, scoring_mode

    batches = as_batches(calib)
    widths = [int(lin.in_features if hasattr(lin, "in_features") else lin.weight.shape[1]) for lin in linears]
    abs_sums = [torch.zeros(w, dtype=torch.float64) for w in widths]
    sq_sums = [torch.zeros(w, dtype=torch.float64) for w in widths]
    mask_holder: list[torch.Tensor] = []
    count = 0

    def hook(idx: int):
        def fn(module: torch.nn.Module, args: tuple) -> None:
            act = args[0].detach()[mask_holder[0].to(args[0].device)].float()  # [tokens, in_features]
            abs_sums[idx] += act.abs().sum(0).double().cpu()  # float32 within a batch, as the FFN scores always did
            sq_sums[idx] += act.double().square().sum(0).cpu()

        return fn

    handles = [lin.register_forward_pre_hook(hook(i)) for i, lin in enumerate(linears)]
    device = next(model.parameters()).device
    try:
        with scoring_mode(model):
            for batch in progress(batches, desc=desc):
                mask = batch.get("attention_mask", torch.ones_like(batch["input_ids"])).bool()
                mask_holder[:] = [mask]
                model(**{k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask")})
                count += int(mask.sum())
    finally:
        for handle in handles:
            handle.remove()
    return [InputStats(a, q, count) for a, q in zip(abs_sums, sq_sums, strict=True)]


def input_weighted_importance(
    model: torch.nn.Module, calib: Iterable[Batch], linears: list[torch.nn.Linear], desc: str
) -> list[torch.Tensor]:
    """Per Linear in `linears`, E|x_j| · ||W[:, j]|| for every input feature j, over the real calibration tokens.

    A feature that is rarely active or feeds small weights contributes little to the layer's output: the score
    FFN-neuron and KV-group pruning both rank by. Padding positions are excluded; no dropout, no autograd.
    """
    stats = input_statistics(model, calib, list(linears), desc)
    return [st.abs_mean * lin.weight.detach().float().cpu().norm(dim=0) for st, lin in zip(stats, linears, strict=True)]
