"""What ALPINE is judged against at equal cost: cutting the input short, static top-k, random dropping.

A user who wants a cheaper encoder first lowers `max_length`. `match_truncation` finds the `max_length` whose
counted FLOPs per sample (FlopCounterMode on the real, re-tokenised batches: what actually runs) equal a target,
typically an ALPINE row's; static top-k and random dropping prune, in the same layers, the per-layer fraction that
matches an adaptive run's mean kept ratio (`matched_configs`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

from greenprune.tokens.config import AlpineConfig, AlpineError
from greenprune.tokens.trace import LengthTrace

Batches = Sequence[Mapping[str, Any]]


def flops_per_sample(model: nn.Module, batches: Batches) -> float:
    """Counted FLOPs of `model` over `batches`, divided by the number of samples (labels are not inputs)."""
    from greenprune.measure.cost import batch_shape, model_device, model_inputs
    from greenprune.measure.flops import count_flops

    total = samples = 0
    device = model_device(model)
    for batch in batches:
        inputs = model_inputs(batch, device)
        total += count_flops(model, inputs)
        samples += batch_shape(inputs)[0]
    if not samples:
        raise AlpineError("flops_per_sample: no batches to count on")
    return total / samples


@dataclass
class TruncationMatch:
    """The `max_length` found, its FLOPs per sample, the target, and every length tried (for the record)."""

    max_length: int
    flops_per_sample: float
    target: float
    tried: dict[int, float]

    @property
    def relative_error(self) -> float:
        return abs(self.flops_per_sample - self.target) / self.target

    def describe(self) -> dict[str, Any]:
        return {"max_length": self.max_length, "flops_per_sample": self.flops_per_sample, "target": self.target,
                "relative_error": self.relative_error, "tried": {str(k): v for k, v in sorted(self.tried.items())}}


def match_truncation(model: nn.Module, batches_at: Callable[[int], Batches], target: float, *, low: int = 4,
                     high: int = 512) -> TruncationMatch:
    """The `max_length` in [low, high] whose counted FLOPs per sample are closest to `target`.

    `batches_at(n)` returns the evaluation batches tokenised with `max_length=n` (the same examples every time).
    FLOPs grow with `max_length` (each batch is padded to min(n, its longest input)), so a bisection brackets the
    target and the closer end wins; a target outside [FLOPs(low), FLOPs(high)] gets the nearest end (check
    `relative_error`). One length step moves FLOPs by about 1/n, so long inputs land within a percent.
    """
    if target <= 0 or low < 1 or high < low:
        raise AlpineError(f"match_truncation needs target > 0 and 1 <= low <= high, got target={target}, "
                          f"low={low}, high={high}")
    tried: dict[int, float] = {}

    def flops(n: int) -> float:
        if n not in tried:
            tried[n] = flops_per_sample(model, batches_at(n))
        return tried[n]

    lo, hi = low, high
    if flops(hi) <= target:
        return TruncationMatch(hi, flops(hi), target, tried)
    if flops(lo) >= target:
        return TruncationMatch(lo, flops(lo), target, tried)
    while hi - lo > 1:  # invariant: flops(lo) < target < flops(hi)
        mid = (lo + hi) // 2
        if flops(mid) < target:
            lo = mid
        else:
            hi = mid
    best = min((lo, hi), key=lambda n: abs(flops(n) - target))
    return TruncationMatch(best, flops(best), target, tried)


def matched_ratio(trace: LengthTrace) -> float:
    """The pruned fraction per pruning layer that matches an adaptive run's mean per-layer kept ratio."""
    from greenprune.tokens.experiment import static_ratio_matching

    return static_ratio_matching(trace)


def matched_configs(adaptive: AlpineConfig, trace: LengthTrace, *, seed: int = 0) -> dict[str, AlpineConfig]:
    """Static top-k and random dropping in the adaptive setting's layers, at its matched per-layer ratio."""
    ratio = matched_ratio(trace)
    layers = adaptive.layers
    return {
        "static": AlpineConfig(layers=layers, rule="static", ratio=ratio, merge=adaptive.merge),
        "random": AlpineConfig(layers=layers, rule="random", ratio=ratio, merge=adaptive.merge, seed=seed),
    }
