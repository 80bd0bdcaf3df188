"""Every step kind end to end through the CLI on tiny models: `greenprune run`, `run --resume`, then `report`.

`make demo` runs the same machinery on real models but only as a slow test; this recipe keeps every kind
(recover and FFN pruning of an encoder included) in the default run, in seconds.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from greenprune.cli import app
from greenprune.measure.records import Comparison, ResultRecord
from greenprune.recipe.schema import STEP_KINDS, parse_recipe
from greenprune.run_folder import finished_steps

from ._toy_import import toy

ALL_KINDS = """\
name: allkinds
seed: 0
energy: {track: false}
pipelines:
  - name: enc
    model: tiny-bert
    task: toy
    data: {size: 32}
    steps:
      - finetune: {epochs: 1, batch_size: 8, max_length: 48, lr: 0.001}
      - evaluate
      - measure: {batches: 1, batch_size: 4, max_length: 48, rounds: 1, energy: false}
      - alpine: {layers: even, alpha: 0.5}
      - structure: {ffn: 0.25, calibration: 8, seq_len: 48}
      - prune: {sparsity: 0.3, method: l1}
      - quantize: {dtype: int8}
      - evaluate
      - measure: {batches: 1, batch_size: 4, max_length: 48, rounds: 1, energy: false}
      - truncation: {batches: 1, batch_size: 4, max_length: 48, rounds: 1, energy: false}
  - name: dec
    model: tiny-llama
    task: perplexity
    data: {size: 40, limit_eval: 4}
    steps:
      - evaluate: {max_length: 64, batch_size: 2}
      - measure: {batches: 1, batch_size: 2, max_length: 64, rounds: 1, energy: false}
      - structure: {vocab: true, layers: 1, layer_rescore: false, ffn: 0.25, calibration: 2, seq_len: 32}
      - recover: {pairs: 8, steps: 3, r: 4, alpha: 8, batch_size: 2, max_length: 64, lr: 0.001}
      - evaluate: {max_length: 64, batch_size: 2}
      - measure: {batches: 1, batch_size: 2, max_length: 64, rounds: 1, energy: false}
