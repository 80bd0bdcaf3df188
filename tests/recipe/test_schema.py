from __future__ import annotations

import math

import pytest

from greenprune.recipe import RecipeError, expand, load_recipe, parse_recipe
from greenprune.recipe.schema import step_labels

GOOD = """\
name: demo
model: tiny-bert
task: defect
data: {size: 40}
steps:
  - finetune: {epochs: 1}
  - evaluate
  - alpine:
      layers: even
      alpha: 1.0
  - prune: {sparsity: 0.2}
  - measure
grid:
  "steps[2].alpine.alpha": [0.5, 1.0]
  data.size: [40, 80]
"""


def test_good_recipe_expands_grid_in_file_order():
    recipe = parse_recipe(GOOD, "demo.yaml")
    assert [p.name for p in recipe.pipelines] == ["demo"]
    units = expand(recipe)
    assert [u.id for u in units] == [
        "demo@alpha=0.5,size=40", "demo@alpha=0.5,size=80", "demo@alpha=1.0,size=40", "demo@alpha=1.0,size=80"]
    assert [u.spec.steps[2].alpine.alpha for u in units] == [0.5, 0.5, 1.0, 1.0]
    assert [u.spec.data.size for u in units] == [40, 80, 40, 80]
    assert all(not u.spec.grid for u in units)
    assert step_labels(units[0].spec.steps) == [
        "baseline", "baseline", "alpine(even)", "alpine(even)+l1-20%", "alpine(even)+l1-20%"]


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (("alpha: 1.0", "alpha: lots"), "demo.yaml:10: steps[2].alpine.alpha: Input should be a valid number"),
        (("alpha: 1.0", "alpah: 1.0"), "demo.yaml:10: steps[2].alpine.alpah: unknown key"),
        (("{sparsity: 0.2}", "{sparsity: 1.2}"), "demo.yaml:11: steps[3].prune.sparsity: Input should be less than 1"),
        (("  - measure", "  - measur"), "demo.yaml:12: steps[4]: unknown step 'measur'"),
        (("data: {size: 40}", "data: {size: 40, sise: 3}"), "demo.yaml:4: data.sise: unknown key"),
        (("task: defect\n", ""), "demo.yaml:1: task: required key missing"),
        (("[0.5, 1.0]", "[0.5, -1.0]"), "demo.yaml:14: grid['steps[2].alpine.alpha'][1] = -1.0"),
        (('"steps[2].alpine.alpha"', '"steps[9].alpine.alpha"'), "steps[9]"),
    ],
)
def test_bad_recipes_name_file_line_and_path(edit, expected):
    old, new = edit
    assert old in GOOD
    with pytest.raises(RecipeError) as info:
        parse_recipe(GOOD.replace(old, new, 1), "demo.yaml")
    assert expected in str(info.value), str(info.value)


def test_multi_pipeline_paths_and_duplicates(tmp_path):
    text = """\
name: two
pipelines:
  - name: enc
    model: tiny-bert
    task: defect
    steps: [evaluate]
  - name: enc
    model: tiny-llama
    task: perplexity
    steps:
      - quantize: {dtype: int4}
"""
    path = tmp_path / "two.yaml"
    path.write_text(text)
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    message = str(info.value)
    assert f"{path}:11: pipelines[1].steps[0].quantize.dtype: Input should be 'fp16', 'bf16' or 'int8'" in message
    fixed = text.replace("int4", "int8")
    path.write_text(fixed)
    with pytest.raises(RecipeError, match="pipeline names must be unique; repeated: enc"):
        load_recipe(path)
    path.write_text(fixed.replace("  - name: enc\n    model: tiny-llama", "  - name: dec\n    model: tiny-llama"))
    recipe = load_recipe(path)
    assert [u.id for u in expand(recipe)] == ["enc", "dec"]


