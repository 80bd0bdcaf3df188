"""FFN neuron removal (Flab-Pruner's FFN step), consistent across gate/up/down projections.

Importance of intermediate neuron j in one layer is its expected contribution to the layer's output on
calibration data: E_tokens |a_j| · ||W_down[:, j]||₂, where a_j is the neuron's activation as it enters the
down projection (act(gate_j·x)·(up_j·x) in gated FFNs, act(W_in_j·x) in BERT). Weight magnitude alone ignores
that many neurons are rarely active on code; activation alone ignores how far the neuron's output moves the
residual stream. The product is the first-order size of what removing the neuron takes away.

Every layer keeps the same number of neurons: Hugging Face configs hold one `intermediate_size`, and a plain
`from_pretrained` must rebuild the pruned model without greenprune. Which neurons go is chosen per layer.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from greenprune.errors import GreenpruneError
from greenprune.measure.size import total_parameters
from greenprune.models.families import UnsupportedModelError, family_of
from greenprune.structure.calibration import Batch
from greenprune.structure.criteria import ChannelImportance, InputWeightedImportance


class FFNPruningError(GreenpruneError, ValueError):
    """An FFN pruning request that cannot be met (bad fraction or target size)."""


@dataclass(frozen=True)
class FFNPruningConfig:
    """Remove `fraction` of each layer's intermediate neurons, or shrink to `target_size` (which wins when given).

    `multiple_of` rounds the kept size down to a multiple (matrix shapes that CPUs/GPUs tile well).
    """

    fraction: float | None = 0.2
    target_size: int | None = None
    multiple_of: int = 1


@dataclass
class FFNPruningResult:
    model: nn.Module
    size_before: int
    size_after: int
    kept: list[list[int]]  # per layer, the kept neuron indices (ascending)
    params_before: int
    params_after: int

    def summary(self) -> dict[str, Any]:
        return {
            "intermediate_before": self.size_before,
            "intermediate_after": self.size_after,
            "params_before": self.params_before,
            "params_after": self.params_after,
        }


def _intermediate_size(model: nn.Module) -> int:
    fam = family_of(model)
    try:
        return fam.intermediate_size(model.config)
    except UnsupportedModelError as exc:  # a family model whose config lacks the width
        raise FFNPruningError(str(exc)) from exc


def kept_size(size: int, config: FFNPruningConfig) -> int:
    """How many neurons each layer keeps under `config`."""
    if config.fraction is None and config.target_size is None:
        raise FFNPruningError("give FFNPruningConfig.fraction or .target_size")
    if config.target_size is None:
        if not 0.0 <= config.fraction < 1.0:
            raise FFNPruningError(f"FFN fraction must be in [0, 1), got {config.fraction}")
        keep = size - round(size * config.fraction)  # type: ignore[operator]
    else:
        keep = int(config.target_size)  # type: ignore[arg-type]
        if not 0 < keep <= size:
            raise FFNPruningError(f"FFN target size must be in 1..{size}, got {keep}")
    if config.multiple_of > 1 and keep != size:
        keep = max(config.multiple_of, keep // config.multiple_of * config.multiple_of)
    return keep


@torch.no_grad()
def ffn_scores(model: nn.Module, calib: Iterable[Batch], importance: ChannelImportance | None = None
               ) -> list[torch.Tensor]:
    """Per layer, one score per intermediate neuron j: `importance` of the down projection's input channel j
    (default E|a_j| · ||W_down[:, j]||, see module docstring)."""
    fam = family_of(model)
    downs = [layer.get_submodule(fam.ffn_out) for layer in fam.layers(model)]
    return (importance or InputWeightedImportance()).channel_scores(model, calib, downs, "FFN activations")


def prune_linear(root: nn.Module, path: str, index: torch.Tensor, dim: int) -> nn.Linear:
    """Replace the Linear at `root.<path>` by one keeping rows (dim=0: output features) or columns (dim=1: input
    features) `index`: transformers' `prune_linear_layer`, keeping the dtype and `requires_grad` and leaving the
    global random state alone (the new layer's throwaway initialisation would draw from it)."""
    from transformers.pytorch_utils import prune_linear_layer

    old = root.get_submodule(path)
    with torch.random.fork_rng(devices=[]):
        new = prune_linear_layer(old, index.to(torch.long), dim=dim)
    new = new.to(dtype=old.weight.dtype)
    new.weight.requires_grad_(old.weight.requires_grad)
    if old.bias is not None:
        new.bias.requires_grad_(old.bias.requires_grad)
    new.train(old.training)
    root.set_submodule(path, new)
    return new


def slice_ffn(model: nn.Module, kept: list[list[int]] | list[torch.Tensor]) -> nn.Module:
    """Keep neurons `kept[layer]` in every FFN (same count per layer), slicing in/gate/up rows and down columns."""
    fam = family_of(model)
    layers = fam.layers(model)
    sizes = {len(k) for k in kept}
    if len(kept) != len(layers) or len(sizes) != 1:
        raise FFNPruningError(
            f"need one equally sized index list per layer ({len(layers)} layers); got sizes {sorted(sizes)}"
        )
    for layer, keep in zip(layers, kept, strict=True):
        index = torch.as_tensor(keep, dtype=torch.long)
        for name in fam.ffn_in:
            prune_linear(layer, name, index, 0)
        prune_linear(layer, fam.ffn_out, index, 1)
    fam.set_intermediate_size(model, sizes.pop())
    return model


def prune_ffn(model: nn.Module, calib: Iterable[Batch], config: FFNPruningConfig | None = None, *,
              importance: ChannelImportance | None = None) -> FFNPruningResult:
    """Remove the least important FFN neurons of every layer (in place), scored by `importance`."""
    config = config or FFNPruningConfig()
    size = _intermediate_size(model)
    keep = kept_size(size, config)
    params_before = total_parameters(model)
    n_layers = len(family_of(model).layers(model))
    if keep == size:  # nothing to remove: leave every tensor untouched
        return FFNPruningResult(model, size, size, [list(range(size))] * n_layers, params_before, params_before)
    scores = ffn_scores(model, calib, importance)
    kept = [sorted(torch.topk(s, keep).indices.tolist()) for s in scores]
    slice_ffn(model, kept)
    return FFNPruningResult(model, size, keep, kept, params_before, total_parameters(model))


__all__ = [
    "FFNPruningConfig",
    "FFNPruningError",
    "FFNPruningResult",
    "ffn_scores",
    "kept_size",
    "prune_ffn",
    "prune_linear",
    "slice_ffn",
]
