"""The recipe: one YAML file saying which model, task and data, and which ordered steps to apply.

Validated with pydantic before any work starts, so a typo in step 7 fails in a second, not after an hour of
fine-tuning; every error names the path in the file (`recipes/x.yaml:12: steps[2].alpine.alpha: ...`).
Grids (`grid: {"steps[1].alpine.alpha": [0.5, 1.0]}`) expand one pipeline into one concrete pipeline per point.
"""

from __future__ import annotations

import copy
import itertools
import os
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator, model_validator

from greenprune.errors import GreenpruneError

STEP_KINDS = ("finetune", "alpine", "prune", "structure", "quantize", "recover", "evaluate", "measure")
# steps that change the model; the model before the first of them is the baseline every stack is compared with
MODIFYING_KINDS = ("alpine", "prune", "structure", "quantize", "recover")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


class RecipeError(GreenpruneError, ValueError):
    """A recipe file that cannot be used; the message names the file, line and key path."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


# ---------------------------------------------------------------- data and steps


class DataSpec(_Strict):
    """Where the task's examples come from: the embedded corpus (offline) or the task's official files."""

    source: str = "embedded"  # "embedded" or a path the task's loader understands
    size: int = Field(default=400, gt=0)  # examples in the embedded corpus (all splits)
    seed: int | None = None  # defaults to the recipe seed
    limit_train: int | None = Field(default=None, gt=0)
    limit_eval: int | None = Field(default=None, gt=0)


class FinetuneStep(_Strict):
    epochs: float = Field(default=1.0, gt=0)
    lr: float = Field(default=5e-5, gt=0)
    batch_size: int = Field(default=16, gt=0)
    max_length: int = Field(default=256, gt=0)
    limit: int | None = Field(default=None, gt=0)


class AlpineStep(_Strict):
    layers: Literal["all", "even", "odd"] | list[int] = "all"
    alpha: float = Field(default=1.0, ge=0)  # adaptive rule: keep tokens within mean ± alpha·std
    rule: Literal["adaptive", "static"] = "adaptive"
    ratio: float = Field(default=0.5, ge=0, lt=1)  # static rule: fraction of ordinary tokens pruned per layer
    merge: bool = True


class PruneStep(_Strict):
    """Weight pruning (random / L1 magnitude), made permanent unless `permanent: false`."""

    method: Literal["random", "l1"] = "l1"
    sparsity: float = Field(gt=0, lt=1)  # fraction of targeted weights zeroed
    scope: Literal["global", "per-tensor"] = "global"
    granularity: Literal["unstructured", "rows", "heads"] = "unstructured"
    permanent: bool = True


class StructureStep(_Strict):
    """Flab-Pruner style structural pruning: vocabulary, whole layers, FFN neurons (any subset, in that order)."""

    vocab: bool = False
    layers: int = Field(default=0, ge=0)  # number of layers to remove
    layer_metric: Literal["kl", "bi"] = "kl"  # KL of next-token distributions, or block influence
    layer_rescore: bool = True  # re-score after each removal (greedy); false ranks once (n× faster)
    ffn: float = Field(default=0.0, ge=0, lt=1)  # fraction of FFN neurons to remove per layer
    ffn_multiple_of: int = Field(default=1, gt=0)  # round the kept FFN size down to a multiple
    calibration: int = Field(default=32, gt=0)  # calibration examples (task examples, or stdlib code for LMs)
    seq_len: int = Field(default=256, gt=1)  # calibration sequence length

    @model_validator(mode="after")
    def _something(self) -> StructureStep:
        if not self.vocab and self.layers == 0 and self.ffn == 0:
            raise ValueError("structure step prunes nothing: set vocab: true, layers: N or ffn: FRACTION")
        return self


class QuantizeStep(_Strict):
    dtype: Literal["fp16", "bf16", "int8"] = "int8"


class RecoverStep(_Strict):
    """LoRA post-training on code-instruction pairs, merged back into plain weights."""

    method: Literal["lora"] = "lora"
    data: str = "stdlib"  # "stdlib" (pairs from the standard library) or a JSONL/CSV of prompt/completion pairs
    pairs: int = Field(default=200, gt=0)
    r: int = Field(default=16, gt=0)
    alpha: int = Field(default=32, gt=0)
    steps: int = Field(default=100, gt=0)
    lr: float = Field(default=3e-4, gt=0)
    batch_size: int = Field(default=4, gt=0)
    max_length: int = Field(default=256, gt=0)


class EvaluateStep(_Strict):
    task: str | None = None  # evaluate on another task than the pipeline's (e.g. perplexity for a generator)
    size: int | None = Field(default=None, gt=0)  # corpus size for that other task
    limit: int | None = Field(default=None, gt=0)  # examples evaluated
    batch_size: int | None = Field(default=None, gt=0)
    max_length: int | None = Field(default=None, gt=0)
    max_new_tokens: int | None = Field(default=None, gt=0)  # generation tasks only
    sandbox: Literal["auto", "namespaces", "unsafe-limits-only"] = "auto"  # generate: how generated code is contained
    label: str | None = None  # stack name; default: the methods applied so far


class MeasureStep(_Strict):
    batches: int = Field(default=4, gt=0)
    batch_size: int = Field(default=8, gt=0)
    max_length: int = Field(default=256, gt=0)
    rounds: int = Field(default=3, gt=0)  # interleaved baseline/candidate rounds
    energy: bool = True
    label: str | None = None


STEP_MODELS: dict[str, type[BaseModel]] = {
    "finetune": FinetuneStep,
    "alpine": AlpineStep,
    "prune": PruneStep,
    "structure": StructureStep,
    "quantize": QuantizeStep,
    "recover": RecoverStep,
    "evaluate": EvaluateStep,
    "measure": MeasureStep,
}


class StepSpec(_Strict):
    """One step, written in YAML as a one-key mapping: `- alpine: {alpha: 1.0}` (or just `- evaluate`)."""

    finetune: FinetuneStep | None = None
    alpine: AlpineStep | None = None
    prune: PruneStep | None = None
    structure: StructureStep | None = None
    quantize: QuantizeStep | None = None
    recover: RecoverStep | None = None
    evaluate: EvaluateStep | None = None
    measure: MeasureStep | None = None

    @model_validator(mode="before")
    @classmethod
    def _bare_kind(cls, data: Any) -> Any:
        if isinstance(data, str):
            if data not in STEP_KINDS:
                raise ValueError(f"unknown step {data!r}; expected one of: {', '.join(STEP_KINDS)}")
            return {data: {}}
        if isinstance(data, dict):
            if len(data) > 1:  # a dumped StepSpec lists every kind, the unused ones as None
                data = {k: v for k, v in data.items() if v is not None}
            unknown = [k for k in data if k not in STEP_KINDS]
            if unknown:
                raise ValueError(f"unknown step {unknown[0]!r}; expected one of: {', '.join(STEP_KINDS)}")
            if len(data) != 1:
                raise ValueError(f"a step is one mapping `- kind: {{options}}`, got keys {sorted(data)}")
            return {k: ({} if v is None else v) for k, v in data.items()}
        return data

    @property
    def kind(self) -> str:
        for name in STEP_KINDS:
            if getattr(self, name) is not None:
                return name
        raise RecipeError("empty step")  # unreachable after validation

    @property
    def options(self) -> BaseModel:
        return getattr(self, self.kind)


# ---------------------------------------------------------------- pipelines and recipes


class Pipeline(_Strict):
    """One model on one task with an ordered list of steps; a grid expands it into several concrete pipelines."""

    name: str
    model: str
    task: str
    data: DataSpec = Field(default_factory=DataSpec)
    steps: list[StepSpec] = Field(min_length=1)
    grid: dict[str, list[Any]] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        if not _NAME_RE.match(value):
            raise ValueError(f"{value!r} is not a usable name (letters, digits, '-', '_', '.')")
        return value

    @field_validator("grid")
    @classmethod
    def _grid(cls, value: dict[str, list[Any]]) -> dict[str, list[Any]]:
        for key, values in value.items():
            if key in ("grid", "name"):
                raise ValueError(f"grid over {key!r} is not allowed")
            if not values:
                raise ValueError(f"grid {key!r} has no values")
            _parse_path(key)
        return value


class EnergySpec(_Strict):
    country: str = "USA"  # ISO 3166 alpha-3, for codecarbon's offline carbon intensity
    track: bool = True

    @field_validator("country")
    @classmethod
    def _known_country(cls, value: str) -> str:
        from greenprune.measure.energy import check_country

        return check_country(value)  # an unknown code would get the world average under its own name


class Recipe(_Strict):
    """A named list of pipelines. Top-level `model`/`task`/`data`/`steps`/`grid` is shorthand for one pipeline."""

    name: str
    description: str = ""
    seed: int = 0
    energy: EnergySpec = Field(default_factory=EnergySpec)
    pipelines: list[Pipeline] = Field(min_length=1)
    # where each key was written (set by parse_recipe), so checks after validation can still say file:line
    _source: str = PrivateAttr(default="<recipe>")
    _lines: dict[tuple[str | int, ...], int] = PrivateAttr(default_factory=dict)
    _shorthand: bool = PrivateAttr(default=False)

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        return Pipeline._slug(value)

    def where(self, pipeline: str, loc: tuple[str | int, ...], point: dict[str, Any] | None = None) -> str:
        """`file:line: path` of key path `loc` inside pipeline `pipeline`, as written in the file.

        With a grid `point`, a value the grid set is located at its line in the grid.
        """
        index = next((i for i, p in enumerate(self.pipelines) if p.name == pipeline), 0)
        at: tuple[str | int, ...] = ("pipelines", index, *loc)
        for key, value in (point or {}).items():
            keyed = _parse_path(key)
            values = self.pipelines[index].grid.get(key, [])
            if loc[: len(keyed)] == keyed and value in values:
                at = ("pipelines", index, "grid", key, values.index(value))
        line = _line_of(at, self._lines)
        path = format_path(loc if self._shorthand else ("pipelines", index, *loc))
        return f"{self._source}:{line}: {path}" if line else f"{self._source}: {path}"

    @model_validator(mode="after")
    def _unique(self) -> Recipe:
        names = [p.name for p in self.pipelines]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"pipeline names must be unique; repeated: {', '.join(dupes)}")
        return self


_SHORTHAND_KEYS = ("model", "task", "data", "steps", "grid")


def _normalise(data: Any) -> Any:
    """Fold the one-pipeline shorthand into `pipelines: [...]` (keys keep their own paths for error messages)."""
    if not isinstance(data, dict):
        return data
    if any(k in data for k in _SHORTHAND_KEYS):
        if "pipelines" in data:
            raise ValueError("use either top-level model/task/steps or `pipelines:`, not both")
        data = dict(data)
        pipe = {"name": data.get("name", "main")}
        for key in _SHORTHAND_KEYS:
            if key in data:
                pipe[key] = data.pop(key)
        data["pipelines"] = [pipe]
        data["_shorthand"] = True
    return data


# ---------------------------------------------------------------- paths: "steps[2].alpine.alpha"

_TOKEN_RE = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*)|\[(\d+)\]|\.")


def _parse_path(path: str) -> tuple[str | int, ...]:
    parts: list[str | int] = []
    pos = 0
    while pos < len(path):
        m = _TOKEN_RE.match(path, pos)
        if not m or m.end() == pos:
            raise ValueError(f"bad grid key {path!r} at character {pos}; write it like steps[2].alpine.alpha")
        if m.group(1) is not None:
            parts.append(m.group(1))
        elif m.group(2) is not None:
            parts.append(int(m.group(2)))
        pos = m.end()
    if not parts:
        raise ValueError("empty grid key")
    return tuple(parts)


def format_path(loc: tuple[str | int, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _set_path(data: Any, path: tuple[str | int, ...], value: Any, key: str) -> None:
    obj = data
    for i, part in enumerate(path):
        last = i == len(path) - 1
        if isinstance(part, int):
            if not isinstance(obj, list) or part >= len(obj):
                raise ValueError(f"grid key {key!r}: {format_path(path[:i]) or 'pipeline'} has no item [{part}]")
            if last:
                obj[part] = value
            else:
                # a bare step (`- evaluate`) has no mapping to descend into yet
                if isinstance(obj[part], str):
                    obj[part] = {obj[part]: {}}
                obj = obj[part]
        else:
            if not isinstance(obj, dict):
                raise ValueError(f"grid key {key!r}: {format_path(path[:i]) or 'pipeline'} is not a mapping")
            if last:
                obj[part] = value
            else:
                if obj.get(part) is None:
                    obj[part] = {}
                obj = obj[part]


# ---------------------------------------------------------------- YAML with line numbers

# YAML aliases (`*name`) reuse an anchor's node, so nested aliases ("billion laughs": each level repeats the one
# before it) expand exponentially when the node graph becomes plain data; real recipes need a handful of aliases
MAX_ALIASES = 100
MAX_VALUES = 100_000  # scalars, lists and mappings after alias expansion


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts aliases and the size they expand to while composing, and refuses past the bounds."""

    def __init__(self, text: str, source: str) -> None:
        super().__init__(text)
        self.source = source
        self.aliases = 0
        self.values = 0  # values of the expanded document composed so far
        self._sizes: dict[int, int] = {}

    def _size(self, node: yaml.Node) -> int:
        """Values `node` expands to (memoised per node, so shared subtrees are counted in linear time)."""
        size = self._sizes.get(id(node))
        if size is None:
            if isinstance(node, yaml.SequenceNode):
                size = 1 + sum(self._size(item) for item in node.value)
            elif isinstance(node, yaml.MappingNode):
                size = 1 + sum(self._size(k) + self._size(v) for k, v in node.value)
            else:
                size = 1
            self._sizes[id(node)] = size
        return size

    def _refuse(self, mark: yaml.Mark, why: str) -> RecipeError:
        return RecipeError(f"{self.source}:{mark.line + 1}: {why}; refusing to expand it")

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        if not self.check_event(yaml.AliasEvent):
            self.values += 1
            return super().compose_node(parent, index)
        event = self.peek_event()
        self.aliases += 1
        if self.aliases > MAX_ALIASES:
            raise self._refuse(event.start_mark, f"more than {MAX_ALIASES} YAML aliases (*{event.anchor})")
        target = self.anchors.get(event.anchor)
        if target is not None and target.end_mark is None:  # still being composed: it would contain itself
            raise self._refuse(event.start_mark, f"the YAML alias *{event.anchor} refers to itself")
        node = super().compose_node(parent, index)
        self.values += self._size(node)
        if self.values > MAX_VALUES:
            raise self._refuse(event.start_mark, f"the YAML aliases (here *{event.anchor}) expand the recipe to more "
                                                 f"than {MAX_VALUES:,} values")
        return node


