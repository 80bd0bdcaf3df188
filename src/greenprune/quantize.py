"""Post-training quantisation for CPU/GPU inference: fp16, bf16, and dynamic int8 on Linear layers.

int8 uses `torch.ao.quantization.quantize_dynamic` (weights int8 per tensor, activations quantised on the fly,
fbgemm/x86 kernels). torch marks `torch.ao.quantization` deprecated in favour of torchao's `quantize_`; it still
works in torch 2.13 and, unlike torchao's CPU path, dispatches to real int8 kernels, so greenprune keeps it and
silences the deprecation warning. The seed study saw this naive int8 lose ~30% BLEU on CodeBERT while fp16 kept it;
`compare_quantized` reports quality (when given an evaluator) and speed against fp32 in the same process.
"""

from __future__ import annotations

import copy
import warnings
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import torch
from torch import nn

from greenprune.errors import GreenpruneError

DTYPES = ("fp32", "fp16", "bf16", "int8")
_FLOAT = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}


class QuantizeError(GreenpruneError, ValueError):
    """An unknown target dtype, or a model that cannot be quantised that way."""


def _check(dtype: str) -> str:
    key = dtype.lower().replace("float16", "fp16").replace("bfloat16", "bf16").replace("float32", "fp32")
    if key not in DTYPES:
        raise QuantizeError(f"unknown quantisation dtype {dtype!r}; expected one of: {', '.join(DTYPES)}")
    return key


def quantize(model: nn.Module, dtype: str, *, inplace: bool = False) -> nn.Module:
    """`model` in `dtype` ("fp32" | "fp16" | "bf16" | "int8"); a copy unless `inplace`.

    Weight-pruning masks are folded in first, so pruned weights stay exactly zero in the quantised model.
    "int8" quantises every nn.Linear dynamically (embeddings, LayerNorm and an LM head tied to the embeddings stay
    fp32) and runs on CPU only.
    """
    from greenprune.weights.masks import make_permanent

    key = _check(dtype)
    target = model if inplace else copy.deepcopy(model)
    make_permanent(target)
    if key in _FLOAT:
        return target.to(_FLOAT[key])
    if next(target.parameters()).device.type != "cpu":
        raise QuantizeError("dynamic int8 quantisation runs on CPU; move the model to CPU first")
    target = target.float()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.simplefilter("ignore", UserWarning)
        from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

        # a Linear tied to the input embeddings (the LM head) stays fp32: quantising it would untie it and store a
        # second copy, larger in total and worse in quality
        embedding_weights = {id(m.weight) for m in target.modules() if isinstance(m, nn.Embedding)}
        spec = {name: default_dynamic_qconfig for name, m in target.named_modules()
                if isinstance(m, nn.Linear) and id(m.weight) not in embedding_weights}
        return quantize_dynamic(target, spec, dtype=torch.qint8, inplace=True)


def int8_linear_count(model: nn.Module) -> int:
    """How many Linear layers run as dynamically quantised int8."""
    return sum(1 for m in model.modules() if type(m).__name__ == "Linear" and hasattr(m, "_packed_params"))


def compare_quantized(
    model: nn.Module,
    batches: Iterable[dict[str, torch.Tensor]],
    dtypes: Sequence[str] = ("fp16", "int8"),
    *,
    evaluate: Callable[[nn.Module], dict[str, float]] | None = None,
    name: str = "model",
    task: str | None = None,
    rounds: int = 5,
    energy: bool = True,
) -> list[Any]:
    """fp32 `model` vs each quantised copy, measured interleaved in this process; one Comparison per dtype.

    `evaluate(model) -> metrics` adds task quality (e.g. BLEU) to both records and a metric ratio.
    """
    from greenprune.measure import compare

    data = list(batches)
    baseline = quantize(model, "fp32")
    base_metrics = evaluate(baseline) if evaluate else None
    out = []
    for dtype in dtypes:
        candidate = quantize(model, dtype)
        metrics = (base_metrics, evaluate(candidate)) if evaluate and base_metrics is not None else None
        out.append(
            compare(
                baseline, candidate, data,
                names=(f"{name} fp32", f"{name} {_check(dtype)}"),
                methods=("baseline", f"quantize:{_check(dtype)}"),
                configs=({"dtype": "fp32"}, {"dtype": _check(dtype)}),
                metrics=metrics, task=task, rounds=rounds, energy=energy,
            )
        )
    return out
