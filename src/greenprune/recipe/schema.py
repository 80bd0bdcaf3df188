"""The recipe: one YAML file saying which model, task and data, and which ordered steps to apply.

Validated with pydantic before any work starts, so a typo in step 7 fails in a second, not after an hour of
fine-tuning; every error names the path in the file (`recipes/x.yaml:12: steps[2].alpine.alpha: ...`).
A step's options are validated by the options model its kind was registered with (`recipe/registry.py`); the YAML
is read with line numbers by `recipe/yaml_lines.py`, and grids are expanded by `recipe/grid.py`.
"""

from __future__ import annotations

import copy
import os
import re
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SerializationInfo,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from greenprune.recipe.paths import KeyPath, format_path, parse_path, set_path
from greenprune.recipe.registry import REGISTRY, dump_options, options_adapter, step_kinds
from greenprune.recipe.yaml_lines import Lines, RecipeError, line_of, load_with_lines

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def __getattr__(name: str) -> Any:
    """`STEP_KINDS` / `MODIFYING_KINDS`: views of the registry, so a kind is declared once (where it is registered)."""
    if name == "STEP_KINDS":
        return step_kinds()
    if name == "MODIFYING_KINDS":  # the model before the first of them is the baseline every stack is compared with
        return tuple(k for k, kind in REGISTRY.items() if kind.modifies)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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


def _one_kind(data: Any) -> tuple[str, Any]:
    """`"evaluate"` or `{"alpine": {...}}` → (kind, its options as written)."""
    known = ", ".join(step_kinds())
    if isinstance(data, str):
        if data not in REGISTRY:
            raise ValueError(f"unknown step {data!r}; expected one of: {known}")
        return data, {}
    if not isinstance(data, dict):
        raise ValueError(f"a step is a kind's name or one mapping `- kind: {{options}}`, not {type(data).__name__}")
    if len(data) > 1:  # steps dumped by earlier versions list every kind, the unused ones as None
        data = {k: v for k, v in data.items() if v is not None}
    unknown = [k for k in data if k not in REGISTRY]
    if unknown:
        raise ValueError(f"unknown step {unknown[0]!r}; expected one of: {known}")
    if len(data) != 1:
        raise ValueError(f"a step is one mapping `- kind: {{options}}`, got keys {sorted(data)}")
    ((kind, value),) = data.items()
    return kind, ({} if value is None else value)


def _under(kind: str, exc: ValidationError) -> ValidationError:
    """The errors of a kind's options, located under the kind's key (`alpine.alpha`) as the file writes them."""
    details: list[InitErrorDetails] = []
    for err in exc.errors():
        loc = (kind, *err["loc"])
        try:  # a built-in error type keeps its type, context and message
            detail = InitErrorDetails(type=err["type"], loc=loc, input=err["input"])  # type: ignore[typeddict-item]
            if "ctx" in err:
                detail["ctx"] = err["ctx"]
            ValidationError.from_exception_data(exc.title, [detail])
        except (KeyError, TypeError, ValueError):  # a custom one keeps its message
            template = err["msg"].replace("{", "{{").replace("}", "}}")
            detail = InitErrorDetails(type=PydanticCustomError(err["type"], template), loc=loc, input=err["input"])
        details.append(detail)
    return ValidationError.from_exception_data(exc.title, details)


class StepSpec(BaseModel):
    """One step, written in YAML as a one-key mapping: `- alpine: {alpha: 1.0}` (or just `- evaluate`).

    `options` is an instance of the options model the kind was registered with (for ALPINE, `AlpineConfig` itself).
    `step.alpine` reads the options of an ALPINE step (None for a step of another kind), as the file spells it.
    """

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    kind: str
    options: Any

    @model_validator(mode="before")
    @classmethod
    def _validate_options(cls, data: Any) -> Any:
        if isinstance(data, StepSpec):
            return data
        if isinstance(data, dict) and set(data) == {"kind", "options"} and data["kind"] in REGISTRY:
            kind, value = data["kind"], data["options"]  # StepSpec(kind=..., options=...)
        else:
            kind, value = _one_kind(data)
        try:
            options = options_adapter(kind).validate_python(value)
        except ValidationError as exc:
            raise _under(kind, exc) from None
        return {"kind": kind, "options": options}

    @model_serializer(mode="plain")
    def _as_written(self, info: SerializationInfo) -> dict[str, Any]:
        return {self.kind: dump_options(self.options, mode=info.mode, exclude_none=info.exclude_none)}

    def __getattr__(self, name: str) -> Any:
        if name in REGISTRY and "kind" in self.__dict__:
            return self.options if self.kind == name else None
        return super().__getattr__(name)  # type: ignore[misc]


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
            parse_path(key)
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
    _lines: Lines = PrivateAttr(default_factory=dict)
    _shorthand: bool = PrivateAttr(default=False)
    # each pipeline as written (grid points are applied to these, so they can use any name the file may use)
    _written: list[dict[str, Any]] = PrivateAttr(default_factory=list)

    @field_validator("name")
    @classmethod
    def _slug(cls, value: str) -> str:
        return Pipeline._slug(value)

    def written(self, index: int) -> dict[str, Any]:
        """Pipeline `index` as plain data without its grid: as written in the file (after `parse_recipe`), else
        as validated."""
        if index < len(self._written):
            data = {k: v for k, v in self._written[index].items() if k != "grid"}
            return copy.deepcopy(data)
        return self.pipelines[index].model_dump(mode="json", exclude={"grid"}, exclude_none=True)

    def where(self, pipeline: str, loc: KeyPath, point: dict[str, Any] | None = None) -> str:
        """`file:line: path` of key path `loc` inside pipeline `pipeline`, as written in the file.

        With a grid `point`, a value the grid set is located at its line in the grid.
        """
        index = next((i for i, p in enumerate(self.pipelines) if p.name == pipeline), 0)
        at: KeyPath = ("pipelines", index, *loc)
        for key, value in (point or {}).items():
            keyed = parse_path(key)
            values = self.pipelines[index].grid.get(key, [])
            if loc[: len(keyed)] == keyed and value in values:
                at = ("pipelines", index, "grid", key, values.index(value))
        line = line_of(at, self._lines)
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



