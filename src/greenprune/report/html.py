"""The comparison table (markdown, rich, HTML) and the report files: report.md and one self-contained report.html
(plots embedded as base64 PNG, no external resources) that opens offline in any browser."""

from __future__ import annotations

import base64
import html
import json
import os
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from greenprune._utils import atomic_write_text
from greenprune.report.collect import Row, collect
from greenprune.report.plots import make_plots, quality_retained

# (ratio key, column title); every ratio is candidate / baseline measured in the same process
RATIO_COLUMNS = (
    ("flops_per_sample", "FLOPs ×"),
    ("latency_p50_s", "latency p50 ×"),
    ("throughput_samples_s", "throughput ×"),
    ("params_total", "params ×"),
    ("checkpoint_bytes", "bytes ×"),
    ("peak_memory_bytes", "peak mem ×"),
    ("energy_kwh", "energy ×"),
)
HEADERS = ("unit", "stack", "quality", "quality kept", *(t for _, t in RATIO_COLUMNS), "latency (interleaved)")


def _fmt_ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


# rate metrics and the count of trials they are a share of (the same task prefix), for a Wilson interval
RATE_COUNTS = {"pass@1": "problems", "accuracy": "examples"}


def _correct(examples: list[tuple[str, int, int]]) -> dict[str, bool]:
    """Per-example right/wrong from (id, label, prediction) records, keyed by position and id (ids may repeat)."""
    return {f"{n}:{i}": y == p for n, (i, y, p) in enumerate(examples)}


def _rate_interval(row: Row, metric: str) -> str:
    """" (k/n) [low, high]" for a pass rate or accuracy whose trial count the record holds (or, for accuracy, whose
    per-example predictions it kept), else ""."""
    from greenprune.tasks.metrics import wilson_interval

    prefix, _, name = metric.rpartition(".")
    count_key = RATE_COUNTS.get(name)
    n = row.quality.get(f"{prefix}.{count_key}" if prefix else str(count_key)) if count_key else None
    examples = row.examples.get(prefix or str(row.task)) if name == "accuracy" else None
    if examples:
        successes, n = sum(y == p for _, y, p in examples), len(examples)
    elif n:
        successes = round(row.quality[metric] * n)
    else:
        return ""
    low, high = wilson_interval(successes, int(n))
    return f" ({successes}/{int(n)}) [{low:.2f}, {high:.2f}]"


def _paired(row: Row, metric: str) -> str:
    """" paired −a/+b (McNemar p)" against the unit's baseline on the same problems (pass@1) or the same labelled
    examples (accuracy), else ""."""
    from greenprune.tasks.metrics import paired_outcomes, paired_predictions

    prefix, _, name = metric.rpartition(".")
    task = prefix or str(row.task)
    if name == "pass@1":
        mine, base = row.outcomes.get(task), row.baseline_outcomes.get(task)
    elif name == "accuracy":
        mine_ex, base_ex = row.examples.get(task, []), row.baseline_examples.get(task, [])
        if paired_predictions(base_ex, mine_ex) is None:
            return ""  # not the same labelled examples: nothing to pair
        mine, base = _correct(mine_ex), _correct(base_ex)
    else:
        return ""
    if row.is_baseline or not mine or not base or set(mine) != set(base):
        return ""
    pair = paired_outcomes(base, mine)
    return f" paired −{pair['only_baseline']:.0f}/+{pair['only_candidate']:.0f} (McNemar p={pair['mcnemar_p']:.2g})"


# classification metrics with per-example predictions in the records: a bootstrap interval and a paired difference
BOOTSTRAPPED = ("f1", "precision", "recall")


def _bootstrap(row: Row, metric: str) -> str:
    """" (n=300) [low, high] Δ +d [low, high]" for F1-like metrics from the records' per-example predictions: a
    percentile bootstrap interval of the metric, then a paired bootstrap of its difference to the baseline on the
    same examples (left out when the baseline was scored on other examples)."""
    from greenprune.tasks.metrics import bootstrap_metric_interval, paired_bootstrap, paired_predictions

    prefix, _, name = metric.rpartition(".")
    task = prefix or str(row.task)
    mine = row.examples.get(task)
    if name not in BOOTSTRAPPED or not mine:
        return ""
    labels, preds = [y for _, y, _ in mine], [p for _, _, p in mine]
    low, high = bootstrap_metric_interval(labels, preds, name)
    text = f" (n={len(mine)}) [{low:.2f}, {high:.2f}]"
    paired = None if row.is_baseline else paired_predictions(row.baseline_examples.get(task, []), mine)
    if paired is None:
        return text
    d = paired_bootstrap(*paired, name)
    return text + f" Δ {d['difference']:+.3f} [{d['ci_low']:+.3f}, {d['ci_high']:+.3f}]"


