"""The report's figures as PNG files (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from greenprune.report.collect import Row, lower_is_better, pareto_front

COMPONENTS = ("embeddings", "attention", "ffn", "layer_other", "head_other")


def _plt():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def quality_retained(row: Row) -> tuple[str, float] | None:
    """(metric, share of the baseline's quality kept): >1 is better than baseline, for any metric direction."""
    metric = row.primary_metric()
    if metric is None:
        return None
    ratio = row.quality_ratio(metric)
    if ratio is None or ratio == 0:
        return None
    return metric, (1 / ratio if lower_is_better(metric) else ratio)


def _save(fig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    _plt().close(fig)
    return path


def _empty(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", fontsize=10, color="gray", wrap=True)
    ax.set_xticks([])
    ax.set_yticks([])


def plot_pareto(rows: list[Row], path: Path) -> Path:
    """Quality kept vs cost (FLOPs and latency, both relative to each stack's own baseline), front highlighted."""
    plt = _plt()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, cost_key, title in ((axes[0], "flops_per_sample", "FLOPs / sample"),
                                (axes[1], "latency_p50_s", "latency p50")):
        # every baseline sits at (1, 1) by construction: one reference point instead of overlapping labels
        points, names = [(1.0, 1.0)], ["baseline" + ("s" if sum(r.is_baseline for r in rows) > 1 else "")]
        for row in rows:
            kept = quality_retained(row)
            cost = row.ratios.get(cost_key)
            if row.is_baseline or kept is None or cost is None:
                continue
            points.append((cost, kept[1]))
            names.append(f"{row.unit}: {row.label}")
        if len(points) == 1:
            _empty(ax, f"no pruned stack has both a quality metric and {title}")
            continue
        front = pareto_front(points)
        ax.plot([points[i][0] for i in front], [points[i][1] for i in front], color="tab:green", lw=2,
                alpha=0.6, zorder=2)
        ax.scatter([p[0] for p in points], [p[1] for p in points], color="tab:blue", zorder=3, label="stack")
        ax.scatter([points[i][0] for i in front], [points[i][1] for i in front], s=90, facecolors="none",
                   edgecolors="tab:green", linewidths=2, zorder=4, label="Pareto front")
        for (x, y), name in zip(points, names, strict=True):
            ax.annotate(name, (x, y), fontsize=7, xytext=(4, 4), textcoords="offset points")
        ax.axvline(1.0, color="gray", lw=0.8, ls="--")
        ax.axhline(1.0, color="gray", lw=0.8, ls="--")
        ax.set_xlabel(f"{title} (× baseline, lower is cheaper)")
        ax.set_ylabel("quality kept (× baseline, higher is better)")
        ax.legend(loc="lower right", fontsize=8)
        ax.set_title(f"cost vs quality: {title}")
    return _save(fig, path)


def _per_unit_lines(rows: list[Row], group: str, path: Path, ylabel: str, title: str) -> Path:
    plt = _plt()
    by_unit: dict[str, list[Row]] = defaultdict(list)
    for row in rows:
        if row.profile.get(group):
            by_unit[row.unit].append(row)
    n = max(1, len(by_unit))
    fig, axes = plt.subplots(1, n, figsize=(5.5 * n, 4), squeeze=False)
    if not by_unit:
        _empty(axes[0][0], f"no record has {group} per layer")
    for ax, (unit, unit_rows) in zip(axes[0], by_unit.items(), strict=False):
        for row in unit_rows:
            values = row.profile[group]
            keys = sorted(values)
            ax.plot(range(len(keys)), [values[k] for k in keys], marker="o", ms=3, label=row.label)
        ax.set_xlabel("layer")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{title}: {unit}", fontsize=10)
        ax.legend(fontsize=7)
    return _save(fig, path)


def plot_seq_len(rows: list[Row], path: Path) -> Path:
    return _per_unit_lines(rows, "seq_len", path, "mean tokens entering the layer", "sequence length per layer")


def plot_sparsity(rows: list[Row], path: Path) -> Path:
    return _per_unit_lines(rows, "sparsity", path, "fraction of zero weights", "sparsity per layer")


def plot_params(rows: list[Row], path: Path) -> Path:
    """Stacked bars: parameters in each component, one bar per stack."""
    plt = _plt()
    bars = [r for r in rows if r.profile.get("params")]
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(bars) + 2), 4.5))
    if not bars:
        _empty(ax, "no record has parameters by component")
        return _save(fig, path)
    bottoms = [0.0] * len(bars)
    for comp in COMPONENTS:
        heights = [r.profile["params"].get(comp, 0.0) / 1e6 for r in bars]
        ax.bar(range(len(bars)), heights, bottom=bottoms, label=comp)
        bottoms = [b + h for b, h in zip(bottoms, heights, strict=True)]
    ax.set_xticks(range(len(bars)))
    ax.set_xticklabels([f"{r.unit}\n{r.label}" for r in bars], rotation=30, ha="right", fontsize=7)
    ax.set_ylabel("parameters (millions)")
    ax.set_title("parameters by component")
    ax.legend(fontsize=8)
    return _save(fig, path)


PLOTS = {
    "pareto.png": ("Cost vs quality (Pareto front)", plot_pareto),
    "seq_len.png": ("Sequence length per layer", plot_seq_len),
    "sparsity.png": ("Sparsity per layer", plot_sparsity),
    "params.png": ("Parameters by component", plot_params),
}


def make_plots(rows: list[Row], folder: Path) -> dict[str, tuple[str, Path]]:
    """Every figure of the report: file name → (title, path)."""
    return {name: (title, fn(rows, folder / name)) for name, (title, fn) in PLOTS.items()}
