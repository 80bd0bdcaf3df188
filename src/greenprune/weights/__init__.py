"""Weight pruning: masks beside weights, pluggable importance criteria (random / L1 / Wanda) selected globally, per
tensor or per row (unstructured, rows, heads, or N:M patterns), lottery-ticket rounds, and compact sparse
checkpoints."""

from greenprune.weights.criteria import CriterionError
from greenprune.weights.importance import Importance, register_importance
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
    "CriterionError", "Importance", "PruningReport", "TargetError", "TensorSparsity", "WeightPruningConfig",
    "apply_masks", "default_target_names", "dense_state_dict", "get_masks", "is_masked", "make_permanent",
    "masked_modules", "prune", "register_importance", "remove_masks", "resolve_targets", "sparsity_report",
]
