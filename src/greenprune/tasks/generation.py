"""Greedy / sampled generation with stop strings, batched with left padding (decoders only).

Greedy decoding of decoder-only models uses our own loop that drops a sequence from the batch (and from its KV
cache) as soon as it is finished, so a batch costs what its sequences need rather than what its longest one
needs; `transformers`' `generate` keeps decoding padding for finished rows. Prompts are batched by length so
little padding is computed. Sampling and encoder-decoder models go through `generate`.

The loop's KV cache is preallocated to prompt + `max_new_tokens` positions and written in place: `transformers`'
dynamic cache concatenates (allocates and copies) every layer's whole cache at every step, where profiles of a
0.5B model on CPU found the decode loop's time. The arithmetic is unchanged, so the tokens are the same (tests pin
them).
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from greenprune._utils import progress
from greenprune.errors import require_positive
from greenprune.tasks.train import model_device

# where a HumanEval-style completion ends: the next top-level statement
CODE_STOPS = ("\ndef ", "\nclass ", "\nif __name__", "\nprint(", "\n#", "\nassert ", "\n@")


def truncate_at_stops(text: str, stops: Sequence[str]) -> str:
    cut = len(text)
    for s in stops:
        i = text.find(s)
        if i != -1:
            cut = min(cut, i)
    return text[:cut]


class _StopOnStrings:
    """Stops generation once every sequence of the batch contains a stop string in its new text."""

    def __init__(self, tokenizer: Any, prompt_len: int, stops: Sequence[str]) -> None:
        self.tokenizer, self.prompt_len, self.stops = tokenizer, prompt_len, stops

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor, **kwargs: Any) -> torch.Tensor:
        texts = self.tokenizer.batch_decode(input_ids[:, self.prompt_len :], skip_special_tokens=True)
        done = [any(s in t for s in self.stops) for t in texts]
        return torch.tensor(done, dtype=torch.bool, device=input_ids.device)


def _preallocated_layer_class() -> type:
    """One attention layer's KV cache in a buffer of fixed capacity, written in place (no per-step `torch.cat`).

    Built on `transformers`' `DynamicLayer` (subclassed here so importing this module stays light); `keys` and
    `values` are views of the filled part, which is what attention reads.
    """
    from transformers.cache_utils import DynamicLayer

    class PreallocatedLayer(DynamicLayer):  # type: ignore[misc,valid-type]
        def __init__(self, capacity: int) -> None:
            super().__init__()
            self.capacity, self.length = capacity, 0
            self._k: torch.Tensor | None = None
            self._v: torch.Tensor | None = None

        def lazy_initialization(self, key_states: torch.Tensor, value_states: torch.Tensor) -> None:
            self.device = key_states.device
            b, h, _, d = key_states.shape
            self._k = key_states.new_empty(b, h, self.capacity, d)
            self._v = value_states.new_empty(b, h, self.capacity, value_states.shape[-1])
            self.is_initialized = True

        def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args: Any,
                   **kwargs: Any) -> tuple[torch.Tensor, torch.Tensor]:
            if not self.is_initialized:
                self.lazy_initialization(key_states, value_states)
            assert self._k is not None and self._v is not None
            end = self.length + key_states.shape[-2]
            if end > self.capacity:
                raise RuntimeError(f"KV cache of {self.capacity} positions cannot take position {end}")
            self._k[:, :, self.length : end] = key_states
            self._v[:, :, self.length : end] = value_states
            self.length = end
            self.keys, self.values = self._k[:, :, :end], self._v[:, :, :end]
            return self.keys, self.values

        def get_seq_length(self) -> int:
            return self.length

        def batch_select_indices(self, indices: torch.Tensor) -> None:
            if self._k is None or self._v is None:
                return
            self._k, self._v = self._k[indices], self._v[indices]
            self.keys, self.values = self._k[:, :, : self.length], self._v[:, :, : self.length]

        def crop(self, tokens_to_remove: int) -> None:
            raise NotImplementedError("the preallocated generation cache is not croppable")

        def reset(self) -> None:
            self.length = 0

    return PreallocatedLayer


def preallocated_cache(model: nn.Module, capacity: int) -> Any | None:
    """A `DynamicCache` whose full-attention layers write into preallocated buffers of `capacity` positions.

    None when the model's config yields no per-layer cache (the model then builds its own): other layer kinds
    (sliding window, linear attention) keep their `transformers` implementation.
    """
    try:
        from transformers.cache_utils import DynamicCache, DynamicLayer
    except ImportError:
        return None
    config = getattr(model, "config", None)
    try:
        cache = DynamicCache(config=config)
    except Exception:  # an unusual config: fall back to the model's own cache
        return None
    if not cache.layers:
        return None
    layer_class = _preallocated_layer_class()
    cache.layers = [layer_class(capacity) if type(layer) is DynamicLayer else layer for layer in cache.layers]
    return cache


def _eos_ids(model: nn.Module, tokenizer: Any) -> set[int]:
    ids: set[int] = set()
    config = getattr(model, "generation_config", None)
    for value in (getattr(config, "eos_token_id", None), tokenizer.eos_token_id):
        if isinstance(value, int):
            ids.add(value)
        elif value is not None:
            ids.update(int(v) for v in value)
    return ids


@torch.no_grad()
def greedy_decode(
    model: nn.Module,
    tokenizer: Any,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    *,
    max_new_tokens: int,
    stops: Sequence[str],
    preallocate: bool = True,
) -> list[list[int]]:
    """New token ids per (left-padded) prompt, greedy; a row leaves the batch once it hits EOS or a stop string.

    Produces what `generate(do_sample=False)` with a per-row stop-string criterion produces (a test pins this),
    with the KV cache of finished rows dropped at every step.
    """
    eos = _eos_ids(model, tokenizer)
    accepted = inspect.signature(model.forward).parameters
    cache_kw = "cache" if "cache" in accepted else "past_key_values"  # renamed in transformers 5.x
    extra = {"logits_to_keep": 1} if "logits_to_keep" in accepted else {}
    rows = input_ids.shape[0]
    new: list[list[int]] = [[] for _ in range(rows)]
    active = torch.arange(rows)
    mask = attention_mask.long()
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    cache = preallocated_cache(model, input_ids.shape[1] + max_new_tokens) if preallocate else None
    step_ids, step_pos = input_ids, positions
    for _ in range(max_new_tokens):
        out = model(input_ids=step_ids, attention_mask=mask, position_ids=step_pos, use_cache=True,
                    **{cache_kw: cache}, **extra)
        cache = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        next_ids = out.logits[:, -1, :].argmax(-1)
        keep: list[int] = []
        for local, (row, token) in enumerate(zip(active.tolist(), next_ids.tolist(), strict=True)):
            if token in eos:
                continue
            new[row].append(token)
            text = tokenizer.decode(new[row], skip_special_tokens=True)
            if not any(s in text for s in stops):
                keep.append(local)
        if not keep:
            break
        if len(keep) < len(active):
            index = torch.tensor(keep, device=next_ids.device)
            cache.batch_select_indices(index)
            active, mask, next_ids = active[keep], mask[index], next_ids[index]
            positions = positions[index]
        mask = torch.cat([mask, mask.new_ones(len(keep), 1)], dim=1)
        positions = positions[:, -1:] + 1
        step_ids, step_pos = next_ids[:, None], positions
    return new


@torch.no_grad()
def generate_texts(
    model: nn.Module,
    tokenizer: Any,
    prompts: Sequence[str],
    *,
    max_new_tokens: int = 256,
    stops: Sequence[str] = CODE_STOPS,
    batch_size: int = 4,
    max_prompt_length: int = 1024,
    do_sample: bool = False,
    temperature: float = 0.8,
    top_p: float = 0.95,
    desc: str = "generate",
    drop_finished: bool = True,
) -> list[str]:
    """The continuation of each prompt, cut at the first stop string.

    `drop_finished=False` forces `transformers`' `generate` for greedy decoding too (the reference our loop matches).
    """
    from transformers import StoppingCriteriaList

    require_positive(max_new_tokens=max_new_tokens, batch_size=batch_size, max_prompt_length=max_prompt_length)
    model.eval()
    device = model_device(model)
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    own_loop = drop_finished and not do_sample and not getattr(model.config, "is_encoder_decoder", False)
    # similar lengths share a batch (less padding); results go back to the caller's order
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    outputs: dict[int, str] = {}
    try:
        starts = range(0, len(prompts), batch_size)
        for start in progress(starts, desc, total=len(starts)):
            index = order[start : start + batch_size]
            chunk = [prompts[i] for i in index]
            enc = tokenizer(chunk, return_tensors="pt", padding=True, truncation=True, max_length=max_prompt_length,
                            add_special_tokens=False)
            enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            if own_loop:
                ids = greedy_decode(model, tokenizer, enc["input_ids"], enc["attention_mask"],
                                    max_new_tokens=max_new_tokens, stops=stops)
                texts = tokenizer.batch_decode(ids, skip_special_tokens=True)
                outputs.update((i, truncate_at_stops(t, stops)) for i, t in zip(index, texts, strict=True))
                continue
            prompt_len = enc["input_ids"].shape[1]
            kwargs: dict[str, Any] = {"do_sample": do_sample}
            if do_sample:
                kwargs.update(temperature=temperature, top_p=top_p)
            out = model.generate(  # type: ignore[operator]
                **enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                stopping_criteria=StoppingCriteriaList([_StopOnStrings(tokenizer, prompt_len, stops)]), **kwargs,
            )
            texts = tokenizer.batch_decode(out[:, prompt_len:], skip_special_tokens=True)
            outputs.update((i, truncate_at_stops(t, stops)) for i, t in zip(index, texts, strict=True))
    finally:
        tokenizer.padding_side = old_side
    return [outputs[i] for i in range(len(prompts))]
