"""The truncation step: the baseline on inputs cut to a token-pruned stack's counted FLOPs, beside that stack.

Run on the real clone task with the embedded MiniLM, because the step's point is the paired comparison on the same
labelled pairs, and a tiny random model predicts one class for every pair (nothing to pair). The fine-tune step only
writes a checkpoint to reload: at lr 1e-7 the random head keeps predicting both classes.
"""

from __future__ import annotations

import pytest

from greenprune.measure.records import Comparison
from greenprune.recipe import RecipeError, run_recipe
from greenprune.run_folder import finished_steps

RECIPE = """\
name: trunc
model: minilm
task: clone
data: {size: 400, limit_train: 16, limit_eval: 40}
energy: {track: false}
steps:
  - finetune: {epochs: 1, batch_size: 8, max_length: 128, lr: 1.0e-7}
  - evaluate: {max_length: 128}
  - alpine: {layers: all, alpha: 1.0}
  - evaluate: {max_length: 128}
  - truncation: {batches: 2, batch_size: 8, max_length: 128, rounds: 1, energy: false}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    root = tmp_path_factory.mktemp("trunc")
    path = root / "trunc.yaml"
    path.write_text(RECIPE)
    run_dir = run_recipe(path, root=root / "runs")
    return run_dir, finished_steps(next((run_dir / "units").iterdir()))


@pytest.mark.timeout(600)
def test_truncation_matches_the_stacks_counted_flops_and_evaluates_the_cut_baseline(run):
    from greenprune.models import load_model
    from greenprune.tasks import get_task
    from greenprune.tokens import AlpineConfig, attach
    from greenprune.tokens.baselines import flops_per_sample

    _, steps = run
    assert [s.kind for s in steps] == ["finetune", "evaluate", "alpine", "evaluate", "truncation"]
    record = steps[-1].record
    assert isinstance(record, Comparison)
    trunc = record.candidate.details["truncation"]
    length = trunc["max_length"]
    assert record.candidate.config["label"] == f"truncation@{length}" and 8 <= length < 128
    assert record.candidate.details["matched_stack"] == "alpine(all)"

    # the target is the ALPINE stack's counted FLOPs per sample, recomputed here from the fine-tuned checkpoint
    task = get_task("clone")
    splits = task.embedded(size=400, seed=0)
    loaded = load_model(steps[0].folder / "model", task="classification")
    cost_examples = (splits.test or splits.valid)[:16]

    def batches_at(n: int) -> list[dict]:
        return [{k: v for k, v in b.items() if k != "labels"}
                for b in task.batches(loaded.tokenizer, cost_examples, batch_size=8, max_length=n)]

    plain = flops_per_sample(loaded.model, batches_at(length))
    handle = attach(loaded.model, AlpineConfig(layers="all", alpha=1.0), tokenizer=loaded.tokenizer)
    target = flops_per_sample(loaded.model, batches_at(128))
    handle.detach()
    assert trunc["target"] == pytest.approx(target, rel=1e-9)
    assert trunc["flops_per_sample"] == pytest.approx(plain, rel=1e-9)
    assert abs(plain - target) / target <= 0.02  # the acceptance's 2%: one token of a ~100-token pair is ~1%
    # the measured FLOPs ratio of the row is that of the cut inputs
    cost = record.candidate.cost, record.baseline.cost
    assert cost[0].flops_per_sample / cost[1].flops_per_sample == pytest.approx(plain / trunc["tried"]["128"])

    # its quality is the baseline's own evaluation at the cut length, example by example
    examples = (splits.test or splits.valid)[:40]
    scores = task.evaluate(loaded.model, loaded.tokenizer, examples, batch_size=8, max_length=length)
    assert record.candidate.metrics["f1"] == pytest.approx(scores["f1"])
    assert record.candidate.details["per_example"] == scores.details["per_example"]


@pytest.mark.timeout(600)
def test_truncation_is_paired_with_the_stack_and_reported_beside_it(run):
    from greenprune.report import collect
    from greenprune.report.html import _fmt_metric
    from greenprune.tasks.metrics import classification_metrics, paired_bootstrap

    run_dir, steps = run
    stack = steps[3].record.details["per_example"]
    mine = steps[-1].record.candidate.details["per_example"]
    versus = steps[-1].record.candidate.details["versus_stack"]
    expected = paired_bootstrap([e["label"] for e in mine], [e["pred"] for e in mine], [e["pred"] for e in stack],
                                "f1")
    assert versus == {"stack": "alpine(all)", "metric": "f1", **expected}
    labels = [e["label"] for e in mine]
    f1 = {name: classification_metrics([e["pred"] for e in ex], labels)["f1"] for name, ex in
          (("stack", stack), ("truncation", mine))}
    assert versus["difference"] == pytest.approx(f1["stack"] - f1["truncation"])  # stack minus truncation
    (row,) = [r for r in collect([run_dir]) if r.label.startswith("truncation@")]
    cell = _fmt_metric(row)
    assert f"alpine(all) − this Δ {expected['difference']:+.3f}" in cell and "Δ" in cell.split(" alpine")[0]
    assert row.ratios["flops_per_sample"] < 1.0


def test_truncation_needs_a_classification_task(tmp_path):
    recipe = """\
name: t
model: tiny-llama
task: perplexity
data: {size: 40, limit_eval: 4}
steps:
  - structure: {ffn: 0.25, calibration: 2, seq_len: 32}
  - truncation
"""
    path = tmp_path / "t.yaml"
    path.write_text(recipe)
    with pytest.raises(RecipeError, match=r"t.yaml:7: steps\[1\].truncation: task 'perplexity' is not a "
                                          r"classification task"):
        run_recipe(path, root=tmp_path / "runs")
    assert not (tmp_path / "runs").exists()


def test_a_stack_with_unchanged_flops_has_nothing_to_match(tmp_path):
    from greenprune.recipe.steps import StepError

    from ._toy_import import toy

    toy.setup()
    recipe = toy.RECIPE.replace("  - alpine: {layers: even, alpha: 0.5}\n  - prune: {sparsity: 0.3, method: l1}\n"
                                "  - evaluate\n", "  - quantize: {dtype: int8}\n  - evaluate\n  - truncation\n")
    assert "truncation" in recipe
    path = tmp_path / "q.yaml"
    path.write_text(recipe)
    with pytest.raises(StepError, match=r"toyrun: step 5 \(truncation\): truncation: int8 executes no fewer "
                                        r"counted FLOPs than the baseline at max_length 256"):
        run_recipe(path, root=tmp_path / "runs")
