"""Grid expansion: one pipeline with `grid: {"steps[1].alpine.alpha": [0.5, 1.0]}` becomes one concrete Unit per
point, each validated again as a whole pipeline (so a grid value is checked like a value written in place)."""

from __future__ import annotations

import copy
import itertools
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from greenprune.recipe.paths import parse_path, set_path
from greenprune.recipe.schema import Pipeline, Recipe


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
    for index, pipe in enumerate(recipe.pipelines):
        base = recipe.written(index)
        keys = list(pipe.grid)
        combos = list(itertools.product(*(pipe.grid[k] for k in keys))) if keys else [()]
        for combo in combos:
            data = copy.deepcopy(base)
            point = dict(zip(keys, combo, strict=True))
            for key, value in point.items():
                set_path(data, parse_path(key), value, key)
            spec = Pipeline.model_validate(data)
            uid = pipe.name
            if point:
                uid += "@" + ",".join(f"{parse_path(k)[-1]}={_slug_value(v)}" for k, v in point.items())
            units.append(
                Unit(id=uid, pipeline=pipe.name, point=point, spec=spec, seed=recipe.seed,
                     country=recipe.energy.country, track_energy=recipe.energy.track)
            )
    ids = [u.id for u in units]
    for i, unit in enumerate(units):  # identical slugs (e.g. 0.1 vs "0.1") get an index
        if ids.count(unit.id) > 1:
            unit.id = f"{unit.id}#{i}"
    return units


__all__ = ["Unit", "expand"]
