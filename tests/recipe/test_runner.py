from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from greenprune.measure.records import Comparison, ResultRecord
from greenprune.recipe import RecipeError, RunError, resume_run, run_recipe
from greenprune.run_folder import finished_steps, new_run_dir, run_lock

from ._toy_import import toy

RECIPE = toy.RECIPE


@pytest.fixture(autouse=True)
def _toy_task():
    toy.setup()


def _records(run_dir: Path) -> list[ResultRecord | Comparison]:
    unit_dir = next((run_dir / "units").iterdir())
    return [s.record for s in finished_steps(unit_dir)]


def _stable(record: ResultRecord | Comparison) -> object:
    """What must be identical between two runs of the same recipe (not timings, dates or notes)."""
    if isinstance(record, Comparison):
        return (_stable(record.baseline), _stable(record.candidate))
    cost = record.cost
    return (record.method, record.config, record.task, {k: v for k, v in record.metrics.items()
                                                         if not k.endswith("_seconds")},
            None if cost is None else (cost.params_total, cost.flops_per_sample, cost.tokens))


@pytest.fixture(scope="module")
def toy_run(tmp_path_factory) -> Path:
    """One uninterrupted run of the toy recipe, shared by the tests of this module."""
    toy.setup()
    folder = tmp_path_factory.mktemp("uninterrupted")
    (folder / "toy.yaml").write_text(RECIPE)
    return run_recipe(folder / "toy.yaml", root=folder / "runs")


def test_run_writes_folder_records_checkpoints_and_report(toy_run):
    run_dir = toy_run
    assert run_dir.parent.name == "runs" and run_dir.name.startswith("toyrun-")
    assert (run_dir / "recipe.yaml").read_text() == RECIPE
    resolved = json.loads((run_dir / "resolved.json").read_text())
    assert resolved["units"][0]["id"] == "toyrun"
    unit_dir = run_dir / "units" / "toyrun"
    steps = finished_steps(unit_dir)
    assert [s.kind for s in steps] == ["finetune", "evaluate", "measure", "alpine", "prune", "evaluate", "measure"]
    # the fine-tuned and the pruned model are plain HF checkpoints
    from transformers import AutoModelForSequenceClassification

    pruned = AutoModelForSequenceClassification.from_pretrained(steps[4].folder / "model")
    zeros = sum(int((p == 0).sum()) for n, p in pruned.named_parameters() if "encoder" in n and "weight" in n)
    assert zeros > 0
    base, cand = steps[2].record, steps[6].record
    assert isinstance(base, ResultRecord) and base.method == "baseline" and base.cost is not None
    assert isinstance(cand, Comparison) and cand.candidate.config["label"] == "alpine(even)+l1-30%"
    assert "accuracy" in cand.candidate.metrics and "accuracy" in cand.baseline.metrics
    assert cand.ratios["flops_per_sample"] < 1.0  # ALPINE on even layers shortens later layers
    seq = [cand.candidate.metrics[f"profile.seq_len.L{i:02d}"] for i in range(4)]
    assert seq[1] < seq[0]
    assert cand.candidate.metrics["profile.sparsity.L00"] > 0.2
    assert (run_dir / "report" / "report.html").is_file() and (run_dir / "report" / "report.md").is_file()
    assert (unit_dir / "DONE").is_file()


def test_killed_mid_step_resumes_to_the_same_records(tmp_path, toy_run):
    path = tmp_path / "toy.yaml"
    path.write_text(RECIPE)
    reference = toy_run

    # a real SIGKILL in the middle of step 4 (prune), after it wrote part of its output
    script = f"""
import os, signal, sys
import runpy
toy = runpy.run_path({str(Path(__file__).with_name("_toy_import.py"))!r})["toy"]
toy.setup()
from greenprune.recipe import steps, run_recipe
original = steps.REGISTRY["prune"].run
def dying(state, opts, ctx):
    original(state, opts, ctx)  # writes its checkpoint into the temporary folder
    os.kill(os.getpid(), signal.SIGKILL)
steps.register_step("prune", dying, "checkpoint", modifies=True)
run_recipe({str(path)!r}, root={str(tmp_path / "killed")!r}, report=False)
"""
    env = {**os.environ, "GREENPRUNE_NO_PROGRESS": "1"}
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == -9, proc.stderr[-2000:]
    killed = next((tmp_path / "killed").iterdir())
    unit_dir = killed / "units" / "toyrun"
    assert [s.kind for s in finished_steps(unit_dir)] == ["finetune", "evaluate", "measure", "alpine"]
    leftovers = [p.name for p in (unit_dir / "steps").iterdir() if p.name.startswith(".")]
    assert leftovers and all(name.startswith(".04-prune.") for name in leftovers)
    before = [s.record.model_dump() for s in finished_steps(unit_dir)]

    resume_run(killed, report=False)
    after = _records(killed)
    assert [r.model_dump() for r in after[:4]] == before  # finished steps are kept, not redone
    assert not [p for p in (unit_dir / "steps").iterdir() if p.name.startswith(".")]
    assert [_stable(r) for r in after] == [_stable(r) for r in _records(reference)]


