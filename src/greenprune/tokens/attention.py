"""The attention kernel of pruning layers: the attention output plus what ALPINE needs from the probabilities.

ALPINE only needs, per key, the attention it receives summed over the valid queries of each head. On CPU that is
obtained without materialising the (batch, heads, S, S) probabilities: the fused flash kernel returns the
attention output *and* each query's log-sum-exp (lse); a second fused call with queries and keys swapped and
bias -lse_q computes log Σ_q exp(s_qk - lse_q) = log Σ_q p_qk for every key. Two fused calls cost less than the
eager path (matmul, S×S softmax, matmul) and need no S×S buffer, so pruning layers stay cheap next to what the
shorter sequences save. Elsewhere (other devices, unusual masks, attention dropout while training) the eager
formula is used.

Registered with transformers' public `AttentionInterface`, so HF's attention modules (and anything wrapping their
projections, e.g. peft LoRA) stay in charge of everything else. The second return value is the received
attention (batch, heads, keys) — not the full probabilities — which is all the pruning layer reads.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

ATTN_NAME = "greenprune_alpine"
_FLASH_DTYPES = (torch.float32, torch.bfloat16, torch.float16)


def _key_validity(mask: torch.Tensor | None, batch: int, k_len: int, device: torch.device) -> torch.Tensor | None:
    """(B, S) validity from a (B, 1, 1, S) key mask (additive or boolean); None if the mask is of another shape."""
    if mask is None:
        return torch.ones(batch, k_len, dtype=torch.bool, device=device)
    if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[2] != 1 or mask.shape[0] != batch:
        return None
    row = mask[:, 0, 0, :k_len]
    return row if row.dtype == torch.bool else row > torch.finfo(row.dtype).min / 2


def eager_received(
    module: nn.Module, query: torch.Tensor, key: torch.Tensor, value: torch.Tensor, mask: torch.Tensor | None,
    scale: float, dropout: float, valid_q: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reference path: full probabilities, then their column sums over valid queries."""
    scores = torch.matmul(query * scale, key.transpose(2, 3))
    if mask is not None:
        if mask.dtype == torch.bool:
            mask = torch.zeros(mask.shape, dtype=query.dtype, device=mask.device).masked_fill(
                ~mask, torch.finfo(query.dtype).min
            )
        scores = scores + mask[..., : key.shape[2]].to(query.dtype)
    probs = torch.softmax(scores, dim=-1)
    weights = (
        torch.ones(query.shape[0], query.shape[2], dtype=probs.dtype, device=probs.device)
        if valid_q is None else valid_q.to(probs.dtype)
    )
    received = torch.einsum("bhqk,bq->bhk", probs.detach(), weights)
    if dropout > 0.0 and module.training:
        probs = nn.functional.dropout(probs, p=dropout, training=True)
    out = torch.matmul(probs, value).transpose(1, 2)
    return out, received


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
    """(B, H, S, d) q/k/v → ((B, S, H, d) output, (B, H, S_k) attention received from valid queries)."""
    batch, _, q_len, dim = query.shape
    k_len = key.shape[2]
    scale = dim**-0.5 if scaling is None else scaling
    p = dropout if module.training else 0.0
    valid = _key_validity(attention_mask, batch, k_len, query.device)
    # the CPU flash kernel has no dropout: training with attention dropout (fine-tuning with ALPINE attached, the
    # paper's protocol) takes the eager path, which drops out the probabilities as HF's eager attention does
    flash_ok = (
        valid is not None and query.device.type == "cpu" and query.dtype in _FLASH_DTYPES and q_len == k_len
        and p == 0.0 and hasattr(torch.ops.aten, "_scaled_dot_product_flash_attention_for_cpu")
    )
    if not flash_ok:
        return eager_received(module, query, key, value, attention_mask, scale, p, valid)
    flash = torch.ops.aten._scaled_dot_product_flash_attention_for_cpu
    mask = attention_mask
    if mask is not None and mask.dtype == torch.bool:
        mask = torch.zeros(mask.shape, dtype=query.dtype, device=mask.device).masked_fill(
            ~mask, torch.finfo(query.dtype).min
        )
    out, lse = flash(query, key, value, dropout_p=p, attn_mask=mask, scale=scale)
    with torch.no_grad():
        # swapped call: row k attends over queries q with bias -lse_q (padded queries excluded), so its
        # log-sum-exp is log Σ_q exp(s_qk - lse_q) = log Σ_q p_qk
        bias = (-lse.detach().to(query.dtype)).masked_fill(~valid[:, None, :], torch.finfo(query.dtype).min)
        _, lse_received = flash(key, query, value, attn_mask=bias[:, :, None, :], scale=scale)
        received = lse_received.exp().masked_fill(~valid[:, None, :], 0.0)
    return out.transpose(1, 2), received


def register_attention() -> str:
    """Make the kernel known to transformers under ATTN_NAME (idempotent) and return that name."""
    from transformers import AttentionInterface

    AttentionInterface.register(ATTN_NAME, alpine_attention)
    return ATTN_NAME
