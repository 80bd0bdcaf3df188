"""Structural pruning of LMs of code: vocabulary (exact tokenisation), decoder layers, FFN neurons, KV groups.

Each step works in place on a Hugging Face model and leaves a plain model + config that `from_pretrained`
reloads without greenprune.
"""

from greenprune.structure.calibration import CalibrationError, calibration_batches, stdlib_code
from greenprune.structure.ffn import FFNPruningConfig, FFNPruningError, FFNPruningResult, ffn_scores, prune_ffn
from greenprune.structure.heads import KVGroupPruningConfig, KVGroupPruningError, KVGroupPruningResult, prune_kv_groups
from greenprune.structure.layers import (
    LayerPruningConfig,
    LayerPruningError,
    LayerPruningResult,
    layer_scores,
    prune_layers,
    remove_layers,
)
from greenprune.structure.tokenizer import VocabPruningConfig, VocabPruningError
from greenprune.structure.vocab import VocabPruningResult, prune_vocab

__all__ = [
    "CalibrationError", "FFNPruningConfig", "FFNPruningError", "FFNPruningResult", "KVGroupPruningConfig",
    "KVGroupPruningError", "KVGroupPruningResult", "LayerPruningConfig", "LayerPruningError", "LayerPruningResult",
    "VocabPruningConfig", "VocabPruningError", "VocabPruningResult", "calibration_batches", "ffn_scores",
    "layer_scores", "prune_ffn", "prune_kv_groups", "prune_layers", "prune_vocab", "remove_layers", "stdlib_code",
]
