"""Run a recipe into a run folder, resumably.

Layout of `runs/<name>-<time>/`:

    recipe.yaml             the recipe as written
    resolved.json           the validated recipe and its expanded units (what --resume runs)
    run.lock                held (flock) by the one process running this folder
    units/<unit>/unit.json  one concrete pipeline (grid point)
    units/<unit>/steps/NN-kind/record.json (+ model/ checkpoint)   one folder per finished step
    units/<unit>/emissions.csv                                      codecarbon's log for the unit
    report/                 report.md, report.html, plots/*.png

A step writes into a temporary sibling folder renamed into place only when it finished, so a run killed
mid-step loses only that step; `--resume` replays finished steps from their checkpoints and records.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from greenprune._utils import atomic_write_text
from greenprune.checkpoint import write_checkpoint
from greenprune.errors import GreenpruneError
from greenprune.measure.records import Comparison, ResultRecord, load_json, save_json
from greenprune.recipe.schema import (
    AlpineStep,
    EvaluateStep,
    Recipe,
    RecipeError,
    RecoverStep,
    StructureStep,
    Unit,
    expand,
    format_path,
    load_recipe,
    parse_recipe,
    step_labels,
)
from greenprune.recipe.steps import REGISTRY, State, StepContext, StepError, replay, resolve_task, snapshot_baseline

STEP_DIR_RE = re.compile(r"^(\d{2,})-([a-z]+)$")
log = logging.getLogger(__name__)


class RunError(GreenpruneError, RuntimeError):
    """A run folder that cannot be used (locked by another process, not a run, inconsistent)."""


# ---------------------------------------------------------------- folders and locks


def unit_folder(run_dir: Path, unit: Unit) -> Path:
    return run_dir / "units" / re.sub(r"[^A-Za-z0-9._=@,+-]", "_", unit.id)


def check_writable_folder(folder: str | os.PathLike[str], what: str = "runs folder") -> None:
    """Fail before any work if `folder` cannot be created or written: below a regular file, or read-only.

    Looks at the nearest part of the path that exists (that is where `mkdir` would have to write), so nothing is
    created here; `os.access` also sees read-only mounts.
    """
    folder = Path(folder)
    probe = folder
    while not probe.exists() and not probe.is_symlink() and probe.parent != probe:
        probe = probe.parent
    if probe.is_symlink() and not probe.exists():
        raise RunError(f"{what} {folder}: {probe} is a broken symbolic link")
    if not probe.is_dir():
        where = "is a file" if probe == folder else f"is below {probe}, which is a file"
        raise RunError(f"{what} {folder}: {where}, not a folder; pick another folder")
    if not os.access(probe, os.W_OK | os.X_OK):
        where = "is read-only" if probe == folder else f"cannot be created: {probe} is read-only"
        raise RunError(f"{what} {folder}: {where} for this user; pick a writable folder")


def new_run_dir(root: str | os.PathLike[str], name: str) -> Path:
    """A fresh `root/<name>-<time>` folder, created exclusively: two runs never get the same one."""
    root = Path(root)
    check_writable_folder(root)
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunError(f"runs folder {root}: cannot be created ({exc.strerror or exc})") from exc
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    for attempt in range(1000):
        path = root / (f"{name}-{stamp}" if attempt == 0 else f"{name}-{stamp}-{attempt}")
        try:
            path.mkdir()  # atomic: fails if another run created it first
        except FileExistsError:
            continue
        return path
    raise RunError(f"{root}: could not create a fresh run folder for {name!r}")


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold an exclusive lock on the run folder for as long as this process works in it."""
    path = run_dir / "run.lock"
    fh = open(path, "a+", encoding="utf-8")  # noqa: SIM115 — held for the whole block
    try:
        try:
            fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            fh.seek(0)
            owner = fh.read().strip() or "another process"
            raise RunError(f"{run_dir}: the run folder is in use by {owner}; wait for it or pick another") from exc
        fh.seek(0)
        fh.truncate()
        fh.write(f"pid {os.getpid()} on {os.uname().nodename}\n")
        fh.flush()
        yield
    finally:
        with contextlib.suppress(Exception):
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
        fh.close()


