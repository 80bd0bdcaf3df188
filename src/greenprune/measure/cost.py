"""What running a model costs on given inputs: size, FLOPs, peak memory, latency, throughput, energy.

Measurement runs in passes so instruments never distort each other: a counting pass (FLOPs and peak memory, under
dispatch modes that slow execution), then warm-up, then timed passes with codecarbon attributing energy per model.
`compare` (compare.py) interleaves the timed passes of two models; `measure_cost` is the one-model case.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from greenprune.measure.energy import DEFAULT_COUNTRY, EnergyTracker
from greenprune.measure.flops import analytic_flops, flop_counter
from greenprune.measure.memory import TensorMemoryTracker, peak_forward_memory, static_bytes
from greenprune.measure.records import CostRecord
from greenprune.measure.size import checkpoint_bytes, count_parameters

Batch = Mapping[str, Any]

# inputs a forward pass may take; labels are dropped so that timing measures inference only
_NON_INPUT_KEYS = ("labels",)


def model_inputs(batch: Batch, device: torch.device | str | None = None) -> dict[str, Any]:
    """The forward-pass arguments of a batch (labels removed), moved to `device`."""
    out = {}
    for key, value in batch.items():
        if key in _NON_INPUT_KEYS:
            continue
        out[key] = value.to(device) if device is not None and isinstance(value, torch.Tensor) else value
    return out


def batch_shape(batch: Batch) -> tuple[int, int, int]:
    """(samples, padded length, real tokens) of a batch."""
    ids = batch.get("input_ids")
    if ids is None:
        ids = next(v for v in batch.values() if isinstance(v, torch.Tensor))
    samples, length = int(ids.shape[0]), int(ids.shape[-1])
    mask = batch.get("attention_mask")
    tokens = int(mask.sum()) if isinstance(mask, torch.Tensor) else samples * length
    return samples, length, tokens


def _head_of(model: nn.Module) -> str | None:
    name = type(model).__name__
    if name.endswith("ForSequenceClassification"):
        return "classification"
    if name.endswith("ForCausalLM"):
        return "causal-lm"
    if name.endswith("Model"):
        return "base"
    return None


def model_device(model: nn.Module) -> torch.device:
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def model_dtype(model: nn.Module) -> str:
    dtypes = {p.dtype for p in model.parameters()}
    if any(hasattr(m, "_packed_params") for m in model.modules()):
        dtypes.add(torch.qint8)
    return "+".join(sorted(str(d).replace("torch.", "") for d in dtypes)) or "unknown"


@dataclass
class StaticCost:
    """Everything about a model's cost that does not need a stopwatch."""

    params: dict[str, int]
    checkpoint_bytes: int
    samples: int
    tokens: int
    flops: int
    flops_analytic: float | None
    peak_memory_bytes: int
    peak_memory_method: str


def static_cost(model: nn.Module, batches: Sequence[Batch], *, count_memory: bool = True) -> StaticCost:
    """Count FLOPs over all batches (as executed) and the peak forward memory over all batches."""
    device = model_device(model)
    samples = tokens = flops = 0
    analytic: float | None = 0.0
    peak = 0
    config = getattr(model, "config", None)
    head = _head_of(model)
    method = ""
    for batch in batches:
        inputs = model_inputs(batch, device)
        n, length, real = batch_shape(inputs)
        samples += n
        tokens += real
        with torch.inference_mode(), flop_counter() as counter:
            if count_memory and device.type == "cpu":
                tracker = TensorMemoryTracker()
                with tracker:
                    model(**inputs)
                peak = max(peak, tracker.peak)
            else:
                model(**inputs)
        flops += int(counter.get_total_flops())
        if count_memory and device.type != "cpu":
            value, method = peak_forward_memory(model, inputs)
            peak = max(peak, value)
        formula = analytic_flops(config, n, length, head=head) if config is not None else None
        analytic = None if (formula is None or analytic is None) else analytic + formula
    if count_memory and device.type == "cpu":
        from greenprune.measure.memory import CPU_METHOD

        peak += static_bytes(model)
        method = CPU_METHOD
    return StaticCost(
        params=count_parameters(model),
        checkpoint_bytes=checkpoint_bytes(model),
        samples=samples,
        tokens=tokens,
        flops=flops,
        flops_analytic=analytic,
        peak_memory_bytes=peak if count_memory else 0,
        peak_memory_method=method if count_memory else "not measured",
    )


