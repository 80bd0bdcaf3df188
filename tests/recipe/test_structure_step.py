"""The recipe's structure step is `greenprune structure`'s pipeline: KV groups included, same calibration."""

from __future__ import annotations

from transformers import AutoConfig

from greenprune.recipe import run_recipe
from greenprune.run_folder import finished_steps

RECIPE = """\
name: kv
model: tiny-llama
task: perplexity
data: {size: 40}
energy: {track: false}
steps:
  - structure: {kv_groups: 1, ffn: 0.25, calibration: 2, seq_len: 32}
"""


def test_structure_step_removes_kv_groups_with_the_pipelines_calibration(tmp_path) -> None:
    path = tmp_path / "kv.yaml"
    path.write_text(RECIPE)
    run_dir = run_recipe(path, root=tmp_path / "runs", report=False)
    (step,) = finished_steps(run_dir / "units" / "kv")
    config = AutoConfig.from_pretrained(step.folder / "model")
    assert (config.num_key_value_heads, config.num_attention_heads, config.intermediate_size) == (1, 2, 96)
    record = step.record
    assert record.config["label"] == "ffn25%/-1kv"
    assert record.config["kv_groups"] == 1 and record.config["calib_texts"] == 2  # the StructureConfig itself
    assert "KV heads 2 → 1 per layer" in record.notes
    assert record.metrics["params_ratio"] < 1.0


def test_structure_step_accepts_the_vocabulary_insurances_and_names_a_bad_count() -> None:
    import pytest
    from pydantic import ValidationError

    from greenprune.recipe.registry import options_adapter

    adapter = options_adapter("structure")
    config = adapter.validate_python({"vocab": True, "vocab_whitespace": True, "vocab_frequent": 32000})
    assert (config.vocab_whitespace, config.vocab_frequent) == (True, 32000)
    with pytest.raises(ValidationError, match="vocab_frequent"):
        adapter.validate_python({"vocab": True, "vocab_frequent": -3})
