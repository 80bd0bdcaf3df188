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
from greenprune.models.families import HeadGeometry, family_of
from greenprune.structure.calibration import Batch
from greenprune.structure.criteria import ChannelImportance, InputWeightedImportance
from greenprune.structure.ffn import prune_linear


class KVGroupPruningError(GreenpruneError, ValueError):
    """A head-pruning request that cannot be met."""


@dataclass(frozen=True)
class KVGroupPruningConfig:
    """Remove `groups` KV groups from every decoder layer."""

    groups: int = 1


@dataclass
class KVGroupPruningResult:
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


def _geometry(model: nn.Module) -> HeadGeometry:
    fam = family_of(model)
    if fam.kind != "decoder":
        raise KVGroupPruningError(f"KV-group pruning supports decoder LLMs, not {model.config.model_type!r}")
    return fam.head_geometry(model.config)


@torch.no_grad()
def group_scores(model: nn.Module, calib: Iterable[Batch], importance: ChannelImportance | None = None
                 ) -> list[torch.Tensor]:
    """Per layer, one importance per KV group: the sum of `importance` over the output projection's input channels
    of the group's query heads (default the input-weighted score, see module docstring)."""
    fam = family_of(model)
    geo = _geometry(model)
    outs = [layer.get_submodule(fam.attn_out) for layer in fam.layers(model)]
    per_dim = (importance or InputWeightedImportance()).channel_scores(model, calib, outs, "attention activations")
    return [scores.view(geo.kv_heads, geo.heads_per_group * geo.head_dim).sum(-1) for scores in per_dim]


def slice_groups(model: nn.Module, kept_groups: list[list[int]]) -> nn.Module:
    """Keep KV groups `kept_groups[layer]` (same count per layer): q/k/v rows and o columns, config updated."""
    fam = family_of(model)
    geo = _geometry(model)
    head_dim, per_group = geo.head_dim, geo.heads_per_group
    layers = fam.layers(model)
    sizes = {len(g) for g in kept_groups}
    if len(kept_groups) != len(layers) or len(sizes) != 1 or 0 in sizes:
        raise KVGroupPruningError(f"need one equally sized, non-empty group list per layer; got sizes {sorted(sizes)}")
    for layer, groups in zip(layers, kept_groups, strict=True):
        kv_index = torch.cat([torch.arange(g * head_dim, (g + 1) * head_dim) for g in groups])
        q_index = torch.cat(
            [torch.arange(h * head_dim, (h + 1) * head_dim) for g in groups for h in range(g * per_group,
                                                                                            (g + 1) * per_group)]
        )
        prune_linear(layer, fam.query, q_index, 0)
        prune_linear(layer, fam.key, kv_index, 0)
        prune_linear(layer, fam.value, kv_index, 0)
        prune_linear(layer, fam.attn_out, q_index, 1)
    n = sizes.pop()
    fam.set_head_geometry(model.config, HeadGeometry(n * per_group, n, head_dim))
    return model


def prune_kv_groups(
    model: nn.Module, calib: Iterable[Batch], config: KVGroupPruningConfig | None = None, *,
    importance: ChannelImportance | None = None,
) -> KVGroupPruningResult:
    """Remove the `config.groups` least important KV groups of every decoder layer (in place), by `importance`."""
    config = config or KVGroupPruningConfig()
    geo = _geometry(model)
    heads, kv = geo.heads, geo.kv_heads
    before = total_parameters(model)
    n_layers = len(family_of(model).layers(model))
    if not 0 <= config.groups < kv:
        raise KVGroupPruningError(f"can remove 0..{kv - 1} of {kv} KV groups, not {config.groups}")
    if config.groups == 0:
        return KVGroupPruningResult(model, kv, kv, heads, heads, [list(range(kv))] * n_layers, before, before)
    scores = group_scores(model, calib, importance)
    kept = [sorted(torch.topk(s, kv - config.groups).indices.tolist()) for s in scores]
    slice_groups(model, kept)
    after = total_parameters(model)
    return KVGroupPruningResult(
        model, kv, model.config.num_key_value_heads, heads, model.config.num_attention_heads, kept, before, after
    )


__all__ = ["KVGroupPruningConfig", "KVGroupPruningError", "KVGroupPruningResult", "group_scores", "prune_kv_groups",
           "slice_groups"]
