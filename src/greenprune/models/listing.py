"""What `greenprune models` prints: each embedded alias with its architecture and size."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from greenprune.models.embedded import EMBEDDED, EmbeddedModelMissingError, tiny_config


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
    # a float model just built: parameters() yields tied weights once, which is all measure's counter adds here
    # (models sit below measure, so they do not import it)
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
                alias, entry.description, config.model_type, config.num_hidden_layers, config.hidden_size,
                _count_params(config), True,
            )
        )
    return infos
