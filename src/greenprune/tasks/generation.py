"""Greedy / sampled generation with stop strings, batched with left padding (decoders only)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from greenprune._utils import progress
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
) -> list[str]:
    """The continuation of each prompt, cut at the first stop string."""
    from transformers import StoppingCriteriaList

    model.eval()
    device = model_device(model)
    old_side = tokenizer.padding_side
    tokenizer.padding_side = "left"
    outputs: list[str] = []
    try:
        starts = range(0, len(prompts), batch_size)
        for start in progress(starts, desc, total=len(starts)):
            chunk = list(prompts[start : start + batch_size])
            enc = tokenizer(chunk, return_tensors="pt", padding=True, truncation=True, max_length=max_prompt_length,
                            add_special_tokens=False)
            enc = {k: v.to(device) for k, v in enc.items() if k in ("input_ids", "attention_mask")}
            prompt_len = enc["input_ids"].shape[1]
            kwargs: dict[str, Any] = {"do_sample": do_sample}
            if do_sample:
                kwargs.update(temperature=temperature, top_p=top_p)
            out = model.generate(  # type: ignore[operator]
                **enc, max_new_tokens=max_new_tokens, pad_token_id=tokenizer.pad_token_id,
                stopping_criteria=StoppingCriteriaList([_StopOnStrings(tokenizer, prompt_len, stops)]), **kwargs,
            )
            texts = tokenizer.batch_decode(out[:, prompt_len:], skip_special_tokens=True)
            outputs.extend(truncate_at_stops(t, stops) for t in texts)
    finally:
        tokenizer.padding_side = old_side
    return outputs
