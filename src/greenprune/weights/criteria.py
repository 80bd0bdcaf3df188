"""Pruning criteria (random, L1 magnitude) over groups of weights, selected globally or per tensor.

Everything is phrased as *groups*: a group is the unit removed together (one weight for unstructured pruning,
one output row / neuron for `rows`, one attention head's Q/K/V rows and output-projection columns for `heads`).
Each group has a score (lower is pruned first) and a size in weights. Selection sorts groups by score and removes
the cheapest prefix whose total size is closest to `sparsity × targeted weights` — so the sparsity is a fraction
of *weights* for every granularity, and exact for unstructured pruning. Already-pruned groups score −∞, which
keeps masks monotone across rounds (a pruned weight never comes back).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from greenprune.errors import GreenpruneError
from greenprune.weights.masks import effective_weight, get_mask, set_mask
from greenprune.weights.targets import transformer_layers

METHODS = ("random", "l1")
SCOPES = ("global", "per-tensor")
GRANULARITIES = ("unstructured", "rows", "heads")


class CriterionError(GreenpruneError, ValueError):
    """A pruning option (method, scope, granularity, sparsity) is invalid for this model."""


@dataclass
class GroupSet:
    """The groups of one tensor (or one attention block, for heads): scores, sizes, and how to mask them."""

    name: str
    scores: torch.Tensor  # 1-D float, one per group; -inf for groups already pruned
    sizes: torch.Tensor | None  # 1-D int64 weights per group; None means every group is one weight
    apply: Callable[[torch.Tensor], None]  # bool tensor (one per group, True = prune) → updates masks

    @property
    def total(self) -> int:
        return int(self.scores.numel()) if self.sizes is None else int(self.sizes.sum())


def _keep(module: nn.Module) -> torch.Tensor:
    mask = get_mask(module)
    if mask is None:
        weight = module.weight
        return torch.ones(weight.shape, dtype=torch.bool, device=weight.device)
    return mask


def _random_like(shape: tuple[int, ...], generator: torch.Generator) -> torch.Tensor:
    return torch.rand(shape, generator=generator, dtype=torch.float32)


def _unstructured(name: str, module: nn.Module, method: str, gen: torch.Generator) -> GroupSet:
    keep = _keep(module)
    if method == "l1":
        scores = effective_weight(module).abs().float().flatten().cpu()
    else:
        scores = _random_like((keep.numel(),), gen)
    scores[~keep.flatten().cpu()] = float("-inf")

    def apply(prune: torch.Tensor) -> None:
        set_mask(module, keep & ~prune.view(keep.shape).to(keep.device))

    return GroupSet(name, scores, None, apply)


def _rows(name: str, module: nn.Module, method: str, gen: torch.Generator) -> GroupSet:
    keep = _keep(module)
    out_features, in_features = keep.shape
    if method == "l1":
        scores = effective_weight(module).abs().float().mean(dim=1).cpu()
    else:
        scores = _random_like((out_features,), gen)
    scores[~keep.any(dim=1).cpu()] = float("-inf")
    sizes = torch.full((out_features,), in_features, dtype=torch.int64)

    def apply(prune: torch.Tensor) -> None:
        set_mask(module, keep & ~prune.to(keep.device)[:, None])

    return GroupSet(name, scores, sizes, apply)


def _head_geometry(model: nn.Module) -> tuple[int, int, int]:
    config = getattr(model, "config", None)
    if getattr(config, "model_type", None) == "encoder-decoder":
        config = model.encoder.config  # type: ignore[attr-defined]
    heads = int(config.num_attention_heads)
    kv_heads = int(getattr(config, "num_key_value_heads", None) or heads)
    head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
    return heads, kv_heads, head_dim


def _heads(model: nn.Module, targets: dict[str, nn.Module], method: str, gen: torch.Generator) -> list[GroupSet]:
    """One group per attention head: its rows of Q (and of K/V when every head has its own) and columns of O.

    With grouped-query attention K/V heads are shared by several query heads, so only Q rows and O columns go.
    """
    heads, kv_heads, head_dim = _head_geometry(model)
    sets = []
    for span in transformer_layers(model):
        fam = span.family
        names = {role: f"{span.prefix}.{getattr(fam, role)}" for role in ("query", "key", "value", "attn_out")}
        if names["query"] not in targets or names["attn_out"] not in targets:
            continue
        rows_of = [targets[names["query"]]]
        if kv_heads == heads:
            rows_of += [targets[n] for n in (names["key"], names["value"]) if n in targets]
        out = targets[names["attn_out"]]
        keeps_rows = [_keep(m) for m in rows_of]
        keep_out = _keep(out)
        scores = torch.empty(heads)
        sizes = torch.empty(heads, dtype=torch.int64)
        for h in range(heads):
            sl = slice(h * head_dim, (h + 1) * head_dim)
            parts = [effective_weight(m)[sl].abs().float() for m in rows_of]
            parts.append(effective_weight(out)[:, sl].abs().float())
            size = sum(p.numel() for p in parts)
            sizes[h] = size
            scores[h] = sum(float(p.sum()) for p in parts) / size if method == "l1" else float(_random_like((1,), gen))
            if not keeps_rows[0][sl].any():
                scores[h] = float("-inf")

        def apply(prune: torch.Tensor, rows_of=rows_of, keeps_rows=keeps_rows, out=out, keep_out=keep_out) -> None:
            row_cut = prune.repeat_interleave(head_dim).to(keep_out.device)
            for module, keep in zip(rows_of, keeps_rows, strict=True):
                set_mask(module, keep & ~row_cut[:, None])
            set_mask(out, keep_out & ~row_cut[None, :])

        sets.append(GroupSet(f"{span.prefix}.{fam.attention}", scores, sizes, apply))
    if not sets:
        raise CriterionError(
            "granularity 'heads' needs the query and attention-output projections among the targets; "
            f"none of the {len(targets)} targets are (use the default targets or include them)"
        )
    return sets


def group_sets(
    model: nn.Module, targets: dict[str, nn.Module], method: str, granularity: str, seed: int
) -> list[GroupSet]:
    """Score the targeted weights' groups with `method` at `granularity` (random scores are seeded)."""
    if method not in METHODS:
        raise CriterionError(f"unknown pruning method {method!r}; expected one of: {', '.join(METHODS)}")
    if granularity not in GRANULARITIES:
        raise CriterionError(f"unknown granularity {granularity!r}; expected one of: {', '.join(GRANULARITIES)}")
    gen = torch.Generator().manual_seed(seed)
    if granularity == "heads":
        return _heads(model, targets, method, gen)
    build = _unstructured if granularity == "unstructured" else _rows
    return [build(name, module, method, gen) for name, module in targets.items()]


