"""Model size: parameters by component and the bytes of its safetensors checkpoint."""

from __future__ import annotations

import torch
from safetensors.torch import save as safetensors_bytes
from torch import nn


def _unique_params(model: nn.Module) -> list[tuple[str, torch.Tensor, nn.Module]]:
    seen: set[int] = set()
    out = []
    for module_name, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if id(param) in seen:
                continue
            seen.add(id(param))
            out.append((f"{module_name}.{name}" if module_name else name, param, module))
    return out


def _packed_linear_params(model: nn.Module) -> int:
    """Dynamically quantised Linear layers keep their weights in packed params, invisible to `parameters()`."""
    total = 0
    for module in model.modules():
        weight_fn = getattr(module, "weight", None)
        if callable(weight_fn) and hasattr(module, "_packed_params"):
            weight = weight_fn()
            total += weight.numel()
            bias = module.bias() if callable(getattr(module, "bias", None)) else None
            total += bias.numel() if bias is not None else 0
    return total


def count_parameters(model: nn.Module) -> dict[str, int]:
    """Total, embedding (all nn.Embedding tables; a tied LM head counts once) and the rest."""
    total = embedding = 0
    for _, param, module in _unique_params(model):
        total += param.numel()
        if isinstance(module, nn.Embedding):
            embedding += param.numel()
    total += _packed_linear_params(model)
    return {"total": total, "embedding": embedding, "non_embedding": total - embedding}


def total_parameters(model: nn.Module) -> int:
    """Parameters counted once each (tied weights once), int8-packed Linear weights included."""
    return count_parameters(model)["total"]


def checkpoint_bytes(model: nn.Module) -> int:
    """Bytes of the model's state dict written as safetensors (shared tensors stored once, as HF saves them)."""
    tensors: dict[str, torch.Tensor] = {}
    seen: set[tuple[int, int, tuple[int, ...]]] = set()
    for name, value in model.state_dict().items():
        if not isinstance(value, torch.Tensor):
            continue
        if value.is_quantized:
            value = value.int_repr()
        key = (value.untyped_storage().data_ptr(), value.storage_offset(), tuple(value.shape))
        if key in seen:
            continue
        seen.add(key)
        tensors[name] = value.detach().contiguous().cpu()
    extra = 0
    for module in model.modules():  # packed int8 weights (dynamic quantisation) are not plain state-dict tensors
        if hasattr(module, "_packed_params") and callable(getattr(module, "weight", None)):
            weight = module.weight()
            extra += weight.int_repr().numel() * weight.int_repr().element_size() if weight.is_quantized else 0
    return len(safetensors_bytes(tensors)) + extra
