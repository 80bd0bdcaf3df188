"""Recipes: one YAML file composing fine-tuning, pruning, quantisation, recovery, evaluation and measurement,
run resumably into a run folder, sequentially or one Ray task per grid point."""

from greenprune.recipe.executors import ExecutorError, RayExecutor, SequentialExecutor, make_executor
from greenprune.recipe.grid import Unit, expand
from greenprune.recipe.registry import REGISTRY, register_step
from greenprune.recipe.runner import load_run, resume_run, run_recipe
from greenprune.recipe.schema import Pipeline, Recipe, RecipeError, StepSpec, load_recipe, parse_recipe
from greenprune.recipe.steps import StepError
from greenprune.recipe.unit import run_unit
from greenprune.run_folder import RunError

__all__ = [
    "REGISTRY", "ExecutorError", "Pipeline", "RayExecutor", "Recipe", "RecipeError", "RunError", "SequentialExecutor",
    "StepError", "StepSpec", "Unit", "expand", "load_recipe", "load_run", "make_executor",
    "parse_recipe", "register_step", "resume_run", "run_recipe", "run_unit",
]
