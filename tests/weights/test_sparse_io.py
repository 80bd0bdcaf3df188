"""Compact sparse checkpoints: smaller on disk, bit-exact on reload."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors import safe_open

from greenprune.errors import GreenpruneError
from greenprune.models import load_model
from greenprune.weights import WeightPruningConfig, make_permanent, prune
from greenprune.weights.sparse_io import (
    WEIGHTS_NAME,
    densify,
    folder_bytes,
    load_sparse,
    pack_bits,
    read_sparse_state_dict,
    save_sparse,
    unpack_bits,
)


def test_bit_packing_round_trips():
    bits = torch.rand(1003, generator=torch.Generator().manual_seed(0)) > 0.5
    packed = pack_bits(bits)
    assert packed.dtype == torch.uint8 and packed.numel() == 126
    assert torch.equal(unpack_bits(packed, 1003), bits)


def test_half_sparse_checkpoint_is_small_and_reloads_bit_exactly(tmp_path):
    loaded = load_model("tiny-bert")
    model = loaded.model
    # every weight matrix (embeddings too) at 50%, so the whole file is 50% sparse
    prune(model, WeightPruningConfig(method="l1", scope="per-tensor", sparsity=0.5, targets=["*"]))
    save_sparse(model, tmp_path / "sparse", loaded.tokenizer)
    make_permanent(model)
    model.save_pretrained(tmp_path / "dense")
    ratio = folder_bytes(tmp_path / "sparse") / folder_bytes(tmp_path / "dense")
    assert ratio <= 0.6
    again = load_sparse(tmp_path / "sparse")
    expected, got = model.state_dict(), again.state_dict()
    assert set(expected) == set(got)
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    ids = loaded.tokenizer(["def f(x): return x"], return_tensors="pt")
    with torch.no_grad():
        assert torch.equal(model(**ids).logits, again(**ids).logits)


def test_tied_decoder_checkpoint_and_densify(tmp_path):
    loaded = load_model("tiny-llama")
    model = loaded.model
    prune(model, WeightPruningConfig(method="random", sparsity=0.7, seed=2))
    save_sparse(model, tmp_path / "sparse", loaded.tokenizer)
    with safe_open(str(tmp_path / "sparse" / WEIGHTS_NAME), framework="pt") as fh:
        layout = json.loads(fh.metadata()["layout"])
    assert layout["tied"] == {"lm_head.weight": "model.embed_tokens.weight"}
    assert layout["tensors"]["model.layers.0.self_attn.q_proj.weight"]["storage"] == "sparse"
    assert layout["tensors"]["model.embed_tokens.weight"]["storage"] == "dense"
    state = read_sparse_state_dict(tmp_path / "sparse")
    make_permanent(model)
    for key, value in model.state_dict().items():
        assert torch.equal(state[key], value), key
    # a plain HF folder that greenprune's loader (and from_pretrained) read like any other
    plain = load_model(densify(tmp_path / "sparse", tmp_path / "plain")).model
    for key, value in model.state_dict().items():
        assert torch.equal(plain.state_dict()[key], value), key


def test_not_a_sparse_checkpoint(tmp_path):
    with pytest.raises(GreenpruneError, match=WEIGHTS_NAME):
        load_sparse(tmp_path)
