"""greenprune: prune tokens, weights and structure of language models of code, and measure what it buys.

The public API is re-exported here; each area lives in its own subpackage (models, measure, tasks, tokens,
weights, structure, recover, recipe, report).
"""

from greenprune.errors import GreenpruneError
from greenprune.models import LoadedModel, ModelLoadError, UnsupportedModelError, family_of, list_models, load_model
from greenprune.quantize import compare_quantized, quantize
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
from greenprune.recover import Pair, RecoveryConfig, RecoveryResult, load_pairs, recover, stdlib_pairs
from greenprune.report import Report, build_report
from greenprune.structure import (
    FFNPruningConfig,
    KVGroupPruningConfig,
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
from greenprune.tasks import TASKS, Example, FinetuneResult, Splits, Task, TaskDataError, TrainConfig, get_task
from greenprune.tokens import AlpineConfig, AlpineError, AlpineHandle, LengthTrace, plot_trace
from greenprune.tokens import attach as attach_alpine
from greenprune.tokens import detach as detach_alpine
from greenprune.weights import PruningReport, WeightPruningConfig, make_permanent, prune, sparsity_report
from greenprune.weights.lottery import LotteryConfig, LotteryResult, run_lottery
from greenprune.weights.sparse_io import load_sparse, save_sparse

__version__ = "0.1.0"

__all__ = [
    "TASKS",
    "AlpineConfig",
    "AlpineError",
    "AlpineHandle",
    "Example",
    "FFNPruningConfig",
    "FinetuneResult",
    "GreenpruneError",
    "KVGroupPruningConfig",
    "LayerPruningConfig",
    "LengthTrace",
    "LoadedModel",
    "LotteryConfig",
    "LotteryResult",
    "ModelLoadError",
    "Pair",
    "PruningReport",
    "RayExecutor",
    "Recipe",
    "RecipeError",
    "RecoveryConfig",
    "RecoveryResult",
    "Report",
    "RunError",
    "SequentialExecutor",
    "Splits",
    "Task",
    "TaskDataError",
    "TrainConfig",
    "UnsupportedModelError",
    "VocabPruningConfig",
    "WeightPruningConfig",
    "__version__",
    "attach_alpine",
    "build_report",
    "calibration_batches",
    "compare_quantized",
    "detach_alpine",
    "family_of",
    "get_task",
    "layer_scores",
    "list_models",
    "load_model",
    "load_pairs",
    "load_recipe",
    "load_sparse",
    "make_permanent",
    "parse_recipe",
    "plot_trace",
    "prune",
    "prune_ffn",
    "prune_kv_groups",
    "prune_layers",
    "prune_vocab",
    "quantize",
    "recover",
    "register_step",
    "remove_layers",
    "resume_run",
    "run_lottery",
    "run_recipe",
    "save_sparse",
    "sparsity_report",
    "stdlib_pairs",
]
