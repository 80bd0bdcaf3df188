"""A step kind is declared once, in `register_step`, and the recipe schema is built from that declaration."""

from __future__ import annotations

import pytest
from pydantic import BaseModel, ConfigDict, Field

from greenprune.recipe import REGISTRY, RecipeError, expand, parse_recipe, register_step
from greenprune.recipe import schema as schema_module
from greenprune.recipe.schema import step_labels
from greenprune.recover import RecoveryConfig
from greenprune.structure.pipeline import StructureConfig
from greenprune.tokens.config import AlpineConfig

BASE = """\
name: reg
model: tiny-llama
task: perplexity
steps:
"""


class NoiseOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    scale: float = Field(default=0.1, gt=0)


@pytest.fixture
def noise_kind():
    register_step("noise", lambda state, opts, ctx: None, "none", modifies=True,
                  options=NoiseOptions, label=lambda opts: f"noise{opts.scale}")
    try:
        yield
    finally:
        REGISTRY.pop("noise")


def test_a_registered_kind_is_a_recipe_step_without_touching_the_schema(noise_kind) -> None:
    recipe = parse_recipe(BASE + "  - noise: {scale: 0.5}\n  - evaluate\n", "r.yaml")
    step = recipe.pipelines[0].steps[0]
    assert step.kind == "noise" and step.noise == NoiseOptions(scale=0.5) and step.alpine is None
    assert "noise" in schema_module.STEP_KINDS and "noise" in schema_module.MODIFYING_KINDS
    assert step_labels(recipe.pipelines[0].steps) == ["noise0.5", "noise0.5"]
    with pytest.raises(RecipeError, match=r"r.yaml:5: steps\[0\].noise.scale: Input should be greater than 0"):
        parse_recipe(BASE + "  - noise: {scale: -1}\n", "r.yaml")
    with pytest.raises(RecipeError, match=r"r.yaml:5: steps\[0\].noise.scael: unknown key"):
        parse_recipe(BASE + "  - noise: {scael: 1}\n", "r.yaml")


def test_replacing_a_kind_keeps_its_options_and_label_and_a_new_kind_needs_options(noise_kind) -> None:
    before = REGISTRY["noise"]
    register_step("noise", lambda state, opts, ctx: "replaced", "none", modifies=True)
    assert REGISTRY["noise"].options is NoiseOptions and REGISTRY["noise"].label is before.label
    with pytest.raises(ValueError, match="give its options model"):
        register_step("no-options", lambda state, opts, ctx: None, "none", modifies=False)
    assert "no-options" not in REGISTRY


def test_step_options_are_the_library_configs_under_the_names_recipes_already_use() -> None:
    old = parse_recipe(BASE + """\
  - alpine: {layers: [0, 2], alpha: 0.5}
  - structure: {vocab: true, layers: 1, layer_metric: bi, layer_rescore: false, calibration: 8, seq_len: 32}
  - recover: {pairs: 8, steps: 3, max_length: 64}
""", "old.yaml").pipelines[0].steps
    new = parse_recipe(BASE + """\
  - alpine: {layers: [0, 2], alpha: 0.5}
  - structure: {vocab_corpus: task, layers: 1, metric: bi, rescore: false, calib_texts: 8, calib_seq_len: 32}
  - recover: {pairs: 8, steps: 3, max_len: 64}
""", "new.yaml").pipelines[0].steps
    assert isinstance(old[0].options, AlpineConfig) and old[0].alpine.layers == (0, 2)
    assert old[1].structure == new[1].structure == StructureConfig(
        vocab_corpus="task", layers=1, metric="bi", rescore=False, calib_texts=8, calib_seq_len=32)
    assert isinstance(old[2].options, RecoveryConfig) and old[2].recover == new[2].recover
    assert old[2].recover.max_len == 64 and old[2].recover.pairs == 8
    assert step_labels(old) == ["alpine(custom)", "alpine(custom)+vocab/-1L", "alpine(custom)+vocab/-1L+lora"]
    with pytest.raises(RecipeError, match=r"both.yaml:5: steps\[0\].recover: give max_len or its older name"):
        parse_recipe(BASE + "  - recover: {max_len: 64, max_length: 32}\n", "both.yaml")


def test_a_grid_over_a_recipe_spelling_sets_the_config_field() -> None:
    recipe = parse_recipe(BASE + """\
  - structure: {ffn: 0.25, calibration: 8}
  - recover: {steps: 3, max_length: 64}
grid:
  "steps[0].structure.calibration": [2, 4]
  "steps[1].recover.max_length": [16]
""", "grid.yaml")
    units = expand(recipe)
    assert [(u.spec.steps[0].structure.calib_texts, u.spec.steps[1].recover.max_len) for u in units] == [
        (2, 16), (4, 16)]
    assert [u.id for u in units] == ["reg@calibration=2,max_length=16", "reg@calibration=4,max_length=16"]


def test_prune_step_is_the_weight_pruning_config_so_recipes_get_wanda_and_n_m(tmp_path) -> None:
    from greenprune.recipe import run_recipe
    from greenprune.run_folder import finished_steps, unit_folder
    from greenprune.weights import WeightPruningConfig

    recipe = parse_recipe(BASE + "  - prune: {method: wanda, pattern: '2:4', calibration_windows: 2,"
                                 " calibration_seq_len: 32}\n")
    (step,) = recipe.pipelines[0].steps
    assert isinstance(step.options, WeightPruningConfig) and step.options.scope == "per-row"
    assert step_labels(recipe.pipelines[0].steps) == ["wanda-2:4"]
    with pytest.raises(RecipeError, match=r"steps\[0\]\.prune"):
        parse_recipe(BASE + "  - prune: {method: wanda, pattern: '2:4', sparsity: 0.3}\n")  # 2:4 fixes 0.5
    path = tmp_path / "r.yaml"
    path.write_text(BASE + "  - prune: {method: wanda, pattern: '2:4', calibration_windows: 2,"
                           " calibration_seq_len: 32}\n")
    run = run_recipe(path, root=tmp_path / "runs", report=False)
    (unit,) = expand(recipe)
    (result,) = finished_steps(unit_folder(run, unit))
    assert result.record.metrics["sparsity_targeted"] == pytest.approx(0.5)  # exactly 2 of every 4 weights