def _versus_stack(row: Row, metric: str) -> str:
    """" alpine(even) − this Δ +d [low, high]" for a truncation row: the stack it was matched to minus it, paired
    bootstrap on the same examples (does token pruning beat cutting the input at the same FLOPs?)."""
    versus = row.record.details.get("versus_stack")
    if not versus or versus.get("metric") != metric:
        return ""
    return (f" {versus['stack']} − this Δ {versus['difference']:+.3f} "
            f"[{versus['ci_low']:+.3f}, {versus['ci_high']:+.3f}]")


def _fmt_metric(row: Row) -> str:
    """The headline metric, then any other task's pass@1; rates with their 95% Wilson interval, F1 with a bootstrap
    interval and the paired bootstrap difference to the baseline, pass rates and accuracy with the paired breakdown
    against the baseline (problems or examples only it got right / only this stack got right, exact McNemar p)."""
    metric = row.primary_metric()
    if metric is None:
        return "–"
    shown = [metric, *(k for k in sorted(row.quality) if k.endswith(".pass@1") and k != metric)]
    return "; ".join(f"{k}={row.quality[k]:.4g}{_rate_interval(row, k)}{_bootstrap(row, k)}{_paired(row, k)}"
                     f"{_versus_stack(row, k)}" for k in shown)


def table_rows(rows: list[Row]) -> list[list[str]]:
    out = []
    for row in rows:
        kept = quality_retained(row)
        out.append([
            row.unit, row.label, _fmt_metric(row), _fmt_ratio(kept[1] if kept else None),
            *(_fmt_ratio(row.ratios.get(key))
              for key, _ in RATIO_COLUMNS),
            short_verdict(row.verdict),
        ])
    return out


def quality_lines(rows: list[Row]) -> list[str]:
    """Every quality metric of every stack (the table shows one per row)."""
    out = []
    for row in rows:
        values = ", ".join(f"{k}={v:.4g}" for k, v in sorted(row.quality.items()) if not k.endswith("_seconds"))
        out.append(f"{row.unit} / {row.label}: {values or 'no quality metric (add an evaluate step)'}")
    return out


def short_verdict(verdict: str) -> str:
    if not verdict or verdict == "baseline":
        return verdict
    for word in ("within noise", "faster", "slower"):
        if word in verdict:
            ratio = verdict.split("(")[0].replace("latency ratio", "").strip()
            return f"{word} ({ratio})"
    return verdict.split(":")[0]


def markdown_table(rows: list[Row]) -> str:
    lines = ["| " + " | ".join(HEADERS) + " |", "|" + "---|" * len(HEADERS)]
    for cells in table_rows(rows):
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


def rich_table(rows: list[Row], title: str = "every stack vs its baseline (ratios = candidate / baseline)"):
    from rich.table import Table

    table = Table(title=title)
    for i, header in enumerate(HEADERS):
        # a stack's name stays on one line (it is what a reader looks for); the long quality cell wraps instead
        table.add_column(header, justify="right" if i >= 3 else "left", overflow="fold", no_wrap=i == 1)
    for cells in table_rows(rows):
        table.add_row(*cells)
    return table


@dataclass
class Report:
    folder: Path
    markdown: Path
    html: Path
    plots: dict[str, Path]
    rows: list[Row]


def _runs_summary(run_dirs: list[Path]) -> list[str]:
    out = []
    for run_dir in run_dirs:
        resolved = json.loads((run_dir / "resolved.json").read_text(encoding="utf-8"))
        out.append(f"{run_dir.name}: recipe {resolved['recipe']['name']!r} from {resolved.get('source') or '?'}, "
                   f"{len(resolved['units'])} unit(s), started {resolved.get('created', '?')}")
    return out


def _emissions(run_dirs: list[Path]) -> list[str]:
    out = []
    for run_dir in run_dirs:
        for csv in sorted(run_dir.glob("units/*/emissions.csv")):
            lines = csv.read_text(encoding="utf-8").strip().splitlines()
            if len(lines) < 2:
                continue
            header = lines[0].split(",")
            try:
                e_idx, k_idx = header.index("emissions"), header.index("energy_consumed")
            except ValueError:
                continue
            co2 = kwh = 0.0
            for line in lines[1:]:
                cells = line.split(",")
                try:
                    co2 += float(cells[e_idx])
                    kwh += float(cells[k_idx])
                except (ValueError, IndexError):
                    continue
            out.append(f"{run_dir.name}/{csv.parent.name}: {kwh * 1000:.3f} Wh, {co2 * 1000:.3f} g CO2 "
                       f"(whole unit incl. fine-tuning; codecarbon, {len(lines) - 1} session(s))")
    return out


