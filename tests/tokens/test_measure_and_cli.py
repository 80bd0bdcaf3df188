"""ALPINE with the measurement spine and the CLI: counted FLOPs follow kept lengths; the command writes records."""

from __future__ import annotations

import json

import pytest
import torch

from greenprune.measure import count_flops
from greenprune.models import load_model
from greenprune.tokens import AlpineConfig, LengthTrace, attach
from greenprune.tokens.experiment import static_ratio_matching

CODE = [
    "def mean(xs):\n    total = 0\n    for x in xs:\n        total += x\n    return total / len(xs)",
    "static int clamp(int v, int lo, int hi) { if (v < lo) return lo; if (v > hi) return hi; return v; }",
    "for i in range(3): print(i)",
]


def test_counted_flops_fall_with_kept_lengths():
    loaded = load_model("tiny-bert", task="classification")
    batch = loaded.tokenizer(CODE, padding=True, return_tensors="pt")
    base = count_flops(loaded.model, batch)
    flops, kept = [], []
    for alpha in (1e6, 1.5, 0.5):
        with attach(loaded, AlpineConfig(layers="all", alpha=alpha)) as handle:
            flops.append(count_flops(loaded.model, batch))
            kept.append(sum(handle.trace.mean_widths()))
    # nothing pruned: only the scoring extra (one fused score pass per pruning layer, attention-sized)
    assert base <= flops[0] <= 1.25 * base
    assert kept[0] > kept[1] > kept[2]
    assert flops[0] > flops[1] > flops[2]
    assert flops[2] < 0.7 * base


def test_static_ratio_matches_adaptive_mean_kept_ratio():
    trace = LengthTrace(pruning_layers=[0, 2], num_layers=3)
    trace.record([torch.tensor([10, 20]), torch.tensor([5, 10]), torch.tensor([5, 10]), torch.tensor([4, 8])],
                 [20, 10, 10, 8])
    # layer 0 keeps 0.5, layer 2 keeps 0.8 → mean kept 0.65 → static prunes 0.35
    assert static_ratio_matching(trace) == pytest.approx(0.35)


def test_minilm_alpha_large_is_exact_and_alpine_prunes(minilm):
    batch = minilm.tokenizer(CODE, padding=True, return_tensors="pt")
    with torch.no_grad():
        base = minilm.model(**batch).logits
        with attach(minilm, AlpineConfig(layers="all", alpha=1e6)):
            same = minilm.model(**batch).logits
        with attach(minilm, AlpineConfig(layers="even", alpha=1.0)) as handle:
            minilm.model(**batch)
    torch.testing.assert_close(same, base, atol=1e-5, rtol=0)
    means = handle.trace.mean_lengths()
    assert means[-1] < 0.9 * means[0]


def test_cli_alpine_writes_records_trace_and_plot(tmp_path):
    from typer.testing import CliRunner

    from greenprune.cli import app

    result = CliRunner().invoke(app, [
        "alpine", "tiny-bert", "--task", "defect", "--layers", "even", "--alpha", "1.0", "--static-match",
        "--size", "60", "--rounds", "2", "--cost-batches", "1", "--no-energy", "-o", str(tmp_path),
    ])
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "alpine-tiny-bert-defect.json").read_text())
    assert len(records) == 2  # adaptive + static at the matching ratio
    first = records[0]
    assert first["candidate"]["config"]["alpine"]["layers"] == "even"
    assert first["ratios"]["flops_per_sample"] < 1.0
    assert (tmp_path / "alpine-tiny-bert-defect.png").stat().st_size > 1000
    assert (tmp_path / "alpine-tiny-bert-defect-trace-adaptive-even.json").exists()


def test_cli_alpine_rejects_a_generation_task_with_one_line(tmp_path):
    from typer.testing import CliRunner

    from greenprune.cli import app

    result = CliRunner().invoke(app, ["alpine", "tiny-bert", "--task", "summarize", "--no-energy",
                                      "-o", str(tmp_path)])
    assert result.exit_code == 2
    assert "summarize" in result.output and "Traceback" not in result.output


