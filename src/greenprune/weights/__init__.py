"""Weight pruning: masks beside weights, random / L1 criteria (global or per tensor; unstructured, rows, heads),
lottery-ticket rounds, and compact sparse checkpoints."""

from greenprune.weights.criteria import CriterionError
from greenprune.weights.masks import (
    apply_masks,
    dense_state_dict,
    get_masks,
    is_masked,
    make_permanent,
    masked_modules,
    remove_masks,
)
from greenprune.weights.prune import PruningReport, TensorSparsity, WeightPruningConfig, prune, sparsity_report
from greenprune.weights.targets import TargetError, default_target_names, resolve_targets

__all__ = [
    "CriterionError", "PruningReport", "TargetError", "TensorSparsity", "WeightPruningConfig", "apply_masks",
    "default_target_names", "dense_state_dict", "get_masks", "is_masked", "make_permanent", "masked_modules",
    "prune", "remove_masks", "resolve_targets", "sparsity_report",
]
