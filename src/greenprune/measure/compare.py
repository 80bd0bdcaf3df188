"""Baseline vs candidate, measured in one process with their timed passes interleaved.

Absolute times on a shared machine drift (other processes, frequency scaling, cache state), so greenprune never
compares numbers measured at different times. Rounds alternate the order (AB, BA, AB, ...) so drift hits both
models alike; the latency ratio gets a confidence interval from the per-round ratios, and the verdict says
whether the difference is larger than that noise.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable
from typing import Any

from torch import nn

from greenprune._utils import progress
from greenprune.measure.cost import (
    Batch,
    Timings,
    batch_shape,
    build_record,
    materialize,
    static_cost,
    timed_pass,
    warm_up,
)
from greenprune.measure.energy import DEFAULT_COUNTRY, EnergyTracker
from greenprune.measure.records import Comparison, CostRecord, ResultRecord

# two-sided 95% Student t quantiles by degrees of freedom (the per-round ratios are few)
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def _t95(dof: int) -> float:
    if dof in _T95:
        return _T95[dof]
    smaller = [k for k in _T95 if k <= dof]
    return _T95[max(smaller)] if smaller else _T95[1]


def ratio_interval(ratios: list[float]) -> tuple[float, float] | None:
    """95% interval of the geometric-mean ratio (t-interval on log ratios); None with fewer than 2 rounds."""
    if len(ratios) < 2:
        return None
    logs = [math.log(r) for r in ratios]
    mean = statistics.fmean(logs)
    half = _t95(len(logs) - 1) * statistics.stdev(logs) / math.sqrt(len(logs))
    return math.exp(mean - half), math.exp(mean + half)


_RATIO_FIELDS = (
    "params_total", "params_embedding", "params_non_embedding", "checkpoint_bytes", "flops_per_sample",
    "flops_analytic_per_sample", "peak_memory_bytes", "latency_p50_s", "latency_p95_s", "throughput_samples_s",
    "throughput_tokens_s", "energy_kwh", "co2_kg",
)


def cost_ratios(baseline: CostRecord, candidate: CostRecord) -> dict[str, float]:
    """candidate / baseline for every cost field both records have (non-zero baseline)."""
    out = {}
    for name in _RATIO_FIELDS:
        a, b = getattr(baseline, name), getattr(candidate, name)
        if a is not None and b is not None and a != 0 and not (isinstance(a, float) and math.isnan(a)):
            out[name] = b / a
    return out


def metric_ratios(baseline: dict[str, float], candidate: dict[str, float]) -> dict[str, float]:
    return {f"metric:{k}": candidate[k] / v for k, v in baseline.items() if k in candidate and v}


def verdict_text(ratio: float, interval: tuple[float, float] | None) -> tuple[bool | None, str]:
    if interval is None:
        return None, f"latency ratio {ratio:.3f} (one round: no noise estimate)"
    low, high = interval
    within = low <= 1.0 <= high
    span = f"latency ratio {ratio:.3f} (95% CI {low:.3f}–{high:.3f})"
    if within:
        return True, f"{span}: within noise of 1.0 — no measurable speed difference"
    direction = "faster" if ratio < 1 else "slower"
    return False, f"{span}: candidate is {direction} than baseline beyond noise"


def compare(
    baseline: nn.Module,
    candidate: nn.Module,
    batches: Iterable[Batch],
    *,
    names: tuple[str, str] = ("baseline", "candidate"),
    methods: tuple[str, str] = ("baseline", "candidate"),
    configs: tuple[dict[str, Any], dict[str, Any]] | None = None,
    metrics: tuple[dict[str, float], dict[str, float]] | None = None,
    task: str | None = None,
    rounds: int = 5,
    warmup: int = 1,
    max_batches: int | None = None,
    energy: bool = True,
    country: str = DEFAULT_COUNTRY,
    count_memory: bool = True,
    candidate_batches: Iterable[Batch] | None = None,
) -> Comparison:
    """Measure two models on the same batches, interleaved, and store candidate/baseline ratios.

    `baseline` and `candidate` may be the same object (a self-comparison shows the noise floor).
    `candidate_batches` gives the candidate its own encoding of the same examples (input truncation: the same model
    on shorter inputs is the candidate); by default both run `batches`.
    """
    base_data = materialize(batches, max_batches)
    data = (base_data, base_data if candidate_batches is None else materialize(candidate_batches, max_batches))
    if len(data[1]) != len(base_data):
        raise ValueError(f"candidate_batches has {len(data[1])} batches, batches has {len(base_data)}: "
                         "they must encode the same examples")
    models = (baseline, candidate)
    for model in models:
        model.eval()
    statics = [static_cost(m, d, count_memory=count_memory) for m, d in zip(models, data, strict=True)]
    for model, d in zip(models, data, strict=True):
        warm_up(model, d, warmup)
    timings = (Timings(), Timings())
    round_ratios: list[float] = []
    with EnergyTracker(country=country, enabled=energy) as tracker:
        for r in progress(range(rounds), desc="interleaved timing", total=rounds):
            order = (0, 1) if r % 2 == 0 else (1, 0)
            seconds = [0.0, 0.0]
            for idx in order:
                with tracker.task(f"model{idx}"):
                    seconds[idx] = timed_pass(models[idx], data[idx], timings[idx])
            round_ratios.append(seconds[1] / seconds[0])
    records = []
    for idx in range(2):
        reading = tracker.get(f"model{idx}")
        cost = build_record(
            models[idx],
            statics[idx],
            timings[idx],
            batch_size=batch_shape(data[idx][0])[0],
            energy=(reading.energy_kwh / rounds, reading.co2_kg / rounds) if reading else None,
            energy_method=tracker.method,
        )
        records.append(
            ResultRecord(
                model=names[idx],
                method=methods[idx],
                config=(configs[idx] if configs else {}),
                task=task,
                metrics=(metrics[idx] if metrics else {}),
                cost=cost,
            )
        )
    ratios = cost_ratios(records[0].cost, records[1].cost)  # type: ignore[arg-type]
    if metrics:
        ratios.update(metric_ratios(metrics[0], metrics[1]))
    interval = ratio_interval(round_ratios)
    geo = math.exp(statistics.fmean(math.log(r) for r in round_ratios))
    ratios["latency_interleaved"] = geo
    within, verdict = verdict_text(geo, interval)
    return Comparison(
        baseline=records[0],
        candidate=records[1],
        ratios=ratios,
        latency_ratio_ci95=interval,
        within_noise=within,
        verdict=verdict,
        rounds=rounds,
    )
