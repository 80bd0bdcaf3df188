"""The prunable encoder layer and the encoder loop that carries the shrinking mask from layer to layer.

Both are installed as *instance* `forward` attributes (see attach.py), so HF's module hooks (output_hidden_states,
output_attentions capture, peft) still fire, and deleting the attribute restores the class's own forward exactly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from greenprune.tokens.repack import TokenState, additive_mask, repack
from greenprune.tokens.rules import keep_mask
from greenprune.tokens.scoring import importance_from_received, token_importance

if TYPE_CHECKING:
    from greenprune.tokens.attach import AlpineHandle


def make_pruning_forward(layer: nn.Module, index: int, handle: AlpineHandle) -> Callable[..., torch.Tensor]:
    """Forward of a pruning layer: attention (+ attention received per token) → score → keep → repack → FFN."""
    from transformers.pytorch_utils import apply_chunking_to_forward

    family = handle.family
    attention = layer.get_submodule(family.attention)
    ffn = getattr(layer, family.ffn_block or "")
    chunk = getattr(layer, "chunk_size_feed_forward", 0)
    seq_dim = getattr(layer, "seq_len_dim", 1)

    def forward(
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: Any = None,
        **kwargs: Any,
    ) -> torch.Tensor:
        attention_output, received = attention(hidden_states, attention_mask, cache=cache, **kwargs)
        if received is None:  # pragma: no cover - guarded by the kernel installed in attach()
            raise RuntimeError(f"layer {index}: attention returned no weights; ALPINE's kernel is not installed")
        state = handle.state
        # the ALPINE kernel returns attention received per head (B, H, K); any 4D eager probabilities also work
        scores = (
            token_importance(received.detach(), state.valid)
            if received.dim() == 4
            else importance_from_received(received.detach(), state.valid)
        )
        keep = keep_mask(scores, state.valid, state.protected, handle.config)
        attention_output, handle.state = repack(attention_output, keep, state, handle.config.merge)
        return apply_chunking_to_forward(ffn, chunk, seq_dim, attention_output)

    return forward


def _layer_mask(valid: torch.Tensor, dtype: torch.dtype) -> torch.Tensor | None:
    """No padding: no mask at all, so SDPA layers take their fastest path; otherwise an additive key mask."""
    return None if bool(valid.all()) else additive_mask(valid, dtype)


def make_encoder_forward(encoder: nn.Module, handle: AlpineHandle) -> Callable[..., Any]:
    """Encoder loop: like HF's, but each layer after a pruning layer gets the mask of the repacked batch."""
    from transformers.modeling_outputs import BaseModelOutputWithPastAndCrossAttentions

    layers = handle.family.layers(handle.model)
    pruning = set(handle.layers)

    def forward(
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: Any = None,
        use_cache: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        handle.state = handle.initial_state(hidden_states)
        lengths = [handle.state.lengths]
        widths = [hidden_states.shape[1]]
        # HF built `attention_mask` for the model's kernel (SDPA: boolean, eager: additive); pruning layers run eager,
        # so every layer gets one additive (B, 1, 1, S) mask that both kernels read the same way
        mask = _layer_mask(handle.state.valid, hidden_states.dtype)
        for i, layer in enumerate(layers):
            hidden_states = layer(
                hidden_states,
                mask,
                encoder_hidden_states,
                encoder_attention_mask=encoder_attention_mask,
                cache=cache,
                **kwargs,
            )
            if i in pruning:
                mask = _layer_mask(handle.state.valid, hidden_states.dtype)
            if handle.trace is not None:
                lengths.append(handle.state.lengths)
                widths.append(hidden_states.shape[1])
        if handle.trace is not None:
            handle.trace.record(lengths, widths)
        handle.last_state = handle.state
        return BaseModelOutputWithPastAndCrossAttentions(
            last_hidden_state=hidden_states, cache=cache if use_cache else None
        )

    return forward


__all__ = ["TokenState", "make_encoder_forward", "make_pruning_forward"]
