"""Vectorised repack against a per-row reference, with merging and gradients."""

from __future__ import annotations

import torch

from greenprune.tokens import TokenState, repack


def _state(valid: torch.Tensor, protected: torch.Tensor) -> TokenState:
    seq = valid.shape[1]
    positions = torch.where(valid, torch.arange(seq).expand_as(valid), -1)
    return TokenState(valid, protected & valid, positions)


def _reference(hidden, keep, valid, merge):
    rows = []
    for b in range(hidden.shape[0]):
        kept = [hidden[b, j] for j in range(hidden.shape[1]) if valid[b, j] and keep[b, j]]
        pruned = [hidden[b, j] for j in range(hidden.shape[1]) if valid[b, j] and not keep[b, j]]
        if merge and pruned:
            kept.append(torch.stack(pruned).mean(0))
        rows.append(torch.stack(kept))
    return rows


def test_repack_matches_per_row_reference_for_mixed_lengths():
    torch.manual_seed(0)
    batch, seq, dim = 5, 9, 4
    hidden = torch.randn(batch, seq, dim)
    lengths = torch.tensor([9, 3, 6, 1, 7])
    valid = torch.arange(seq)[None] < lengths[:, None]
    keep = torch.rand(batch, seq) > 0.5
    keep[:, 0] = True
    keep[2] = True  # a row that keeps everything
    protected = torch.zeros_like(valid)
    protected[:, 0] = True
    for merge in (False, True):
        out, new = repack(hidden, keep, _state(valid, protected), merge)
        ref = _reference(hidden, keep, valid, merge)
        assert out.shape[1] == max(r.shape[0] for r in ref)
        for b, r in enumerate(ref):
            n = r.shape[0]
            assert int(new.valid[b].sum()) == n
            torch.testing.assert_close(out[b, :n], r)
            assert torch.all(out[b, n:] == 0)  # padding never carries stale tokens
        # kept tokens map back to their original positions, in order; fused tokens are protected with position -1
        for b in range(batch):
            kept_pos = [j for j in range(seq) if valid[b, j] and keep[b, j]]
            assert new.positions[b, : len(kept_pos)].tolist() == kept_pos
            if merge and len(kept_pos) < int(lengths[b]):
                assert new.protected[b, len(kept_pos)] and new.positions[b, len(kept_pos)] == -1


def test_gradients_flow_to_kept_and_merged_tokens_only_as_expected():
    hidden = torch.randn(2, 5, 3, requires_grad=True)
    valid = torch.ones(2, 5, dtype=torch.bool)
    keep = torch.tensor([[1, 1, 0, 1, 0], [1, 0, 1, 1, 1]], dtype=torch.bool)
    out, _ = repack(hidden, keep, _state(valid, torch.zeros_like(valid)), merge=False)
    out.sum().backward()
    assert torch.equal(hidden.grad.abs().sum(-1) > 0, keep)
    hidden.grad = None
    out, _ = repack(hidden, keep, _state(valid, torch.zeros_like(valid)), merge=True)
    out.sum().backward()
    assert (hidden.grad.abs().sum(-1) > 0).all()  # pruned tokens reach the loss through the fused average
