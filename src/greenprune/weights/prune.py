"""`prune(model, WeightPruningConfig(...))`: one config object and one verb, as peft does with LoraConfig.

Pruning attaches masks (see `masks`), so the model can be fine-tuned with the mask fixed and folded in later with
`make_permanent`. The returned report lists every targeted tensor's sparsity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from greenprune.measure.size import total_parameters
from greenprune.weights.criteria import GRANULARITIES, METHODS, SCOPES, CriterionError, group_sets, select_and_mask
from greenprune.weights.masks import effective_weight, is_masked, masked_modules
from greenprune.weights.targets import resolve_targets, target_matcher


@dataclass
class WeightPruningConfig:
    """What to prune and how.

    method: "random" | "l1" (magnitude). scope: "global" (one ranking over all targets) | "per-tensor" (each
    target — or each attention block for heads — loses `sparsity` of its own weights). granularity:
    "unstructured" | "rows" (output neurons) | "heads". sparsity: fraction of targeted weights zeroed in total
    (pruning again to a higher value continues from the current masks). targets: module-name globs (or `re:`
    regexes); None = attention Q/K/V/O and FFN projections of every layer, from the family table.
    """

    method: str = "l1"
    scope: str = "global"
    granularity: str = "unstructured"
    sparsity: float = 0.5
    targets: Sequence[str] | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        for option, value, allowed in (
            ("method", self.method, METHODS),
            ("scope", self.scope, SCOPES),
            ("granularity", self.granularity, GRANULARITIES),
        ):
            if value not in allowed:
                raise CriterionError(f"unknown {option} {value!r}; expected one of: {', '.join(allowed)}")
        if not 0.0 <= float(self.sparsity) <= 1.0:
            raise CriterionError(f"sparsity must be within [0, 1], got {self.sparsity}")
        if self.targets is not None:
            # one pattern given as a string is one pattern, not one per character
            self.targets = (self.targets,) if isinstance(self.targets, str) else tuple(self.targets)
            for pattern in self.targets:  # a bad regex fails here, before a model is loaded
                target_matcher(pattern)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["targets"] = list(self.targets) if self.targets is not None else None
        return data


@dataclass
class TensorSparsity:
    name: str
    shape: tuple[int, ...]
    numel: int
    zeros: int

    @property
    def sparsity(self) -> float:
        return self.zeros / self.numel if self.numel else 0.0


@dataclass
class PruningReport:
    """Sparsity per targeted tensor and in total; `config` is None for a report on an arbitrary model."""

    tensors: list[TensorSparsity]
    config: WeightPruningConfig | None = None
    params_total: int = 0
    notes: list[str] = field(default_factory=list)

    @property
    def targeted(self) -> int:
        return sum(t.numel for t in self.tensors)

    @property
    def zeros(self) -> int:
        return sum(t.zeros for t in self.tensors)

    @property
    def sparsity(self) -> float:
        """Zeros over targeted weights."""
        return self.zeros / self.targeted if self.targeted else 0.0

    @property
    def model_sparsity(self) -> float:
        """Zeros in the targeted tensors over all parameters of the model (embeddings and heads included)."""
        return self.zeros / self.params_total if self.params_total else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "config": self.config.as_dict() if self.config else None,
            "targeted_weights": self.targeted,
            "zeros": self.zeros,
            "sparsity": self.sparsity,
            "model_sparsity": self.model_sparsity,
            "params_total": self.params_total,
            "tensors": [{"name": t.name, "shape": list(t.shape), "numel": t.numel, "zeros": t.zeros,
                         "sparsity": t.sparsity} for t in self.tensors],
            "notes": list(self.notes),
        }

    def to_markdown(self, max_rows: int | None = None) -> str:
        lines = ["| tensor | shape | sparsity |", "|---|---|---:|"]
        rows = self.tensors if max_rows is None else self.tensors[:max_rows]
        lines += [f"| {t.name} | {'×'.join(map(str, t.shape))} | {t.sparsity:.3f} |" for t in rows]
        if max_rows is not None and len(self.tensors) > max_rows:
            lines.append(f"| … {len(self.tensors) - max_rows} more | | |")
        lines.append(f"| **targeted total** ({self.targeted:,} weights) | | **{self.sparsity:.3f}** |")
        return "\n".join(lines)


def sparsity_report(model: nn.Module, targets: Sequence[str] | None = None) -> PruningReport:
    """Zeros per tensor of the masked modules (or of `targets` / the default targets when nothing is masked).

    Counts the effective weight, so it is the same before and after `make_permanent`.
    """
    modules = masked_modules(model) if targets is None else {}
    return _report_on(model, modules or resolve_targets(model, targets))


def _report_on(model: nn.Module, modules: dict[str, nn.Module]) -> PruningReport:
    tensors = []
    for name, module in modules.items():
        weight = effective_weight(module)
        tensors.append(TensorSparsity(name, tuple(weight.shape), weight.numel(), int((weight == 0).sum())))
    return PruningReport(tensors, None, total_parameters(model))


@torch.no_grad()
def prune(model: nn.Module, config: WeightPruningConfig) -> PruningReport:
    """Mask `config.sparsity` of the targeted weights by `config.method` (in place); returns the sparsity report."""
    targets = resolve_targets(model, config.targets)
    sets = group_sets(model, targets, config.method, config.granularity, config.seed)
    select_and_mask(sets, float(config.sparsity), config.scope)
    report = _report_on(model, targets)
    report.config = config
    if config.granularity == "heads":
        untouched = [n for n, m in targets.items() if not is_masked(m)]
        if untouched:
            report.notes.append(f"granularity 'heads' leaves {len(untouched)} non-attention targets unpruned")
    return report
