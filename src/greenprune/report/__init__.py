"""Reports from records only: the comparison table (every stack vs its baseline, ratios), plots (Pareto front,
sequence length and sparsity per layer, parameters by component), report.md and a self-contained report.html."""

from greenprune.report.collect import ReportError, Row, collect, pareto_front
from greenprune.report.html import Report, build_report, markdown_table, rich_table
from greenprune.report.plots import make_plots

__all__ = ["Report", "ReportError", "Row", "build_report", "collect", "make_plots", "markdown_table",
           "pareto_front", "rich_table"]
