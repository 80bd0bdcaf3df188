"""FLOPs: counted on the real inputs (what actually ran) and a closed-form formula to cross-check the count.

Counting uses `torch.utils.flop_counter.FlopCounterMode`, so a sequence that shrinks inside the model (ALPINE) is
counted at its shrunk length. PyTorch's counter has no formula for the fused CPU attention kernel that SDPA uses,
so we register one (the same one PyTorch uses for the CUDA kernels): without it, attention would count as zero.
Likewise for int8 dynamic Linear layers, whose multiply-adds are the same as the fp32 layer's.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from greenprune.models.families import UnsupportedModelError, family_of

aten = torch.ops.aten


def _sdpa_flops(query_shape, key_shape, value_shape, *args: Any, out_shape=None, **kwargs: Any) -> int:
    """Q·Kᵀ and P·V: 2·B·H·Lq·Lk·D each (full, unmasked, as PyTorch counts its SDPA kernels)."""
    *batch, lq, d = query_shape
    lk = key_shape[-2]
    dv = value_shape[-1]
    bh = 1
    for dim in batch:
        bh *= dim
    return 2 * bh * lq * lk * d + 2 * bh * lq * lk * dv


def _dynamic_linear_flops(input_shape, packed_params, *args: Any, out_shape=None, **kwargs: Any) -> int:
    """int8 dynamic Linear: the same 2·tokens·in·out multiply-adds as the fp32 layer it replaced."""
    tokens = 1
    for dim in input_shape[:-1]:
        tokens *= dim
    return 2 * tokens * input_shape[-1] * out_shape[-1]


def _extra_formulas() -> dict[Any, Any]:
    """Kernels PyTorch's counter has no formula for: fused CPU attention and int8 dynamic Linear."""
    formulas: dict[Any, Any] = {}
    op = getattr(aten, "_scaled_dot_product_flash_attention_for_cpu", None)
    if op is not None:
        formulas[op] = _sdpa_flops
    quantized = getattr(torch.ops, "quantized", None)
    for name in ("linear_dynamic", "linear_dynamic_fp16"):
        packet = getattr(quantized, name, None) if quantized is not None else None
        if packet is not None:
            formulas[packet] = _dynamic_linear_flops  # the counter keys formulas by overload packet
    return formulas


def count_flops(model: nn.Module, batch: Mapping[str, torch.Tensor]) -> int:
    """FLOPs of one forward pass of `model` on `batch`, as executed."""
    with torch.inference_mode(), FlopCounterMode(display=False, custom_mapping=_extra_formulas()) as counter:
        model(**batch)
    return int(counter.get_total_flops())


def flop_counter() -> FlopCounterMode:
    """A FlopCounterMode that also knows the CPU SDPA kernel (for callers that run the model themselves)."""
    return FlopCounterMode(display=False, custom_mapping=_extra_formulas())


def analytic_flops(
    config: Any,
    batch_size: int,
    seq_len: int,
    *,
    head: str | None = None,
    num_labels: int | None = None,
    layer_seq_lens: Sequence[int] | None = None,
) -> float | None:
    """Closed-form FLOPs (2 per multiply-add) of one forward of a model of a family in the table.

    Counts the matrix products that dominate: per layer, the Q/K/V/O projections (K/V narrower under grouped-query
    attention), the attention products (4·n²·(query width), unmasked) and the FFN (two matrices, three when gated);
    plus the pooler and classifier or the LM head. `layer_seq_lens` gives the
    sequence length entering each layer's attention and FFN when it changes inside the model (token pruning).
    Returns None for architectures without a formula here.
    """
    try:
        fam = family_of(getattr(config, "model_type", None) or "")
    except UnsupportedModelError:
        return None
    h = config.hidden_size
    n_layers = fam.num_layers(config)
    inter = fam.intermediate_size(config)
    lens = list(layer_seq_lens) if layer_seq_lens is not None else [seq_len] * n_layers
    if len(lens) != n_layers:
        raise ValueError(f"layer_seq_lens has {len(lens)} entries for {n_layers} layers")
    b = batch_size
    geo = fam.head_geometry(config)
    q, kv = geo.query_width, geo.kv_width
    ffn_matrices = len(fam.ffn_projections)  # 2, or 3 for a gated FFN
    total = 0.0
    for n in lens:
        proj = h * q + 2 * h * kv + q * h
        total += 2 * b * n * (proj + ffn_matrices * h * inter) + 4 * b * n * n * q
    labels = num_labels or getattr(config, "num_labels", 2)
    if fam.kind == "encoder":
        if head == "classification":
            # BERT: pooler dense + classifier on [CLS]; RoBERTa: head dense + out_proj on <s> — the same products
            total += 2 * b * h * h + 2 * b * h * labels
        elif head == "base" and fam.base_pooler:
            total += 2 * b * h * h  # pooler
        return total
    if head == "causal-lm":
        total += 2 * b * seq_len * h * config.vocab_size
    elif head == "classification":
        total += 2 * b * seq_len * h * labels
    return total
