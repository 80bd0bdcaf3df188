"""Compact checkpoints for sparse models: bitmask + non-zero values in safetensors.

Folder layout (written by `save_sparse`):

    config.json, generation_config.json, tokenizer files     as `save_pretrained` writes them
    model.sparse.safetensors                                  the weights, in the format below

Inside `model.sparse.safetensors` a tensor `T` is stored either dense under its own name, or — when that is
smaller — as two tensors: `T::bitmask` (uint8, the flattened row-major non-zero pattern packed 8 per byte, bit i of
byte j is element 8j+i) and `T::values` (1-D, the non-zero elements in row-major order, original dtype). The
header metadata holds `format` = `greenprune-sparse`, `version`, and `layout` (JSON: name → shape, dtype, and
`sparse` or `dense`; `tied`: duplicate name → the name it shares storage with). Values are copied bit for bit, so
`load_sparse` rebuilds exactly the dense tensors. The weights file is deliberately not called `model.safetensors`,
so HF never mistakes it for a dense checkpoint; `densify` writes one for tools without greenprune.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from greenprune.checkpoint import check_checkpoint_folder, write_checkpoint
from greenprune.errors import GreenpruneError
from greenprune.weights.masks import dense_state_dict

WEIGHTS_NAME = "model.sparse.safetensors"
FORMAT = "greenprune-sparse"
VERSION = "1"
_BITS = torch.tensor([1, 2, 4, 8, 16, 32, 64, 128], dtype=torch.uint8)


class SparseCheckpointError(GreenpruneError, ValueError):
    """A folder is not a greenprune sparse checkpoint, or its file is inconsistent."""


def pack_bits(nonzero: torch.Tensor) -> torch.Tensor:
    """Flattened bool tensor → uint8, 8 elements per byte, least significant bit first."""
    flat = nonzero.flatten().to(torch.uint8)
    pad = (-flat.numel()) % 8
    if pad:
        flat = torch.cat([flat, torch.zeros(pad, dtype=torch.uint8)])
    return (flat.view(-1, 8) * _BITS).sum(dim=1, dtype=torch.uint8)


def unpack_bits(packed: torch.Tensor, numel: int) -> torch.Tensor:
    """Inverse of `pack_bits`: the first `numel` bits as a bool tensor."""
    bits = (packed[:, None] & _BITS) != 0
    return bits.flatten()[:numel]


def _sparse_pays(tensor: torch.Tensor, nnz: int) -> bool:
    dense = tensor.numel() * tensor.element_size()
    compact = (tensor.numel() + 7) // 8 + nnz * tensor.element_size()
    return tensor.is_floating_point() and compact < dense


def _dedupe_tied(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    first_by_storage: dict[tuple[int, int, tuple[int, ...]], str] = {}
    kept: dict[str, torch.Tensor] = {}
    tied: dict[str, str] = {}
    for name, tensor in state.items():
        key = (tensor.untyped_storage().data_ptr(), tensor.storage_offset(), tuple(tensor.shape))
        if key in first_by_storage and tensor.numel() > 0:
            tied[name] = first_by_storage[key]
            continue
        first_by_storage[key] = name
        kept[name] = tensor
    return kept, tied


def save_sparse(
    model: nn.Module, folder: str | os.PathLike[str], tokenizer: Any | None = None, *, overwrite: bool = False,
    files: Mapping[str, str] | None = None,
) -> Path:
    """Write `model` (masks folded) as a compact checkpoint folder (plus extra text `files`); returns the folder.

    Any floating tensor whose bitmask + non-zero values are smaller than its dense bytes is stored compactly, so
    the file shrinks with sparsity whatever was pruned. The folder goes through `write_checkpoint`: an earlier
    greenprune output is replaced only with `overwrite`, anything else is never touched.
    """
    folder = Path(folder)
    state, tied = _dedupe_tied(dense_state_dict(model))
    tensors: dict[str, torch.Tensor] = {}
    layout: dict[str, dict[str, Any]] = {}
    for name, tensor in state.items():
        tensor = tensor.detach().cpu().contiguous()
        nonzero = tensor != 0
        nnz = int(nonzero.sum())
        entry = {"shape": list(tensor.shape), "dtype": str(tensor.dtype).removeprefix("torch.")}
        if _sparse_pays(tensor, nnz):
            tensors[f"{name}::bitmask"] = pack_bits(nonzero)
            tensors[f"{name}::values"] = tensor.flatten()[nonzero.flatten()].clone()
            entry["storage"] = "sparse"
        else:
            tensors[name] = tensor.clone()
            entry["storage"] = "dense"
        layout[name] = entry
    metadata = {"format": FORMAT, "version": VERSION, "layout": json.dumps({"tensors": layout, "tied": tied})}
    with write_checkpoint(folder, "compact", overwrite=overwrite) as tmp:
        config = getattr(model, "config", None)
        if config is not None:
            if not getattr(config, "architectures", None):
                config.architectures = [type(model).__name__]
            config.save_pretrained(tmp)
        generation = getattr(model, "generation_config", None)
        if generation is not None:
            generation.save_pretrained(tmp)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        save_file(tensors, tmp / WEIGHTS_NAME, metadata=metadata)
        for name, text in (files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
    return folder


def read_sparse_state_dict(folder: str | os.PathLike[str]) -> dict[str, torch.Tensor]:
    """The dense state dict stored in a compact checkpoint folder (tied names included)."""
    path = Path(folder) / WEIGHTS_NAME
    if not path.is_file():
        raise SparseCheckpointError(f"{folder}: no {WEIGHTS_NAME}; not a greenprune sparse checkpoint")
    with safe_open(str(path), framework="pt") as fh:
        metadata = fh.metadata() or {}
        if metadata.get("format") != FORMAT:
            raise SparseCheckpointError(f"{path}: header format is {metadata.get('format')!r}, expected {FORMAT!r}")
        layout = json.loads(metadata["layout"])
        state: dict[str, torch.Tensor] = {}
        for name, entry in layout["tensors"].items():
            if entry["storage"] == "dense":
                state[name] = fh.get_tensor(name)
                continue
            values = fh.get_tensor(f"{name}::values")
            shape = tuple(entry["shape"])
            numel = 1
            for dim in shape:
                numel *= dim
            nonzero = unpack_bits(fh.get_tensor(f"{name}::bitmask"), numel)
            if int(nonzero.sum()) != values.numel():
                raise SparseCheckpointError(
                    f"{path}: tensor {name!r} has {int(nonzero.sum())} bits set but {values.numel()} values"
                )
            dense = torch.zeros(numel, dtype=values.dtype)
            dense[nonzero] = values
            state[name] = dense.view(shape)
    for dup, original in layout.get("tied", {}).items():
        state[dup] = state[original]
    return state


def load_sparse(folder: str | os.PathLike[str]) -> nn.Module:
    """A dense HF model (class from `config.architectures`) with the exact weights of a compact checkpoint."""
    import transformers
    from transformers import AutoConfig

    folder = Path(folder)
    check_checkpoint_folder(folder)
    if not (folder / WEIGHTS_NAME).is_file():
        raise SparseCheckpointError(f"{folder}: no {WEIGHTS_NAME}; not a greenprune sparse checkpoint")
    config = AutoConfig.from_pretrained(folder)
    arch = (getattr(config, "architectures", None) or [None])[0]
    cls = getattr(transformers, arch, None) if arch else None
    if cls is None:
        raise SparseCheckpointError(f"{folder}/config.json: unknown or missing `architectures` ({arch!r})")
    state = read_sparse_state_dict(folder)
    model = cls(config)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if unexpected or missing:
        raise SparseCheckpointError(
            f"{folder}: checkpoint does not fit {arch}: missing {missing[:3]}, unexpected {unexpected[:3]}"
        )
    dtypes = {t.dtype for t in state.values() if t.is_floating_point()}
    if len(dtypes) == 1:
        model.to(next(iter(dtypes)))
    model.eval()
    return model


def densify(folder: str | os.PathLike[str], out: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Rewrite a compact checkpoint as a plain HF folder (`model.safetensors`) that loads without greenprune."""
    from transformers import AutoTokenizer

    model = load_sparse(folder)
    out = Path(out)
    with write_checkpoint(out, "densified", overwrite=overwrite) as tmp:
        model.save_pretrained(tmp)
        with contextlib.suppress(OSError, ValueError):  # a checkpoint saved without a tokenizer
            AutoTokenizer.from_pretrained(folder).save_pretrained(tmp)
    return out


def folder_bytes(folder: str | os.PathLike[str], pattern: str = "*.safetensors") -> int:
    """Bytes of the weight files in a checkpoint folder (config and tokenizer excluded)."""
    return sum(p.stat().st_size for p in Path(folder).glob(pattern))
