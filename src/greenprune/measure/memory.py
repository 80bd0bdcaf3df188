"""Peak memory of a forward pass.

On CUDA the caching allocator's own peak counter is exact. On CPU there is no allocator statistic, and process RSS
mixes in the Python heap, the allocator's caches and other threads. So on CPU we watch torch itself: a dispatch
mode sees every tensor an operator creates, counts its storage once, and subtracts it when the storage is freed.
Peak = bytes of parameters and buffers + the largest sum of live tensors created during the forward.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

CPU_METHOD = (
    "torch dispatch tracking: parameter+buffer bytes + peak bytes of live tensor storages created in the forward"
)
CUDA_METHOD = "torch.cuda.max_memory_allocated (caching allocator peak)"


class TensorMemoryTracker(TorchDispatchMode):
    """Tracks bytes of tensor storages created under it, as long as they live."""

    def __init__(self) -> None:
        super().__init__()
        self.current = 0
        self.peak = 0
        self._live: set[int] = set()

    def _release(self, key: int, nbytes: int) -> None:
        if key in self._live:
            self._live.discard(key)
            self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for item in tree_flatten(out)[0]:
            if not isinstance(item, torch.Tensor) or item.device.type == "meta":
                continue
            storage = item.untyped_storage()
            key = id(storage)
            if key in self._live:
                continue
            nbytes = storage.nbytes()
            self._live.add(key)
            self.current += nbytes
            self.peak = max(self.peak, self.current)
            weakref.finalize(storage, self._release, key, nbytes)
        return out


def static_bytes(model: nn.Module) -> int:
    """Bytes held by parameters and buffers (shared storages counted once)."""
    seen: set[int] = set()
    total = 0
    for tensor in [*model.parameters(), *model.buffers()]:
        storage = tensor.untyped_storage()
        if storage.data_ptr() in seen:
            continue
        seen.add(storage.data_ptr())
        total += storage.nbytes()
    return total


def peak_forward_memory(model: nn.Module, batch: Mapping[str, Any]) -> tuple[int, str]:
    """(peak bytes, method) of one inference forward of `model` on `batch`."""
    device = next(model.parameters()).device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        with torch.inference_mode():
            model(**batch)
        torch.cuda.synchronize(device)
        return int(torch.cuda.max_memory_allocated(device)), CUDA_METHOD
    tracker = TensorMemoryTracker()
    with torch.inference_mode(), tracker:
        model(**batch)
    return static_bytes(model) + tracker.peak, CPU_METHOD