def test_two_runs_never_share_a_folder_and_a_locked_run_is_refused(tmp_path):
    first, second = new_run_dir(tmp_path, "same"), new_run_dir(tmp_path, "same")
    assert first != second and first.is_dir() and second.is_dir()
    (first / "resolved.json").write_text("{}")
    with run_lock(first):
        code = f"""
import sys
from pathlib import Path
from greenprune.run_folder import run_lock, RunError
try:
    with run_lock(Path({str(first)!r})):
        sys.exit(0)
except RunError as exc:
    print(exc)
    sys.exit(3)
"""
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 3 and "in use by pid" in proc.stdout


def test_resume_of_a_non_run_folder_fails_clearly(tmp_path):
    with pytest.raises(RunError, match="not a greenprune run folder"):
        resume_run(tmp_path)


def test_cli_rejects_a_malformed_recipe_before_any_work(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text(RECIPE.replace("alpha: 0.5", "alpah: 0.5"))
    runs = tmp_path / "runs"
    proc = subprocess.run([sys.executable, "-m", "greenprune.cli", "run", str(path), "--runs-dir", str(runs)],
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2
    assert f"{path}:10: steps[3].alpine.alpah: unknown key" in " ".join(proc.stderr.split())
    assert not runs.exists()


def _read_only_folder(tmp_path: Path) -> Path | None:
    """A folder this user cannot write: a chmod 555 one (not for root), else a read-only mount such as /proc/sys."""
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    for folder in (locked, Path("/proc/sys")):
        if folder.is_dir() and not os.access(folder, os.W_OK):
            return folder
    return None


@pytest.mark.parametrize("case", ["below-file", "is-file", "read-only", "below-read-only"])
def test_unusable_runs_folder_fails_before_any_work(tmp_path, monkeypatch, case):
    from typer.testing import CliRunner

    from greenprune.cli import app
    from greenprune.recipe import unit as unit_module

    started: list[str] = []
    monkeypatch.setattr(unit_module, "_load_state", lambda unit: started.append(unit.id))
    path = tmp_path / "toy.yaml"
    path.write_text(RECIPE)
    (tmp_path / "afile").write_text("not a folder")
    if case in ("read-only", "below-read-only"):
        locked = _read_only_folder(tmp_path)
        if locked is None:
            pytest.skip("no read-only folder for this user here")
        runs = locked if case == "read-only" else locked / "runs"
        expected = f"runs folder {runs}: " + (
            "is read-only" if case == "read-only" else f"cannot be created: {locked} is read-only")
    else:
        runs = tmp_path / "afile" / "runs" if case == "below-file" else tmp_path / "afile"
        expected = f"runs folder {runs}: " + ("is below" if case == "below-file" else "is a file")
    result = CliRunner().invoke(app, ["run", str(path), "--runs-dir", str(runs)])
    assert result.exit_code == 2, result.output
    assert expected in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert started == []
    assert (tmp_path / "afile").read_text() == "not a folder"
    if case == "below-read-only":
        assert not runs.exists()


def test_resume_into_a_read_only_run_folder_fails_clearly(tmp_path, monkeypatch):
    from greenprune.recipe import runner as runner_module

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "resolved.json").write_text(json.dumps({"recipe": {"name": "x", "pipelines": [
        {"name": "x", "model": "tiny-bert", "task": "toy", "steps": ["evaluate"]}]}, "units": []}))
    monkeypatch.setattr(runner_module.os, "access", lambda path, mode, **_: Path(path) != run_dir)
    with pytest.raises(RunError, match=f"run folder {run_dir}: is read-only"):
        resume_run(run_dir)


@pytest.fixture
def no_work(monkeypatch) -> list[str]:
    """Spies on loading the model and on every step: the list stays empty if nothing ran."""
    import dataclasses

    from greenprune.recipe import steps
    from greenprune.recipe import unit as unit_module

    calls: list[str] = []
    monkeypatch.setattr(unit_module, "_load_state", lambda unit: calls.append(f"load {unit.id}"))
    for name, kind in list(steps.REGISTRY.items()):
        monkeypatch.setitem(steps.REGISTRY, name, dataclasses.replace(
            kind, run=lambda state, opts, ctx, name=name: calls.append(name)))
    return calls


def test_cli_alpine_layer_out_of_range_fails_before_the_finetune(tmp_path, no_work):
    from typer.testing import CliRunner

    from greenprune.cli import app

    path = tmp_path / "toy.yaml"
    path.write_text(RECIPE.replace("layers: even", "layers: [0, 99]"))
    runs = tmp_path / "runs"
    result = CliRunner().invoke(app, ["run", str(path), "--runs-dir", str(runs)])
    assert result.exit_code == 2, result.output
    assert f"{path}:10: steps[3].alpine.layers: layer 99 is out of range for tiny-bert (4 layers)" in " ".join(
        result.output.split())
    assert "Traceback" not in result.output
    assert no_work == [] and not runs.exists()


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("model: tiny-bert", "model: tiny-bertt"), "toy.yaml:2: model: could not find 'tiny-bertt'"),
        (("model: tiny-bert", "model: ./no/such/model"), "toy.yaml:2: model: ./no/such/model: no such folder"),
        (("task: toy", "task: toyy"), "toy.yaml:3: task: unknown task 'toyy'; known tasks:"),
        (("data: {size: 48}", "data: {source: ./no/such/data}"),
         "toy.yaml:4: data.source: ./no/such/data: no such file or folder"),
        (("  - evaluate\n  - measure", "  - evaluate: {task: perplexit}\n  - measure"),
         "toy.yaml:8: steps[1].evaluate.task: unknown task 'perplexit'"),
        (("  - prune: {sparsity: 0.3, method: l1}", "  - structure: {layers: 4}"),
         "toy.yaml:11: steps[4].structure.layers: cannot remove 4 layers of tiny-bert (4 layers; at least one"),
        (("  - prune: {sparsity: 0.3, method: l1}", "  - recover: {data: no-pairs.jsonl}"),
         "toy.yaml:11: steps[4].recover.data: no-pairs.jsonl: no such file"),
        (("layers: even", "layers: [-5]"), "toy.yaml:10: steps[3].alpine.layers: layer -5 is out of range"),
        (("  - evaluate\n  - measure", "  - truncation\n  - measure"),
         "toy.yaml:8: steps[1].truncation: no changed stack to match before it; put truncation after alpine"),
        (("  - prune: {sparsity: 0.3, method: l1}", "  - truncation"),
         "toy.yaml:11: steps[4].truncation: evaluate the stack it is matched to first"),
        (("  - prune: {sparsity: 0.3, method: l1}\n  - evaluate",
          "  - evaluate: {max_length: 48}\n  - truncation: {max_length: 40}"),
         "toy.yaml:12: steps[5].truncation.max_length: 40 differs from the stack's evaluation (48)"),
        (("steps:\n", "grid: {\"steps[3].alpine.layers\": [[1], [7]]}\nsteps:\n"),
         "toy.yaml:6: steps[3].alpine.layers (grid point toyrun@layers=7): layer 7 is out of range for tiny-bert"),
    ],
)
def test_recipe_inputs_are_checked_before_the_run_folder_exists(tmp_path, no_work, edit, expected):
    old, new = edit
    assert old in RECIPE
    path = tmp_path / "toy.yaml"
    path.write_text(RECIPE.replace(old, new, 1))
    with pytest.raises(RecipeError) as info:
        run_recipe(path, root=tmp_path / "runs")
    assert f"{tmp_path}/{expected}" in str(info.value), str(info.value)
    assert no_work == [] and not (tmp_path / "runs").exists()


def test_good_layer_indices_pass_the_preflight(tmp_path):
    from greenprune.recipe import expand, parse_recipe
    from greenprune.recipe.runner import check_inputs

    recipe = parse_recipe(RECIPE.replace("layers: even", "layers: [0, 3, -1]"), "toy.yaml")
    check_inputs(expand(recipe), recipe)
