"""The keep rule on hand-made attention probabilities: scores, adaptive band, static top-k, protected + padding."""

from __future__ import annotations

import math

import pytest
import torch

from greenprune.tokens import AlpineConfig, AlpineError, adaptive_keep, keep_mask, static_keep, token_importance


def _probs_from_received(received: list[list[float]], valid: list[list[bool]], heads: int = 2) -> torch.Tensor:
    """Probabilities where every valid query gives key j the same share, so the score of j is its share."""
    batch, seq = len(received), len(received[0])
    probs = torch.zeros(batch, heads, seq, seq)
    for b in range(batch):
        row = torch.tensor(received[b])
        for q in range(seq):
            if valid[b][q]:
                probs[b, :, q, :] = row
            else:  # padding queries attend somewhere else entirely; they must not count
                probs[b, :, q, :] = 0.0
                probs[b, :, q, 0] = 1.0
    return probs


def test_score_is_attention_received_averaged_over_heads_and_valid_queries():
    # two heads that disagree; one padded query whose row must be ignored
    probs = torch.zeros(1, 2, 3, 3)
    probs[0, 0] = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.8, 0.1], [1.0, 0.0, 0.0]])
    probs[0, 1] = torch.tensor([[0.2, 0.2, 0.6], [0.4, 0.4, 0.2], [1.0, 0.0, 0.0]])
    valid = torch.tensor([[True, True, False]])
    scores = token_importance(probs, valid)
    expected = torch.tensor([[(0.5 + 0.1 + 0.2 + 0.4) / 4, (0.3 + 0.8 + 0.2 + 0.4) / 4, (0.2 + 0.1 + 0.6 + 0.2) / 4]])
    torch.testing.assert_close(scores, expected)


def test_adaptive_keep_mask_matches_rule_with_special_tokens_and_padding():
    # seq 0: CLS, 5 ordinary, SEP, 1 pad. seq 1: CLS, 3 ordinary, SEP, 3 pads.
    received = [
        [0.40, 0.01, 0.10, 0.11, 0.12, 0.30, 0.05, 0.0],
        [0.50, 0.20, 0.21, 0.22, 0.07, 0.0, 0.0, 0.0],
    ]
    valid = torch.tensor([[1, 1, 1, 1, 1, 1, 1, 0], [1, 1, 1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    protected = torch.tensor([[1, 0, 0, 0, 0, 0, 1, 0], [1, 0, 0, 0, 1, 0, 0, 0]], dtype=torch.bool)
    probs = _probs_from_received(received, valid.tolist())
    scores = token_importance(probs, valid)
    torch.testing.assert_close(scores, torch.tensor(received))

    alpha = 0.8
    keep = keep_mask(scores, valid, protected, AlpineConfig(alpha=alpha))
    # the rule computed by hand: statistics over ordinary tokens only, population std, closed band
    expected = torch.ones_like(keep)
    for b in range(2):
        ordinary = [j for j in range(8) if valid[b, j] and not protected[b, j]]
        vals = [received[b][j] for j in ordinary]
        mu = sum(vals) / len(vals)
        sd = math.sqrt(sum((v - mu) ** 2 for v in vals) / len(vals))
        for j in ordinary:
            expected[b, j] = mu - alpha * sd <= received[b][j] <= mu + alpha * sd
    assert keep.tolist() == expected.tolist()
    # both tails were pruned in seq 0 (0.01 low, 0.30 high) and specials + padding stayed
    assert keep[0].tolist() == [True, False, True, True, True, False, True, True]
    # seq 1: mean 0.21, std 0.0082 → band ±0.0065 keeps only 0.21; CLS, the SEP-like 0.07 and padding stay
    assert keep[1].tolist() == [True, False, True, False, True, True, True, True]


def test_adaptive_alpha_zero_keeps_only_exact_mean_and_huge_alpha_keeps_all():
    scores = torch.tensor([[0.1, 0.2, 0.3, 0.4]])
    ordinary = torch.ones(1, 4, dtype=torch.bool)
    assert adaptive_keep(scores, ordinary, 1e9).all()
    assert adaptive_keep(torch.tensor([[0.2, 0.2, 0.2]]), torch.ones(1, 3, dtype=torch.bool), 0.0).all()
    assert adaptive_keep(scores, ordinary, 0.0).sum() == 0


def test_static_keeps_top_fraction_of_ordinary_tokens_per_sequence():
    scores = torch.tensor([[0.9, 0.1, 0.5, 0.3, 0.2, 0.8], [0.9, 0.4, 0.6, 0.0, 0.0, 0.0]])
    valid = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 0, 0, 0]], dtype=torch.bool)
    protected = torch.tensor([[1, 0, 0, 0, 0, 1], [1, 0, 0, 0, 0, 0]], dtype=torch.bool)
    keep = static_keep(scores, valid & ~protected, 0.5)
    # seq 0: 4 ordinary (0.1, 0.5, 0.3, 0.2) → keep ceil(2) = 0.5 and 0.3; seq 1: 2 ordinary → keep 1 (0.6)
    assert keep[0].tolist() == [True, False, True, True, False, True]
    assert keep[1].tolist() == [True, False, True, True, True, True]
    assert keep_mask(scores, valid, protected, AlpineConfig(rule="static", ratio=0.5)).tolist() == keep.tolist()


