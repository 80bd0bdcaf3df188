"""Run a recipe into a run folder, resumably: validate, check the inputs, create the folder, run every unit with an
executor, write the report. The folder's layout is `greenprune/run_folder.py`; one unit runs in `recipe/unit.py`.

A step writes into a temporary sibling folder renamed into place only when it finished, so a run killed
mid-step loses only that step; `--resume` replays finished steps from their checkpoints and records.
"""

from __future__ import annotations

import contextlib
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

from greenprune._utils import atomic_write_text
from greenprune.errors import GreenpruneError
from greenprune.recipe.executors import SequentialExecutor
from greenprune.recipe.grid import Unit, expand
from greenprune.recipe.options import EvaluateStep, RecoverStep, TruncationStep
from greenprune.recipe.paths import format_path
from greenprune.recipe.registry import REGISTRY
from greenprune.recipe.schema import Recipe, RecipeError, parse_recipe
from greenprune.recipe.steps import resolve_task
from greenprune.report import build_report
from greenprune.run_folder import RunError, check_writable_folder, new_run_dir, read_resolved, run_lock
from greenprune.structure.pipeline import StructureConfig
from greenprune.tasks.formats import looks_like_hub_id
from greenprune.tokens.config import AlpineConfig


def start_run(recipe: Recipe, text: str, root: str | os.PathLike[str] = "runs", source: str = "") -> Path:
    """Create the run folder with the recipe as written and as resolved."""
    units = expand(recipe)
    run_dir = new_run_dir(root, recipe.name)
    atomic_write_text(run_dir / "recipe.yaml", text)
    resolved = {
        "source": source,
        "recipe": recipe.model_dump(mode="json"),
        "units": [u.model_dump(mode="json") for u in units],
        "created": datetime.now().isoformat(timespec="seconds"),
    }
    atomic_write_text(run_dir / "resolved.json", json.dumps(resolved, indent=2) + "\n")
    return run_dir


def load_run(run_dir: str | os.PathLike[str]) -> tuple[Recipe, list[Unit]]:
    """The recipe and units a run folder was started with."""
    data = read_resolved(run_dir)
    recipe = Recipe.model_validate(data["recipe"])
    return recipe, [Unit.model_validate(u) for u in data["units"]]


