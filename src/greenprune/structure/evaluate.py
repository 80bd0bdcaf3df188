"""Quality checks shared by the `structure` verb and the benchmark: held-out code perplexity, comparable across
vocabularies.

A pruned vocabulary tokenises unseen code into more (shorter) tokens, so per-token perplexity would reward it
unfairly. We report the summed NLL divided by the *original* tokenizer's token count of the same texts (equal
to ordinary perplexity when the vocabulary is untouched).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import nn


def code_nll(model: nn.Module, tokenizer: Any, texts: Sequence[str], *, batch_size: int = 8,
             max_length: int = 1024) -> tuple[float, int]:
    """Summed next-token NLL of `texts` (each scored from its first token) and the number of scored tokens."""
    from greenprune.tasks import get_task
    from greenprune.tasks.base import Example

    examples = [Example(text=t, id=str(i)) for i, t in enumerate(texts)]
    return get_task("perplexity").token_nll(model, tokenizer, examples, batch_size, max_length)


def code_perplexity(model: nn.Module, tokenizer: Any, texts: Sequence[str], *, reference_tokens: int | None = None,
                    batch_size: int = 8, max_length: int = 1024) -> dict[str, float]:
    """Perplexity per own token and per reference (original-tokenizer) token."""
    nll, tokens = code_nll(model, tokenizer, texts, batch_size=batch_size, max_length=max_length)
    ref = reference_tokens or tokens
    return {"perplexity": math.exp(nll / ref), "perplexity_own_tokens": math.exp(nll / max(tokens, 1)),
            "nll": nll, "tokens": float(tokens), "reference_tokens": float(ref)}


__all__ = ["code_nll", "code_perplexity"]
