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

# --- weights & quantize (issue #5) ---
from greenprune.quantize import compare_quantized, quantize
from greenprune.weights import PruningReport, WeightPruningConfig, make_permanent, prune, sparsity_report
from greenprune.weights.lottery import LotteryConfig, LotteryResult, run_lottery
from greenprune.weights.sparse_io import load_sparse, save_sparse

# --- end weights & quantize ---

# --- recipes & reports (issue #7) ---
# isort: split
from greenprune.recipe import (
    RayExecutor,
    Recipe,
    RecipeError,
    RunError,
    SequentialExecutor,
    load_recipe,
    parse_recipe,
    register_step,
    resume_run,
    run_recipe,
)
from greenprune.report import Report, build_report

# --- end recipes & reports ---

# --- tasks & data (issue #3) ---
# isort: split
from greenprune.tasks import TASKS, Example, FinetuneResult, Splits, Task, TaskDataError, TrainConfig, get_task

# --- end tasks & data ---

# --- structure & recover (issue #6) ---
# isort: split
from greenprune.recover import Pair, RecoveryConfig, RecoveryResult, load_pairs, recover, stdlib_pairs
from greenprune.structure import (
    FFNPruningConfig,
    HeadPruningConfig,
    LayerPruningConfig,
    VocabPruningConfig,
    calibration_batches,
    layer_scores,
    prune_ffn,
    prune_kv_groups,
    prune_layers,
    prune_vocab,
    remove_layers,
)

# --- end structure & recover ---

# --- tokens: ALPINE (issue #4) ---
# isort: split
from greenprune.tokens import AlpineConfig, AlpineError, AlpineHandle, LengthTrace, plot_trace
from greenprune.tokens import attach as attach_alpine
from greenprune.tokens import detach as detach_alpine

# --- end tokens ---

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

# weights & quantize (issue #5)
__all__ += [
    "LotteryConfig", "LotteryResult", "PruningReport", "WeightPruningConfig", "compare_quantized", "load_sparse",
    "make_permanent", "prune", "quantize", "run_lottery", "save_sparse", "sparsity_report",
]

# tasks & data (issue #3)
__all__ += ["TASKS", "Example", "FinetuneResult", "Splits", "Task", "TaskDataError", "TrainConfig", "get_task"]

# structure & recover (issue #6)
__all__ += [
    "FFNPruningConfig", "HeadPruningConfig", "LayerPruningConfig", "Pair", "RecoveryConfig", "RecoveryResult",
    "VocabPruningConfig", "calibration_batches", "layer_scores", "load_pairs", "prune_ffn", "prune_kv_groups",
    "prune_layers", "prune_vocab", "recover", "remove_layers", "stdlib_pairs",
]

# recipes & reports (issue #7)
__all__ += [
    "RayExecutor", "Recipe", "RecipeError", "Report", "RunError", "SequentialExecutor", "build_report", "load_recipe",
    "parse_recipe", "register_step", "resume_run", "run_recipe",
]

# tokens: ALPINE (issue #4)
__all__ += [
    "AlpineConfig", "AlpineError", "AlpineHandle", "LengthTrace", "attach_alpine", "detach_alpine", "plot_trace",
]
