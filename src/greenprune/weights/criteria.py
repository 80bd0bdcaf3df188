"""Grouping and selection of weight pruning: which weights go together, and how many of them go.

Scores come from an importance criterion (`importance`: random, L1, Wanda, ...); this module only groups and
selects. A group is the unit removed together (one weight for unstructured pruning, one output row / neuron for
`rows`, one attention head's Q/K/V rows and output-projection columns for `heads`: one `GROUPINGS` entry each); its
score is the mean of its weights' scores and its size is its weight count. Selection sorts groups by score within
a comparison pool — all targets (`global`), each tensor (`per-tensor`), or each output row (`per-row`,
unstructured only, Wanda's choice) — and removes the cheapest prefix whose total size is closest to
`sparsity × pool weights`, so the sparsity is a fraction of *weights* for every granularity, and exact for
unstructured pruning. The `N:M` pattern instead zeroes exactly N of every M consecutive weights along the input
dimension of each row (the lowest-scoring N).
Already-pruned weights score −∞, which keeps masks monotone across rounds (a pruned weight never comes back).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn

from greenprune.errors import GreenpruneError
from greenprune.models.families import family_of, pruned_stack
from greenprune.weights.importance import IMPORTANCES, Importance, importance_for
from greenprune.weights.masks import effective_weight, get_mask, set_mask
from greenprune.weights.targets import transformer_layers

if TYPE_CHECKING:
    from greenprune.structure.calibration import InputStats

METHODS = tuple(IMPORTANCES)  # the built-in criteria (random, l1, wanda); validation reads the live registry
SCOPES = ("global", "per-tensor", "per-row")
UNSTRUCTURED = "unstructured"


class CriterionError(GreenpruneError, ValueError):
    """A pruning option (method, scope, granularity, pattern, sparsity) is invalid for this model."""


def parse_pattern(pattern: str) -> tuple[int, int] | None:
    """None for "unstructured"; (N, M) for "N:M" (N zeros in every M consecutive weights, 0 < N < M)."""
    if pattern == UNSTRUCTURED:
        return None
    parts = pattern.split(":") if isinstance(pattern, str) else []
    if len(parts) == 2 and all(p.strip().isdigit() for p in parts):
        n, m = int(parts[0]), int(parts[1])
        if 0 < n < m:
            return n, m
    raise CriterionError(
        f"unknown sparsity pattern {pattern!r}; expected 'unstructured' or 'N:M' with 0 < N < M (e.g. 2:4, 4:8)"
    )


@dataclass
class GroupSet:
    """The groups of one tensor (or one attention block, for heads): scores, sizes, and how to mask them."""

    name: str
    scores: torch.Tensor  # 1-D float, one per group; -inf for groups already pruned
    sizes: torch.Tensor | None  # 1-D int64 weights per group; None means every group is one weight
    apply: Callable[[torch.Tensor], None]  # bool tensor (one per group, True = prune) → updates masks
    shape: tuple[int, int] | None = None  # unstructured sets: the [out, in] layout of `scores` (rows, N:M)

    @property
    def total(self) -> int:
        return int(self.scores.numel()) if self.sizes is None else int(self.sizes.sum())


def _keep(module: nn.Module) -> torch.Tensor:
    mask = get_mask(module)
    if mask is None:
        weight = module.weight
        return torch.ones(weight.shape, dtype=torch.bool, device=weight.device)
    return mask


Stats = dict[str, "InputStats"]


def _score(name: str, module: nn.Module, importance: Importance, stats: Stats | None) -> torch.Tensor:
    """Per-weight float32 CPU scores of `module`'s effective weight by `importance`."""
    weight = effective_weight(module)
    module_stats = None
    if importance.needs_calibration:
        module_stats = (stats or {}).get(name)
        if module_stats is None:
            raise CriterionError(f"method {importance.name!r} has no calibration statistics for {name}")
    scores = importance.score(weight, module_stats)
    if tuple(scores.shape) != tuple(weight.shape):
        raise CriterionError(f"method {importance.name!r} gave scores of shape {tuple(scores.shape)} for {name} "
                             f"{tuple(weight.shape)}; an importance must score every weight")
    return scores.float().cpu()


def _unstructured(name: str, module: nn.Module, importance: Importance, stats: Stats | None) -> GroupSet:
    keep = _keep(module)
    scores = _score(name, module, importance, stats).flatten()
    scores[~keep.flatten().cpu()] = float("-inf")

    def apply(prune: torch.Tensor) -> None:
        set_mask(module, keep & ~prune.view(keep.shape).to(keep.device))

    return GroupSet(name, scores, None, apply, (int(keep.shape[0]), int(keep.shape[1])))


def _rows(name: str, module: nn.Module, importance: Importance, stats: Stats | None) -> GroupSet:
    keep = _keep(module)
    out_features, in_features = keep.shape
    scores = _score(name, module, importance, stats).mean(dim=1)
    scores[~keep.any(dim=1).cpu()] = float("-inf")
    sizes = torch.full((out_features,), in_features, dtype=torch.int64)

    def apply(prune: torch.Tensor) -> None:
        set_mask(module, keep & ~prune.to(keep.device)[:, None])

    return GroupSet(name, scores, sizes, apply)


