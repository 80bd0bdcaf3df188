from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from greenprune.cli import app
from greenprune.measure import load_json

runner = CliRunner()


def test_measure_cli_writes_records(tmp_path):
    out = tmp_path / "cost.json"
    args = ["measure", "tiny-bert", "--batches", "1", "--batch-size", "2", "--seq-len", "32", "--passes", "1",
            "--no-energy", "--json", str(out)]
    result = subprocess.run([sys.executable, "-m", "greenprune.cli", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "FLOPs / sample (counted)" in result.stdout
    records = load_json(out)
    assert len(records) == 1 and records[0].model == "tiny-bert"
    assert records[0].cost.samples == 2
    assert "greenprune measure tiny-bert" in records[0].command


def test_bad_model_is_one_clear_error():
    result = runner.invoke(app, ["measure", "./no/such/model"])
    assert result.exit_code == 2
    assert "no such folder" in result.output
    assert "Traceback" not in result.output


def test_seq_len_beyond_the_models_positions_names_model_and_limit():
    result = runner.invoke(app, ["measure", "tiny-bert", "--seq-len", "600", "--no-energy"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert ("--seq-len 600 is longer than tiny-bert can take: 512 positions (max_position_embeddings 512 of its bert "
            "config); use --seq-len 512 or less") in " ".join(result.output.split())