@pytest.mark.parametrize(
    "kwargs",
    [{"layers": "middle"}, {"layers": [0, 1.5]}, {"rule": "topk"}, {"alpha": -1.0}, {"ratio": 1.0}],
)
def test_bad_config_names_the_option(kwargs):
    with pytest.raises(AlpineError, match=next(iter(kwargs))):
        AlpineConfig(**kwargs)


def test_layer_presets_are_zero_based():
    assert AlpineConfig(layers="even").resolve_layers(6) == [0, 2, 4]
    assert AlpineConfig(layers="odd").resolve_layers(6) == [1, 3, 5]
    assert AlpineConfig(layers="none").resolve_layers(6) == []
    assert AlpineConfig(layers=[-1, 2]).resolve_layers(6) == [2, 5]
    with pytest.raises(AlpineError, match="out of range"):
        AlpineConfig(layers=[6]).resolve_layers(6)


@pytest.mark.parametrize("flash", [True, False])
def test_pruning_kernel_matches_hf_eager_attention_and_probability_scores(flash, monkeypatch):
    from transformers.models.bert.modeling_bert import eager_attention_forward

    from greenprune.tokens import attention as kernel
    from greenprune.tokens.repack import additive_mask
    from greenprune.tokens.scoring import importance_from_received

    if not flash:  # the reference path other devices take
        monkeypatch.setattr(kernel, "_FLASH_DTYPES", ())
    torch.manual_seed(0)
    q, k, v = (torch.randn(3, 4, 7, 8) for _ in range(3))
    valid = torch.arange(7)[None] < torch.tensor([7, 4, 2])[:, None]
    module = torch.nn.Module().eval()
    ref_out, ref_probs = eager_attention_forward(module, q, k, v, additive_mask(valid, q.dtype), scaling=0.3)
    for mask in (additive_mask(valid, q.dtype), valid[:, None, None, :]):
        out, received = kernel.alpine_attention(module, q, k, v, mask, scaling=0.3)
        torch.testing.assert_close(out, ref_out)
        scores = importance_from_received(received, valid)
        torch.testing.assert_close(scores * valid, token_importance(ref_probs, valid) * valid)


def test_pruning_kernel_trains_with_attention_dropout():
    """Fine-tuning with ALPINE attached (the paper's protocol) runs with the model's attention dropout: the CPU
    flash kernel has none, so training takes the eager path; the scores ignore dropout, the output does not."""
    from greenprune.tokens import attention as kernel
    from greenprune.tokens.repack import additive_mask

    torch.manual_seed(0)
    q, k, v = (torch.randn(2, 4, 9, 8, requires_grad=True) for _ in range(3))
    mask = additive_mask(torch.arange(9)[None] < torch.tensor([9, 5])[:, None], q.dtype)
    module = torch.nn.Module()
    plain_out, plain_received = kernel.alpine_attention(module.eval(), q, k, v, mask, scaling=0.3, dropout=0.5)
    out, received = kernel.alpine_attention(module.train(), q, k, v, mask, scaling=0.3, dropout=0.5)
    torch.testing.assert_close(received, plain_received)
    assert not torch.allclose(out, plain_out)  # dropout was applied
    out.sum().backward()
    assert all(t.grad is not None and torch.isfinite(t.grad).all() for t in (q, k, v))
