"""fp16 / bf16 / int8-dynamic quantisation: models run, pruned zeros survive, measured against fp32."""

from __future__ import annotations

import copy
import math

import pytest
import torch
from torch import nn

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
    # the random head gives logits of a few hundredths, below bf16's absolute error: scale it to logits of order 1
    # so a tolerance relative to the logits' scale can tell a close output from a zero one
    model = copy.deepcopy(model)
    with torch.no_grad():
        model.classifier.weight.mul_(100.0)
        model.classifier.bias.zero_()
    inputs = _batches(tok)[0]
    with torch.no_grad():
        ref = model(**inputs).logits
        scale = float(ref.abs().max())
        assert scale > 1.0
        for dtype, torch_dtype, rel in (("fp16", torch.float16, 1e-2), ("bf16", torch.bfloat16, 5e-2)):
            q = quantize(model, dtype)
            assert next(q.parameters()).dtype == torch_dtype
            assert next(model.parameters()).dtype == torch.float32  # the original is untouched
            out = q(**inputs).logits.float()
            assert torch.allclose(out, ref, rtol=0, atol=rel * scale), (dtype, (out - ref).abs().max(), scale)
            assert (out - ref).abs().max() < rel * scale < 0.5 * float(out.abs().max())  # not all near zero


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
    after = get_masks(model)  # quantising a copy leaves the masked original alone
    assert set(after) == set(masks) and all(torch.equal(after[n], masks[n]) for n in masks)


def test_unknown_dtype():
    with pytest.raises(GreenpruneError, match="int4"):
        quantize(torch.nn.Linear(2, 2), "int4")


def test_compare_against_fp32_in_one_process(bert, monkeypatch):
    import importlib

    model, tok = bert
    calls = []
    compare_module = importlib.import_module("greenprune.measure.compare")
    real_pass = compare_module.timed_pass
    passes: list[tuple[nn.Module, float]] = []

    def spy(m, data, timings):
        seconds = real_pass(m, data, timings)
        passes.append((m, seconds))
        return seconds

    monkeypatch.setattr(compare_module, "timed_pass", spy)

    def evaluate(m) -> dict[str, float]:
        full = next(m.parameters()).dtype == torch.float32 and int8_linear_count(m) == 0
        calls.append(full)
        return {"score": 1.0 if full else 0.5}

    comps = compare_quantized(model, _batches(tok), ("fp16", "int8"), evaluate=evaluate, rounds=2, energy=False)
    assert [c.candidate.config["dtype"] for c in comps] == ["fp16", "int8"]
    assert calls == [True, False, False]  # fp32 evaluated once, each candidate once
    assert "16" in comps[0].candidate.cost.dtype and "32" in comps[0].baseline.cost.dtype
    assert len(passes) == 2 * 2 * 2  # two dtypes x two rounds x (fp32, candidate)
    for i, comp in enumerate(comps):
        assert comp.ratios["metric:score"] == pytest.approx(0.5)
        # the ratio is candidate over fp32, round by round (geometric mean), not inverted or made up
        mine = passes[4 * i : 4 * i + 4]
        full = [next(m.parameters()).dtype == torch.float32 and int8_linear_count(m) == 0 for m, _ in mine]
        fp32 = [s for (_, s), f in zip(mine, full, strict=True) if f]
        cand = [s for (_, s), f in zip(mine, full, strict=True) if not f]
        assert len(fp32) == len(cand) == 2
        expected = math.sqrt((cand[0] / fp32[0]) * (cand[1] / fp32[1]))
        assert comp.ratios["latency_interleaved"] == pytest.approx(expected, rel=1e-9)
    # int8 stores Linear weights in a quarter of the bytes
    assert comps[1].ratios["checkpoint_bytes"] < 1.0
