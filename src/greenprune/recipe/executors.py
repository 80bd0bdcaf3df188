"""Where the units (grid points) of a run execute: one after another here, or one Ray task each on a cluster.

Every executor writes into the same run folder layout, so the report is built the same way afterwards; on Ray the
run folder must be on storage the workers share (a local Ray instance, or a shared filesystem on a cluster).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from greenprune._utils import progress, quiet_libraries
from greenprune.errors import GreenpruneError
from greenprune.recipe.grid import Unit
from greenprune.recipe.unit import run_unit


class ExecutorError(GreenpruneError, RuntimeError):
    """An executor that cannot start (Ray missing or unreachable) or a unit that failed on it."""


class SequentialExecutor:
    """Run units in this process, in recipe order."""

    name = "sequential"

    def run(self, run_dir: Path, units: list[Unit], command: str = "") -> list[Path]:
        return [run_unit(run_dir, unit, command) for unit in units]


def _ray_unit(run_dir: str, unit_json: str, command: str, setup: Callable[[], None] | None) -> str:
    """Body of one Ray task: run one unit in the shared run folder and return its folder."""
    os.environ.setdefault("GREENPRUNE_NO_PROGRESS", "1")  # workers' stderr is interleaved: keep it readable
    quiet_libraries()
    if setup is not None:
        setup()
    return str(run_unit(Path(run_dir), Unit.model_validate_json(unit_json), command, progress=False))


class RayExecutor:
    """One Ray task per unit; results gathered when all finish. `address=None` joins a running local instance
    (or starts one); `address="auto"` / `"ray://host:10001"` joins a cluster. `worker_setup` runs in each task
    before its unit (e.g. to register custom tasks or steps on the workers)."""

    name = "ray"

    def __init__(self, address: str | None = None, num_cpus_per_task: float = 1.0,
                 init_kwargs: dict[str, Any] | None = None, worker_setup: Callable[[], None] | None = None) -> None:
        self.address = address
        self.worker_setup = worker_setup
        self.num_cpus_per_task = num_cpus_per_task
        self.init_kwargs = init_kwargs or {}

    def _ray(self) -> Any:
        try:
            import ray
        except ImportError as exc:
            raise ExecutorError("--executor ray needs Ray: pip install 'greenprune[ray]'") from exc
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False, **self.init_kwargs)
            except Exception as exc:
                raise ExecutorError(f"could not connect to Ray at {self.address or 'a local instance'}: {exc}") from exc
        return ray

    def run(self, run_dir: Path, units: list[Unit], command: str = "") -> list[Path]:
        ray = self._ray()
        task = ray.remote(num_cpus=self.num_cpus_per_task, max_retries=0)(_ray_unit)
        folder = str(Path(run_dir).resolve())
        refs = {task.remote(folder, u.model_dump_json(), command, self.worker_setup): u for u in units}
        done: list[Path] = []
        failures: list[str] = []
        pending = list(refs)
        bar = progress(range(len(refs)), desc="ray units", total=len(refs))
        it = iter(bar)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    done.append(Path(ray.get(ref)))
                except Exception as exc:
                    cause = getattr(exc, "cause", None) or exc
                    failures.append(f"{refs[ref].id}: {type(cause).__name__}: {cause}")
                next(it, None)
        if failures:
            raise ExecutorError("units failed on Ray:\n" + "\n".join(failures))
        return done


def make_executor(name: str, address: str | None = None) -> SequentialExecutor | RayExecutor:
    if name == "sequential":
        if address:
            raise ExecutorError("--address only applies to --executor ray")
        return SequentialExecutor()
    if name == "ray":
        return RayExecutor(address=address)
    raise ExecutorError(f"unknown executor {name!r}; expected sequential or ray")
