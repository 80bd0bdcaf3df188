"""Per-layer facts the report plots: sequence length entering each layer, weight sparsity per layer, parameters by
component. Measured on the model itself (forward hooks, weight tensors) so they hold for any pruning method.

Stored as flat float metrics with a `profile.` prefix (`profile.seq_len.L03`, `profile.sparsity.L03`,
`profile.params.ffn`) so they travel inside ordinary result records and reports stay rebuildable from records.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch import nn

from greenprune.models.families import Family, family_of

PREFIX = "profile."


def _weight_of(module: nn.Module) -> torch.Tensor | None:
    """The dense weight of a Linear, including dynamically quantised ones (whose weight is a method)."""
    weight = getattr(module, "weight", None)
    if callable(weight):  # torch.ao dynamic quantized Linear
        try:
            weight = weight()
        except Exception:
            return None
        if weight.is_quantized:
            weight = weight.dequantize()
    if isinstance(weight, torch.Tensor):
        return weight.detach()
    return None


def _linear_modules(layer: nn.Module) -> list[nn.Module]:
    out = []
    for module in layer.modules():
        name = type(module).__name__
        if name == "Linear" or name.endswith("Linear"):
            out.append(module)
    return out


def sparsity_per_layer(model: nn.Module, family: Family | None = None) -> list[float]:
    """Fraction of exactly-zero weights in each layer's Linear modules (masks folded in, if any)."""
    family = family or family_of(model)
    values = []
    for layer in family.layers(model):
        zeros = total = 0
        for module in _linear_modules(layer):
            weight = _weight_of(module)
            mask = getattr(module, "weight_mask", None)
            if weight is None:
                continue
            if isinstance(mask, torch.Tensor):
                weight = weight * mask
            zeros += int((weight == 0).sum())
            total += weight.numel()
        values.append(zeros / total if total else 0.0)
    return values


def _numel(module: nn.Module, seen: set[int]) -> int:
    count = 0
    for tensor in module.parameters():
        if id(tensor) in seen or (not tensor.is_floating_point() and not tensor.is_quantized):
            continue
        seen.add(id(tensor))
        count += tensor.numel()
    for sub in module.modules():  # packed int8 weights are not parameters
        weight = _weight_of(sub) if callable(getattr(sub, "weight", None)) else None
        if weight is not None and id(sub) not in seen:
            seen.add(id(sub))
            count += weight.numel()
    return count


def params_by_component(model: nn.Module, family: Family | None = None) -> dict[str, int]:
    """Parameters in embeddings, attention, FFN, the rest of the layers (norms) and everything else (head)."""
    family = family or family_of(model)
    seen: set[int] = set()
    out = {"embeddings": 0, "attention": 0, "ffn": 0, "layer_other": 0, "head_other": 0}
    backbone = family.backbone(model)
    out["embeddings"] = _numel(_resolve(backbone, family.word_embeddings.rsplit(".", 1)[0]) or
                               family.embeddings(model), seen)
    for layer in family.layers(model):
        out["attention"] += _numel(_resolve(layer, family.attention), seen)
        for name in family.ffn_projections:
            sub = _resolve(layer, name)
            if sub is not None:
                out["ffn"] += _numel(sub, seen)
        out["layer_other"] += _numel(layer, seen)
    out["head_other"] = _numel(model, seen)
    return out


def _resolve(root: nn.Module, path: str) -> nn.Module | None:
    obj: Any = root
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj if isinstance(obj, nn.Module) else None


@torch.no_grad()
def seq_len_per_layer(model: nn.Module, batches: Iterable[Mapping[str, Any]], family: Family | None = None
                      ) -> list[float]:
    """Mean sequence length (hidden-state positions per sample) entering each layer over `batches`.

    Token pruning shrinks this along the depth; without it every layer sees the padded input length.
    """
    family = family or family_of(model)
    layers = list(family.layers(model))
    sums = [0.0] * len(layers)
    counts = [0] * len(layers)

    def hook_for(index: int):
        def hook(_module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            hidden = args[0] if args else kwargs.get("hidden_states")
            if isinstance(hidden, torch.Tensor) and hidden.dim() == 3:
                sums[index] += float(hidden.shape[1]) * hidden.shape[0]
                counts[index] += hidden.shape[0]

        return hook

    handles = [layer.register_forward_pre_hook(hook_for(i), with_kwargs=True) for i, layer in enumerate(layers)]
    was_training = model.training
    model.eval()
    try:
        for batch in batches:
            inputs = {k: v for k, v in batch.items() if k != "labels"}
            model(**inputs)
    finally:
        for handle in handles:
            handle.remove()
        model.train(was_training)
    return [s / c if c else 0.0 for s, c in zip(sums, counts, strict=True)]


def profile_metrics(model: nn.Module, batches: list[Mapping[str, Any]] | None = None) -> dict[str, float]:
    """All profile facts of a model as `profile.*` metrics."""
    family = family_of(model)
    out: dict[str, float] = {}
    for i, value in enumerate(sparsity_per_layer(model, family)):
        out[f"{PREFIX}sparsity.L{i:02d}"] = value
    for name, count in params_by_component(model, family).items():
        out[f"{PREFIX}params.{name}"] = float(count)
    if batches:
        for i, value in enumerate(seq_len_per_layer(model, batches, family)):
            out[f"{PREFIX}seq_len.L{i:02d}"] = value
    return out


def split_profile(metrics: Mapping[str, float]) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """(quality metrics, {"sparsity": {...}, "seq_len": {...}, "params": {...}}) from a record's metrics."""
    quality: dict[str, float] = {}
    groups: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        if key.startswith(PREFIX):
            group, _, name = key[len(PREFIX):].partition(".")
            groups.setdefault(group, {})[name] = value
        else:
            quality[key] = value
    return quality, groups
