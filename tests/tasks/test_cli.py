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
