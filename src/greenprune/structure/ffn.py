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
from greenprune.models.families import Family, family_of
from greenprune.structure.calibration import Batch, input_weighted_importance


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


def _linears(fam: Family, layer: nn.Module) -> tuple[list[nn.Linear], nn.Linear]:
    ins = [layer.get_submodule(name) for name in fam.ffn_in]
    out = layer.get_submodule(fam.ffn_out)
    return ins, out


def _intermediate_size(model: nn.Module) -> int:
    size = getattr(model.config, "intermediate_size", None)
    if not isinstance(size, int):
        raise FFNPruningError(f"{model.config.model_type!r} config has no integer `intermediate_size`")
    return size


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
def ffn_scores(model: nn.Module, calib: Iterable[Batch]) -> list[torch.Tensor]:
    """Per layer, E|a_j| · ||W_down[:, j]|| for every intermediate neuron j (see module docstring)."""
    fam = family_of(model)
    downs = [_linears(fam, layer)[1] for layer in fam.layers(model)]
    return input_weighted_importance(model, calib, downs, "FFN activations")


def _slice_linear(linear: nn.Linear, index: torch.Tensor, dim: int) -> None:
    """Keep rows (dim=0: output features) or columns (dim=1: input features) of a Linear, in place."""
    with torch.no_grad():
        weight = linear.weight.index_select(dim, index.to(linear.weight.device)).clone()
        linear.weight = nn.Parameter(weight, requires_grad=linear.weight.requires_grad)
        if dim == 0:
            if linear.bias is not None:
                linear.bias = nn.Parameter(linear.bias.index_select(0, index.to(linear.bias.device)).clone())
            linear.out_features = weight.shape[0]
        else:
            linear.in_features = weight.shape[1]


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
        ins, out = _linears(fam, layer)
        for linear in ins:
            _slice_linear(linear, index, 0)
        _slice_linear(out, index, 1)
        mlp = getattr(layer, "mlp", None)
        if mlp is not None and hasattr(mlp, "intermediate_size"):
            mlp.intermediate_size = len(keep)
    model.config.intermediate_size = sizes.pop()
    return model


def prune_ffn(model: nn.Module, calib: Iterable[Batch], config: FFNPruningConfig | None = None) -> FFNPruningResult:
    """Remove the least important FFN neurons of every layer (in place)."""
    config = config or FFNPruningConfig()
    size = _intermediate_size(model)
    keep = kept_size(size, config)
    params_before = total_parameters(model)
    n_layers = len(family_of(model).layers(model))
    if keep == size:  # nothing to remove: leave every tensor untouched
        return FFNPruningResult(model, size, size, [list(range(size))] * n_layers, params_before, params_before)
    scores = ffn_scores(model, calib)
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
    "slice_ffn",
]
