"""FFN neuron and KV-group removal: consistent slicing, zero means untouched, plain reload."""

from __future__ import annotations

import pytest
import torch

from greenprune.models import load_model
from greenprune.structure.calibration import calibration_batches
from greenprune.structure.ffn import FFNPruningConfig, FFNPruningError, ffn_scores, kept_size, prune_ffn
from greenprune.structure.heads import KVGroupPruningConfig, KVGroupPruningError, group_scores, prune_kv_groups

from .conftest import reload_plain


@pytest.fixture()
def tiny(code_corpus):
    lm = load_model("tiny-llama")
    batches = calibration_batches(lm.tokenizer, code_corpus[:2], seq_len=64, batch_size=2, max_batches=2)
    return lm, batches


def _logits(model, ids):
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_zero_fraction_is_bit_identical(tiny) -> None:
    lm, batches = tiny
    ids = batches[0]["input_ids"]
    before = _logits(lm.model, ids)
    weights = {k: v.clone() for k, v in lm.model.state_dict().items()}
    result = prune_ffn(lm.model, batches, FFNPruningConfig(fraction=0.0))
    assert torch.equal(_logits(lm.model, ids), before)
    assert all(torch.equal(v, weights[k]) for k, v in lm.model.state_dict().items())
    assert result.size_after == result.size_before
    prune_kv_groups(lm.model, batches, KVGroupPruningConfig(groups=0))
    assert torch.equal(_logits(lm.model, ids), before)


def test_dead_neurons_are_removed_and_slicing_is_consistent(tiny) -> None:
    lm, batches = tiny
    model = lm.model
    dead = [3, 17, 40, 99]
    with torch.no_grad():
        for layer in model.model.layers:
            layer.mlp.down_proj.weight[:, dead] = 0.0
    scores = ffn_scores(model, batches)
    assert all(float(s[dead].max()) == 0.0 and float(s.min()) == 0.0 for s in scores)
    assert all(int((s > 0).sum()) == 128 - len(dead) for s in scores)
    ids = batches[0]["input_ids"]
    before = _logits(model, ids)
    result = prune_ffn(model, batches, FFNPruningConfig(target_size=128 - len(dead)))
    assert all(not set(dead) & set(k) for k in result.kept)
    for layer in model.model.layers:
        assert layer.mlp.gate_proj.out_features == layer.mlp.up_proj.out_features == layer.mlp.down_proj.in_features
    assert model.config.intermediate_size == 124
    torch.testing.assert_close(_logits(model, ids), before, rtol=1e-5, atol=1e-5)
    assert result.params_before - result.params_after == 4 * 3 * 64 * len(dead)


def test_ffn_pruned_checkpoint_reloads_plainly(tiny, tmp_path) -> None:
    lm, batches = tiny
    result = prune_ffn(lm.model, batches, FFNPruningConfig(fraction=0.25))
    assert result.size_after == 96
    lm.model.save_pretrained(tmp_path)
    ids = batches[0]["input_ids"][:1, :10]
    got = reload_plain(tmp_path, ids.tolist())
    assert got["params"] == result.params_after
    assert got["config"]["intermediate_size"] == 96
    assert got["logits"] == pytest.approx(_logits(lm.model, ids)[0, -1, :4].tolist(), abs=1e-5)


def test_kv_group_pruning_matches_masked_model(tiny, tmp_path) -> None:
    lm, batches = tiny
    model = lm.model
    scores = group_scores(model, batches)
    assert [s.shape[0] for s in scores] == [2] * 4
    # silence KV group 1 of every layer through the output projection: it becomes the least important
    with torch.no_grad():
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight[:, 32:] = 0.0  # 4 heads × 16 dims, 2 heads per group
    ids = batches[0]["input_ids"]
    before = _logits(model, ids)
    result = prune_kv_groups(model, batches, KVGroupPruningConfig(groups=1))
    assert result.kept_groups == [[0]] * 4
    assert (model.config.num_attention_heads, model.config.num_key_value_heads, model.config.head_dim) == (2, 1, 16)
    torch.testing.assert_close(_logits(model, ids), before, rtol=1e-5, atol=1e-5)
    model.save_pretrained(tmp_path)
    got = reload_plain(tmp_path, ids[:1, :8].tolist())
    assert got["params"] == result.params_after < result.params_before


def test_bad_ffn_and_head_requests(tiny) -> None:
    lm, batches = tiny
    with pytest.raises(FFNPruningError, match="fraction"):
        kept_size(128, FFNPruningConfig(fraction=1.0))
    with pytest.raises(FFNPruningError, match="fraction or"):
        kept_size(128, FFNPruningConfig(fraction=None))
    assert kept_size(128, FFNPruningConfig(target_size=64)) == 64
    with pytest.raises(FFNPruningError, match="target size"):
        kept_size(128, FFNPruningConfig(fraction=None, target_size=500))
    assert kept_size(1536, FFNPruningConfig(fraction=0.2, multiple_of=64)) == 1216
    with pytest.raises(KVGroupPruningError, match="KV groups"):
        prune_kv_groups(lm.model, batches, KVGroupPruningConfig(groups=2))
