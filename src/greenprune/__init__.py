"""greenprune: prune tokens, weights and structure of language models of code, and measure what it buys.

The public API is re-exported here; each area lives in its own subpackage (models, measure, tasks, tokens,
weights, structure, recover, recipe, report).
"""

from greenprune.errors import GreenpruneError
from greenprune.models import (
    LoadedModel,
    ModelLoadError,
    UnsupportedModelError,
    family_of,
    list_models,
    load_model,
)

__version__ = "0.1.0"

__all__ = [
    "GreenpruneError",
    "LoadedModel",
    "ModelLoadError",
    "UnsupportedModelError",
    "__version__",
    "family_of",
    "list_models",
    "load_model",
]
