"""The run folder on disk: where a recipe run keeps its units, step records and checkpoints.

The recipe runner writes this layout and the report reads it, so it lives below both (the report never imports the
recipe package):

    recipe.yaml             the recipe as written
    resolved.json           the validated recipe and its expanded units (what --resume runs)
    run.lock                held (filelock) by the one process running this folder; names its holder
    units/<unit>/unit.json  one concrete pipeline (grid point)
    units/<unit>/steps/NN-kind/record.json (+ model/ checkpoint)   one folder per finished step
    units/<unit>/emissions.csv                                      codecarbon's log for the unit
    report/                 report.md, report.html, plots/*.png

A step writes into a temporary sibling folder renamed into place only when it finished, so a run killed
mid-step loses only that step.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from filelock import FileLock, Timeout

from greenprune.errors import GreenpruneError
from greenprune.measure.records import Comparison, ResultRecord, load_json

STEP_DIR_RE = re.compile(r"^(\d{2,})-([a-z]+)$")
RESOLVED = "resolved.json"
LOCK = "run.lock"


class RunError(GreenpruneError, RuntimeError):
    """A run folder that cannot be used (locked by another process, not a run, inconsistent)."""


# ---------------------------------------------------------------- creating folders


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
    """Hold an exclusive lock on the run folder for as long as this process works in it.

    The lock file also names its holder (pid and host), so a refused second process can say who has the folder.
    """
    path = Path(run_dir) / LOCK
    lock = FileLock(path, timeout=0)
    try:
        lock.acquire()
    except Timeout as exc:
        try:
            owner = path.read_text(encoding="utf-8").strip()
        except OSError:
            owner = ""
        raise RunError(f"{run_dir}: the run folder is in use by {owner or 'another process'}; "
                       "wait for it or pick another") from exc
    try:
        path.write_text(f"pid {os.getpid()} on {os.uname().nodename}\n", encoding="utf-8")
        yield
    finally:
        lock.release()


# ---------------------------------------------------------------- reading a run


def unit_folder(run_dir: Path, unit: Any) -> Path:
    """The folder of a unit (anything with an `id`: a recipe Unit or a `UnitEntry`)."""
    return Path(run_dir) / "units" / re.sub(r"[^A-Za-z0-9._=@,+-]", "_", unit.id)


def read_resolved(run_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The contents of `resolved.json`: the validated recipe and its units, as plain data."""
    run_dir = Path(run_dir)
    path = run_dir / RESOLVED
    if not path.is_file():
        raise RunError(f"{run_dir}: not a greenprune run folder (no {RESOLVED})")
    return json.loads(path.read_text(encoding="utf-8"))


@dataclass(frozen=True)
class UnitEntry:
    """What a reader of the run folder needs of a unit: its id, pipeline, grid point and model."""

    id: str
    pipeline: str
    model: str
    point: dict[str, Any] = field(default_factory=dict)


def read_units(run_dir: str | os.PathLike[str]) -> list[UnitEntry]:
    """The units a run folder was started with, in recipe order (without validating the recipe again)."""
    data = read_resolved(run_dir)
    try:
        return [UnitEntry(id=u["id"], pipeline=u["pipeline"], model=u["spec"]["model"], point=dict(u.get("point", {})))
                for u in data["units"]]
    except (KeyError, TypeError) as exc:
        raise RunError(f"{Path(run_dir) / RESOLVED}: units are not in the expected form ({exc!r})") from exc


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


def clean_partial(unit_dir: Path) -> list[str]:
    """Remove what a killed step left behind (temporary step folders); returns their names."""
    removed = []
    steps_dir = unit_dir / "steps"
    if steps_dir.is_dir():
        for folder in steps_dir.iterdir():
            if folder.name.startswith(".") and folder.name.endswith(".tmp"):
                shutil.rmtree(folder, ignore_errors=True)
                removed.append(folder.name)
    return removed


__all__ = [
    "LOCK", "RESOLVED", "STEP_DIR_RE", "RunError", "StepResult", "UnitEntry", "check_writable_folder", "clean_partial",
    "finished_steps", "new_run_dir", "read_resolved", "read_units", "run_lock", "unit_folder",
]