def _heads(model: nn.Module, targets: dict[str, nn.Module], importance: Importance,
           stats: Stats | None) -> list[GroupSet]:
    """One group per attention head: its rows of Q (and of K/V when every head has its own) and columns of O.

    With grouped-query attention K/V heads are shared by several query heads, so only Q rows and O columns go.
    A head's score is the mean of its weights' scores.
    """
    stack = pruned_stack(model)
    geometry = family_of(stack).head_geometry(stack.config)
    heads, kv_heads, head_dim = geometry.heads, geometry.kv_heads, geometry.head_dim
    sets = []
    for span in transformer_layers(model):
        fam = span.family
        names = {role: f"{span.prefix}.{getattr(fam, role)}" for role in ("query", "key", "value", "attn_out")}
        if names["query"] not in targets or names["attn_out"] not in targets:
            continue
        row_names = [names["query"]]
        if kv_heads == heads:
            row_names += [n for n in (names["key"], names["value"]) if n in targets]
        rows_of = [targets[n] for n in row_names]
        out = targets[names["attn_out"]]
        keeps_rows = [_keep(m) for m in rows_of]
        keep_out = _keep(out)
        row_scores = [_score(n, m, importance, stats) for n, m in zip(row_names, rows_of, strict=True)]
        out_scores = _score(names["attn_out"], out, importance, stats)
        scores = torch.empty(heads)
        sizes = torch.empty(heads, dtype=torch.int64)
        for h in range(heads):
            sl = slice(h * head_dim, (h + 1) * head_dim)
            parts = [sc[sl] for sc in row_scores] + [out_scores[:, sl]]
            size = sum(p.numel() for p in parts)
            sizes[h] = size
            scores[h] = sum(float(p.double().sum()) for p in parts) / size
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
    model: nn.Module,
    targets: dict[str, nn.Module],
    method: str | Importance,
    granularity: str,
    seed: int = 0,
    stats: Stats | None = None,
) -> list[GroupSet]:
    """Score the targeted weights' groups by `method` (a registered name or an `Importance`) at `granularity`.

    `stats`: qualified module name → calibration input statistics, for criteria that need them (Wanda).
    """
    importance = importance_for(method, seed) if isinstance(method, str) else method
    if granularity not in GROUPINGS:
        raise CriterionError(f"unknown granularity {granularity!r}; expected one of: {', '.join(GRANULARITIES)}")
    return GROUPINGS[granularity](model, targets, importance, stats)


Grouping = Callable[[nn.Module, dict[str, nn.Module], Importance, "Stats | None"], list[GroupSet]]


def _per_tensor(build: Callable[[str, nn.Module, Importance, Stats | None], GroupSet]) -> Grouping:
    """A grouping that forms each target's groups on its own (unstructured, rows)."""
    def group(model: nn.Module, targets: dict[str, nn.Module], importance: Importance,
              stats: Stats | None) -> list[GroupSet]:
        return [build(name, module, importance, stats) for name, module in targets.items()]

    return group


# granularity → what is pruned together; every grouping scores through the same `Importance`
GROUPINGS: dict[str, Grouping] = {
    "unstructured": _per_tensor(_unstructured),
    "rows": _per_tensor(_rows),
    "heads": _heads,
}
GRANULARITIES = tuple(GROUPINGS)


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


def _lowest_per_group(scores: torch.Tensor, count: int) -> torch.Tensor:
    """Bool tensor of `scores`' shape marking the `count` lowest entries along the last dimension (stable ties)."""
    prune = torch.zeros(scores.shape, dtype=torch.bool)
    if count > 0:
        lowest = torch.sort(scores, dim=-1, stable=True).indices[..., :count]
        prune.scatter_(-1, lowest, True)
    return prune


def _needs_layout(sets: list[GroupSet], what: str) -> None:
    for s in sets:
        if s.shape is None or s.sizes is not None:
            raise CriterionError(f"{what} applies to unstructured pruning only; {s.name} is pruned in groups "
                                 "(use --granularity unstructured)")


def select_and_mask(sets: list[GroupSet], sparsity: float, scope: str, pattern: str = UNSTRUCTURED) -> None:
    """Prune the lowest-scoring groups so `sparsity` of the weights (globally, per set, or per row) are masked.

    With an `N:M` pattern, `sparsity` and `scope` are ignored: each row loses its N lowest weights of every M.
    Every set is checked before any mask changes, so a bad option leaves the model untouched.
    """
    if scope not in SCOPES:
        raise CriterionError(f"unknown scope {scope!r}; expected one of: {', '.join(SCOPES)}")
    if not 0.0 <= sparsity <= 1.0:
        raise CriterionError(f"sparsity must be within [0, 1], got {sparsity}")
    nm = parse_pattern(pattern)
    if nm is not None:
        n, m = nm
        _needs_layout(sets, f"pattern {pattern!r}")
        for s in sets:
            if s.shape[1] % m:  # type: ignore[index]
                raise CriterionError(f"pattern {pattern!r}: {s.name} has {s.shape[1]} input features, "  # type: ignore[index]
                                     f"not a multiple of {m}")
        for s in sets:
            out_f, in_f = s.shape  # type: ignore[misc]
            s.apply(_lowest_per_group(s.scores.view(out_f, in_f // m, m), n).flatten())
        return
    if scope == "per-row":
        _needs_layout(sets, "scope 'per-row'")
        for s in sets:
            out_f, in_f = s.shape  # type: ignore[misc]
            s.apply(_lowest_per_group(s.scores.view(out_f, in_f), round(sparsity * in_f)).flatten())
        return
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
