"""Token importance from attention probabilities (ALPINE's score)."""

from __future__ import annotations

import torch


def token_importance(probs: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Attention each token *receives*, averaged over heads and over the valid query positions of its sequence.

    `probs` is (batch, heads, queries, keys) as softmax returns it; `valid` is (batch, seq) with True for real
    tokens. Padding queries are excluded from the average (their rows would otherwise dilute the scores), and
    padded keys get whatever the (masked) softmax gave them, which is zero. Returns (batch, keys).
    """
    if probs.dim() != 4:
        raise ValueError(f"attention probabilities must be (batch, heads, queries, keys); got {tuple(probs.shape)}")
    batch, heads, queries, keys = probs.shape
    weights = valid.to(probs.dtype)
    # one (1 × H·Q) @ (H·Q × K) product per sequence: a single pass over the big tensor, no (B, Q, K) temporary
    row = weights[:, None, :].expand(batch, heads, queries).reshape(batch, 1, heads * queries)
    received = torch.bmm(row, probs.reshape(batch, heads * queries, keys)).squeeze(1)
    counts = weights.sum(dim=1).clamp(min=1.0) * heads
    return received / counts[:, None]


def importance_from_received(received: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Scores from (batch, heads, keys) attention already summed over valid queries (the pruning kernel output)."""
    counts = valid.to(received.dtype).sum(dim=1).clamp(min=1.0) * received.shape[1]
    return received.sum(dim=1) / counts[:, None]
