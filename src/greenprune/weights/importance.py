"""Importance criteria: how much each weight of a tensor matters (lower is pruned first).

Scoring is separate from grouping (what is removed together — one weight, one output row, one attention head;
see `criteria`), as Torch-Pruning separates its importance objects from its dependency groups: a criterion only
maps a weight tensor (and, when it needs them, its input statistics from a calibration forward) to one score per
weight, and the grouping reduces those scores to one per group. A new criterion is one subclass of `Importance`
registered with `@register_importance`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, ClassVar

import torch

if TYPE_CHECKING:
    from greenprune.structure.calibration import InputStats

IMPORTANCES: dict[str, type[Importance]] = {}


def register_importance(cls: type[Importance]) -> type[Importance]:
    """Make a criterion available by its `name` (to `WeightPruningConfig.method` and `greenprune prune --method`)."""
    IMPORTANCES[cls.name] = cls
    return cls


class Importance(ABC):
    """One score per weight of a 2-D `[out_features, in_features]` tensor; higher means keep longer.

    `needs_calibration`: `score` needs the tensor's input statistics (a calibration forward runs first).
    `default_scope`: the comparison group used when the config does not choose one.
    """

    name: ClassVar[str]
    needs_calibration: ClassVar[bool] = False
    default_scope: ClassVar[str] = "global"

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    @abstractmethod
    def score(self, weight: torch.Tensor, stats: InputStats | None = None) -> torch.Tensor:
        """Float32 CPU scores with `weight`'s shape (the effective weight: masked entries are zero)."""


@register_importance
class RandomImportance(Importance):
    """Uniform random scores from one generator seeded once, so a config's masks are reproducible."""

    name = "random"

    def __init__(self, seed: int = 0) -> None:
        super().__init__(seed)
        self.generator = torch.Generator().manual_seed(seed)

    def score(self, weight: torch.Tensor, stats: InputStats | None = None) -> torch.Tensor:
        return torch.rand(tuple(weight.shape), generator=self.generator, dtype=torch.float32)


@register_importance
class MagnitudeImportance(Importance):
    """L1 magnitude |W_ij|: the seed study's criterion (and torch.nn.utils.prune's L1Unstructured)."""

    name = "l1"

    def score(self, weight: torch.Tensor, stats: InputStats | None = None) -> torch.Tensor:
        return weight.detach().abs().float().cpu()


@register_importance
class WandaImportance(Importance):
    """Wanda (Sun et al., 2023): |W_ij| · ||X_j||₂, the weight times the L2 norm of input feature j over all
    calibration tokens, compared within each output row (the paper's comparison group, hence `per-row`).

    A small weight on a feature with large activations (LLMs have a few such outlier features) still moves the
    output, which magnitude alone misses. Norms come from one forward pass of the unpruned model over the
    calibration tokens (the paper instead recomputes each layer's inputs after pruning the layers before it).
    """

    name = "wanda"
    needs_calibration = True
    default_scope = "per-row"

    def score(self, weight: torch.Tensor, stats: InputStats | None = None) -> torch.Tensor:
        if stats is None:
            raise ValueError("wanda scores need the tensor's calibration input statistics")
        norm = stats.l2_norm
        if norm.numel() != weight.shape[-1]:
            raise ValueError(f"input statistics cover {norm.numel()} features, the weight has {weight.shape[-1]}")
        return weight.detach().abs().float().cpu() * norm[None, :]


def importance_for(method: str, seed: int = 0) -> Importance:
    """The registered criterion called `method`, seeded."""
    try:
        cls = IMPORTANCES[method]
    except KeyError:
        from greenprune.weights.criteria import CriterionError

        raise CriterionError(
            f"unknown pruning method {method!r}; expected one of: {', '.join(IMPORTANCES)}"
        ) from None
    return cls(seed)