# ---------------------------------------------------------------- records of a unit


@dataclass
class StepResult:
    index: int
    kind: str
    folder: Path
    record: ResultRecord | Comparison


def finished_steps(unit_dir: Path) -> list[StepResult]:
    """The steps of a unit that finished (their folder was renamed into place), in order."""
    steps_dir = unit_dir / "steps"
    out: list[StepResult] = []
    if not steps_dir.is_dir():
        return out
    for folder in sorted(steps_dir.iterdir()):
        m = STEP_DIR_RE.match(folder.name)
        if not m or not (folder / "record.json").is_file():
            continue
        record = load_json(folder / "record.json")
        if isinstance(record, list):
            raise RunError(f"{folder / 'record.json'}: expected one record, found a list")
        out.append(StepResult(int(m.group(1)), m.group(2), folder, record))
    return out


def _clean_partial(unit_dir: Path) -> list[str]:
    """Remove what a killed step left behind (temporary step folders)."""
    removed = []
    steps_dir = unit_dir / "steps"
    if steps_dir.is_dir():
        for folder in steps_dir.iterdir():
            if folder.name.startswith(".") and folder.name.endswith(".tmp"):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
    return removed


# ---------------------------------------------------------------- one unit


def _load_state(unit: Unit) -> State:
    from greenprune.models import load_model

    spec = unit.spec
    task = resolve_task(spec.task)
    seed = spec.data.seed if spec.data.seed is not None else unit.seed
    splits = task.embedded(size=spec.data.size, seed=seed) if spec.data.source == "embedded" else task.load(
        spec.data.source)
    loaded = load_model(spec.model, task=getattr(task, "head", None) or spec.task)
    return State(unit=unit, model=loaded.model, tokenizer=loaded.tokenizer, task=task, splits=splits)


@contextlib.contextmanager
def _emissions(unit: Unit, unit_dir: Path) -> Iterator[None]:
    """codecarbon's emissions log for the whole unit (appended to on resume)."""
    if not unit.track_energy:
        yield
        return
    tracker = None
    try:
        from codecarbon import OfflineEmissionsTracker

        logging.getLogger("codecarbon").setLevel(logging.ERROR)
        tracker = OfflineEmissionsTracker(
            country_iso_code=unit.country, output_dir=str(unit_dir), output_file="emissions.csv", save_to_file=True,
            project_name=unit.id, log_level="error", allow_multiple_runs=True, tracking_mode="process",
        )
        tracker.start()
    except Exception as exc:
        log.warning("codecarbon unavailable for %s: %s", unit.id, exc)
        tracker = None
    try:
        yield
    finally:
        if tracker is not None:
            with contextlib.suppress(Exception):
                tracker.stop()


def run_unit(run_dir: str | os.PathLike[str], unit: Unit, command: str = "", *, progress: bool = True) -> Path:
    """Run (or continue) one unit in its folder; returns the folder. Finished steps are replayed, not redone."""
    from transformers import set_seed

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
    removed = _clean_partial(unit_dir)
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
    with _emissions(unit, unit_dir):
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


# ---------------------------------------------------------------- whole runs


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
    run_dir = Path(run_dir)
    path = run_dir / "resolved.json"
    if not path.is_file():
        raise RunError(f"{run_dir}: not a greenprune run folder (no resolved.json)")
    data = json.loads(path.read_text(encoding="utf-8"))
    recipe = Recipe.model_validate(data["recipe"])
    return recipe, [Unit.model_validate(u) for u in data["units"]]


def preflight(units: list[Unit], recipe: Recipe | None = None) -> None:
    """Fail before any work if a step's area is missing from this installation, or (see `check_inputs`) if a
    model, task, data path or layer range of the recipe cannot work."""
    import importlib

    problems = []
    for unit in units:
        for i, step in enumerate(unit.spec.steps):
            area = REGISTRY[step.kind].area
            try:
                importlib.import_module(area)
            except ImportError as exc:
                problems.append(f"{unit.id}: steps[{i}].{step.kind} needs {area}, which is not available ({exc})")
    if problems:
        raise RunError("cannot run this recipe here:\n" + "\n".join(sorted(set(problems))))
    check_inputs(units, recipe)


