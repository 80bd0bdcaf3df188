"""Code-to-text glue for weight pruning: lottery inputs from a greenprune task, and encoder-decoder summarisers.

Two model shapes summarise code:
- a causal LM (e.g. `smollm2-135m`), prompted and decoded greedily by `greenprune.tasks` ("summarize");
- an HF `EncoderDecoderModel` warm-started from an encoder (CodeBERT, MiniLM, ...) with a decoder of the same
  architecture plus cross-attention — the seed study's CodeBERT setup. Weight pruning targets its encoder by default.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from greenprune._utils import progress
from greenprune.errors import GreenpruneError

IGNORE_INDEX = -100


class CodeToTextError(GreenpruneError, ValueError):
    """A model or task that cannot be used for code-to-text pruning as asked."""


def is_encoder_decoder(model: nn.Module) -> bool:
    return getattr(getattr(model, "config", None), "model_type", None) == "encoder-decoder"


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
        raise CodeToTextError(f"{encoder_spec}: an encoder-decoder needs an encoder model, got a {loaded.family.kind}")
    settings = {k: v for k, v in encoder.config.to_dict().items() if k != "model_type"}
    dec_config = AutoConfig.for_model(encoder.config.model_type, **settings)
    dec_config.is_decoder = True
    dec_config.add_cross_attention = True
    if decoder_layers is not None:
        dec_config.num_hidden_layers = decoder_layers
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


def primary_metric(task: Any) -> str:
    """The metric lottery rounds maximise for a task (BLEU for summarise, else the task's first metric)."""
    return "bleu4_smoothed" if task.name == "summarize" else task.metrics[0]


def lottery_io(task: Any, model: nn.Module, tokenizer: Any, splits: Any, *, batch_size: int = 8,
               max_length: int = 256, eval_limit: int | None = 30, max_new_tokens: int = 24
               ) -> tuple[Callable[[], Iterator[dict[str, torch.Tensor]]], Callable[[nn.Module], float], str]:
    """(training batches factory, evaluate → score, metric name) for lottery rounds on a greenprune task."""
    valid = list(splits.valid)[:eval_limit] if eval_limit else list(splits.valid)
    if not splits.train or not valid:
        raise CodeToTextError(f"task {task.name}: lottery rounds need train and valid examples")
    if is_encoder_decoder(model):
        if task.name != "summarize":
            raise CodeToTextError(f"encoder-decoder models run the summarize task, not {task.name!r}")

        def batches() -> Iterator[dict[str, torch.Tensor]]:
            return seq2seq_batches(tokenizer, splits.train, batch_size, max_length)

        def evaluate(m: nn.Module) -> float:
            return seq2seq_bleu(m, tokenizer, valid, batch_size=batch_size, max_new_tokens=max_new_tokens)[
                "bleu4_smoothed"]

        return batches, evaluate, "bleu4_smoothed"
    metric = primary_metric(task)
    train_batches = getattr(task, "train_batches", task.batches)

    def batches() -> Iterator[dict[str, torch.Tensor]]:
        return train_batches(tokenizer, splits.train, batch_size, max_length)

    def evaluate(m: nn.Module) -> float:
        extra = {"max_new_tokens": max_new_tokens} if task.name == "summarize" else {}
        return float(task.evaluate(m, tokenizer, valid, batch_size=batch_size, max_length=max_length, **extra)[metric])

    return batches, evaluate, metric
