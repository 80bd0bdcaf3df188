"""Keep rules: adaptive (mean ± alpha·std per sequence) and static top-k, both vectorised over the batch."""

from __future__ import annotations

import math

import torch

from greenprune.tokens.config import AlpineConfig


def adaptive_keep(scores: torch.Tensor, ordinary: torch.Tensor, alpha: float) -> torch.Tensor:
    """Keep ordinary tokens whose score lies within alpha population-std of their sequence's mean (both tails pruned).

    Statistics use ordinary tokens only; everything that is not ordinary (special, fused, padding) is kept.
    """
    w = ordinary.to(scores.dtype)
    n = w.sum(dim=1, keepdim=True)
    safe_n = n.clamp(min=1.0)
    mean = (scores * w).sum(dim=1, keepdim=True) / safe_n
    var = (((scores - mean) * w) ** 2).sum(dim=1, keepdim=True) / safe_n
    band = alpha * var.sqrt()
    inside = (scores >= mean - band) & (scores <= mean + band)
    return inside | ~ordinary


def static_keep(scores: torch.Tensor, ordinary: torch.Tensor, ratio: float) -> torch.Tensor:
    """Keep the ceil((1 - ratio)·n) highest-scored ordinary tokens of each sequence (n = its ordinary count)."""
    n = ordinary.sum(dim=1)
    k = torch.ceil(n.to(torch.float64) * (1.0 - ratio) - 1e-9).to(torch.long)
    masked = scores.masked_fill(~ordinary, -math.inf)
    order = torch.argsort(masked, dim=1, descending=True, stable=True)
    rank = torch.empty_like(order)
    rank.scatter_(1, order, torch.arange(order.shape[1], device=order.device).expand_as(order))
    return ((rank < k[:, None]) & ordinary) | ~ordinary


def random_keep(scores: torch.Tensor, ordinary: torch.Tensor, ratio: float, seed: int) -> torch.Tensor:
    """Keep as many ordinary tokens as `static_keep`, chosen uniformly at random (seeded: the same batch gives the
    same mask)."""
    generator = torch.Generator(device=scores.device).manual_seed(seed)
    noise = torch.rand(scores.shape, generator=generator, device=scores.device, dtype=torch.float32)
    return static_keep(noise, ordinary, ratio)


def keep_mask(
    scores: torch.Tensor, valid: torch.Tensor, protected: torch.Tensor, config: AlpineConfig
) -> torch.Tensor:
    """The (batch, seq) keep-mask of one pruning layer: True = keep. Protected tokens and padding are always True."""
    ordinary = valid & ~protected
    if config.rule == "adaptive":
        return adaptive_keep(scores, ordinary, config.alpha)
    if config.rule == "random":
        return random_keep(scores, ordinary, config.ratio, config.seed)
    return static_keep(scores, ordinary, config.ratio)
