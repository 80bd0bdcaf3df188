"""Recipe YAML read with the line of every key, and with YAML aliases bounded.

Validation errors and the checks after it name `file:line: key path`, so the loader keeps where each key and item
was written; aliases are counted while composing so an alias bomb is refused before it expands.
"""

from __future__ import annotations

from typing import Any

import yaml

from greenprune.errors import GreenpruneError
from greenprune.recipe.paths import KeyPath, format_path

# YAML aliases (`*name`) reuse an anchor's node, so nested aliases ("billion laughs": each level repeats the one
# before it) expand exponentially when the node graph becomes plain data; real recipes need a handful of aliases
MAX_ALIASES = 100
MAX_VALUES = 100_000  # scalars, lists and mappings after alias expansion

Lines = dict[KeyPath, int]


class RecipeError(GreenpruneError, ValueError):
    """A recipe file that cannot be used; the message names the file, line and key path."""


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


def compose(text: str, source: str) -> yaml.Node | None:
    """The YAML node graph of `text`, with aliases and their expansion bounded (see `MAX_ALIASES`)."""
    loader = _BoundedLoader(text, source)
    try:
        return loader.get_single_node()
    except RecursionError as exc:
        raise RecipeError(f"{source}: the YAML is nested too deeply") from exc
    finally:
        loader.dispose()


def to_python(node: yaml.Node, loc: KeyPath, lines: Lines, source: str = "<recipe>") -> Any:
    """Plain data of `node`, recording in `lines` the (1-based) line of every key path; repeated keys refused."""
    lines[loc] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = yaml.constructor.SafeConstructor().construct_object(key_node, deep=True)
            if key in out:
                raise RecipeError(
                    f"{source}:{key_node.start_mark.line + 1}: key {format_path((*loc, key))!r} repeated")
            out[key] = to_python(value_node, (*loc, key), lines, source)
        return out
    if isinstance(node, yaml.SequenceNode):
        return [to_python(item, (*loc, i), lines, source) for i, item in enumerate(node.value)]
    return yaml.constructor.SafeConstructor().construct_object(node)


def load_with_lines(text: str, source: str) -> tuple[Any, Lines]:
    """Recipe text → (plain data, line of every key path); RecipeError for invalid or empty YAML."""
    try:
        node = compose(text, source)
    except yaml.YAMLError as exc:
        raise RecipeError(f"{source}: not valid YAML: {exc}") from exc
    if node is None:
        raise RecipeError(f"{source}: empty recipe")
    lines: Lines = {}
    return to_python(node, (), lines, source), lines


def line_of(loc: KeyPath, lines: Lines) -> int | None:
    """The line of `loc`, or of its nearest written parent."""
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return lines.get(())


__all__ = ["MAX_ALIASES", "MAX_VALUES", "Lines", "RecipeError", "compose", "line_of", "load_with_lines", "to_python"]