def _public_loc(loc: tuple[Any, ...], shorthand: bool) -> tuple[str | int, ...]:
    """Pydantic's loc → the path as written in the file (dropping union tags, mapping shorthand back)."""
    clean = tuple(p for p in loc if isinstance(p, int) or (isinstance(p, str) and not p.startswith(("function-",))))
    # pydantic names union members like 'literal['all','even','odd']' / 'list[int]': keep the field path only
    clean = tuple(p for p in clean if not (isinstance(p, str) and ("[" in p or p in ("str", "int", "float"))))
    if shorthand and clean[:2] == ("pipelines", 0):
        clean = clean[2:]
    return clean


# pydantic's error types for a key a model (or a dataclass, such as AlpineConfig) does not have, or needs
_UNKNOWN_KEY = ("extra_forbidden", "unexpected_keyword_argument")
_MISSING_KEY = ("missing", "missing_argument", "missing_keyword_only_argument")


def _format_errors(
    exc: ValidationError, source: str, lines: Lines, shorthand: bool,
    prefix: KeyPath = (),
) -> str:
    seen: list[str] = []
    for err in exc.errors():
        loc = _public_loc((*prefix, *err["loc"]), shorthand)
        line = line_of(loc, lines)
        where = f"{source}:{line}" if line else source
        msg = err["msg"].removeprefix("Value error, ")
        if err["type"] in _UNKNOWN_KEY:
            msg = "unknown key"
        elif err["type"] in _MISSING_KEY:
            msg = "required key missing"
        text = f"{where}: {format_path(loc) or '(top level)'}: {msg}"
        if err["type"] not in (*_UNKNOWN_KEY, *_MISSING_KEY) and "input" in err and not isinstance(
            err["input"], dict | list
        ):
            text += f" (got {err['input']!r})"
        if text not in seen:
            seen.append(text)
    return "\n".join(seen)


def parse_recipe(text: str, source: str = "<recipe>") -> Recipe:
    """Validate recipe YAML text; every problem is reported as `source:line: path: message`."""
    data, lines = load_with_lines(text, source)
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
                    set_path(trial, parse_path(key), value, key)
                    Pipeline.model_validate(trial)
                except ValueError as exc:  # ValidationError is a ValueError
                    line = lines.get((*prefix, "grid", key, j)) or line_of((*prefix, "grid", key), lines)
                    detail = (
                        "; ".join(f"{format_path(_public_loc(e['loc'], False))}: {e['msg']}" for e in exc.errors())
                        if isinstance(exc, ValidationError)
                        else str(exc)
                    )
                    where = f"{source}:{line}" if line else source
                    path = format_path((*prefix, "grid"))
                    raise RecipeError(f"{where}: {path}[{key!r}][{j}] = {value!r}: {detail}") from exc
    recipe._source, recipe._lines, recipe._shorthand = source, lines, shorthand
    recipe._written = copy.deepcopy(data["pipelines"])
    return recipe


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    """Read and validate a recipe file (see `parse_recipe`)."""
    path = Path(path)
    if not path.is_file():
        raise RecipeError(f"{path}: no such recipe file")
    return parse_recipe(path.read_text(encoding="utf-8"), str(path))


def step_labels(steps: list[StepSpec]) -> list[str]:
    """The stack label at each step: the modifying methods applied so far ('baseline' before any)."""
    applied: list[str] = []
    labels: list[str] = []
    for step in steps:
        kind = REGISTRY[step.kind]
        if kind.modifies:
            applied.append(kind.describe(step.options))
        labels.append("+".join(applied) if applied else "baseline")
    return labels


__all__ = [
    "DataSpec", "EnergySpec", "Pipeline", "Recipe", "RecipeError", "StepSpec", "format_path", "load_recipe",
    "parse_recipe", "step_labels",
]