def _compose(text: str, source: str) -> yaml.Node | None:
    """The YAML node graph of `text`, with aliases and their expansion bounded (see `MAX_ALIASES`)."""
    loader = _BoundedLoader(text, source)
    try:
        return loader.get_single_node()
    except RecursionError as exc:
        raise RecipeError(f"{source}: the YAML is nested too deeply") from exc
    finally:
        loader.dispose()


def _to_python(
    node: yaml.Node, loc: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int], source: str = "<recipe>"
) -> Any:
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.constructor.SafeConstructor().construct_object(key_node, deep=True)
            if key in out:
                raise RecipeError(
                    f"{source}:{key_node.start_mark.line + 1}: key {format_path((*loc, key))!r} repeated")
            out[key] = _to_python(value_node, (*loc, key), lines, source)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_to_python(item, (*loc, i), lines, source) for i, item in enumerate(node.value)]
    return yaml.constructor.SafeConstructor().construct_object(node)


def _line_of(loc: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]) -> int | None:
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get(())


def _public_loc(loc: tuple[Any, ...], shorthand: bool) -> tuple[str | int, ...]:
    """Pydantic's loc → the path as written in the file (dropping union tags, mapping shorthand back)."""
    clean = tuple(p for p in loc if isinstance(p, int) or (isinstance(p, str) and not p.startswith(("function-",))))
    # pydantic names union members like 'literal['all','even','odd']' / 'list[int]': keep the field path only
    clean = tuple(p for p in clean if not (isinstance(p, str) and ("[" in p or p in ("str", "int", "float"))))
    if shorthand and clean[:2] == ("pipelines", 0):
        clean = clean[2:]
    return clean


