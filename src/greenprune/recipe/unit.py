"""Run one unit (one grid point) in its folder of the run: what every executor calls, here or on a Ray worker.

Finished steps are replayed from their records and checkpoints, not redone; a step writes into a temporary folder
renamed into place only when it finished.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from transformers import set_seed

from greenprune._utils import atomic_write_text
from greenprune.checkpoint import write_checkpoint
from greenprune.measure.energy import emissions_log
from greenprune.measure.records import Comparison, ResultRecord, save_json
from greenprune.recipe.grid import Unit
from greenprune.recipe.registry import REGISTRY
from greenprune.recipe.schema import step_labels
from greenprune.recipe.steps import State, StepContext, StepError, replay, resolve_task, snapshot_baseline
from greenprune.run_folder import RunError, clean_partial, finished_steps, unit_folder

log = logging.getLogger(__name__)


def _load_state(unit: Unit) -> State:
    from greenprune.models import load_model

    spec = unit.spec
    task = resolve_task(spec.task)
    seed = spec.data.seed if spec.data.seed is not None else unit.seed
    splits = task.embedded(size=spec.data.size, seed=seed) if spec.data.source == "embedded" else task.load(
        spec.data.source)
    loaded = load_model(spec.model, task=getattr(task, "head", None) or spec.task)
    return State(unit=unit, model=loaded.model, tokenizer=loaded.tokenizer, task=task, splits=splits)


def run_unit(run_dir: str | os.PathLike[str], unit: Unit, command: str = "", *, progress: bool = True) -> Path:
    """Run (or continue) one unit in its folder; returns the folder. Finished steps are replayed, not redone."""
    from greenprune._utils import progress as bar

    run_dir = Path(run_dir)
    unit_dir = unit_folder(run_dir, unit)
    unit_dir.mkdir(parents=True, exist_ok=True)
    unit_json = unit_dir / "unit.json"
    if unit_json.is_file():
        stored = Unit.model_validate_json(unit_json.read_text(encoding="utf-8"))
        if stored.model_dump() != unit.model_dump():
            raise RunError(f"{unit_json}: this folder holds a different pipeline than {unit.id!r}; not resuming")
    else:
        atomic_write_text(unit_json, unit.model_dump_json(indent=2) + "\n")
    removed = clean_partial(unit_dir)
    if removed:
        log.warning("%s: discarded unfinished step(s) %s", unit.id, ", ".join(removed))
    done = finished_steps(unit_dir)
    steps = unit.spec.steps
    labels = step_labels(steps)
    for i, result in enumerate(done):
        if result.index != i or result.kind != steps[i].kind:
            raise RunError(f"{result.folder}: does not match step {i} ({steps[i].kind}) of {unit.id!r}")
    if len(done) == len(steps) and (unit_dir / "DONE").is_file():
        return unit_dir

    set_seed(unit.seed)
    state = _load_state(unit)
    width = max(2, len(str(len(steps) - 1)))
    with emissions_log(unit_dir, country=unit.country, project_name=unit.id, enabled=unit.track_energy):
        for i in bar(range(len(steps)), desc=f"{unit.id}", total=len(steps), disable=None if progress else True):
            step = steps[i]
            kind = REGISTRY[step.kind]
            name = f"{i:0{width}d}-{step.kind}"
            ctx = StepContext(index=i, label=labels[i], out_dir=unit_dir / "steps" / name, run_dir=run_dir,
                              command=command)
            if i < len(done):
                replay(state, step, ctx, done[i].record)
                continue
            if kind.modifies:
                snapshot_baseline(state)
            set_seed(unit.seed + i)
            start = time.perf_counter()
            with write_checkpoint(ctx.out_dir, "recipe-step", option="step folder") as tmp:
                ctx.out_dir = tmp
                try:
                    output = kind.run(state, step.options, ctx)
                except StepError as exc:
                    raise StepError(f"{unit.id}: step {i} ({step.kind}): {exc}") from exc
                _note(output.record, f"step {i} ({step.kind}) took {time.perf_counter() - start:.1f}s")
                save_json(output.record, tmp / "record.json")
            ctx.out_dir = unit_dir / "steps" / name
    atomic_write_text(unit_dir / "DONE", f"{len(steps)} steps\n")
    return unit_dir


def _note(record: ResultRecord | Comparison, text: str) -> None:
    target = record.candidate if isinstance(record, Comparison) else record
    target.notes.append(text)


__all__ = ["run_unit"]