def check_inputs(units: list[Unit], recipe: Recipe | None = None) -> None:
    """What validation alone cannot see, checked in seconds before the run folder exists: the model resolves (its
    config only, no weights), tasks are known, data paths exist, layer indices and counts fit the model, a
    truncation step has a changed stack to match on a classification task.

    Every problem is reported as `file:line: key path: message` (with `recipe` from `parse_recipe`).
    """
    from greenprune.models.config import model_config, num_layers

    problems: list[str] = []
    configs: dict[str, Any] = {}

    def where(unit: Unit, loc: tuple[str | int, ...]) -> str:
        text = recipe.where(unit.pipeline, loc, unit.point) if recipe is not None else f"{unit.id}: {format_path(loc)}"
        return text + (f" (grid point {unit.id})" if unit.point else "")

    def task_ok(unit: Unit, name: str, loc: tuple[str | int, ...]) -> Any:
        try:
            return resolve_task(name)
        except (GreenpruneError, KeyError, ValueError) as exc:
            problems.append(f"{where(unit, loc)}: {exc.args[0] if exc.args else exc}")  # KeyError's str() quotes
            return None

    def path_ok(unit: Unit, source: str, loc: tuple[str | int, ...], *, file_only: bool = False) -> None:
        path = Path(source).expanduser()
        if file_only and not path.is_file():
            problems.append(f"{where(unit, loc)}: {source}: no such file")
        elif not file_only and not path.exists() and not looks_like_hub_id(source):  # a hub id loads online
            problems.append(f"{where(unit, loc)}: {source}: no such file or folder")

    for unit in units:
        spec = unit.spec
        if spec.model not in configs:
            try:
                configs[spec.model] = model_config(spec.model)
            except GreenpruneError as exc:
                configs[spec.model] = None
                problems.append(f"{where(unit, ('model',))}: {exc}")
        task = task_ok(unit, spec.task, ("task",))
        if spec.data.source != "embedded":
            path_ok(unit, spec.data.source, ("data", "source"))
        config = configs[spec.model]
        n = num_layers(config) if config is not None else None
        for i, step in enumerate(spec.steps):
            opts = step.options
            if isinstance(opts, TruncationStep):
                changed = [j for j, s in enumerate(spec.steps[:i]) if REGISTRY[s.kind].modifies]
                # the stack's own evaluation, on the same examples and inputs, is what truncation is paired with
                since = spec.steps[changed[-1] + 1 : i] if changed else []
                evaluated = [s.options for s in since if isinstance(s.options, EvaluateStep)
                             and s.options.task in (None, spec.task) and s.options.label is None
                             and s.options.limit in (None, opts.limit)]
                if not changed:
                    problems.append(f"{where(unit, ('steps', i, 'truncation'))}: no changed stack to match before "
                                    "it; put truncation after alpine, structure or prune")
                elif not evaluated:
                    problems.append(f"{where(unit, ('steps', i, 'truncation'))}: evaluate the stack it is matched "
                                    "to first (an evaluate step after the last changing step, same limit, no label)")
                elif evaluated[-1].max_length not in (None, opts.max_length):
                    problems.append(f"{where(unit, ('steps', i, 'truncation', 'max_length'))}: {opts.max_length} "
                                    f"differs from the stack's evaluation ({evaluated[-1].max_length}); FLOPs are "
                                    "matched at the length the stack was evaluated at")
                if task is not None and getattr(task, "head", "") != "classification":
                    problems.append(f"{where(unit, ('steps', i, 'truncation'))}: task {spec.task!r} is not a "
                                    "classification task; truncation matches token pruning in encoders (clone, defect)")
            if isinstance(opts, EvaluateStep) and opts.task is not None:
                task_ok(unit, opts.task, ("steps", i, "evaluate", "task"))
            elif isinstance(opts, RecoverStep) and opts.data != "stdlib":
                path_ok(unit, opts.data, ("steps", i, "recover", "data"), file_only=True)
            elif isinstance(opts, AlpineConfig) and n is not None:
                bad = opts.out_of_range(n)
                if bad:
                    problems.append(f"{where(unit, ('steps', i, 'alpine', 'layers'))}: layer "
                                    f"{', '.join(map(str, bad))} is out of range for {spec.model} ({n} layers)")
            elif isinstance(opts, StructureConfig) and opts.layers and n is not None and opts.layers >= n:
                problems.append(f"{where(unit, ('steps', i, 'structure', 'layers'))}: cannot remove {opts.layers} "
                                f"layers of {spec.model} ({n} layers; at least one must stay)")
    if problems:
        raise RecipeError("\n".join(dict.fromkeys(problems)))


def run_recipe(
    recipe: Recipe | str | os.PathLike[str],
    *,
    root: str | os.PathLike[str] = "runs",
    executor: Any = None,
    command: str = "",
    report: bool = True,
) -> Path:
    """Validate, create a fresh run folder, run every unit with `executor` (sequential by default), write the report."""
    if isinstance(recipe, Recipe):
        text, source = json.dumps(recipe.model_dump(mode="json"), indent=2) + "\n", "<object>"
    else:
        source = str(recipe)
        path = Path(recipe)
        if not path.is_file():
            raise RecipeError(f"{path}: no such recipe file")
        text = path.read_text(encoding="utf-8")
        recipe = parse_recipe(text, source)
    check_writable_folder(root)  # before check_inputs loads model configs, and long before any step runs
    units = expand(recipe)
    check_inputs(units, recipe)
    run_dir = start_run(recipe, text, root, source)
    _execute(run_dir, units, executor, command, report)
    return run_dir


def resume_run(run_dir: str | os.PathLike[str], *, executor: Any = None, command: str = "", report: bool = True
               ) -> Path:
    """Continue a run after its last finished step (of every unit)."""
    run_dir = Path(run_dir)
    recipe, units = load_run(run_dir)
    check_writable_folder(run_dir, "run folder")
    with contextlib.suppress(GreenpruneError, OSError):  # the file as written, for file:line in preflight errors
        recipe = parse_recipe((run_dir / "recipe.yaml").read_text(encoding="utf-8"), str(run_dir / "recipe.yaml"))
    check_inputs(units, recipe)
    _execute(run_dir, units, executor, command, report)
    return run_dir


def _execute(run_dir: Path, units: list[Unit], executor: Any, command: str, report: bool) -> None:
    executor = executor or SequentialExecutor()
    with run_lock(run_dir):
        executor.run(run_dir, units, command)
        if report:
            build_report([run_dir], run_dir / "report")


__all__ = ["RunError", "check_inputs", "load_run", "resume_run", "run_recipe", "start_run"]
