"""`greenprune eval` / `greenprune finetune` write result records; bad input is one clear line."""

from __future__ import annotations

from pathlib import Path

import pytest
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
    assert record.config["train"]["group_by_length"] is False


def test_finetune_group_by_length_is_recorded(tmp_path):
    result = runner.invoke(app, ["finetune", "tiny-bert", "--task", "clone", "--data", str(FIX / "bigclonebench"),
                                 "--max-length", "64", "--batch-size", "2", "--group-by-length", "--no-baseline",
                                 "--json", str(tmp_path / "r.json")])
    assert result.exit_code == 0, result.output
    assert load_json(tmp_path / "r.json").config["train"]["group_by_length"] is True


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


def _one_line(output: str) -> str:
    """The CLI's message with rich's line wrapping undone."""
    return " ".join(output.split())


def _devign_without_test(folder: Path) -> Path:
    for split in ("train", "valid"):
        (folder / f"{split}.jsonl").write_text((FIX / "devign" / f"{split}.jsonl").read_text())
    (folder / "test.jsonl").write_text("")
    return folder


def test_empty_test_split_is_an_error_naming_the_file(tmp_path):
    (tmp_path / "data").mkdir()
    data = _devign_without_test(tmp_path / "data")
    result = runner.invoke(app, ["eval", "tiny-bert", "--task", "defect", "--data", str(data),
                                 "--json", str(tmp_path / "eval.json")])
    assert result.exit_code == 2
    assert "test.jsonl has no rows (examples per split: train 4, valid 4, test 0)" in _one_line(result.output)
    assert not (tmp_path / "eval.json").exists()
    # finetune refuses before training: otherwise its record silently carries no test metrics
    result = runner.invoke(app, ["finetune", "tiny-bert", "--task", "defect", "--data", str(data),
                                 "--output", str(tmp_path / "run")])
    assert result.exit_code == 2 and "the test split is empty" in _one_line(result.output)
    assert not (tmp_path / "run").exists()


def test_non_utf8_data_names_file_line_and_offset(tmp_path):
    for split in ("train", "valid"):
        (tmp_path / f"{split}.jsonl").write_text((FIX / "devign" / f"{split}.jsonl").read_text())
    (tmp_path / "test.jsonl").write_bytes(b'{"func": "int f(\x80);", "target": 0}\n')
    result = runner.invoke(app, ["eval", "tiny-bert", "--task", "defect", "--data", str(tmp_path),
                                 "--json", str(tmp_path / "eval.json")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "test.jsonl:1: not valid UTF-8: byte 0x80 at byte offset 16" in _one_line(result.output)


@pytest.mark.parametrize(("verb", "option"), [
    ("eval", "--batch-size"), ("eval", "--max-length"), ("eval", "--samples"), ("eval", "--max-new-tokens"),
    ("eval", "--cost-batches"), ("finetune", "--batch-size"), ("finetune", "--max-length"),
])
def test_zero_sizes_are_usage_errors(tmp_path, verb, option):
    result = runner.invoke(app, [verb, "tiny-llama", "--task", "generate", option, "0", "--limit", "1",
                                 "--json", str(tmp_path / "record.json")])
    assert result.exit_code == 2
    assert f"Invalid value for '{option}'" in _one_line(result.output)


def test_max_length_beyond_the_models_positions_names_model_and_limit(tmp_path):
    result = runner.invoke(app, ["eval", "tiny-bert", "--task", "defect", "--data", str(FIX / "devign"),
                                 "--max-length", "600", "--json", str(tmp_path / "eval.json")])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert ("--max-length 600 is longer than tiny-bert can take: 512 positions (max_position_embeddings 512 of its "
            "bert config)") in _one_line(result.output)