def test_not_a_mapping_and_missing_file(tmp_path):
    with pytest.raises(RecipeError, match="a recipe is a mapping"):
        parse_recipe("- just\n- a list\n", "x.yaml")
    with pytest.raises(RecipeError, match="no such recipe file"):
        load_recipe(tmp_path / "nope.yaml")
    with pytest.raises(RecipeError, match="not valid YAML"):
        parse_recipe("name: [unclosed\n", "x.yaml")


def test_shipped_recipes_validate():
    from pathlib import Path

    folder = Path(__file__).resolve().parents[2] / "recipes"
    files = sorted(folder.glob("*.yaml"))
    assert any(f.name == "demo.yaml" for f in files)
    for path in files:
        recipe = load_recipe(path)
        points = [math.prod(len(v) for v in pipe.grid.values()) for pipe in recipe.pipelines]
        units = expand(recipe)
        assert len(units) == sum(points) >= 1, path.name
        assert all(unit.spec.steps for unit in units)


def _laughs(levels: int, width: int = 9) -> str:
    """A 'billion laughs' recipe: each anchor repeats the one before it `width` times (width**levels strings)."""
    lines = ["name: bomb", "model: tiny-bert", "task: defect", "steps: [evaluate]",
             f"l0: &l0 [{', '.join(['lol'] * width)}]"]
    lines += [f"l{i}: &l{i} [{', '.join([f'*l{i - 1}'] * width)}]" for i in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_refused_quickly_with_file_and_line():
    import time

    start = time.perf_counter()
    with pytest.raises(RecipeError) as info:
        parse_recipe(_laughs(9), "bomb.yaml")  # 9**10 strings if expanded
    assert time.perf_counter() - start < 5
    # l0..l4 (lines 5-9) expand to 10 + 91 + 820 + 7381 + 66430 values; the first *l4 of l5 crosses 100,000
    assert str(info.value).startswith("bomb.yaml:10: the YAML aliases (here *l4) expand the recipe to more than")


def test_too_many_aliases_and_self_reference_are_refused():
    many = "name: x\nmodel: tiny-bert\ntask: defect\nsteps: [evaluate]\nv: &v 1\nl: [" + ", ".join(["*v"] * 101) + "]\n"
    with pytest.raises(RecipeError, match=r"^many.yaml:6: more than 100 YAML aliases \(\*v\)"):
        parse_recipe(many, "many.yaml")
    with pytest.raises(RecipeError, match=r"^self.yaml:3: the YAML alias \*a refers to itself"):
        parse_recipe("name: x\nloop: &a [1,\n  *a]\n", "self.yaml")
    with pytest.raises(RecipeError, match=r"^deep\.yaml: the YAML is nested too deeply"):
        parse_recipe("name: x\nv: " + "[" * 5000 + "]" * 5000 + "\n", "deep.yaml")


def test_a_few_aliases_still_work_and_repeated_keys_name_the_file():
    text = "name: x\nmodel: tiny-bert\ntask: defect\nsteps:\n  - measure: &m {rounds: 2}\n  - measure: *m\n"
    recipe = parse_recipe(text, "demo.yaml")
    assert [s.measure.rounds for s in recipe.pipelines[0].steps] == [2, 2]
    with pytest.raises(RecipeError, match=r"^demo.yaml:2: key 'name' repeated"):
        parse_recipe("name: a\nname: b\n", "demo.yaml")


def test_unknown_energy_country_names_file_line_and_how_to_find_codes():
    with pytest.raises(RecipeError) as info:
        parse_recipe(GOOD.replace("data: {size: 40}\n", "data: {size: 40}\nenergy: {country: FR}\n"), "demo.yaml")
    message = str(info.value)
    assert message.startswith("demo.yaml:5: energy.country: country 'FR': codecarbon has no carbon intensity")
    assert "FRA (France)" in message and "global_energy_mix.json" in message
    recipe = parse_recipe(GOOD.replace("data: {size: 40}\n", "data: {size: 40}\nenergy: {country: fra}\n"))
    assert {u.country for u in expand(recipe)} == {"FRA"}
