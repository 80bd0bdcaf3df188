from __future__ import annotations

import pytest
import torch

from greenprune.measure import analytic_flops, count_flops
from greenprune.models import load_model


def _batch(tokenizer, n: int, length: int):
    text = "def f(x):\n    return [i * x for i in range(10)]\n" * 40
    return dict(tokenizer([text] * n, padding="max_length", truncation=True, max_length=length, return_tensors="pt"))


@pytest.mark.parametrize("alias", ["tiny-bert", "tiny-roberta"])
def test_tiny_encoder_flops_match_formula(alias):
    loaded = load_model(alias)
    batch = _batch(loaded.tokenizer, 2, 64)
    counted = count_flops(loaded.model, batch)
    formula = analytic_flops(loaded.model.config, 2, 64, head="classification")
    assert counted == pytest.approx(formula, rel=0.05)


def test_bert_forward_flops_agree_with_formula_and_halve_with_length(minilm):
    model, tokenizer = minilm
    full = count_flops(model, _batch(tokenizer, 2, 128))
    half = count_flops(model, _batch(tokenizer, 2, 64))
    formula = analytic_flops(model.config, 2, 128, head="classification")
    assert full == pytest.approx(formula, rel=0.05)
    # attention products count too (the fused CPU SDPA kernel is registered): linear part alone is not enough
    assert full > 5.5e9
    # linear parts halve exactly, the n² attention part quarters: ratio slightly below 0.5
    ratio = half / full
    linear = 24 * 384 * 384  # per token per layer: 2·(4h² + 2h·4h) with h=384, I=4h
    attention_full = 4 * 128 * 384
    expected = (linear + 4 * 64 * 384) / (linear + attention_full) * 0.5
    assert ratio == pytest.approx(expected, rel=0.02)
    assert ratio < 0.5


def test_decoder_flops_match_formula():
    loaded = load_model("tiny-llama")
    batch = _batch(loaded.tokenizer, 2, 32)
    counted = count_flops(loaded.model, batch)
    formula = analytic_flops(loaded.model.config, 2, 32, head="causal-lm")
    assert counted == pytest.approx(formula, rel=0.05)


def test_layer_lengths_in_formula():
    config = load_model("tiny-bert").model.config
    uniform = analytic_flops(config, 1, 64)
    shrinking = analytic_flops(config, 1, 64, layer_seq_lens=[64, 32, 32, 16])
    assert shrinking < uniform
    with pytest.raises(ValueError, match="4 layers"):
        analytic_flops(config, 1, 64, layer_seq_lens=[64])


def test_unknown_architecture_has_no_formula():
    class Cfg:
        model_type = "gpt2"
        hidden_size = num_hidden_layers = intermediate_size = 1

    assert analytic_flops(Cfg(), 1, 8) is None


def test_flops_are_counted_as_executed_under_a_shrinking_sequence():
    """A model that halves its sequence midway must count fewer FLOPs: the counter sees what ran."""
    lin = torch.nn.Linear(16, 16)

    class Shrink(torch.nn.Module):
        def forward(self, x):
            return lin(lin(x)[:, : x.shape[1] // 2])

    x = torch.randn(1, 8, 16)
    with torch.no_grad():
        full = count_flops(torch.nn.Sequential(lin, lin), {"input": x})
        shrunk = count_flops(Shrink(), {"x": x})
    assert shrunk == pytest.approx(full * 0.75)


def test_int8_dynamic_linear_counts_like_fp32():
    import warnings

    model = torch.nn.Sequential(torch.nn.Linear(64, 128), torch.nn.ReLU(), torch.nn.Linear(128, 64))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    x = {"input": torch.randn(2, 5, 64)}
    assert count_flops(quantized, x) == count_flops(model, x) == 2 * 10 * (64 * 128 + 128 * 64)
