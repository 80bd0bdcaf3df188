"""What `greenprune models` prints: each embedded alias with its architecture and size."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from greenprune.models.bundled import EMBEDDED, EmbeddedModelMissingError, tiny_config
from greenprune.models.config import num_layers


@dataclass(frozen=True)
class ModelInfo:
    alias: str
    description: str
    model_type: str | None
    layers: int | None
    hidden: int | None
    params: int | None  # backbone + embeddings, counted on the meta device (no weights read)
    available: bool
    note: str = ""


def _config_for(alias: str):
    from transformers import AutoConfig

    entry = EMBEDDED[alias]
    if entry.resolve is None:
        return tiny_config(alias)
    return AutoConfig.from_pretrained(entry.resolve())


def _count_params(config) -> int:
    from transformers import AutoModel

    with torch.device("meta"):
        model = AutoModel.from_config(config)
    # `parameters()` yields a tied tensor once, as measure.size counts it; a fresh model has no packed int8 layers.
    # (Not measure.size itself: models sit below measure, which reads the family table.)
    return sum(p.numel() for p in model.parameters())


def list_models() -> list[ModelInfo]:
    infos = []
    for alias, entry in EMBEDDED.items():
        try:
            config = _config_for(alias)
        except EmbeddedModelMissingError as exc:
            infos.append(ModelInfo(alias, entry.description, None, None, None, None, False, str(exc)))
            continue
        infos.append(
            ModelInfo(
                alias, entry.description, config.model_type, num_layers(config), config.hidden_size,
                _count_params(config), True,
            )
        )
    return infos
