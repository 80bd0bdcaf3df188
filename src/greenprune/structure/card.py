"""The model card written beside a structurally pruned checkpoint: what was removed, on what data, measured."""

from __future__ import annotations

import json
from typing import Any

from greenprune.structure.pipeline import StructureReport


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def model_card(source: str, report: StructureReport, command: str) -> str:
    """Markdown: removed structures per step, data used, before/after measurements with ratios."""
    lines = [
        f"# {source} — structurally pruned with greenprune",
        "",
        "A plain Hugging Face checkpoint: load it with `AutoModelForCausalLM.from_pretrained(folder)` and "
        "`AutoTokenizer.from_pretrained(folder)`; greenprune is not needed.",
        "",
        f"Command: `{command}`",
        "",
        f"Parameters: {report.params_before:,} → {report.params_after:,} "
        f"({100 * (1 - report.params_after / max(report.params_before, 1)):.1f}% removed)",
        "",
        "## What was removed",
        "",
    ]
    for step in report.steps:
        name = step.get("step", "?")
        details = {k: v for k, v in step.items() if k not in ("step", "scores_first_round")}
        lines.append(f"- **{name}**: " + ", ".join(f"{k}={_fmt(v)}" for k, v in details.items()))
    if not report.steps:
        lines.append("- nothing (all steps disabled)")
    m = report.measurements
    if m:
        lines += ["", "## Measured before / after (same process)", "", "| measure | before | after | after/before |",
                  "|---|---|---|---|"]
        for key, pair in m.get("table", {}).items():
            before, after = pair
            ratio = after / before if isinstance(before, (int, float)) and before else float("nan")
            lines.append(f"| {key} | {_fmt(before)} | {_fmt(after)} | {ratio:.3f} |")
        for note in m.get("notes", []):
            lines.append(f"\n{note}")
    lines += ["", "## Full report", "", "```json", json.dumps(json.loads(report.to_json()), indent=2), "```", ""]
    return "\n".join(lines)


__all__ = ["model_card"]