def build_report(run_dirs: list[str | os.PathLike[str]], out_dir: str | os.PathLike[str]) -> Report:
    """Write report.md, report.html and plots/*.png for the runs' records into `out_dir`."""
    run_dirs = [Path(d) for d in run_dirs]
    out_dir = Path(out_dir)
    rows = collect(run_dirs)
    plots = make_plots(rows, out_dir / "plots")
    runs = _runs_summary(run_dirs)
    emissions = _emissions(run_dirs)
    notes = sorted({row.verdict for row in rows if row.verdict and row.verdict != "baseline"})
    created = datetime.now().isoformat(timespec="seconds")

    md = ["# greenprune report", "", f"Generated {created} from records of:", ""]
    md += [f"- {r}" for r in runs]
    md += ["", "## Every stack vs its baseline", "",
           "Ratios are candidate / baseline, both measured in the same process, interleaved. "
           "*quality kept* is the primary metric relative to the baseline (inverted for perplexity, so >1 is better).",
           "", markdown_table(rows), ""]
    md += ["### All quality metrics", ""] + [f"- {line}" for line in quality_lines(rows)] + [""]
    if notes:
        md += ["Latency verdicts:", ""] + [f"- {n}" for n in notes] + [""]
    if emissions:
        md += ["## Energy of the runs (codecarbon)", ""] + [f"- {e}" for e in emissions] + [""]
    md += ["## Plots", ""]
    md += [f"![{title}](plots/{name})" for name, (title, _p) in plots.items()]
    md_path = atomic_write_text(out_dir / "report.md", "\n".join(md) + "\n")

    html_path = atomic_write_text(out_dir / "report.html", _html(rows, plots, runs, emissions, notes, created))
    return Report(out_dir, md_path, html_path, {k: p for k, (_t, p) in plots.items()}, rows)


_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,sans-serif;margin:2em auto;max-width:1200px;color:#222}
table{border-collapse:collapse;font-size:13px;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px}
th{background:#f0f4f0}td.num{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1.5em 0}img{max-width:100%;border:1px solid #ddd}figcaption{color:#555;font-size:13px}
.better{background:#e6f5e6}.worse{background:#fbeaea}
"""


def _cell_class(header: str, text: str) -> str:
    try:
        value = float(text)
    except ValueError:
        return ""
    if header == "quality kept" or header.startswith("throughput"):
        return "num better" if value > 1 else ("num worse" if value < 1 else "num")
    return "num better" if value < 1 else ("num worse" if value > 1 else "num")


def _html(rows: list[Row], plots: dict[str, tuple[str, Path]], runs: list[str], emissions: list[str],
          notes: list[str], created: str) -> str:
    esc = html.escape
    parts = ["<!DOCTYPE html>", "<html lang='en'><head><meta charset='utf-8'>", "<title>greenprune report</title>",
             f"<style>{_CSS}</style></head><body>", "<h1>greenprune report</h1>",
             f"<p>Generated {esc(created)} from records of:</p><ul>"]
    parts += [f"<li>{esc(r)}</li>" for r in runs]
    parts += ["</ul>", "<h2>Every stack vs its baseline</h2>",
              "<p>Ratios are candidate / baseline measured in the same process, interleaved; green is better.</p>",
              "<table id='comparison'><thead><tr>"]
    parts += [f"<th>{esc(h)}</th>" for h in HEADERS]
    parts.append("</tr></thead><tbody>")
    for cells in table_rows(rows):
        parts.append("<tr>" + "".join(
            f"<td class='{_cell_class(h, c)}'>{esc(c)}</td>" for h, c in zip(HEADERS, cells, strict=True)) + "</tr>")
    parts.append("</tbody></table>")
    parts += ["<h3>All quality metrics</h3><ul>"] + [f"<li>{esc(q)}</li>" for q in quality_lines(rows)] + ["</ul>"]
    if notes:
        parts += ["<h3>Latency verdicts</h3><ul>"] + [f"<li>{esc(n)}</li>" for n in notes] + ["</ul>"]
    if emissions:
        parts += ["<h2>Energy of the runs (codecarbon)</h2><ul>"] + [f"<li>{esc(e)}</li>" for e in emissions]
        parts.append("</ul>")
    parts.append("<h2>Plots</h2>")
    for name, (title, path) in plots.items():
        data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
        parts.append(f"<figure><img alt='{esc(title)}' data-plot='{esc(name)}' src='data:image/png;base64,{data}'>"
                     f"<figcaption>{esc(title)}</figcaption></figure>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
