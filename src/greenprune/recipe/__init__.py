"""Recipes: one YAML file composing fine-tuning, pruning, quantisation, recovery, evaluation and measurement,
run resumably into a run folder, sequentially or one Ray task per grid point."""

from greenprune.recipe.executors import ExecutorError, RayExecutor, SequentialExecutor, make_executor
from greenprune.recipe.runner import RunError, load_run, resume_run, run_recipe, run_unit
from greenprune.recipe.schema import Pipeline, Recipe, RecipeError, StepSpec, Unit, expand, load_recipe, parse_recipe
from greenprune.recipe.steps import REGISTRY, StepError, StepUnavailableError, register_step

__all__ = [
    "REGISTRY", "ExecutorError", "Pipeline", "RayExecutor", "Recipe", "RecipeError", "RunError", "SequentialExecutor",
    "StepError", "StepSpec", "StepUnavailableError", "Unit", "expand", "load_recipe", "load_run", "make_executor",
    "parse_recipe", "register_step", "resume_run", "run_recipe", "run_unit",
]