def _looks_like_hub_id(source: str) -> bool:
    try:
        from greenprune.tasks.formats import looks_like_hub_id
    except ImportError:
        return False
    return looks_like_hub_id(source)


def check_inputs(units: list[Unit], recipe: Recipe | None = None) -> None:
    """What validation alone cannot see, checked in seconds before the run folder exists: the model resolves (its
    config only, no weights), tasks are known, data paths exist, layer indices and counts fit the model.

    Every problem is reported as `file:line: key path: message` (with `recipe` from `parse_recipe`).
    """
    from greenprune.models.config import model_config, num_layers

    problems: list[str] = []
    configs: dict[str, Any] = {}

    def where(unit: Unit, loc: tuple[str | int, ...]) -> str:
        text = recipe.where(unit.pipeline, loc, unit.point) if recipe is not None else f"{unit.id}: {format_path(loc)}"
        return text + (f" (grid point {unit.id})" if unit.point else "")

    def task_ok(unit: Unit, name: str, loc: tuple[str | int, ...]) -> None:
        try:
            resolve_task(name)
        except (GreenpruneError, KeyError, ValueError) as exc:
            problems.append(f"{where(unit, loc)}: {exc.args[0] if exc.args else exc}")  # KeyError's str() quotes

    def path_ok(unit: Unit, source: str, loc: tuple[str | int, ...], *, file_only: bool = False) -> None:
        path = Path(source).expanduser()
        if file_only and not path.is_file():
            problems.append(f"{where(unit, loc)}: {source}: no such file")
        elif not file_only and not path.exists() and not _looks_like_hub_id(source):  # a hub id loads online
            problems.append(f"{where(unit, loc)}: {source}: no such file or folder")

    for unit in units:
        spec = unit.spec
        if spec.model not in configs:
            try:
                configs[spec.model] = model_config(spec.model)
            except GreenpruneError as exc:
                configs[spec.model] = None
                problems.append(f"{where(unit, ('model',))}: {exc}")
        task_ok(unit, spec.task, ("task",))
        if spec.data.source != "embedded":
            path_ok(unit, spec.data.source, ("data", "source"))
        config = configs[spec.model]
        n = num_layers(config) if config is not None else None
        for i, step in enumerate(spec.steps):
            opts = step.options
            if isinstance(opts, EvaluateStep) and opts.task is not None:
                task_ok(unit, opts.task, ("steps", i, "evaluate", "task"))
            elif isinstance(opts, RecoverStep) and opts.data != "stdlib":
                path_ok(unit, opts.data, ("steps", i, "recover", "data"), file_only=True)
            elif isinstance(opts, AlpineStep) and not isinstance(opts.layers, str) and n is not None:
                from greenprune.tokens.config import AlpineConfig

                bad = AlpineConfig(layers=opts.layers).out_of_range(n)
                if bad:
                    problems.append(f"{where(unit, ('steps', i, 'alpine', 'layers'))}: layer "
                                    f"{', '.join(map(str, bad))} is out of range for {spec.model} ({n} layers)")
            elif isinstance(opts, StructureStep) and opts.layers and n is not None and opts.layers >= n:
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
    check_writable_folder(root)  # before the preflight loads model configs, and long before any step runs
    units = expand(recipe)
    preflight(units, recipe)
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
    preflight(units, recipe)
    _execute(run_dir, units, executor, command, report)
    return run_dir


def _execute(run_dir: Path, units: list[Unit], executor: Any, command: str, report: bool) -> None:
    from greenprune.recipe.executors import SequentialExecutor

    executor = executor or SequentialExecutor()
    with run_lock(run_dir):
        executor.run(run_dir, units, command)
        if report:
            from greenprune.report import build_report

            build_report([run_dir], run_dir / "report")


__all__ = [
    "RunError", "StepResult", "check_inputs", "check_writable_folder", "finished_steps", "load_recipe", "load_run",
    "new_run_dir", "preflight", "resume_run", "run_lock", "run_recipe", "run_unit", "start_run", "unit_folder",
]
