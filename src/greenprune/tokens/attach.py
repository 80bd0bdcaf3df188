"""attach / detach: switch ALPINE on for any HF BERT- or RoBERTa-family encoder, and off again exactly."""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from greenprune.models.families import Family, family_of
from greenprune.tokens.attention import register_attention
from greenprune.tokens.config import AlpineConfig, AlpineError
from greenprune.tokens.layer import make_encoder_forward, make_pruning_forward
from greenprune.tokens.repack import TokenState
from greenprune.tokens.trace import LengthTrace

_ATTR = "_greenprune_alpine"
_ATTN_OK = (None, "eager", "sdpa")
_CONFIG_ID_FIELDS = ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id")


class AlpineHandle:
    """ALPINE attached to one model: its config, pruning layers, length trace, and how to undo it."""

    def __init__(self, model: nn.Module, family: Family, config: AlpineConfig, special_ids: list[int],
                 protect_last: bool) -> None:
        self.model = model
        self.family = family
        self.config = config
        self.num_layers = len(family.layers(model))
        self.layers = config.resolve_layers(self.num_layers)
        self.special_ids = sorted(set(special_ids))
        self.protect_last = protect_last  # no tokenizer: the closing SEP / </s> is found by position
        self.trace: LengthTrace | None = (
            LengthTrace(pruning_layers=list(self.layers), num_layers=self.num_layers) if config.trace else None
        )
        self.state: TokenState | None = None
        self.last_state: TokenState | None = None  # after the last forward: valid/protected/original positions
        self._inputs: tuple[torch.Tensor | None, torch.Tensor | None] = (None, None)
        self._restore: list[Any] = []
        self._special_cache: dict[torch.device, torch.Tensor] = {}

    # --- per-forward state -------------------------------------------------------------------------------------
    def _capture_inputs(self, _module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        ids = kwargs.get("input_ids", args[0] if args else None)
        mask = kwargs.get("attention_mask", args[1] if len(args) > 1 else None)
        self._inputs = (ids, mask)

    def initial_state(self, hidden: torch.Tensor) -> TokenState:
        """Valid/protected flags of the embedded batch, from the input ids and 2D mask the backbone was called with."""
        ids, mask = self._inputs
        self._inputs = (None, None)  # hold no reference past this forward
        batch, seq = hidden.shape[:2]
        device = hidden.device
        if mask is not None and mask.dim() == 2 and tuple(mask.shape) == (batch, seq):
            valid = mask.to(device=device).bool()
        else:
            valid = torch.ones(batch, seq, dtype=torch.bool, device=device)
        protected = torch.zeros_like(valid)
        protected[:, 0] = True  # the classification head reads position 0
        if ids is not None and tuple(ids.shape) == (batch, seq) and self.special_ids:
            if device not in self._special_cache:
                self._special_cache[device] = torch.tensor(self.special_ids, dtype=ids.dtype, device=device)
            protected |= torch.isin(ids.to(device), self._special_cache[device])
        if self.protect_last or ids is None:
            last = (valid.sum(dim=1) - 1).clamp(min=0)
            protected[torch.arange(batch, device=device), last] = True
        protected &= valid
        positions = torch.where(valid, torch.arange(seq, device=device).expand(batch, seq), -1)
        return TokenState(valid, protected, positions)

    # --- undo --------------------------------------------------------------------------------------------------
    def detach(self) -> nn.Module:
        """Restore the model exactly: class forwards, the shared attention config, no hooks."""
        for undo in reversed(self._restore):
            undo()
        self._restore.clear()
        self.model.__dict__.pop(_ATTR, None)
        self.state = None  # last_state and trace stay readable after detach
        return self.model

    def __enter__(self) -> AlpineHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.model.__dict__.get(_ATTR) is self:
            self.detach()

    def __repr__(self) -> str:
        return f"AlpineHandle({type(self.model).__name__}, layers={self.layers}, {self.config.describe()})"


def _special_ids(model: nn.Module, tokenizer: Any, config: AlpineConfig) -> tuple[list[int], bool]:
    ids = list(config.special_ids)
    if tokenizer is not None:
        ids += [int(i) for i in getattr(tokenizer, "all_special_ids", [])]
        return ids, False
    model_config = getattr(model, "config", None)
    for name in _CONFIG_ID_FIELDS:
        value = getattr(model_config, name, None)
        if isinstance(value, int):
            ids.append(value)
    return ids, True


def attach(model: Any, config: AlpineConfig | None = None, *, tokenizer: Any = None) -> AlpineHandle:
    """Switch ALPINE token pruning on for a BERT/RoBERTa-family encoder (with or without a task head).

    `model` may be a `LoadedModel` (its tokenizer is used). Pass the `tokenizer` so its special ids are always
    kept; without one, the ids in `model.config` plus the first and last real token of each sequence are kept.
    Pruning layers switch to an eager attention kernel (they need the probabilities, see attention.py); the other
    layers keep the model's kernel (SDPA by default).
    The model's last hidden state gets shorter: `handle.last_state.positions` maps its rows to input positions.
    """
    if hasattr(model, "model") and hasattr(model, "tokenizer") and not isinstance(model, nn.Module):
        tokenizer = tokenizer if tokenizer is not None else model.tokenizer
        model = model.model
    if not isinstance(model, nn.Module):
        raise AlpineError(f"attach() needs a torch model, got {type(model).__name__}")
    config = config or AlpineConfig()
    family = family_of(model)
    model_type = model.config.model_type
    if family.kind != "encoder" or family.ffn_block is None:
        raise AlpineError(
            f"ALPINE prunes tokens inside Transformer encoders; {type(model).__name__} (model type {model_type!r}, "
            f"family {family.name!r}) is a {family.kind}. Supported: BERT and RoBERTa families (MiniLM, CodeBERT, "
            "GraphCodeBERT, UniXCoder)."
        )
    if getattr(model.config, "is_decoder", False):
        raise AlpineError(f"{type(model).__name__}: config.is_decoder=True; ALPINE needs a bidirectional encoder")
    attn_impl = getattr(model.config, "_attn_implementation", None)
    if attn_impl not in _ATTN_OK:
        raise AlpineError(
            f"{type(model).__name__} uses attn_implementation={attn_impl!r}; ALPINE supports 'eager' and 'sdpa' "
            "(reload with attn_implementation='sdpa')"
        )
    if _ATTR in model.__dict__:
        raise AlpineError(f"ALPINE is already attached to this {type(model).__name__}; detach(model) first")

    attn_name = register_attention()
    special_ids, protect_last = _special_ids(model, tokenizer, config)
    handle = AlpineHandle(model, family, config, special_ids, protect_last)
    backbone = family.backbone(model)
    encoder = family.layers_parent(model)
    layers = family.layers(model)

    try:
        hook = backbone.register_forward_pre_hook(handle._capture_inputs, with_kwargs=True)
        handle._restore.append(hook.remove)
        encoder.forward = make_encoder_forward(encoder, handle)
        handle._restore.append(lambda: encoder.__dict__.pop("forward", None))
        for i in handle.layers:
            layer = layers[i]
            attn_self = layer.get_submodule(family.self_attention)
            original_config = attn_self.config
            eager = copy.copy(original_config)
            eager._attn_implementation = attn_name
            attn_self.config = eager
            handle._restore.append(lambda m=attn_self, c=original_config: setattr(m, "config", c))
            layer.forward = make_pruning_forward(layer, i, handle)
            handle._restore.append(lambda m=layer: m.__dict__.pop("forward", None))
    except Exception:
        handle.detach()
        raise
    model.__dict__[_ATTR] = handle
    return handle


def _unwrap(model: Any) -> Any:
    """A LoadedModel stands for its model."""
    return model.model if not isinstance(model, nn.Module) and isinstance(getattr(model, "model", None), nn.Module) \
        else model


def handle_of(model: Any) -> AlpineHandle | None:
    """The ALPINE handle attached to `model` (or a LoadedModel's model), or None."""
    return getattr(_unwrap(model), "__dict__", {}).get(_ATTR)


def detach(model: Any) -> nn.Module:
    """Switch ALPINE off: the model runs exactly its original forwards again."""
    model = _unwrap(model)
    handle = handle_of(model)
    if handle is None:
        raise AlpineError(f"ALPINE is not attached to this {type(model).__name__}")
    return handle.detach()
