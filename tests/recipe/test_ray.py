from __future__ import annotations

import functools
import os

import pytest

from greenprune.recipe import RayExecutor, run_recipe
from greenprune.run_folder import finished_steps

from ._toy_import import toy

ray = pytest.importorskip("ray", reason="the `ray` extra is not installed (pip install 'greenprune[ray]')")

GRID = """\
name: toygrid
model: tiny-bert
task: toy
data: {size: 32}
energy: {track: false}
steps:
  - evaluate
  - measure: {batches: 1, batch_size: 4, max_length: 32, rounds: 1, energy: false}
  - prune: {sparsity: 0.5}
  - evaluate
  - measure: {batches: 1, batch_size: 4, max_length: 32, rounds: 1, energy: false}
grid:
  steps[2].prune.method: [l1, random]
"""


@pytest.fixture
def local_ray():
    """A local Ray instance owned by this test, with small resources."""
    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=80 * 1024 * 1024, log_to_driver=False,
             configure_logging=False)
    # ship the toy task by value: the workers cannot import the tests package
    ray.cloudpickle.register_pickle_by_value(toy)
    try:
        yield
    finally:
        ray.cloudpickle.unregister_pickle_by_value(toy)
        ray.shutdown()


@pytest.mark.ray
@pytest.mark.timeout(600)
def test_two_point_grid_on_local_ray_gives_one_merged_report(tmp_path, local_ray):
    toy.setup()  # the driver builds the report; the workers register it through worker_setup
    path = tmp_path / "grid.yaml"
    path.write_text(GRID)
    marks = tmp_path / "workers"
    executor = RayExecutor(worker_setup=functools.partial(toy.setup, mark_dir=str(marks)))
    run_dir = run_recipe(path, root=tmp_path / "runs", executor=executor)
    units = sorted(p.name for p in (run_dir / "units").iterdir())
    assert units == ["toygrid@method=l1", "toygrid@method=random"]
    for name in units:
        steps = finished_steps(run_dir / "units" / name)
        assert [s.kind for s in steps] == ["evaluate", "measure", "prune", "evaluate", "measure"]
    # both points ran in Ray worker processes, not in this one: one worker_setup call per point (a worker
    # process may serve both, so the calls are counted, not the pids)
    calls = [p.name.split("-")[0] for p in marks.iterdir()]
    assert len(calls) == 2 and str(os.getpid()) not in calls
    html = (run_dir / "report" / "report.html").read_text()
    md = (run_dir / "report" / "report.md").read_text()
    for name in units:
        assert name in html and name in md
    assert "l1-50%" in md and "random-50%" in md


CLI_GRID = """\
name: cligrid
model: tiny-bert
task: defect
data: {size: 40, limit_eval: 4}
energy: {track: false}
steps:
  - evaluate: {max_length: 32}
  - measure: {batches: 1, batch_size: 4, max_length: 32, rounds: 1, energy: false}
  - prune: {sparsity: 0.5}
  - evaluate: {max_length: 32}
  - measure: {batches: 1, batch_size: 4, max_length: 32, rounds: 1, energy: false}
grid:
  steps[2].prune.method: [l1, random]
"""


@pytest.mark.ray
@pytest.mark.timeout(600)
def test_cli_run_executor_ray_runs_each_grid_point_as_a_ray_task(tmp_path):
    """`greenprune run --executor ray` in its own process (it starts its own local Ray): one task per point."""
    import subprocess
    import sys

    path = tmp_path / "grid.yaml"
    path.write_text(CLI_GRID)
    runs = tmp_path / "runs"
    env = {**os.environ, "GREENPRUNE_NO_PROGRESS": "1", "RAY_ENABLE_UV_RUN_RUNTIME_ENV": "0"}
    proc = subprocess.run([sys.executable, "-m", "greenprune.cli", "run", str(path), "--executor", "ray",
                           "--runs-dir", str(runs)], capture_output=True, text=True, timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Started a local Ray instance" in proc.stderr  # the sequential executor never starts Ray
    (run_dir,) = runs.iterdir()
    units = sorted(p.name for p in (run_dir / "units").iterdir())
    assert units == ["cligrid@method=l1", "cligrid@method=random"]
    for name in units:
        steps = finished_steps(run_dir / "units" / name)
        assert [s.kind for s in steps] == ["evaluate", "measure", "prune", "evaluate", "measure"]
        assert steps[0].record.command == f"greenprune run {path} --executor ray --runs-dir {runs}"
    md = (run_dir / "report" / "report.md").read_text()
    assert "l1-50%" in md and "random-50%" in md
