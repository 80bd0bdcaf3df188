"""Structural criteria are objects apart from the grouping: a new one is one class, and the steps use it."""

from __future__ import annotations

import pytest
import torch

from greenprune.models import load_model
from greenprune.structure.calibration import calibration_batches
from greenprune.structure.criteria import LAYER_IMPORTANCES, ChannelImportance, LayerImportance
from greenprune.structure.ffn import FFNPruningConfig, prune_ffn, prune_linear
from greenprune.structure.heads import KVGroupPruningConfig, prune_kv_groups
from greenprune.structure.layers import LayerPruningConfig, LayerPruningError, layer_scores, prune_layers


@pytest.fixture()
def tiny(code_corpus):
    lm = load_model("tiny-llama")
    batches = calibration_batches(lm.tokenizer, code_corpus[:2], seq_len=32, batch_size=2, max_batches=1)
    return lm, batches


class ByIndex(ChannelImportance):
    """Channel j scores j: the highest-numbered channels are kept."""

    name = "by-index"

    def channel_scores(self, model, calib, linears, desc):
        return [torch.arange(lin.in_features, dtype=torch.float32) for lin in linears]


def test_a_channel_importance_decides_which_ffn_neurons_and_kv_groups_stay(tiny) -> None:
    lm, batches = tiny
    size = lm.model.config.intermediate_size
    result = prune_ffn(lm.model, batches, FFNPruningConfig(fraction=0.25), importance=ByIndex())
    assert result.kept == [list(range(size - result.size_after, size))] * len(result.kept)
    kv = lm.model.config.num_key_value_heads
    heads = prune_kv_groups(lm.model, batches, KVGroupPruningConfig(groups=1), importance=ByIndex())
    assert heads.kept_groups == [list(range(1, kv))] * len(heads.kept_groups)


def test_a_registered_layer_importance_is_usable_by_name(tiny, monkeypatch) -> None:
    class LastFirst(LayerImportance):
        name = "last-first"

        def layer_scores(self, model, batches, candidates=None):
            n = model.config.num_hidden_layers
            return {i: float(n - i) for i in (range(n) if candidates is None else candidates)}

    monkeypatch.setitem(LAYER_IMPORTANCES, "last-first", LastFirst)
    lm, batches = tiny
    n = lm.model.config.num_hidden_layers
    assert layer_scores(lm.model, batches, "last-first") == {i: float(n - i) for i in range(n)}
    result = prune_layers(lm.model, batches, LayerPruningConfig(remove=2, metric="last-first"))  # type: ignore[arg-type]
    assert result.removed == [n - 1, n - 2]
    with pytest.raises(LayerPruningError, match="expected one of: kl, bi, last-first"):
        layer_scores(lm.model, batches, "no-such-metric")


def test_prune_linear_keeps_dtype_grad_flag_and_global_random_state() -> None:
    root = torch.nn.Sequential(torch.nn.Linear(6, 4).to(torch.bfloat16))
    root[0].weight.requires_grad_(False)
    before = root[0].weight.detach().clone()
    state = torch.random.get_rng_state()
    new = prune_linear(root, "0", torch.tensor([3, 1]), 0)
    assert torch.equal(torch.random.get_rng_state(), state)  # the throwaway init drew nothing from it
    assert root[0] is new and new.weight.dtype == torch.bfloat16 and not new.weight.requires_grad
    assert torch.equal(new.weight, before[[3, 1]]) and (new.in_features, new.out_features) == (6, 2)
    cols = prune_linear(root, "0", torch.tensor([0, 5]), 1)
    assert torch.equal(cols.weight, before[[3, 1]][:, [0, 5]]) and cols.bias.shape == (2,)
