"""Vocabulary pruning that keeps tokenisation exact (the Flab-Pruner vocabulary step, done right).

Code models carry tens of thousands of vocabulary rows (natural-language words, other scripts) that a code
workload never touches; dropping them shrinks the input embeddings and the LM head. `structure.tokenizer` chooses
the ids to keep so that every corpus text tokenises exactly as before (BPE intermediates, alphabet, specials, the
chat frame) and rebuilds the tokenizer; this module cuts the model's embedding and LM-head rows to those ids and
remaps the config's special-token ids.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from greenprune.measure.size import total_parameters
from greenprune.structure.tokenizer import (
    VocabPruningConfig,
    VocabPruningError,
    chat_frame_texts,
    needed_token_ids,
    prune_tokenizer,
    tokenizer_json,
    verify_same_tokens,
)


@dataclass
class VocabPruningResult:
    """The pruned model and tokenizer, with the old ids in new-id order and what was kept."""

    model: nn.Module
    tokenizer: Any
    kept_ids: list[int]  # kept_ids[new_id] == old_id
    algorithm: str
    vocab_before: int
    vocab_after: int
    merges_before: int | None
    merges_after: int | None
    params_before: int
    params_after: int
    corpus_texts: int
    corpus_words: int
    kept_breakdown: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready description for model cards and records."""
        return {
            "algorithm": self.algorithm,
            "vocab_before": self.vocab_before,
            "vocab_after": self.vocab_after,
            "merges_before": self.merges_before,
            "merges_after": self.merges_after,
            "params_before": self.params_before,
            "params_after": self.params_after,
            "corpus_texts": self.corpus_texts,
            "corpus_unique_words": self.corpus_words,
            "kept": self.kept_breakdown,
        }


# ---------------------------------------------------------------------------------------------------------------
# shrinking the model


def _remap_config_ids(config: Any, old_to_new: dict[int, int]) -> None:
    for name in list(vars(config)):
        if not name.endswith("_token_id"):
            continue
        value = getattr(config, name)
        if isinstance(value, int):
            setattr(config, name, old_to_new.get(value))
        elif isinstance(value, list) and all(isinstance(v, int) for v in value):
            setattr(config, name, [old_to_new[v] for v in value if v in old_to_new])


def shrink_embeddings(model: nn.Module, kept_ids: Sequence[int]) -> nn.Module:
    """Keep the embedding rows (and LM-head rows, tied or untied) of `kept_ids`; update config and token ids."""
    index = torch.as_tensor(list(kept_ids), dtype=torch.long)
    old_in = model.get_input_embeddings()
    if int(index.max()) >= old_in.num_embeddings:
        raise VocabPruningError(
            f"token id {int(index.max())} is outside the model's {old_in.num_embeddings} embedding rows: "
            "the tokenizer does not belong to this model"
        )
    old_out = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    tied = old_out is not None and old_out.weight is old_in.weight
    padding_idx = old_in.padding_idx
    old_to_new = {int(o): n for n, o in enumerate(kept_ids)}
    new_in = nn.Embedding(
        len(kept_ids), old_in.embedding_dim, padding_idx=old_to_new.get(padding_idx) if padding_idx is not None
        else None, dtype=old_in.weight.dtype, device=old_in.weight.device,
    )
    with torch.no_grad():
        new_in.weight.copy_(old_in.weight.index_select(0, index.to(old_in.weight.device)))
    model.set_input_embeddings(new_in)
    if old_out is not None:
        if tied:
            old_out.weight = new_in.weight
        else:
            new_w = old_out.weight.detach().index_select(0, index.to(old_out.weight.device)).clone()
            old_out.weight = nn.Parameter(new_w)
            if getattr(old_out, "bias", None) is not None:
                bias = old_out.bias.detach()
                old_out.bias = nn.Parameter(bias.index_select(0, index.to(bias.device)).clone())
        if hasattr(old_out, "out_features"):
            old_out.out_features = len(kept_ids)
    config = model.config
    config.vocab_size = len(kept_ids)
    _remap_config_ids(config, old_to_new)
    gen = getattr(model, "generation_config", None)
    if gen is not None:
        _remap_config_ids(gen, old_to_new)
    return model


def prune_vocab(
    model: nn.Module, tokenizer: Any, corpus: Iterable[str], config: VocabPruningConfig | None = None
) -> VocabPruningResult:
    """Prune `model` (in place) and return a new tokenizer that tokenises every corpus text exactly as before."""
    config = config or VocabPruningConfig()
    texts = list(corpus)
    params_before = total_parameters(model)
    vocab_before = len(tokenizer)
    merges_before = len(tokenizer_json(tokenizer)["model"].get("merges", [])) or None
    kept_ids, stats = needed_token_ids(tokenizer, texts, config)
    new_tokenizer, merges_after = prune_tokenizer(tokenizer, kept_ids)
    if config.verify:
        frame = chat_frame_texts(tokenizer) if config.keep_chat_frame else []
        verify_same_tokens(tokenizer, new_tokenizer, [*texts, *frame])
    shrink_embeddings(model, kept_ids)
    return VocabPruningResult(
        model=model,
        tokenizer=new_tokenizer,
        kept_ids=list(kept_ids),
        algorithm=stats["algorithm"],
        vocab_before=vocab_before,
        vocab_after=len(kept_ids),
        merges_before=merges_before,
        merges_after=merges_after,
        params_before=params_before,
        params_after=total_parameters(model),
        corpus_texts=stats["texts"],
        corpus_words=stats["words"],
        kept_breakdown={k: stats[k] for k in ("corpus_tokens", "alphabet", "special", "chat_frame_texts", "whitespace",
                                                 "frequent", "total")},
    )


__all__ = ["VocabPruningResult", "prune_vocab", "shrink_embeddings"]
