"""Greedy / sampled generation with stop strings, batched with left padding (decoders only).

Greedy decoding of decoder-only models uses our own loop with continuous batching: a sequence leaves the batch
(and its KV cache) as soon as it is finished, and the next prompts join once a quarter of the places are free, so
the batch stays full instead of decoding its longest reply with ever fewer rows (`transformers`' `generate` even
keeps decoding padding for finished rows). Prompts are taken shortest first, so little padding is computed.
Sampling and encoder-decoder models go through `generate`.

The loop's KV cache is preallocated to prompt + `max_new_tokens` positions and written in place: `transformers`'
dynamic cache concatenates (allocates and copies) every layer's whole cache at every step, where profiles of a
0.5B model on CPU found the decode loop's time. The arithmetic is unchanged, so the tokens are the same (tests pin
them).
"""

from __future__ import annotations

import functools
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


@functools.cache
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

        def adopt(self, keys: torch.Tensor, values: torch.Tensor, length: int) -> None:
            """Take over buffers (capacity = their sequence size) whose first `length` positions are filled."""
            self._k, self._v, self.capacity, self.length = keys, values, keys.shape[-2], length
            self.device, self.is_initialized = keys.device, True
            self.keys, self.values = keys[:, :, :length], values[:, :, :length]

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


def _left_padded(rows: Sequence[Sequence[int]], pad_id: int, device: Any) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r) :] = torch.tensor(list(r), dtype=torch.long)
            mask[i, width - len(r) :] = 1
    return ids.to(device), mask.to(device)


def _merged_cache(model: nn.Module, old: Any, old_mask: torch.Tensor | None, fresh: Any, fresh_mask: torch.Tensor,
                  reserve: int) -> tuple[Any, torch.Tensor]:
    """One cache (and attention mask) holding the running rows, then the freshly prefilled ones, right-aligned.

    Columns no running row attends to any more (every row that needed them has left) are dropped; positions a
    row never filled are zeros under a zero mask, so attention gives them exactly no weight. Room for `reserve`
    more positions is allocated once, so decoding after the merge writes in place again.
    """
    if old is None or old_mask is None:
        width, lead = fresh_mask.shape[1], 0
    else:
        used = old_mask.any(0).nonzero()
        lead = int(used[0]) if len(used) else old_mask.shape[1]  # leading columns every running row pads
        width = max(old_mask.shape[1] - lead, fresh_mask.shape[1])
    merged = preallocated_cache(model, width + reserve)
    assert merged is not None  # the caller only merges caches this function's own layers built
    n_old = 0 if old_mask is None else old_mask.shape[0]
    mask = fresh_mask.new_zeros(n_old + fresh_mask.shape[0], width)
    if old_mask is not None:
        mask[:n_old, width - (old_mask.shape[1] - lead) :] = old_mask[:, lead:]
    mask[n_old:, width - fresh_mask.shape[1] :] = fresh_mask
    for i, layer in enumerate(merged.layers):
        parts = [(old.layers[i], lead)] if old is not None else []
        parts.append((fresh.layers[i], 0))
        src_k = parts[-1][0]._k
        keys = src_k.new_zeros(mask.shape[0], src_k.shape[1], width + reserve, src_k.shape[3])
        values = keys.new_zeros(*keys.shape[:3], parts[-1][0]._v.shape[3])
        row = 0
        for part, start in parts:
            filled = part.length - start
            n = part._k.shape[0]
            keys[row : row + n, :, width - filled : width] = part._k[:, :, start : part.length]
            values[row : row + n, :, width - filled : width] = part._v[:, :, start : part.length]
            row += n
        layer.adopt(keys, values, width)
    return merged, mask