def test_cli_alpine_layer_out_of_range_fails_before_the_baseline_finetune(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    import greenprune.models
    from greenprune.cli import app
    from greenprune.tasks import get_task

    calls: list[str] = []
    monkeypatch.setattr(greenprune.models, "load_model", lambda spec, **_: calls.append(f"load {spec}"))
    monkeypatch.setattr(type(get_task("defect")), "finetune", lambda *a, **k: calls.append("finetune"))
    out = tmp_path / "out"
    result = CliRunner().invoke(app, ["alpine", "tiny-bert", "--layers", "0,99", "--finetune", "--size", "40",
                                      "--no-energy", "-o", str(out)])
    assert result.exit_code == 2, result.output
    assert "--layers 0,99: layer 99 is out of range for tiny-bert (4 layers" in " ".join(result.output.split())
    assert "Traceback" not in result.output
    assert calls == [] and not out.exists()


def test_out_of_range_indices_are_listed_without_a_model():
    assert AlpineConfig(layers=[0, -4, 3, 4, -5]).out_of_range(4) == [4, -5]
    assert AlpineConfig(layers="all").out_of_range(4) == []


def test_cli_alpine_max_length_beyond_positions_and_zero_sizes(tmp_path):
    from typer.testing import CliRunner

    from greenprune.cli import app

    result = CliRunner().invoke(app, ["alpine", "tiny-bert", "--max-length", "1000", "--no-energy",
                                      "-o", str(tmp_path)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "max_length 1000 is longer than tiny-bert can take: 512 positions" in " ".join(result.output.split())
    assert list(tmp_path.iterdir()) == []
    for option in ("--batch-size", "--max-length", "--rounds", "--cost-batches"):
        result = CliRunner().invoke(app, ["alpine", "tiny-bert", option, "0", "-o", str(tmp_path)])
        assert result.exit_code == 2 and f"Invalid value for '{option}'" in " ".join(result.output.split())


def test_cli_alpine_finetune_compares_against_the_finetuned_baseline(tmp_path):
    """`--finetune` fine-tunes the baseline first (and `--finetune-alpine` a second copy with ALPINE on): the
    baseline quality in the records is the fine-tuned model's, as the tasks area's own fine-tune computes it."""
    import copy

    from typer.testing import CliRunner

    from greenprune.cli import app
    from greenprune.models import load_model
    from greenprune.tasks import TrainConfig, get_task

    opts = ["--size", "60", "--epochs", "2", "--lr", "1e-2", "--batch-size", "8", "--max-length", "64",
            "--rounds", "1", "--cost-batches", "1", "--no-energy"]
    result = CliRunner().invoke(app, ["alpine", "tiny-bert", "--task", "defect", "--layers", "even", "--finetune",
                                      "--finetune-alpine", *opts, "-o", str(tmp_path)])
    assert result.exit_code == 0, result.output
    records = json.loads((tmp_path / "alpine-tiny-bert-defect.json").read_text())
    assert [r["candidate"]["config"]["finetuned_with_alpine"] for r in records] == [False, True]
    assert all(r["baseline"]["config"]["finetune"] is True for r in records)

    task = get_task("defect")
    splits = task.embedded(size=60, seed=0)
    loaded = load_model("tiny-bert", task="defect")
    untouched = task.evaluate(copy.deepcopy(loaded.model), loaded.tokenizer, splits.test, batch_size=8, max_length=64)
    task.finetune(loaded.model, loaded.tokenizer, splits,
                  TrainConfig(epochs=2, lr=1e-2, batch_size=8, max_length=64, seed=0, device="cpu"))
    tuned = task.evaluate(loaded.model, loaded.tokenizer, splits.test, batch_size=8, max_length=64)
    assert tuned != untouched  # the fine-tune changes what the test split sees, so the check below can fail
    for record in records:
        assert {k: record["baseline"]["metrics"][k] for k in tuned} == pytest.approx(tuned)
