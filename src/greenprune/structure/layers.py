"""Whole-layer removal for decoder LLMs, chosen greedily on calibration data (Flab-Pruner's layer step).

Two importance scores, both "how much would the model notice if this layer were gone":

- `kl`: mean KL(p_full || p_without_layer) of the next-token distributions over all calibration tokens. Exact
  about what we care for (the output), one forward per candidate layer.
- `bi` (block influence): 1 − mean cosine similarity between a layer's input and output hidden states. A layer
  that barely rotates its input is close to an identity. One forward scores all layers.

Greedy: remove the least important layer, re-score the remaining ones on the pruned model, repeat; removals
interact (two adjacent near-identities may not both be removable), which one-shot ranking misses.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from greenprune._utils import progress
from greenprune.errors import GreenpruneError
from greenprune.measure.size import total_parameters
from greenprune.models.families import family_of
from greenprune.structure.calibration import Batch, as_batches
from greenprune.structure.criteria import LAYER_IMPORTANCES, LayerImportance, register_layer_importance

Metric = Literal["kl", "bi"]


class LayerPruningError(GreenpruneError, ValueError):
    """A layer-pruning request that cannot be met (bad metric, too many layers, encoder model, ...)."""


@dataclass(frozen=True)
class LayerPruningConfig:
    """How many decoder layers to remove and how to choose them.

    `protect` lists original layer indices never removed (the first and last layers often matter most for
    the embedding/unembedding geometry); `rescore=False` ranks once and removes the `remove` lowest (faster, worse).
    """

    remove: int = 4  # how many layers go
    metric: Metric = "kl"
    rescore: bool = True
    protect: tuple[int, ...] = ()


@dataclass
class LayerPruningResult:
    model: nn.Module
    removed: list[int]  # original indices, in removal order
    kept: list[int]  # original indices of the remaining layers, in order
    metric: str
    rounds: list[dict[int, float]] = field(default_factory=list)  # per round: original index -> importance
    params_before: int = 0
    params_after: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "metric": self.metric,
            "removed": self.removed,
            "kept": self.kept,
            "params_before": self.params_before,
            "params_after": self.params_after,
            "scores_first_round": {str(k): round(v, 6) for k, v in (self.rounds[0] if self.rounds else {}).items()},
        }


def _decoder_layers(model: nn.Module) -> nn.ModuleList:
    fam = family_of(model)
    if fam.kind != "decoder":
        raise LayerPruningError(
            f"layer pruning by next-token scores needs a decoder LLM; {model.config.model_type!r} is an {fam.kind}"
        )
    return fam.layers(model)


def _set_layers(model: nn.Module, layers: Sequence[nn.Module]) -> None:
    """Install `layers` as the decoder stack and make config and per-layer indices agree with it."""
    fam = family_of(model)
    fam.set_layers(model, nn.ModuleList(layers))
    fam.set_num_layers(model.config, len(layers))
    for new_idx, layer in enumerate(layers):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):
                module.layer_idx = new_idx


@contextlib.contextmanager
def _temporarily(model: nn.Module, keep: Sequence[int]) -> Iterator[None]:
    """Run the model with only the layers at positions `keep` (config and layer_types follow), then restore."""
    layers = list(_decoder_layers(model))
    config = model.config
    fam = family_of(model)
    saved_types = list(config.layer_types) if isinstance(getattr(config, "layer_types", None), list) else None
    saved_n = fam.num_layers(config)
    saved_idx = [[(m, m.layer_idx) for m in layer.modules() if hasattr(m, "layer_idx")] for layer in layers]
    try:
        if saved_types is not None:
            config.layer_types = [saved_types[i] for i in keep]
        _set_layers(model, [layers[i] for i in keep])
        yield
    finally:
        _set_layers(model, layers)
        fam.set_num_layers(config, saved_n)
        if saved_types is not None:
            config.layer_types = saved_types
        for pairs in saved_idx:
            for module, idx in pairs:
                module.layer_idx = idx


def _inputs(batch: Batch, model: nn.Module) -> dict[str, torch.Tensor]:
    device = next(model.parameters()).device
    return {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask")}


def _token_mask(batch: Batch) -> torch.Tensor:
    mask = batch.get("attention_mask")
    ids = batch["input_ids"]
    return (torch.ones_like(ids) if mask is None else mask).bool()


@register_layer_importance
class KLImportance(LayerImportance):
    """Mean KL(full || without layer i) per token: exact about the output, one forward per candidate layer."""

    name = "kl"

    @torch.no_grad()
    def layer_scores(self, model: nn.Module, batches: Sequence[Batch],
                     candidates: Sequence[int] | None = None) -> dict[int, float]:
        layers = _decoder_layers(model)
        n = len(layers)
        candidates = list(range(n)) if candidates is None else list(candidates)
        full_logp = [F.log_softmax(model(**_inputs(b, model), use_cache=False).logits.float(), dim=-1)
                     for b in batches]
        scores: dict[int, float] = {}
        for i in progress(candidates, desc="KL per layer"):
            total, count = 0.0, 0
            with _temporarily(model, [j for j in range(n) if j != i]):
                for batch, ref in zip(batches, full_logp, strict=True):
                    logp = F.log_softmax(model(**_inputs(batch, model), use_cache=False).logits.float(), dim=-1)
                    kl = (ref.exp() * (ref - logp)).sum(-1)  # [batch, seq]
                    mask = _token_mask(batch).to(kl.device)
                    total += float(kl[mask].sum())
                    count += int(mask.sum())
            scores[i] = total / max(count, 1)
        return scores


@register_layer_importance
class BlockInfluenceImportance(LayerImportance):
    """Block influence 1 − cos(input, output) per layer, averaged over calibration tokens; one forward."""

    name = "bi"

    @torch.no_grad()
    def layer_scores(self, model: nn.Module, batches: Sequence[Batch],
                     candidates: Sequence[int] | None = None) -> dict[int, float]:
        layers = _decoder_layers(model)
        sums = [0.0] * len(layers)
        count = 0
        current_mask: list[torch.Tensor] = []

        def hook(idx: int):
            def fn(module: nn.Module, args: tuple, kwargs: dict, output: Any) -> None:
                h_in = args[0] if args else kwargs["hidden_states"]
                h_out = output[0] if isinstance(output, tuple) else output
                cos = F.cosine_similarity(h_in.float(), h_out.float(), dim=-1)
                sums[idx] += float((1.0 - cos)[current_mask[0].to(cos.device)].sum())

            return fn

        handles = [layer.register_forward_hook(hook(i), with_kwargs=True) for i, layer in enumerate(layers)]
        try:
            for batch in batches:
                current_mask[:] = [_token_mask(batch)]
                model(**_inputs(batch, model), use_cache=False)
                count += int(current_mask[0].sum())
        finally:
            for h in handles:
                h.remove()
        candidates = range(len(layers)) if candidates is None else candidates
        return {i: sums[i] / max(count, 1) for i in candidates}


METRICS = tuple(LAYER_IMPORTANCES)  # the built-in layer criteria; validation reads the live registry


def layer_importance(metric: str | LayerImportance) -> LayerImportance:
    """The registered layer criterion called `metric` (an instance passes through)."""
    if isinstance(metric, LayerImportance):
        return metric
    cls = LAYER_IMPORTANCES.get(metric)  # type: ignore[arg-type]
    if cls is None:
        raise LayerPruningError(f"unknown layer metric {metric!r}; expected one of: {', '.join(LAYER_IMPORTANCES)}")
    return cls()


def kl_scores(model: nn.Module, batches: Sequence[Batch], candidates: Sequence[int] | None = None) -> dict[int, float]:
    """Mean KL(full || without layer i) per token, for each current layer position i."""
    return KLImportance().layer_scores(model, batches, candidates)


def bi_scores(model: nn.Module, batches: Sequence[Batch], candidates: Sequence[int] | None = None) -> dict[int, float]:
    """Block influence 1 − cos(input, output) per layer, averaged over calibration tokens."""
    return BlockInfluenceImportance().layer_scores(model, batches, candidates)


def layer_scores(model: nn.Module, batches: Iterable[Batch], metric: str | LayerImportance = "kl") -> dict[int, float]:
    """Importance of every current decoder layer (lower = safer to remove)."""
    importance = layer_importance(metric)
    return importance.layer_scores(model, as_batches(batches))


def remove_layers(model: nn.Module, indices: Iterable[int]) -> nn.Module:
    """Delete decoder layers at current positions `indices` in place; config and layer indices follow."""
    layers = list(_decoder_layers(model))
    drop = set(indices)
    bad = sorted(i for i in drop if not 0 <= i < len(layers))
    if bad:
        raise LayerPruningError(f"layer indices {bad} out of range for a model with {len(layers)} layers")
    if len(drop) >= len(layers):
        raise LayerPruningError(f"cannot remove all {len(layers)} layers")
    if not drop:
        return model
    keep = [i for i in range(len(layers)) if i not in drop]
    config = model.config
    if isinstance(getattr(config, "layer_types", None), list):
        config.layer_types = [config.layer_types[i] for i in keep]
    _set_layers(model, [layers[i] for i in keep])
    return model


def prune_layers(
    model: nn.Module, calib: Iterable[Batch], config: LayerPruningConfig | None = None
) -> LayerPruningResult:
    """Greedily remove `config.remove` decoder layers (in place), re-scoring after each removal."""
    config = config or LayerPruningConfig()
    importance = layer_importance(config.metric)
    n_layers = len(_decoder_layers(model))
    removable = n_layers - len({i for i in config.protect if 0 <= i < n_layers})
    if config.remove < 0 or config.remove > removable or config.remove >= n_layers:
        raise LayerPruningError(
            f"cannot remove {config.remove} of {n_layers} layers (protected: {sorted(set(config.protect))})"
        )
    params_before = total_parameters(model)
    original = list(range(n_layers))  # original index of each current position
    result = LayerPruningResult(model, [], original, config.metric, params_before=params_before)
    if config.remove == 0:
        result.params_after = params_before
        return result
    batches = as_batches(calib)
    was_training = model.training
    model.eval()
    ranking: list[int] | None = None
    for _ in progress(range(config.remove), desc=f"greedy layer removal ({config.metric})"):
        if ranking is None or config.rescore:
            scores = importance.layer_scores(model, batches)
            result.rounds.append({original[pos]: s for pos, s in scores.items()})
            ranking = sorted(
                (original[pos] for pos in scores if original[pos] not in config.protect),
                key=lambda o: result.rounds[-1][o],
            )
        victim = next(o for o in ranking if o in original)
        remove_layers(model, [original.index(victim)])
        original.remove(victim)
        result.removed.append(victim)
    model.train(was_training)
    result.kept = original
    result.params_after = total_parameters(model)
    return result


__all__ = [
    "METRICS",
    "BlockInfluenceImportance",
    "KLImportance",
    "LayerPruningConfig",
    "LayerPruningError",
    "LayerPruningResult",
    "bi_scores",
    "kl_scores",
    "layer_importance",
    "layer_scores",
    "prune_layers",
    "remove_layers",
]
