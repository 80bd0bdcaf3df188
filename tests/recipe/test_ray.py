from __future__ import annotations

import functools
import os

import pytest

from greenprune.recipe import RayExecutor, run_recipe
from greenprune.recipe.runner import finished_steps

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