def _format_errors(
    exc: ValidationError, source: str, lines: dict[tuple[str | int, ...], int], shorthand: bool,
    prefix: tuple[str | int, ...] = (),
) -> str:
    seen: list[str] = []
    for err in exc.errors():
        loc = _public_loc((*prefix, *err["loc"]), shorthand)
        line = _line_of(loc, lines)
        where = f"{source}:{line}" if line else source
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] == "extra_forbidden":
            msg = "unknown key"
        elif err["type"] == "missing":
            msg = "required key missing"
        text = f"{where}: {format_path(loc) or '(top level)'}: {msg}"
        if err["type"] not in ("extra_forbidden", "missing") and "input" in err and not isinstance(
            err["input"], dict | list
        ):
            text += f" (got {err['input']!r})"
        if text not in seen:
            seen.append(text)
    return "\n".join(seen)


def parse_recipe(text: str, source: str = "<recipe>") -> Recipe:
    """Validate recipe YAML text; every problem is reported as `source:line: path: message`."""
    try:
        node = _compose(text, source)
    except yaml.YAMLError as exc:
        raise RecipeError(f"{source}: not valid YAML: {exc}") from exc
    if node is None:
        raise RecipeError(f"{source}: empty recipe")
    lines: dict[tuple[str | int, ...], int] = {}
    data = _to_python(node, (), lines, source)
    if not isinstance(data, dict):
        raise RecipeError(f"{source}: a recipe is a mapping (name, model, task, steps, ...)")
    try:
        data = _normalise(data)
    except ValueError as exc:
        raise RecipeError(f"{source}: {exc}") from exc
    shorthand = bool(data.pop("_shorthand", False))
    if shorthand:
        # shorthand keys live at the top level of the file: map pipelines[0].X back to X
        for loc, line in list(lines.items()):
            if loc and loc[0] in _SHORTHAND_KEYS:
                lines[("pipelines", 0, *loc)] = line
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        raise RecipeError(_format_errors(exc, source, lines, shorthand)) from exc
    # validate every grid point now, so a bad grid value fails before the first step of the first point
    for index, pipe in enumerate(recipe.pipelines):
        prefix = () if shorthand else ("pipelines", index)
        raw = data["pipelines"][index]
        for key, values in pipe.grid.items():
            for j, value in enumerate(values):
                trial = copy.deepcopy(raw)
                trial.pop("grid", None)
                try:
                    _set_path(trial, _parse_path(key), value, key)
                    Pipeline.model_validate(trial)
                except ValueError as exc:  # ValidationError is a ValueError
                    line = lines.get((*prefix, "grid", key, j)) or _line_of((*prefix, "grid", key), lines)
                    detail = (
                        "; ".join(f"{format_path(_public_loc(e['loc'], False))}: {e['msg']}" for e in exc.errors())
                        if isinstance(exc, ValidationError)
                        else str(exc)
                    )
                    where = f"{source}:{line}" if line else source
                    path = format_path((*prefix, "grid"))
                    raise RecipeError(f"{where}: {path}[{key!r}][{j}] = {value!r}: {detail}") from exc
    recipe._source, recipe._lines, recipe._shorthand = source, lines, shorthand
    return recipe


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read and validate a recipe file (see `parse_recipe`)."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: no such recipe file")
    return parse_recipe(path.read_text(encoding="utf-8"), str(path))


