"""Sequence-to-sequence summarisation of code with an HF `EncoderDecoderModel`: building one, its batches, greedy
summaries and their BLEU.

The seed study's CodeBERT setup: an encoder (CodeBERT, MiniLM, ...) warm-starts both sides, the decoder gaining
fresh cross-attention, as in CodeXGLUE's code-to-text baselines. Decoder LMs summarise through the `summarize` task.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import nn

from greenprune._utils import progress
from greenprune.errors import GreenpruneError

IGNORE_INDEX = -100


class Seq2SeqError(GreenpruneError, ValueError):
    """A model that cannot become (or be used as) an encoder-decoder summariser."""


def build_encoder_decoder(encoder_spec: str, *, decoder_layers: int | None = None) -> tuple[nn.Module, Any]:
    """An EncoderDecoderModel warm-started from `encoder_spec` (alias, folder or hub id) on both sides.

    The decoder copies the encoder's weights (`decoder_layers` of them, default all) and gains fresh cross-attention,
    as in CodeXGLUE's code-to-text baselines; it needs fine-tuning before it summarises anything.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, EncoderDecoderConfig, EncoderDecoderModel

    from greenprune.models import load_model

    loaded = load_model(encoder_spec, task="base")
    encoder, tokenizer = loaded.model, loaded.tokenizer
    if loaded.family.kind != "encoder":
        raise Seq2SeqError(f"{encoder_spec}: an encoder-decoder needs an encoder model, got a {loaded.family.kind}")
    settings = {k: v for k, v in encoder.config.to_dict().items() if k != "model_type"}
    dec_config = AutoConfig.for_model(encoder.config.model_type, **settings)
    dec_config.is_decoder = True
    dec_config.add_cross_attention = True
    if decoder_layers is not None:
        loaded.family.set_num_layers(dec_config, decoder_layers)
    decoder = AutoModelForCausalLM.from_config(dec_config)
    # warm start: every decoder weight that exists in the encoder (embeddings, self-attention, FFN) is copied
    enc_state = encoder.state_dict()
    dec_backbone = loaded.family.backbone(decoder)
    own = dec_backbone.state_dict()
    shared = {k: v for k, v in enc_state.items() if k in own and own[k].shape == v.shape}
    dec_backbone.load_state_dict(shared, strict=False)
    if hasattr(decoder, "tie_weights"):
        decoder.tie_weights()
    config = EncoderDecoderConfig.from_encoder_decoder_configs(encoder.config, decoder.config)
    model = EncoderDecoderModel(config=config, encoder=encoder, decoder=decoder)
    start = tokenizer.cls_token_id if tokenizer.cls_token_id is not None else tokenizer.bos_token_id
    end = tokenizer.sep_token_id if tokenizer.sep_token_id is not None else tokenizer.eos_token_id
    model.config.decoder_start_token_id = start
    model.config.eos_token_id = end
    model.config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.decoder_start_token_id = start
    model.generation_config.eos_token_id = end
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    return model, tokenizer


def seq2seq_batches(tokenizer: Any, examples: Sequence[Any], batch_size: int = 8, max_source: int = 256,
                    max_target: int = 32) -> Iterator[dict[str, torch.Tensor]]:
    """Encoder inputs from `example.text`, labels from `example.target` (padding ignored in the loss)."""
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        enc = tokenizer([e.text for e in chunk], truncation=True, max_length=max_source, padding=True,
                        return_tensors="pt")
        tgt = tokenizer([e.target or "" for e in chunk], truncation=True, max_length=max_target, padding=True,
                        return_tensors="pt")
        labels = tgt["input_ids"].masked_fill(tgt["attention_mask"] == 0, IGNORE_INDEX)
        yield {"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"], "labels": labels}


@torch.no_grad()
def seq2seq_summaries(model: nn.Module, tokenizer: Any, examples: Sequence[Any], batch_size: int = 8,
                      max_source: int = 256, max_new_tokens: int = 32) -> list[str]:
    """Greedy summaries from an encoder-decoder model."""
    model.eval()
    device = next(model.parameters()).device
    out: list[str] = []
    total = math.ceil(len(examples) / batch_size)
    for start in progress(range(0, len(examples), batch_size), desc="summarize (seq2seq)", total=total):
        chunk = examples[start : start + batch_size]
        enc = tokenizer([e.text for e in chunk], truncation=True, max_length=max_source, padding=True,
                        return_tensors="pt").to(device)
        ids = model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                             max_new_tokens=max_new_tokens, do_sample=False, num_beams=1)
        out.extend(t.strip() for t in tokenizer.batch_decode(ids, skip_special_tokens=True))
    return out


def seq2seq_bleu(model: nn.Module, tokenizer: Any, examples: Sequence[Any], **kwargs: Any) -> dict[str, float]:
    """Smoothed BLEU-4 (CodeXGLUE) of greedy encoder-decoder summaries."""
    from greenprune.tasks.metrics import smoothed_bleu4

    hyps = seq2seq_summaries(model, tokenizer, examples, **kwargs)
    return {"bleu4_smoothed": smoothed_bleu4([e.target or "" for e in examples], hyps),
            "examples": float(len(examples))}


__all__ = ["IGNORE_INDEX", "Seq2SeqError", "build_encoder_decoder", "seq2seq_batches", "seq2seq_bleu",
           "seq2seq_summaries"]
