"""`greenprune eval` / `greenprune finetune` write result records; bad input is one clear line."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from greenprune.cli import app
from greenprune.measure.records import ResultRecord, load_json

FIX = Path(__file__).parent / "fixtures"
runner = CliRunner()


def test_eval_writes_record(tmp_path):
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["eval", "tiny-bert", "--task", "defect", "--data", str(FIX / "devign"),
                                 "--max-length", "64", "--json", str(out)])
    assert result.exit_code == 0, result.output
    record = load_json(out)
    assert isinstance(record, ResultRecord) and record.task == "defect"
    assert set(record.metrics) >= {"accuracy", "f1"} and record.command.startswith("greenprune")
    assert record.cost is None


def test_eval_with_cost_measures_the_same_inputs(tmp_path):
    out = tmp_path / "eval.json"
    result = runner.invoke(app, ["eval", "tiny-bert", "--task", "defect", "--data", str(FIX / "devign"),
                                 "--max-length", "64", "--batch-size", "2", "--cost", "--cost-batches", "2",
                                 "--json", str(out)])
    assert result.exit_code == 0, result.output
    record = load_json(out)
    assert record.cost is not None and record.cost.samples == 4 and record.cost.flops_per_sample > 0


def test_finetune_writes_record_and_checkpoint(tmp_path):
    result = runner.invoke(app, ["finetune", "tiny-bert", "--task", "clone", "--data", str(FIX / "bigclonebench"),
                                 "--max-length", "64", "--batch-size", "2", "--lr", "1e-3",
                                 "--output", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    record = load_json(tmp_path / "run" / "result.json")
    assert record.method == "finetune" and "before_accuracy" in record.metrics and "accuracy" in record.metrics
    assert (Path(record.artifacts["checkpoint"]) / "model.safetensors").is_file()


def test_bad_task_and_bad_file_are_one_line_errors(tmp_path):
    result = runner.invoke(app, ["eval", "tiny-bert", "--task", "bugs"])
    assert result.exit_code == 2 and "unknown task 'bugs'" in result.output
    result = runner.invoke(app, ["eval", "tiny-bert", "--task", "defect", "--data", str(FIX / "devign_bad"),
                                 "--split", "train"])
    assert result.exit_code == 2 and "train.jsonl:2" in result.output


def test_eval_never_silently_replaces_a_record(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = ["eval", "tiny-bert", "--task", "defect", "--data", str(FIX / "devign"), "--max-length", "64",
            "--limit", "4"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    default = tmp_path / "greenprune-results" / "eval-tiny-bert-defect.json"
    kept = default.read_text()
    second = runner.invoke(app, args)
    assert second.exit_code == 0, second.output
    assert default.read_text() == kept
    fresh = default.with_name("eval-tiny-bert-defect-2.json")
    assert isinstance(load_json(fresh), ResultRecord) and "already existed and was kept" in second.output
    refused = runner.invoke(app, [*args, "--json", str(default)])
    assert refused.exit_code == 2 and "pass --overwrite" in refused.output
    assert default.read_text() == kept
    replaced = runner.invoke(app, [*args, "--json", str(default), "--overwrite"])
    assert replaced.exit_code == 0, replaced.output
    assert default.read_text() != kept


def test_finetune_refuses_an_earlier_run_before_training(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "result.json").write_text("{}")
    result = runner.invoke(app, ["finetune", "tiny-bert", "--task", "clone", "--data", str(FIX / "bigclonebench"),
                                 "--output", str(run)])
    assert result.exit_code == 2 and "pass --overwrite" in result.output, result.output
    assert sorted(p.name for p in run.iterdir()) == ["result.json"]
