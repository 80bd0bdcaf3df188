"""Attention KV-group pruning for decoder LLMs (optional Flab-Pruner-style attention step).

With grouped-query attention one key/value head serves several query heads; removing a query head alone would
unbalance the groups (HF attention needs num_heads divisible by num_kv_heads), so the unit removed is a whole
KV group: its key and value head and the query heads that read them. With plain multi-head attention a group
is one head.

Importance of a group is its expected contribution to the attention output on calibration data:
Σ_{d in group's query dims} E|a_d| · ||W_o[:, d]||₂ (a = input of the output projection), the same first-order
measure as the FFN step. Every layer keeps the same number of groups so the config stays a plain HF config.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from greenprune.errors import GreenpruneError
from greenprune.measure.size import total_parameters
from greenprune.models.families import family_of
from greenprune.structure.calibration import Batch, input_weighted_importance
from greenprune.structure.ffn import _slice_linear


class HeadPruningError(GreenpruneError, ValueError):
    """A head-pruning request that cannot be met."""


@dataclass(frozen=True)
class HeadPruningConfig:
    """Remove `groups` KV groups from every decoder layer."""

    groups: int = 1


@dataclass
class HeadPruningResult:
    model: nn.Module
    kv_heads_before: int
    kv_heads_after: int
    heads_before: int
    heads_after: int
    kept_groups: list[list[int]]
    params_before: int
    params_after: int

    def summary(self) -> dict[str, Any]:
        return {
            "kv_heads": [self.kv_heads_before, self.kv_heads_after],
            "attention_heads": [self.heads_before, self.heads_after],
            "params_before": self.params_before,
            "params_after": self.params_after,
        }


def _geometry(model: nn.Module) -> tuple[int, int, int]:
    config = model.config
    if family_of(model).kind != "decoder":
        raise HeadPruningError(f"KV-group pruning supports decoder LLMs, not {config.model_type!r}")
    heads = config.num_attention_heads
    kv = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    return heads, kv, head_dim


@torch.no_grad()
def group_scores(model: nn.Module, calib: Iterable[Batch]) -> list[torch.Tensor]:
    """Per layer, one importance per KV group (see module docstring)."""
    fam = family_of(model)
    heads, kv, head_dim = _geometry(model)
    outs = [layer.get_submodule(fam.attn_out) for layer in fam.layers(model)]
    per_dim = input_weighted_importance(model, calib, outs, "attention activations")
    return [scores.view(kv, heads // kv * head_dim).sum(-1) for scores in per_dim]


def slice_groups(model: nn.Module, kept_groups: list[list[int]]) -> nn.Module:
    """Keep KV groups `kept_groups[layer]` (same count per layer): q/k/v rows and o columns, config updated."""
    fam = family_of(model)
    heads, kv, head_dim = _geometry(model)
    per_group = heads // kv
    layers = fam.layers(model)
    sizes = {len(g) for g in kept_groups}
    if len(kept_groups) != len(layers) or len(sizes) != 1 or 0 in sizes:
        raise HeadPruningError(f"need one equally sized, non-empty group list per layer; got sizes {sorted(sizes)}")
    for layer, groups in zip(layers, kept_groups, strict=True):
        kv_index = torch.cat([torch.arange(g * head_dim, (g + 1) * head_dim) for g in groups])
        q_index = torch.cat(
            [torch.arange(h * head_dim, (h + 1) * head_dim) for g in groups for h in range(g * per_group,
                                                                                            (g + 1) * per_group)]
        )
        _slice_linear(layer.get_submodule(fam.query), q_index, 0)
        _slice_linear(layer.get_submodule(fam.key), kv_index, 0)
        _slice_linear(layer.get_submodule(fam.value), kv_index, 0)
        _slice_linear(layer.get_submodule(fam.attn_out), q_index, 1)
    n = sizes.pop()
    config = model.config
    config.head_dim = head_dim  # fixed explicitly: hidden_size // num_attention_heads no longer holds
    config.num_attention_heads = n * per_group
    config.num_key_value_heads = n
    return model


def prune_kv_groups(
    model: nn.Module, calib: Iterable[Batch], config: HeadPruningConfig | None = None
) -> HeadPruningResult:
    """Remove the `config.groups` least important KV groups of every decoder layer (in place)."""
    config = config or HeadPruningConfig()
    heads, kv, _ = _geometry(model)
    before = total_parameters(model)
    n_layers = len(family_of(model).layers(model))
    if not 0 <= config.groups < kv:
        raise HeadPruningError(f"can remove 0..{kv - 1} of {kv} KV groups, not {config.groups}")
    if config.groups == 0:
        return HeadPruningResult(model, kv, kv, heads, heads, [list(range(kv))] * n_layers, before, before)
    scores = group_scores(model, calib)
    kept = [sorted(torch.topk(s, kv - config.groups).indices.tolist()) for s in scores]
    slice_groups(model, kept)
    after = total_parameters(model)
    return HeadPruningResult(
        model, kv, model.config.num_key_value_heads, heads, model.config.num_attention_heads, kept, before, after
    )


__all__ = ["HeadPruningConfig", "HeadPruningError", "HeadPruningResult", "group_scores", "prune_kv_groups",
           "slice_groups"]
