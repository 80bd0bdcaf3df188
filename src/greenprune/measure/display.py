"""Rich tables of cost records, as the CLI prints them."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table

from greenprune.measure.records import Comparison, ResultRecord


def _fmt(value: float | None, unit: str = "", scale: float = 1.0, digits: int = 2) -> str:
    if value is None:
        return "-"
    return f"{value / scale:.{digits}f}{unit}"


_ROWS: tuple[tuple[str, str, str, float, int], ...] = (
    # (label, CostRecord field, unit suffix, scale, digits)
    ("parameters", "params_total", "M", 1e6, 2),
    ("  embedding", "params_embedding", "M", 1e6, 2),
    ("  non-embedding", "params_non_embedding", "M", 1e6, 2),
    ("checkpoint", "checkpoint_bytes", " MB", 1e6, 1),
    ("FLOPs / sample (counted)", "flops_per_sample", " G", 1e9, 3),
    ("FLOPs / sample (analytic)", "flops_analytic_per_sample", " G", 1e9, 3),
    ("peak memory", "peak_memory_bytes", " MB", 1e6, 1),
    ("latency p50 / batch", "latency_p50_s", " ms", 1e-3, 1),
    ("latency p95 / batch", "latency_p95_s", " ms", 1e-3, 1),
    ("throughput", "throughput_samples_s", " samples/s", 1, 2),
    ("throughput", "throughput_tokens_s", " tokens/s", 1, 0),
    ("energy / pass", "energy_kwh", " J", 1 / 3.6e6, 2),
    ("CO2 / pass", "co2_kg", " mg", 1e-6, 3),
)


def cost_table(records: Sequence[ResultRecord], title: str = "cost") -> Table:
    """One column per record, one row per quantity (readable in 80 columns)."""
    table = Table(title=title)
    table.add_column("quantity")
    for rec in records:
        table.add_column(rec.model if rec.method == "baseline" else f"{rec.model}\n{rec.method}", justify="right")
    for label, field, unit, scale, digits in _ROWS:
        table.add_row(label, *[_fmt(getattr(r.cost, field) if r.cost else None, unit, scale, digits) for r in records])
    for name in sorted({k for r in records for k in r.metrics}):
        table.add_row(name, *[_fmt(r.metrics.get(name), "", 1, 4) for r in records])
    table.add_row("samples × batch", *[f"{r.cost.samples} × {r.cost.batch_size}" if r.cost else "-" for r in records])
    return table


def comparison_table(comparison: Comparison) -> Table:
    table = Table(title=f"{comparison.candidate.model} vs {comparison.baseline.model} (interleaved, "
                        f"{comparison.rounds} rounds)")
    table.add_column("quantity")
    table.add_column("candidate / baseline", justify="right")
    for key, value in comparison.ratios.items():
        table.add_row(key, f"{value:.3f}")
    table.caption = comparison.verdict
    return table
