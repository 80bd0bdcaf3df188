"""`prune(model, WeightPruningConfig(...))`: one config object and one verb, as peft does with LoraConfig.

Pruning attaches masks (see `masks`), so the model can be fine-tuned with the mask fixed and folded in later with
`make_permanent`. The returned report lists every targeted tensor's sparsity.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from greenprune.measure.size import total_parameters
from greenprune.weights.criteria import (
    GRANULARITIES,
    SCOPES,
    UNSTRUCTURED,
    CriterionError,
    group_sets,
    parse_pattern,
    select_and_mask,
)
from greenprune.weights.importance import IMPORTANCES, importance_for
from greenprune.weights.masks import effective_weight, is_masked, masked_modules
from greenprune.weights.targets import resolve_targets, target_matcher

CALIBRATION_SOURCES = ("stdlib",)  # or a path: a text / .py file, or a folder of .py files


@dataclass
class WeightPruningConfig:
    """What to prune and how.

    method: a registered importance criterion — "random" | "l1" (magnitude) | "wanda" (|W|·||X||₂ from a
    calibration forward; see `importance`). scope: "global" (one ranking over all targets) | "per-tensor" (each
    target — or each attention block for heads — loses `sparsity` of its own weights) | "per-row" (each output row
    of each target loses `sparsity` of its weights: Wanda's comparison group); None = the criterion's default
    (per-row for wanda, global otherwise). granularity: "unstructured" | "rows" (output neurons) | "heads".
    pattern: "unstructured" | "N:M" — exactly N zeros in every group of M consecutive weights along the input
    dimension of each row (2:4 and 4:8 zero half the weights; NVIDIA's 2:4 keeps 2 of 4, which for 2:4 and 4:8 is
    the same mask). N:M fixes the sparsity at N/M and ignores the scope. sparsity: fraction of targeted weights
    zeroed in total (pruning again to a higher value continues from the current masks); None = 0.5, or N/M.
    targets: module-name globs (or `re:` regexes); None = attention Q/K/V/O and FFN projections of every layer.
    calibration (for criteria that need it): "stdlib" (the training split of the stdlib function corpus, never
    the held-out functions code-to-text evaluates on) or a path to a text / .py file or a folder of .py files;
    `calibration_windows` windows of `calibration_seq_len` tokens each.
    """

    method: str = "l1"
    scope: str | None = None
    granularity: str = "unstructured"
    sparsity: float | None = None
    targets: Sequence[str] | None = None
    seed: int = 0
    pattern: str = UNSTRUCTURED
    calibration: str = "stdlib"
    calibration_windows: int = 32
    calibration_seq_len: int = 256

    def __post_init__(self) -> None:
        if self.method not in IMPORTANCES:  # the live registry, so a criterion registered later is accepted
            raise CriterionError(f"unknown method {self.method!r}; expected one of: {', '.join(IMPORTANCES)}")
        if self.scope is None:
            self.scope = importance_for(self.method).default_scope
        for option, value, allowed in (
            ("scope", self.scope, SCOPES),
            ("granularity", self.granularity, GRANULARITIES),
        ):
            if value not in allowed:
                raise CriterionError(f"unknown {option} {value!r}; expected one of: {', '.join(allowed)}")
        nm = parse_pattern(self.pattern)
        if nm is not None:
            if self.granularity != UNSTRUCTURED:
                raise CriterionError(f"pattern {self.pattern!r} needs granularity 'unstructured', "
                                     f"got {self.granularity!r}")
            implied = nm[0] / nm[1]
            if self.sparsity is not None and abs(float(self.sparsity) - implied) > 1e-9:
                raise CriterionError(f"pattern {self.pattern!r} fixes the sparsity at {implied:g}; "
                                     f"got sparsity {self.sparsity} (leave it unset)")
            self.sparsity = implied
        elif self.sparsity is None:
            self.sparsity = 0.5
        if self.scope == "per-row" and self.granularity != UNSTRUCTURED:
            raise CriterionError(f"scope 'per-row' needs granularity 'unstructured', got {self.granularity!r}")
        if not 0.0 <= float(self.sparsity) <= 1.0:
            raise CriterionError(f"sparsity must be within [0, 1], got {self.sparsity}")
        if self.calibration_windows < 1 or self.calibration_seq_len < 2:
            raise CriterionError("calibration_windows must be >= 1 and calibration_seq_len >= 2 (got "
                                 f"{self.calibration_windows}, {self.calibration_seq_len})")
        if self.calibration not in CALIBRATION_SOURCES and importance_for(self.method).needs_calibration:
            path = Path(self.calibration)
            if not path.exists():
                raise CriterionError(f"calibration {self.calibration!r}: expected 'stdlib' or an existing text "
                                     "file / folder of .py files")
        if self.targets is not None:
            # one pattern given as a string is one pattern, not one per character
            self.targets = (self.targets,) if isinstance(self.targets, str) else tuple(self.targets)
            for pattern in self.targets:  # a bad regex fails here, before a model is loaded
                target_matcher(pattern)

    @property
    def needs_calibration(self) -> bool:
        return importance_for(self.method).needs_calibration

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


def calibration_texts(source: str, limit: int = 4000) -> list[str]:
    """The texts a calibration forward reads: the stdlib corpus' training split, or a user's file / folder."""
    if source == "stdlib":
        from greenprune.structure.calibration import stdlib_code

        return stdlib_code(limit=limit, split="train")
    path = Path(source)
    if path.is_dir():
        files = sorted(path.rglob("*.py"))
        if not files:
            raise CriterionError(f"calibration folder {source} holds no .py files")
        return [f.read_text(encoding="utf-8", errors="replace") for f in files[:limit]]
    if path.is_file():
        return [path.read_text(encoding="utf-8", errors="replace")]
    raise CriterionError(f"calibration {source!r}: expected 'stdlib' or an existing text file / folder of .py files")


def calibration_statistics(
    model: nn.Module,
    targets: dict[str, nn.Module],
    config: WeightPruningConfig,
    *,
    tokenizer: Any = None,
    calib: Sequence[dict[str, torch.Tensor]] | None = None,
) -> dict[str, Any]:
    """Input statistics of every targeted Linear over the calibration tokens (one forward pass with hooks)."""
    from greenprune.structure.calibration import calibration_batches, input_statistics

    not_linear = [name for name, m in targets.items() if not isinstance(m, nn.Linear)]
    if not_linear:
        raise CriterionError(f"method {config.method!r} scores a Linear's inputs; target {not_linear[0]} is a "
                             f"{type(targets[not_linear[0]]).__name__} ({len(not_linear)} such targets)")
    if calib is None:
        if tokenizer is None:
            raise CriterionError(f"method {config.method!r} needs calibration inputs: pass tokenizer= (to read "
                                 f"calibration {config.calibration!r}) or calib= batches to prune()")
        batch_size = min(4, config.calibration_windows)
        calib = calibration_batches(tokenizer, calibration_texts(config.calibration),
                                    seq_len=config.calibration_seq_len, batch_size=batch_size,
                                    max_batches=-(-config.calibration_windows // batch_size))
        extra = len(calib) * batch_size - config.calibration_windows  # exactly the configured number of windows
        if extra > 0 and calib[-1]["input_ids"].shape[0] == batch_size:
            calib[-1] = {k: v[: batch_size - extra] for k, v in calib[-1].items()}
    stats = input_statistics(model, list(calib), list(targets.values()), f"{config.method} calibration")
    return dict(zip(targets, stats, strict=True))


@torch.no_grad()
def prune(
    model: nn.Module,
    config: WeightPruningConfig,
    *,
    tokenizer: Any = None,
    calib: Sequence[dict[str, torch.Tensor]] | None = None,
) -> PruningReport:
    """Mask `config.sparsity` of the targeted weights by `config.method` (in place); returns the sparsity report.

    Criteria that need calibration (wanda) read `calib` batches (`input_ids`, optional `attention_mask`) or,
    given the model's `tokenizer`, windows of `config.calibration`. The forward pass sees the current masks.
    """
    targets = resolve_targets(model, config.targets)
    stats = None
    if config.needs_calibration:
        stats = calibration_statistics(model, targets, config, tokenizer=tokenizer, calib=calib)
    sets = group_sets(model, targets, config.method, config.granularity, config.seed, stats)
    select_and_mask(sets, float(config.sparsity), config.scope or "global", config.pattern)
    report = _report_on(model, targets)
    report.config = config
    if config.granularity == "heads":
        untouched = [n for n, m in targets.items() if not is_masked(m)]
        if untouched:
            report.notes.append(f"granularity 'heads' leaves {len(untouched)} non-attention targets unpruned")
    return report
