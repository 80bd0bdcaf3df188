"""fp16 / bf16 / int8-dynamic quantisation: models run, pruned zeros survive, measured against fp32."""

from __future__ import annotations

import pytest
import torch

from greenprune.errors import GreenpruneError
from greenprune.models import load_model
from greenprune.quantize import compare_quantized, int8_linear_count, quantize
from greenprune.weights import WeightPruningConfig, get_masks, prune


@pytest.fixture(scope="module")
def bert():
    return load_model("tiny-bert")


def _batches(tokenizer):
    texts = ["def add(a, b):\n    return a + b", "for i in range(10):\n    print(i * i)"] * 2
    return [dict(tokenizer(texts, return_tensors="pt", padding=True))]


def test_float_dtypes_copy_and_keep_predictions_close(bert):
    model, tok = bert
    inputs = _batches(tok)[0]
    with torch.no_grad():
        ref = model(**inputs).logits
        for dtype, torch_dtype, tol in (("fp16", torch.float16, 1e-2), ("bf16", torch.bfloat16, 5e-2)):
            q = quantize(model, dtype)
            assert next(q.parameters()).dtype == torch_dtype
            assert next(model.parameters()).dtype == torch.float32  # the original is untouched
            assert torch.allclose(q(**inputs).logits.float(), ref, atol=tol)


def test_int8_dynamic_quantises_every_linear_and_keeps_pruned_zeros():
    loaded = load_model("tiny-bert")
    model = loaded.model
    prune(model, WeightPruningConfig(sparsity=0.5))
    masks = get_masks(model)
    q = quantize(model, "int8")
    linears = sum(1 for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert int8_linear_count(q) == linears
    modules = dict(q.named_modules())
    for name, keep in masks.items():
        assert torch.all(modules[name].weight().int_repr()[~keep] == 0), name
    inputs = _batches(loaded.tokenizer)[0]
    with torch.no_grad():
        out = q(**inputs).logits
    assert out.shape == (4, 2) and torch.isfinite(out).all()
    assert get_masks(model)  # quantising a copy leaves the masked original alone


def test_unknown_dtype():
    with pytest.raises(GreenpruneError, match="int4"):
        quantize(torch.nn.Linear(2, 2), "int4")


def test_compare_against_fp32_in_one_process(bert):
    model, tok = bert
    calls = []

    def evaluate(m) -> dict[str, float]:
        full = next(m.parameters()).dtype == torch.float32 and int8_linear_count(m) == 0
        calls.append(full)
        return {"score": 1.0 if full else 0.5}

    comps = compare_quantized(model, _batches(tok), ("fp16", "int8"), evaluate=evaluate, rounds=2, energy=False)
    assert [c.candidate.config["dtype"] for c in comps] == ["fp16", "int8"]
    assert calls == [True, False, False]  # fp32 evaluated once, each candidate once
    assert "16" in comps[0].candidate.cost.dtype and "32" in comps[0].baseline.cost.dtype
    for comp in comps:
        assert comp.ratios["metric:score"] == pytest.approx(0.5)
        assert comp.ratios["latency_interleaved"] > 0
    # int8 stores Linear weights in a quarter of the bytes
    assert comps[1].ratios["checkpoint_bytes"] < 1.0