@torch.no_grad()
def greedy_decode_continuous(
    model: nn.Module,
    tokenizer: Any,
    prompts: Sequence[Sequence[int]],
    *,
    batch_size: int,
    max_new_tokens: int,
    stops: Sequence[str],
    pad_id: int,
    refill: int | None = None,
    on_finish: Any = None,
) -> list[list[int]] | None:
    """New token ids per prompt (token ids, unpadded), greedy, with continuous batching.

    Up to `batch_size` rows decode together; a row leaves as soon as it hits EOS, a stop string or its budget,
    and once `refill` places are free (default a quarter of the batch) the next prompts are prefilled and join
    the running batch. A static batch instead runs at its longest reply's length with ever fewer rows, which on
    a CPU costs nearly as much per step as a full batch. Tokens are those of `greedy_decode` (tests pin both to
    `generate`). None when the model's cache layers cannot be preallocated (the caller then batches statically).
    """
    probe = preallocated_cache(model, 1)
    layer_class = _preallocated_layer_class()
    if probe is None or not all(type(layer) is layer_class for layer in probe.layers):
        return None
    eos = _eos_ids(model, tokenizer)
    accepted = inspect.signature(model.forward).parameters
    cache_kw = "cache" if "cache" in accepted else "past_key_values"  # renamed in transformers 5.x
    extra = {"logits_to_keep": 1} if "logits_to_keep" in accepted else {}
    device = model_device(model)
    refill = max(1, refill or batch_size // 4)
    new: list[list[int]] = [[] for _ in prompts]
    pending = list(range(len(prompts)))[::-1]  # pop() takes the next prompt
    rows: list[int] = []
    cache: Any = None
    mask: torch.Tensor | None = None
    positions = torch.zeros(0, 1, dtype=torch.long, device=device)
    next_ids = torch.zeros(0, dtype=torch.long, device=device)

    def forward(ids: torch.Tensor, attn: torch.Tensor, pos: torch.Tensor, kv: Any) -> tuple[torch.Tensor, Any]:
        out = model(input_ids=ids, attention_mask=attn, position_ids=pos, use_cache=True, **{cache_kw: kv}, **extra)
        kv = out.cache if getattr(out, "cache", None) is not None else out.past_key_values
        return out.logits[:, -1, :].argmax(-1), kv

    def accept(row_ids: list[int], tokens: torch.Tensor) -> list[int]:
        """Append each row's token; the local indices of the rows that go on."""
        going: list[int] = []
        for local, (row, token) in enumerate(zip(row_ids, tokens.tolist(), strict=True)):
            if token not in eos:
                new[row].append(token)
                text = tokenizer.decode(new[row], skip_special_tokens=True)
                if len(new[row]) < max_new_tokens and not any(s in text for s in stops):
                    going.append(local)
                    continue
            if on_finish is not None:
                on_finish(row)
        return going

    while pending or rows:
        if pending and batch_size - len(rows) >= min(refill, len(pending)):
            admit = [pending.pop() for _ in range(min(batch_size - len(rows), len(pending)))]
            ids, fresh_mask = _left_padded([prompts[i] for i in admit], pad_id, device)
            fresh_pos = (fresh_mask.cumsum(-1) - 1).clamp(min=0)
            first, fresh = forward(ids, fresh_mask, fresh_pos, preallocated_cache(model, ids.shape[1]))
            going = accept(admit, first)
            if going:
                index = torch.tensor(going, device=device)
                if len(going) < len(admit):
                    fresh.batch_select_indices(index)
                cache, mask = _merged_cache(model, cache, mask, fresh, fresh_mask[index], max_new_tokens)
                rows += [admit[i] for i in going]
                positions = torch.cat([positions, fresh_pos[index, -1:]])
                next_ids = torch.cat([next_ids, first[index]])
            continue  # admit again if places are still free (prompts that finished at once)
        if not rows:
            break
        assert mask is not None
        mask = torch.cat([mask, mask.new_ones(len(rows), 1)], dim=1)
        positions = positions + 1
        tokens, cache = forward(next_ids[:, None], mask, positions, cache)
        going = accept(rows, tokens)
        if len(going) < len(rows):
            index = torch.tensor(going, dtype=torch.long, device=device)
            if going:
                cache.batch_select_indices(index)
            rows, mask, positions, tokens = [rows[i] for i in going], mask[index], positions[index], tokens[index]
            if not rows:
                cache, mask = None, None
        next_ids = tokens
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
        if own_loop:
            done = _continuous(model, tokenizer, [prompts[i] for i in order], batch_size=batch_size,
                               max_new_tokens=max_new_tokens, stops=stops, max_prompt_length=max_prompt_length,
                               desc=desc)
            if done is not None:
                outputs.update((i, truncate_at_stops(text, stops)) for i, text in zip(order, done, strict=True))
                return [outputs[i] for i in range(len(prompts))]
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


def _continuous(model: nn.Module, tokenizer: Any, prompts: Sequence[str], *, batch_size: int, max_new_tokens: int,
                stops: Sequence[str], max_prompt_length: int, desc: str) -> list[str] | None:
    """`greedy_decode_continuous` over text prompts, with a progress bar counting finished prompts."""
    from greenprune._utils import progress_bar

    encoded = [tokenizer(p, truncation=True, max_length=max_prompt_length, add_special_tokens=False)["input_ids"]
               for p in prompts]
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    with progress_bar(desc, total=len(prompts)) as bar:
        ids = greedy_decode_continuous(model, tokenizer, encoded, batch_size=batch_size,
                                       max_new_tokens=max_new_tokens, stops=stops, pad_id=int(pad_id or 0),
                                       on_finish=lambda _row: bar.update(1))
    if ids is None:
        return None
    return tokenizer.batch_decode(ids, skip_special_tokens=True)
