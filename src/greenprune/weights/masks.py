"""Masks kept beside weights, with `torch.nn.utils.prune` semantics.

A masked module holds `weight_orig` (the trainable parameter) and a `weight_mask` buffer, and a forward pre-hook
recomputes `weight = weight_orig * weight_mask`. Gradients of pruned entries are therefore zero and the effective
weight stays zero through any number of optimizer steps; `make_permanent` folds the mask in, after which the module
is a plain `nn.Linear` again and `save_pretrained` writes an ordinary HF checkpoint.

We reuse torch's own reparametrisation for the first mask and overwrite the mask buffer in place for later rounds,
so pruning again (lottery rounds) never stacks containers of partial masks.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import prune as torch_prune

PARAM = "weight"


def is_masked(module: nn.Module, param: str = PARAM) -> bool:
    """Whether `module.<param>` is reparametrised as `<param>_orig * <param>_mask`."""
    return hasattr(module, f"{param}_orig") and hasattr(module, f"{param}_mask")


def set_mask(module: nn.Module, keep: torch.Tensor, param: str = PARAM) -> None:
    """Attach (or replace) the keep-mask of `module.<param>`; `keep` is bool or 0/1 with the parameter's shape."""
    current = getattr(module, f"{param}_orig") if is_masked(module, param) else getattr(module, param)
    if tuple(keep.shape) != tuple(current.shape):
        raise ValueError(
            f"mask shape {tuple(keep.shape)} does not match {type(module).__name__}.{param} {tuple(current.shape)}"
        )
    keep = keep.to(device=current.device, dtype=current.dtype)
    if is_masked(module, param):
        with torch.no_grad():
            getattr(module, f"{param}_mask").copy_(keep)
            # refresh the derived attribute now, so reads before the next forward see the new mask
            setattr(module, param, getattr(module, f"{param}_orig") * getattr(module, f"{param}_mask"))
    else:
        torch_prune.custom_from_mask(module, param, keep)


def get_mask(module: nn.Module, param: str = PARAM) -> torch.Tensor | None:
    """The keep-mask as a bool tensor, or None when the parameter is not masked."""
    if not is_masked(module, param):
        return None
    return getattr(module, f"{param}_mask").detach().bool()


def trainable_weight(module: nn.Module, param: str = PARAM) -> nn.Parameter:
    """The parameter an optimizer updates: `<param>_orig` when masked, else the parameter itself."""
    return getattr(module, f"{param}_orig") if is_masked(module, param) else getattr(module, param)


def effective_weight(module: nn.Module, param: str = PARAM) -> torch.Tensor:
    """The weight the forward pass uses (masked entries are zero)."""
    if is_masked(module, param):
        return (getattr(module, f"{param}_orig") * getattr(module, f"{param}_mask")).detach()
    return getattr(module, param).detach()


def masked_modules(model: nn.Module, param: str = PARAM) -> dict[str, nn.Module]:
    """Qualified name → module for every module with a mask on `param`."""
    return {name: m for name, m in model.named_modules() if is_masked(m, param)}


def get_masks(model: nn.Module, param: str = PARAM) -> dict[str, torch.Tensor]:
    """Qualified module name → bool keep-mask, for every masked module."""
    return {name: get_mask(m, param) for name, m in masked_modules(model, param).items()}  # type: ignore[misc]


def apply_masks(model: nn.Module, masks: dict[str, torch.Tensor], param: str = PARAM) -> None:
    """Attach keep-masks by qualified module name (names that do not exist are an error, naming them)."""
    modules = dict(model.named_modules())
    missing = [name for name in masks if name not in modules]
    if missing:
        raise KeyError(f"no module named {missing[0]!r} in {type(model).__name__} ({len(missing)} unknown names)")
    for name, keep in masks.items():
        set_mask(modules[name], keep, param)


def make_permanent(model: nn.Module, param: str = PARAM) -> int:
    """Fold every mask into its weight (zeros become real zeros) and drop the hooks; returns modules folded."""
    count = 0
    for module in masked_modules(model, param).values():
        torch_prune.remove(module, param)
        count += 1
    return count


def remove_masks(model: nn.Module, param: str = PARAM) -> int:
    """Drop the masks and restore `weight_orig` unmasked (undo pruning); returns modules restored."""
    count = 0
    for module in masked_modules(model, param).values():
        with torch.no_grad():
            getattr(module, f"{param}_mask").fill_(1)
        torch_prune.remove(module, param)
        count += 1
    return count


def dense_state_dict(model: nn.Module, param: str = PARAM) -> dict[str, torch.Tensor]:
    """The state dict a plain (unmasked) copy of the model would have: masks folded, `_orig`/`_mask` keys gone."""
    masked = {f"{name}.{param}" if name else param for name in masked_modules(model, param)}
    out: dict[str, torch.Tensor] = {}
    state = model.state_dict()
    for key, value in state.items():
        if key.endswith(f".{param}_mask") or key == f"{param}_mask":
            continue
        if key.endswith(f".{param}_orig") or key == f"{param}_orig":
            base = key[: -len("_orig")]
            if base in masked:
                out[base] = (value * state[f"{base}_mask"]).detach()
                continue
        out[key] = value
    return out
