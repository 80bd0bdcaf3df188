"""The attention kernel of pruning layers: eager attention (it must return probabilities), done lean.

HF's eager path scales the (B, H, S, S) score tensor, adds the mask in a second pass, and runs batched matmuls on
strided views. Scaling the (much smaller) queries and folding the mask into one `baddbmm` leaves the softmax as
the only extra pass over S×S that SDPA does not need, which keeps the pruning layers' overhead small next to
what the shorter sequences save. Registered with transformers' public `AttentionInterface`, so HF's own
attention modules (and anything wrapping their projections, e.g. peft LoRA) stay in charge of everything else.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

ATTN_NAME = "greenprune_alpine"


def alpine_attention(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float | None = None,
    dropout: float = 0.0,
    **_: Any,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, H, S, d) q/k/v → ((B, S, H, d) output, (B, H, S, S_k) probabilities), like HF's eager path."""
    batch, heads, q_len, dim = query.shape
    k_len = key.shape[2]
    scale = dim**-0.5 if scaling is None else scaling
    q = (query * scale).reshape(batch * heads, q_len, dim)
    k_t = key.reshape(batch * heads, k_len, dim).transpose(1, 2)
    if attention_mask is None:
        scores = torch.bmm(q, k_t)
    else:
        mask = attention_mask
        if mask.dtype == torch.bool:  # True = attend (SDPA convention)
            mask = torch.zeros(mask.shape, dtype=query.dtype, device=mask.device).masked_fill(
                ~mask, torch.finfo(query.dtype).min
            )
        mask = mask[..., :k_len].to(query.dtype).expand(batch, heads, mask.shape[2], k_len)
        scores = torch.baddbmm(mask.reshape(batch * heads, mask.shape[2], k_len), q, k_t)
    probs = torch.softmax(scores, dim=-1)
    if dropout > 0.0 and module.training:
        probs = nn.functional.dropout(probs, p=dropout, training=True)
    out = torch.bmm(probs, value.reshape(batch * heads, k_len, dim))
    out = out.view(batch, heads, q_len, dim).transpose(1, 2)
    return out, probs.view(batch, heads, q_len, k_len)


def register_attention() -> str:
    """Make the kernel known to transformers under ATTN_NAME (idempotent) and return that name."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTN_NAME, alpine_attention)
    return ATTN_NAME
