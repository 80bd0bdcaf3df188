"""Model hub: embedded aliases, local folders, GGUF files and hub ids → (model, tokenizer)."""

from greenprune.models.bundled import EMBEDDED, EmbeddedModelMissingError
from greenprune.models.families import (
    FAMILIES,
    Family,
    UnsupportedModelError,
    family_of,
    supported_model_types,
)
from greenprune.models.hub import HEADS, TASK_HEADS, LoadedModel, ModelLoadError, head_for, load_model
from greenprune.models.listing import ModelInfo, list_models

__all__ = [
    "EMBEDDED", "FAMILIES", "HEADS", "TASK_HEADS", "EmbeddedModelMissingError", "Family", "LoadedModel",
    "ModelInfo", "ModelLoadError", "UnsupportedModelError", "family_of", "head_for", "list_models", "load_model",
    "supported_model_types",
]
