"""Vectorised repacking: drop (or merge) pruned tokens and re-pad the batch to its new maximum length.

No Python loop over the batch: kept tokens are moved to the front of each row by a stable argsort of the
drop-flags (so their order, and position 0 = CLS, is preserved) and gathered; the new width is the longest kept
row. Gathering is differentiable, so gradients flow to the kept tokens (and, with merging, to the pruned ones
through their average).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class TokenState:
    """What ALPINE tracks per token while a batch runs through the encoder.

    valid: real token (not padding); protected: special or fused token, never pruned; positions: index in the
    original input (-1 for fused tokens and padding), so users can map kept tokens back to the source.
    """

    valid: torch.Tensor  # (B, S) bool
    protected: torch.Tensor  # (B, S) bool
    positions: torch.Tensor  # (B, S) long

    @property
    def lengths(self) -> torch.Tensor:
        return self.valid.sum(dim=1)


def additive_mask(valid: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """(B, 1, 1, S) additive key mask (0 keep, dtype-min drop) that eager and SDPA attention both accept."""
    return (~valid)[:, None, None, :].to(dtype) * torch.finfo(dtype).min


def repack(
    hidden: torch.Tensor, keep: torch.Tensor, state: TokenState, merge: bool
) -> tuple[torch.Tensor, TokenState]:
    """Apply a keep-mask to (B, S, H) hidden states; returns the shorter states and the new token state."""
    batch, _, dim = hidden.shape
    kept = keep & state.valid
    pruned = state.valid & ~keep
    n_kept = kept.sum(dim=1)
    has_fused = pruned.any(dim=1) if merge else torch.zeros_like(n_kept, dtype=torch.bool)
    new_len = int((n_kept + has_fused.to(n_kept.dtype)).max().item()) if batch else 0

    # stable sort of "drop" flags puts kept tokens first, in their original order
    order = torch.argsort((~kept).to(torch.uint8), dim=1, stable=True)[:, :new_len]
    slots = torch.arange(new_len, device=hidden.device)[None, :]
    new_valid = slots < n_kept[:, None]
    out = hidden.gather(1, order[:, :, None].expand(batch, new_len, dim))
    new_protected = state.protected.gather(1, order) & new_valid
    new_positions = torch.where(new_valid, state.positions.gather(1, order), torch.full_like(order, -1))

    if merge:
        weights = pruned.to(hidden.dtype)
        fused = torch.einsum("bs,bsh->bh", weights, hidden) / weights.sum(dim=1).clamp(min=1.0)[:, None]
        fused_slot = (slots == n_kept[:, None]) & has_fused[:, None]
        out = torch.where(fused_slot[:, :, None], fused[:, None, :], out)
        new_valid = new_valid | fused_slot
        new_protected = new_protected | fused_slot

    out = out * new_valid[:, :, None].to(out.dtype)  # padding rows hold zeros, never stale tokens
    return out, TokenState(new_valid, new_protected, new_positions)