"""
ENC_KINDS = ["finetune", "evaluate", "measure", "alpine", "structure", "prune", "quantize", "evaluate", "measure",
             "truncation"]
DEC_KINDS = ["evaluate", "measure", "structure", "recover", "evaluate", "measure"]


@pytest.fixture(autouse=True)
def _toy_task():
    toy.setup()


def _invoke(*args: str) -> str:
    result = CliRunner().invoke(app, list(args))
    assert result.exit_code == 0, (result.output, result.exception)
    return "".join(result.output.split())  # rich wraps long paths anywhere


def _without_timings(record: ResultRecord | Comparison) -> object:
    if isinstance(record, Comparison):
        return (_without_timings(record.baseline), _without_timings(record.candidate))
    cost = record.cost
    return (record.method, record.config, {k: v for k, v in record.metrics.items() if not k.endswith("_seconds")},
            None if cost is None else (cost.dtype, cost.params_total, cost.flops_per_sample, cost.checkpoint_bytes))


def test_the_recipe_names_every_step_kind():
    recipe = parse_recipe(ALL_KINDS, "all.yaml")
    kinds = {step.kind for pipe in recipe.pipelines for step in pipe.steps}
    assert kinds == set(STEP_KINDS)


@pytest.mark.timeout(900)
def test_every_step_kind_runs_resumes_and_reports_through_the_cli(tmp_path):
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification

    path = tmp_path / "all.yaml"
    path.write_text(ALL_KINDS)
    runs = tmp_path / "runs"
    out = _invoke("run", str(path), "--runs-dir", str(runs))
    (run_dir,) = runs.iterdir()
    assert f"runfolder:{run_dir}" in out
    enc_dir, dec_dir = run_dir / "units" / "enc", run_dir / "units" / "dec"
    enc, dec = finished_steps(enc_dir), finished_steps(dec_dir)
    assert [s.kind for s in enc] == ENC_KINDS and [s.kind for s in dec] == DEC_KINDS
    assert (enc_dir / "DONE").is_file() and (dec_dir / "DONE").is_file()
    # (the exact command line is sys.argv, checked through a real process in tests/test_cli.py)
    assert all(s.record.command.startswith("greenprune") for s in enc if isinstance(s.record, ResultRecord))

    # encoder: FFN pruning shrank every intermediate layer, magnitude pruning zeroed weights, int8 was applied
    structured = AutoModelForSequenceClassification.from_pretrained(enc[4].folder / "model")
    full = AutoModelForSequenceClassification.from_pretrained(enc[0].folder / "model")
    assert full.config.intermediate_size == 128  # tiny-bert
    for layer in structured.bert.encoder.layer:
        assert layer.intermediate.dense.out_features == 96
    assert enc[4].record.metrics["params_ratio"] < 1.0
    pruned = AutoModelForSequenceClassification.from_pretrained(enc[5].folder / "model")
    zeros = [float((m.weight == 0).float().mean()) for m in pruned.bert.encoder.modules()
             if isinstance(m, torch.nn.Linear)]
    assert sum(zeros) / len(zeros) > 0.2
    final = enc[8].record
    assert isinstance(final, Comparison)
    assert final.candidate.config["label"] == "alpine(even)+ffn25%+l1-30%+int8"
    assert "int8" in (final.candidate.cost.dtype or "") and "32" in (final.baseline.cost.dtype or "")
    assert final.ratios["params_non_embedding"] < 1.0

    # decoder: vocabulary, one layer and FFN neurons removed, then LoRA merged back into plain weights
    lm = AutoModelForCausalLM.from_pretrained(dec[3].folder / "model")
    before = AutoModelForCausalLM.from_pretrained(dec[2].folder / "model")
    assert lm.config.num_hidden_layers == 3 and lm.config.vocab_size < 49152
    assert not any("lora" in name for name, _ in lm.named_parameters())
    changed = [n for (n, a), (_, b) in zip(lm.named_parameters(), before.named_parameters(), strict=True)
               if not torch.equal(a, b)]
    assert changed  # recovery trained something
    recover_metrics = dec[3].record.metrics
    assert {"loss_first", "loss_last"} <= set(recover_metrics)
    assert dec[5].record.candidate.config["label"] == "vocab/-1L/ffn25%+lora"

    # truncation: the baseline on inputs cut to the final stack's counted FLOPs, paired with that stack
    truncation = enc[9].record
    assert isinstance(truncation, Comparison) and truncation.ratios["flops_per_sample"] < 1.0
    assert truncation.candidate.details["versus_stack"]["stack"] == final.candidate.config["label"]

    # resume: forget the last steps of each unit (as if killed there: the encoder's last evaluate, measure and
    # truncation, the decoder's evaluate and measure), then continue
    reference = {d: [_without_timings(s.record) for s in finished_steps(d)] for d in (enc_dir, dec_dir)}
    forgotten = {enc_dir: 3, dec_dir: 2}
    for unit_dir, steps in ((enc_dir, enc), (dec_dir, dec)):
        (unit_dir / "DONE").unlink()
        for step in steps[-forgotten[unit_dir]:]:
            shutil.rmtree(step.folder)
    kept = {d: [s.folder.stat().st_mtime_ns for s in finished_steps(d)] for d in (enc_dir, dec_dir)}
    out = _invoke("run", "--resume", str(run_dir))
    for unit_dir in (enc_dir, dec_dir):
        again = finished_steps(unit_dir)
        assert [s.folder.stat().st_mtime_ns for s in again[:-forgotten[unit_dir]]] == kept[unit_dir]  # not redone
        # the redone steps see the same model: alpine and int8 replayed, checkpoints reloaded
        redone = [_without_timings(s.record) for s in again]
        assert redone == reference[unit_dir]
        assert (unit_dir / "DONE").is_file()
    redone_truncation = finished_steps(enc_dir)[9].record
    assert redone_truncation.candidate.details == truncation.candidate.details  # paired with the same predictions

    # report: rebuilt from the records alone
    report_dir = run_dir / "report"
    shutil.rmtree(report_dir)
    out = _invoke("report", str(run_dir))
    md = (report_dir / "report.md").read_text()
    for stack in ("alpine(even)+ffn25%+l1-30%+int8", "vocab/-1L/ffn25%+lora"):
        assert stack in md and stack.replace(" ", "") in out
    assert (report_dir / "report.html").is_file()
    resolved = json.loads((run_dir / "resolved.json").read_text())
    assert [u["id"] for u in resolved["units"]] == ["enc", "dec"]
    assert Path(run_dir / "recipe.yaml").read_text() == ALL_KINDS