def _count_to_prune(sizes: torch.Tensor | None, order: torch.Tensor, target: int) -> int:
    """How many of the sorted groups to remove so their total size is closest to `target` weights."""
    if sizes is None:
        return target
    cum = torch.cumsum(sizes[order], dim=0)
    n = int(torch.searchsorted(cum, torch.tensor(target), right=True))  # groups fully within target
    if n < len(cum):
        below = int(cum[n - 1]) if n > 0 else 0
        if int(cum[n]) - target < target - below:
            n += 1
    return n


def select_and_mask(sets: list[GroupSet], sparsity: float, scope: str) -> None:
    """Prune the lowest-scoring groups so `sparsity` of the weights (globally, or of each set) are masked."""
    if scope not in SCOPES:
        raise CriterionError(f"unknown scope {scope!r}; expected one of: {', '.join(SCOPES)}")
    if not 0.0 <= sparsity <= 1.0:
        raise CriterionError(f"sparsity must be within [0, 1], got {sparsity}")
    pools = [sets] if scope == "global" else [[s] for s in sets]
    for pool in pools:
        scores = torch.cat([s.scores for s in pool])
        sizes = None
        if any(s.sizes is not None for s in pool):
            sizes = torch.cat([s.sizes if s.sizes is not None else torch.ones_like(s.scores, dtype=torch.int64)
                               for s in pool])
        total = int(scores.numel()) if sizes is None else int(sizes.sum())
        target = round(sparsity * total)
        order = torch.sort(scores, stable=True).indices
        n = _count_to_prune(sizes, order, target)
        prune = torch.zeros(scores.numel(), dtype=torch.bool)
        prune[order[:n]] = True
        start = 0
        for s in pool:
            count = s.scores.numel()
            s.apply(prune[start : start + count])
            start += count
