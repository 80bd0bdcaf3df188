"""Recovery after pruning: LoRA post-training on code-instruction pairs, merged into a plain checkpoint."""

from greenprune.recover.lora import (
    Pair,
    RecoveryConfig,
    RecoveryError,
    RecoveryResult,
    default_target_modules,
    load_pairs,
    recover,
    stdlib_pairs,
)

__all__ = [
    "Pair", "RecoveryConfig", "RecoveryError", "RecoveryResult", "default_target_modules", "load_pairs", "recover",
    "stdlib_pairs",
]
