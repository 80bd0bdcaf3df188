"""The step registry: everything about a step kind is declared once, in one `register_step` call.

A kind is its name, its options model (the library's own config where there is one, e.g. `AlpineConfig`), the
function that runs it, whether it changes the model, how a resumed run gets its model back, and the stack label it
contributes. The recipe schema validates `- kind: {options}` against this registry, so a kind registered here
(built in or a user's) is usable in recipes without touching the schema.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter

StepFn = Callable[[Any, Any, Any], Any]  # (State, options, StepContext) -> StepOutput
RestoreFn = Callable[[Any, Any], None]  # (State, the finished step's record) -> None
LabelFn = Callable[[Any], str]  # options -> this step's part of the stack label
RESTORES = ("checkpoint", "replay", "none")


@dataclass(frozen=True)
class StepKind:
    """One step kind.

    `restore`: how a resumed run gets the model back after this step finished: reload the checkpoint it wrote
    (`checkpoint`), re-apply a cheap deterministic transform (`replay`), or nothing to restore (`none`).
    `modifies`: the step changes the model (the baseline is snapshotted before the first such step, and the step
    adds `label(options)` to the stack label).
    """

    name: str
    run: StepFn
    restore: str
    modifies: bool
    on_restore: RestoreFn | None = None
    options: type | None = None  # pydantic model or (pydantic-validatable) dataclass of the step's options
    label: LabelFn | None = None

    def describe(self, options: Any) -> str:
        """This step's part of a stack label (`alpine(even)`, `l1-30%`); the kind's name by default."""
        return self.label(options) if self.label is not None else self.name


REGISTRY: dict[str, StepKind] = {}


def register_step(
    name: str, run: StepFn, restore: str, *, modifies: bool, options: type | None = None,
    label: LabelFn | None = None, on_restore: RestoreFn | None = None,
) -> StepKind:
    """Add (or replace) a step kind. Replacing an existing kind keeps its options model and label unless given."""
    if restore not in RESTORES:
        raise ValueError(f"restore must be checkpoint, replay or none, not {restore!r}")
    previous = REGISTRY.get(name)
    if options is None:
        if previous is None or previous.options is None:
            raise ValueError(f"step kind {name!r}: give its options model (options=...)")
        options = previous.options
        label = label if label is not None else previous.label
    REGISTRY[name] = kind = StepKind(name, run, restore, modifies, on_restore, options, label)
    return kind


def step_kinds() -> tuple[str, ...]:
    """The registered kinds, in registration order."""
    return tuple(REGISTRY)


@functools.cache
def _adapter(options: type) -> TypeAdapter[Any]:
    return TypeAdapter(options)


def options_adapter(kind: str) -> TypeAdapter[Any]:
    """The pydantic validator/serialiser of a kind's options (KeyError for an unknown kind)."""
    options = REGISTRY[kind].options
    if options is None:
        raise KeyError(kind)
    return _adapter(options)


def dump_options(options: Any, mode: str = "json", exclude_none: bool = False) -> dict[str, Any]:
    """A step's options as plain data (what records and resolved.json store)."""
    return _adapter(type(options)).dump_python(options, mode=mode, exclude_none=exclude_none)


__all__ = ["REGISTRY", "RESTORES", "StepKind", "dump_options", "options_adapter", "register_step", "step_kinds"]
