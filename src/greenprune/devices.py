"""One reading of a device option (`--device`, `TrainConfig.device`) for every verb.

An unknown string or an accelerator this machine lacks is one clear error up front, not a torch traceback
after the model has been loaded (or a run that silently lands on another device).
"""

from __future__ import annotations

import torch

from greenprune.errors import GreenpruneError

DEVICE_CHOICES = "auto | cpu | cuda | cuda:N | mps"


class DeviceError(GreenpruneError, ValueError):
    """A device option that is unknown or not available on this machine."""


def _cuda_missing() -> str:
    if torch.version.cuda is None:
        return "this torch build has no CUDA support (a CPU-only wheel)"
    return "no CUDA GPU is visible (driver missing, or CUDA_VISIBLE_DEVICES hides it)"


def resolve_device(spec: str | torch.device) -> torch.device:
    """The torch device for `spec`; `auto` is CUDA when available, else CPU."""
    if isinstance(spec, torch.device):
        spec = str(spec)
    text = spec.strip().lower()
    if text == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, TypeError, ValueError):
        raise DeviceError(f"device {spec!r} is not a device; expected {DEVICE_CHOICES}") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"device {spec!r}: CUDA is not available here: {_cuda_missing()}; "
                              f"use --device cpu (or auto)")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise DeviceError(f"device {spec!r}: this machine has {count} CUDA device(s) (cuda:0..cuda:{count - 1})")
        return device
    if device.type == "mps":
        if not torch.backends.mps.is_available():
            raise DeviceError(f"device {spec!r}: Apple MPS is not available here; use --device cpu (or auto)")
        return device
    raise DeviceError(f"device {spec!r} is not supported; expected {DEVICE_CHOICES}")


__all__ = ["DEVICE_CHOICES", "DeviceError", "resolve_device"]
