"""Which tensors weight pruning touches: module-name patterns, defaulting to the family table.

Default (the seed study's choice): the attention Q/K/V/output and FFN projections of every transformer layer —
of the encoder for encoders and encoder-decoder models, of every decoder layer for causal LMs. Embeddings,
LayerNorm, biases and task heads are left alone.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from torch import nn

from greenprune.errors import GreenpruneError
from greenprune.models.families import Family, family_of, pruned_stack
from greenprune.weights.masks import is_masked


class TargetError(GreenpruneError, ValueError):
    """A target pattern matched nothing, or matched a module weight pruning cannot handle."""


@dataclass(frozen=True)
class LayerSpan:
    """One transformer layer's targetable modules, by role, for head-aware pruning."""

    prefix: str  # qualified name of the layer
    family: Family


def _qualified_name(model: nn.Module, target: nn.Module) -> str:
    for name, module in model.named_modules():
        if module is target:
            return name
    raise TargetError(f"module {type(target).__name__} is not part of {type(model).__name__}")


def transformer_layers(model: nn.Module) -> list[LayerSpan]:
    """Every transformer layer weight pruning targets by default (encoder side of an encoder-decoder model)."""
    stack = pruned_stack(model)
    fam = family_of(stack)
    layers = fam.layers(stack)
    prefix = _qualified_name(model, layers)
    return [LayerSpan(f"{prefix}.{i}", fam) for i in range(len(layers))]


def default_target_names(model: nn.Module) -> list[str]:
    """Qualified names of the default targets (attention Q/K/V/O and FFN projections of each layer)."""
    return [f"{span.prefix}.{proj}" for span in transformer_layers(model) for proj in span.family.layer_linear_names()]


def target_matcher(pattern: str) -> Callable[[str], bool]:
    """Whether a qualified module name matches `pattern` (a glob, or a regex after `re:`); a bad regex names it."""
    if not isinstance(pattern, str) or not pattern:
        raise TargetError(f"target pattern {pattern!r}: expected a non-empty glob or re:REGEX string")
    if pattern.startswith("re:"):
        try:
            regex = re.compile(pattern[3:])
        except re.error as exc:
            raise TargetError(f"target pattern {pattern!r} is not a valid regular expression: {exc}") from exc
        return lambda name: regex.fullmatch(name) is not None
    return lambda name: fnmatch.fnmatchcase(name, pattern)


def _prunable(module: nn.Module) -> bool:
    weight = getattr(module, "weight_orig", None) if is_masked(module) else getattr(module, "weight", None)
    return isinstance(module, (nn.Linear, nn.Embedding)) and weight is not None and weight.dim() == 2


def _tied_modules(modules: dict[str, nn.Module]) -> set[str]:
    """Modules whose weight is shared with another module (e.g. a tied LM head and input embeddings)."""
    owners: dict[int, list[str]] = {}
    for name, module in modules.items():
        if _prunable(module):
            weight = module.weight_orig if is_masked(module) else module.weight
            owners.setdefault(id(weight), []).append(name)
    return {name for names in owners.values() if len(names) > 1 for name in names}


def resolve_targets(model: nn.Module, patterns: Sequence[str] | None = None) -> dict[str, nn.Module]:
    """Qualified name → module for the targeted modules, in model order.

    `patterns` are shell-style globs over qualified module names (`*` crosses dots), or regexes prefixed `re:`;
    None means the family default. Each pattern must match at least one Linear/Embedding module.
    """
    modules = dict(model.named_modules())
    if patterns is None:
        names = default_target_names(model)
        return {name: modules[name] for name in names}
    tied = _tied_modules(modules)
    chosen: dict[str, nn.Module] = {}
    for pattern in patterns:
        match = target_matcher(pattern)
        hits = [name for name, m in modules.items() if name and match(name) and _prunable(m)]
        if hits and all(name in tied for name in hits):
            raise TargetError(
                f"target pattern {pattern!r} matches only weights tied between modules ({', '.join(hits[:4])}); "
                "tied embeddings / LM heads are not weight-pruned (see greenprune.structure for vocabulary pruning)"
            )
        hits = [name for name in hits if name not in tied]
        if not hits:
            examples = ", ".join(n for n, m in list(modules.items()) if _prunable(m))[:300]
            raise TargetError(
                f"target pattern {pattern!r} matches no Linear/Embedding module of {type(model).__name__}; "
                f"prunable modules include: {examples}"
            )
        for name in hits:
            chosen[name] = modules[name]
    order = {name: i for i, name in enumerate(modules)}
    return dict(sorted(chosen.items(), key=lambda item: order[item[0]]))