# ---------------------------------------------------------------- grid expansion


class Unit(BaseModel):
    """One concrete pipeline (one grid point): what one executor task runs."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    id: str  # unique in the recipe, usable as a folder name
    pipeline: str
    point: dict[str, Any] = Field(default_factory=dict)
    spec: Pipeline
    seed: int
    country: str
    track_energy: bool


def _slug_value(value: Any) -> str:
    text = re.sub(r"[^A-Za-z0-9.]+", "-", str(value)).strip("-")
    return text or "x"


def expand(recipe: Recipe) -> list[Unit]:
    """Every pipeline × grid point as a concrete Unit, in file order (grid keys vary last-key fastest)."""
    units: list[Unit] = []
    for pipe in recipe.pipelines:
        base = pipe.model_dump(mode="json", exclude={"grid"}, exclude_none=True)
        keys = list(pipe.grid)
        combos = list(itertools.product(*(pipe.grid[k] for k in keys))) if keys else [()]
        for combo in combos:
            data = copy.deepcopy(base)
            point = dict(zip(keys, combo, strict=True))
            for key, value in point.items():
                _set_path(data, _parse_path(key), value, key)
            spec = Pipeline.model_validate(data)
            uid = pipe.name
            if point:
                uid += "@" + ",".join(f"{_parse_path(k)[-1]}={_slug_value(v)}" for k, v in point.items())
            units.append(
                Unit(id=uid, pipeline=pipe.name, point=point, spec=spec, seed=recipe.seed,
                     country=recipe.energy.country, track_energy=recipe.energy.track)
            )
    ids = [u.id for u in units]
    for i, unit in enumerate(units):  # identical slugs (e.g. 0.1 vs "0.1") get an index
        if ids.count(unit.id) > 1:
            unit.id = f"{unit.id}#{i}"
    return units


def step_labels(steps: list[StepSpec]) -> list[str]:
    """The stack label at each step: the modifying methods applied so far ('baseline' before any)."""
    applied: list[str] = []
    labels: list[str] = []
    for step in steps:
        if step.kind in MODIFYING_KINDS:
            applied.append(_method_label(step))
        labels.append("+".join(applied) if applied else "baseline")
    return labels


def _method_label(step: StepSpec) -> str:
    opts = step.options
    if isinstance(opts, AlpineStep):
        return f"alpine({opts.layers if isinstance(opts.layers, str) else 'custom'})"
    if isinstance(opts, PruneStep):
        return f"{opts.method}-{round(opts.sparsity * 100)}%"
    if isinstance(opts, StructureStep):
        parts = (["vocab"] if opts.vocab else []) + ([f"-{opts.layers}L"] if opts.layers else [])
        parts += [f"ffn{round(opts.ffn * 100)}%"] if opts.ffn else []
        return "/".join(parts)
    if isinstance(opts, QuantizeStep):
        return opts.dtype
    if isinstance(opts, RecoverStep):
        return "lora"
    return step.kind


__all__ = [
    "MODIFYING_KINDS", "STEP_KINDS", "STEP_MODELS", "AlpineStep", "DataSpec", "EnergySpec", "EvaluateStep",
    "FinetuneStep", "MeasureStep", "Pipeline", "PruneStep", "QuantizeStep", "Recipe", "RecipeError", "RecoverStep",
    "StepSpec", "StructureStep", "Unit", "expand", "format_path", "load_recipe", "parse_recipe", "step_labels",
]
