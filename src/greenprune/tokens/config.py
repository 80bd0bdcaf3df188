"""ALPINE's configuration: which layers prune, and by which rule."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal

from pydantic import ConfigDict, with_config

from greenprune.errors import GreenpruneError

LAYER_PRESETS = ("none", "all", "odd", "even")
RULES = ("adaptive", "static", "random")


class AlpineError(GreenpruneError, ValueError):
    """ALPINE was given a configuration or model it cannot use; the message names the bad input."""


@with_config(ConfigDict(extra="forbid"))  # a recipe's `alpine:` step is validated as this config
@dataclass
class AlpineConfig:
    """How ALPINE prunes tokens.

    - `layers`: "none" | "all" | "odd" | "even" | explicit 0-based layer indices. "even" means layers 0, 2, 4, ...
      (Python indices into `encoder.layer`), so the first layer prunes and every later layer runs shorter.
    - `rule="adaptive"` keeps an ordinary token j iff its score lies in [mean - alpha*std, mean + alpha*std] of its own
      sequence (population std); `rule="static"` keeps the ceil((1 - ratio) * n) highest-scored ordinary tokens;
      `rule="random"` keeps as many, drawn at random (seeded by `seed`): the ablation that says whether the
      attention scores matter at all.
    - `merge=True` averages the pruned tokens of a sequence into one fused token appended after its kept tokens
      (fused tokens are then protected like special tokens in later layers).
    - `special_ids`: extra token ids that are always kept, added to the tokenizer's special ids.
    - `trace`: record kept lengths per layer for every forward (cheap: a few integers per sequence and layer).
    """

    layers: str | Sequence[int] = "all"
    alpha: float = 1.0
    rule: Literal["adaptive", "static", "random"] = "adaptive"
    ratio: float = 0.5
    seed: int = 0
    merge: bool = True
    special_ids: tuple[int, ...] = field(default_factory=tuple)
    trace: bool = True

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise AlpineError(f"AlpineConfig(rule={self.rule!r}): expected one of {', '.join(RULES)}")
        if isinstance(self.layers, str):
            if self.layers not in LAYER_PRESETS:
                raise AlpineError(
                    f"AlpineConfig(layers={self.layers!r}): expected one of {', '.join(LAYER_PRESETS)} "
                    "or a list of layer indices"
                )
        else:
            layers = list(self.layers)
            if not all(isinstance(i, int) and not isinstance(i, bool) for i in layers):
                raise AlpineError(f"AlpineConfig(layers={self.layers!r}): layer indices must be integers")
            self.layers = tuple(layers)
        if not self.alpha >= 0:
            raise AlpineError(f"AlpineConfig(alpha={self.alpha!r}): alpha must be >= 0")
        if not 0.0 <= self.ratio < 1.0:
            raise AlpineError(f"AlpineConfig(ratio={self.ratio!r}): the pruned fraction must be in [0, 1)")
        self.special_ids = tuple(int(i) for i in self.special_ids)

    def resolve_layers(self, num_layers: int) -> list[int]:
        """The 0-based indices of the pruning layers of a model with `num_layers` layers."""
        if self.layers == "none":
            return []
        if self.layers == "all":
            return list(range(num_layers))
        if self.layers == "even":
            return list(range(0, num_layers, 2))
        if self.layers == "odd":
            return list(range(1, num_layers, 2))
        bad = self.out_of_range(num_layers)
        if bad:
            raise AlpineError(
                f"AlpineConfig(layers={list(self.layers)}): layer {', '.join(map(str, bad))} is out of range for a "
                f"model with {num_layers} layers"
            )
        return sorted({i + num_layers if i < 0 else i for i in self.layers})  # type: ignore[union-attr]

    def out_of_range(self, num_layers: int) -> list[int]:
        """Explicit layer indices a model with `num_layers` layers does not have (negative ones count from the end);
        checkable from the model's config alone, before anything is loaded or fine-tuned."""
        if isinstance(self.layers, str):
            return []
        return [i for i in self.layers if not -num_layers <= i < num_layers]

    def describe(self) -> dict[str, object]:
        """A JSON-friendly summary for result records."""
        out: dict[str, object] = {
            "layers": self.layers if isinstance(self.layers, str) else list(self.layers),
            "rule": self.rule,
            "merge": self.merge,
        }
        if self.rule == "adaptive":
            out["alpha"] = self.alpha
        else:
            out["ratio"] = self.ratio
        if self.rule == "random":
            out["seed"] = self.seed
        return out