@dataclass
class Timings:
    """Per-batch latencies (seconds) and pass totals collected over timed passes."""

    batch_latencies: list[float] = field(default_factory=list)
    pass_seconds: list[float] = field(default_factory=list)


def timed_pass(model: nn.Module, batches: Sequence[Batch], timings: Timings) -> float:
    """One inference pass over all batches; records each batch's latency and returns the pass's seconds."""
    device = model_device(model)
    prepared = [model_inputs(b, device) for b in batches]
    start_pass = time.perf_counter()
    with torch.inference_mode():
        for inputs in prepared:
            start = time.perf_counter()
            model(**inputs)
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            timings.batch_latencies.append(time.perf_counter() - start)
    seconds = time.perf_counter() - start_pass
    timings.pass_seconds.append(seconds)
    return seconds


def warm_up(model: nn.Module, batches: Sequence[Batch], passes: int = 1) -> None:
    if passes <= 0 or not batches:
        return
    device = model_device(model)
    with torch.inference_mode():
        for _ in range(passes):
            model(**model_inputs(batches[0], device))


def percentile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile (q in [0, 100])."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def build_record(
    model: nn.Module,
    static: StaticCost,
    timings: Timings,
    batch_size: int,
    energy: tuple[float, float] | None,
    energy_method: str,
) -> CostRecord:
    total_seconds = sum(timings.pass_seconds)
    per_sample = max(static.samples, 1)
    passes = max(len(timings.pass_seconds), 1)
    return CostRecord(
        params_total=static.params["total"],
        params_embedding=static.params["embedding"],
        params_non_embedding=static.params["non_embedding"],
        checkpoint_bytes=static.checkpoint_bytes,
        samples=static.samples,
        tokens=static.tokens,
        flops_per_sample=static.flops / per_sample,
        flops_analytic_per_sample=None if static.flops_analytic is None else static.flops_analytic / per_sample,
        peak_memory_bytes=static.peak_memory_bytes or None,
        peak_memory_method=static.peak_memory_method,
        latency_p50_s=statistics.median(timings.batch_latencies) if timings.batch_latencies else float("nan"),
        latency_p95_s=percentile(timings.batch_latencies, 95),
        throughput_samples_s=static.samples * passes / total_seconds if total_seconds else float("nan"),
        throughput_tokens_s=static.tokens * passes / total_seconds if total_seconds else float("nan"),
        timed_batches=len(timings.batch_latencies),
        energy_kwh=energy[0] if energy else None,
        co2_kg=energy[1] if energy else None,
        energy_method=energy_method,
        batch_size=batch_size,
        device=str(model_device(model)),
        dtype=model_dtype(model),
    )


def materialize(batches: Iterable[Batch], max_batches: int | None = None) -> list[Batch]:
    out = []
    for i, batch in enumerate(batches):
        if max_batches is not None and i >= max_batches:
            break
        out.append(batch)
    if not out:
        raise ValueError("no batches to measure on: the batch iterator was empty")
    return out


def measure_cost(
    model: nn.Module,
    batches: Iterable[Batch],
    *,
    passes: int = 3,
    warmup: int = 1,
    max_batches: int | None = None,
    energy: bool = True,
    country: str = DEFAULT_COUNTRY,
    count_memory: bool = True,
) -> CostRecord:
    """Measure one model on `batches` (an iterable of dicts of input tensors, as a tokenizer returns them)."""
    data = materialize(batches, max_batches)
    model.eval()
    static = static_cost(model, data, count_memory=count_memory)
    warm_up(model, data, warmup)
    timings = Timings()
    with EnergyTracker(country=country, enabled=energy) as tracker:
        for _ in range(passes):
            with tracker.task("model"):
                timed_pass(model, data, timings)
    reading = tracker.get("model")
    return build_record(
        model,
        static,
        timings,
        batch_size=batch_shape(data[0])[0],
        energy=(reading.energy_kwh / passes, reading.co2_kg / passes) if reading else None,
        energy_method=tracker.method,
    )
