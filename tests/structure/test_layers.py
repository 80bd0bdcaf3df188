"""Greedy layer removal: picks an identity layer first, removes nothing when asked for zero, reloads plainly."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from greenprune.models import load_model
from greenprune.structure.calibration import calibration_batches
from greenprune.structure.layers import (
    LayerPruningConfig,
    LayerPruningError,
    layer_scores,
    prune_layers,
    remove_layers,
)


@pytest.fixture()
def tiny(code_corpus):
    lm = load_model("tiny-llama")
    batches = calibration_batches(lm.tokenizer, code_corpus[:2], seq_len=64, batch_size=2, max_batches=2)
    return lm, batches


def _make_identity(model, index: int) -> None:
    """Zero the residual-branch outputs, so the layer returns its input unchanged."""
    layer = model.model.layers[index]
    with torch.no_grad():
        layer.self_attn.o_proj.weight.zero_()
        layer.mlp.down_proj.weight.zero_()


@pytest.mark.parametrize("metric", ["kl", "bi"])
def test_identity_layer_is_removed_first(tiny, metric: str) -> None:
    lm, batches = tiny
    _make_identity(lm.model, 2)
    scores = layer_scores(lm.model, batches, metric)
    assert scores[2] == pytest.approx(0.0, abs=1e-6)
    assert all(scores[i] > 1e-4 for i in (0, 1, 3))
    result = prune_layers(lm.model, batches, LayerPruningConfig(remove=2, metric=metric))
    assert result.removed[0] == 2
    assert len(result.rounds) == 2  # re-scored after the first removal
    assert lm.model.config.num_hidden_layers == 2
    assert [layer.self_attn.layer_idx for layer in lm.model.model.layers] == [0, 1]
    assert result.kept == [i for i in range(4) if i not in result.removed]


def test_identity_removal_keeps_logits_and_generation(tiny) -> None:
    lm, batches = tiny
    _make_identity(lm.model, 1)
    ids = batches[0]["input_ids"][:1, :16]
    with torch.no_grad():
        before = lm.model(input_ids=ids).logits
        gen_before = lm.model.generate(ids, max_new_tokens=6, do_sample=False)
    remove_layers(lm.model, [1])
    with torch.no_grad():
        after = lm.model(input_ids=ids).logits
        gen_after = lm.model.generate(ids, max_new_tokens=6, do_sample=False)  # KV cache indexes by layer_idx
    torch.testing.assert_close(after, before, rtol=1e-5, atol=1e-5)
    assert torch.equal(gen_after, gen_before)


def test_zero_layers_is_bit_identical(tiny) -> None:
    lm, batches = tiny
    ids = batches[0]["input_ids"]
    with torch.no_grad():
        before = lm.model(input_ids=ids).logits
    result = prune_layers(lm.model, batches, LayerPruningConfig(remove=0))
    with torch.no_grad():
        after = lm.model(input_ids=ids).logits
    assert torch.equal(before, after)
    assert result.removed == [] and result.params_after == result.params_before


def test_bad_requests(tiny) -> None:
    lm, batches = tiny
    with pytest.raises(LayerPruningError, match="metric"):
        prune_layers(lm.model, batches, LayerPruningConfig(remove=1, metric="cosine"))  # type: ignore[arg-type]
    with pytest.raises(LayerPruningError, match="cannot remove"):
        prune_layers(lm.model, batches, LayerPruningConfig(remove=4))
    with pytest.raises(LayerPruningError, match="out of range"):
        remove_layers(lm.model, [7])
    enc = load_model("tiny-bert")
    with pytest.raises(LayerPruningError, match="decoder"):
        prune_layers(enc.model, batches, LayerPruningConfig(remove=1))


def test_layer_pruned_checkpoint_loads_without_greenprune(tiny, tmp_path) -> None:
    lm, batches = tiny
    result = prune_layers(lm.model, batches, LayerPruningConfig(remove=1, metric="bi"))
    lm.model.save_pretrained(tmp_path)
    ids = batches[0]["input_ids"][:1, :12]
    with torch.no_grad():
        expected = lm.model(input_ids=ids).logits[0, -1, :4].tolist()
    script = (
        "import json, sys, torch\n"
        "from transformers import AutoModelForCausalLM\n"
        f"m = AutoModelForCausalLM.from_pretrained({str(tmp_path)!r}).eval()\n"
        f"ids = torch.tensor([{ids[0].tolist()}])\n"
        "with torch.no_grad(): out = m(input_ids=ids).logits[0, -1, :4].tolist()\n"
        "assert 'greenprune' not in sys.modules\n"
        "print(json.dumps({'params': sum(p.numel() for p in m.parameters()), 'layers': m.config.num_hidden_layers,"
        " 'logits': out}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["params"] == result.params_after < result.params_before
    assert got["layers"] == 3
    assert got["logits"] == pytest.approx(expected, abs=1e-5)
