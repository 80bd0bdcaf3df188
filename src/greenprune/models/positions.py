"""How many token positions a loaded model has, and a check that a requested sequence length fits.

Past that limit a model does not fail in one clear way: BERT-like encoders crash deep inside the embeddings
("size of tensor a (600) must match ... (512)"), and rotary decoders run on positions they were never trained on
and quietly return worse scores. Checking once after loading turns both into a message naming model and limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from greenprune.errors import GreenpruneError


class SequenceLengthError(GreenpruneError, ValueError):
    """A sequence length longer than the model's position embeddings; the message names option, model and limit."""


@dataclass(frozen=True)
class PositionLimit:
    """Usable positions and where the number comes from (for the message)."""

    positions: int
    why: str


def position_limit(model: nn.Module) -> PositionLimit | None:
    """The most tokens one sequence may have for `model`, or None when its config sets no limit (e.g. T5).

    `max_position_embeddings` of the config (or of its encoder / text config), less the padding offset of
    RoBERTa-style learned positions, which start counting after the padding index (514 → 512 usable).
    """
    config = getattr(model, "config", None)
    limit: int | None = None
    why = ""
    for cfg in (config, getattr(config, "encoder", None), getattr(config, "text_config", None)):
        value = getattr(cfg, "max_position_embeddings", None) if cfg is not None else None
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            limit, why = value, f"max_position_embeddings {value} of its {getattr(cfg, 'model_type', '?')} config"
            break
    if limit is None:
        return None
    for name, module in model.named_modules():
        if name.endswith("position_embeddings") and isinstance(module, nn.Embedding) and module.padding_idx is not None:
            usable = module.num_embeddings - module.padding_idx - 1
            if usable < limit:
                limit, why = usable, f"{why}, less the padding offset {module.padding_idx + 1} of its learned positions"
    return PositionLimit(limit, why)


def check_sequence_length(model: nn.Module, length: int, *, option: str, name: Any) -> None:
    """Raise SequenceLengthError when `length` tokens (the value of `option`) exceed `model`'s positions."""
    limit = position_limit(model)
    if limit is not None and length > limit.positions:
        raise SequenceLengthError(
            f"{option} {length} is longer than {name} can take: {limit.positions} positions ({limit.why}); "
            f"use {option} {limit.positions} or less"
        )
