"""Importance criteria of the structural steps, as objects separate from what is removed together.

As in `weights.importance` (and Torch-Pruning's importance objects), scoring is apart from grouping: the FFN step
groups a neuron's gate/up rows with its down column and the KV-group step a group's Q/K/V rows with its O columns,
but both ask a `ChannelImportance` for one score per input channel of the projection they read, then sum those
scores over the group. The layer step asks a `LayerImportance` for one score per layer (`structure.layers`
registers KL and block influence). A new criterion is one subclass (registered, for layers); the steps take an
instance, and the layer step also a registered name.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from typing import ClassVar

import torch
from torch import nn

from greenprune.structure.calibration import Batch, input_weighted_importance


class ChannelImportance(ABC):
    """One score per input channel of each Linear in `linears`, from a calibration forward of `model`."""

    name: ClassVar[str]

    @abstractmethod
    def channel_scores(self, model: nn.Module, calib: Iterable[Batch], linears: Sequence[nn.Linear],
                       desc: str) -> list[torch.Tensor]:
        """Per Linear, a float32 CPU tensor of `in_features` scores (higher = keep)."""


class InputWeightedImportance(ChannelImportance):
    """E|x_j| · ||W[:, j]||₂: how far input channel j moves the projection's output on calibration data (the
    first-order size of what removing it takes away; see `structure.ffn`)."""

    name = "input-weighted"

    def channel_scores(self, model: nn.Module, calib: Iterable[Batch], linears: Sequence[nn.Linear],
                       desc: str) -> list[torch.Tensor]:
        return input_weighted_importance(model, calib, list(linears), desc)


LAYER_IMPORTANCES: dict[str, type[LayerImportance]] = {}


def register_layer_importance(cls: type[LayerImportance]) -> type[LayerImportance]:
    """Make a layer criterion available by its `name` (to `LayerPruningConfig.metric`)."""
    LAYER_IMPORTANCES[cls.name] = cls
    return cls


class LayerImportance(ABC):
    """How much the model would notice if a decoder layer were gone (lower = safer to remove)."""

    name: ClassVar[str]

    @abstractmethod
    def layer_scores(self, model: nn.Module, batches: Sequence[Batch],
                     candidates: Sequence[int] | None = None) -> dict[int, float]:
        """Score of each current layer position in `candidates` (all layers when None)."""


__all__ = [
    "LAYER_IMPORTANCES",
    "ChannelImportance",
    "InputWeightedImportance",
    "LayerImportance",
    "register_layer_importance",
]
