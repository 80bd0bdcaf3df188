"""Turn row-pruned gated FFN neurons into a physically smaller model, so structured sparsity runs faster.

A gated FFN computes down(act(gate(x)) * up(x)). A neuron whose gate row or up row is all zero (no biases, as in
Llama/Qwen/Mistral) contributes exactly nothing, so slicing it out of gate/up rows and down columns leaves the
function unchanged while the matmuls shrink. Unstructured zeros cannot do this: dense kernels multiply zeros at
full cost. Layers may end with different widths, which HF configs cannot express, so the result is for in-process
use (measurement, inference); `greenprune.structure` writes reloadable checkpoints.
"""

from __future__ import annotations

import torch
from torch import nn

from greenprune.errors import GreenpruneError
from greenprune.structure.ffn import prune_linear
from greenprune.weights.masks import make_permanent
from greenprune.weights.targets import transformer_layers


class DeadNeuronError(GreenpruneError, ValueError):
    """The model's FFN is not a bias-free gated FFN, so dead neurons cannot be removed exactly."""


@torch.no_grad()
def slice_dead_ffn_neurons(model: nn.Module) -> dict[str, int]:
    """Remove dead FFN neurons in place (masks folded first); returns qualified layer name → neurons left."""
    make_permanent(model)
    widths: dict[str, int] = {}
    for span in transformer_layers(model):
        fam = span.family
        if not fam.gated:
            raise DeadNeuronError(f"family {fam.name}: FFN is not gated; dead neurons leave act(bias) behind")
        layer = model.get_submodule(span.prefix)
        ins = [layer.get_submodule(p) for p in fam.ffn_in]
        if any(m.bias is not None for m in ins):
            raise DeadNeuronError(f"{span.prefix}: gated FFN with biases; removing neurons would change outputs")
        alive = torch.ones(ins[0].out_features, dtype=torch.bool, device=ins[0].weight.device)
        for m in ins:
            alive &= (m.weight != 0).any(dim=1)
        keep = alive.nonzero().flatten()
        for name in fam.ffn_in:
            prune_linear(layer, name, keep, 0)
        prune_linear(layer, fam.ffn_out, keep, 1)
        widths[span.prefix] = int(keep.numel())
    return widths
