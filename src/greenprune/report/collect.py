"""Turn the records of one or more run folders into report rows (one row per measured stack).

Reports are built from records only, so `greenprune report RUN_DIR...` can rebuild or merge them at any time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from greenprune.errors import GreenpruneError
from greenprune.measure.profile import split_profile
from greenprune.measure.records import Comparison, CostRecord, ResultRecord
from greenprune.run_folder import UnitEntry, finished_steps, read_units, unit_folder

# quality metrics where smaller is better (everything else: larger is better)
LOWER_IS_BETTER = ("perplexity", "loss", "ppl")
# which metric a row reports first, when several are present
PREFERRED_METRICS = ("accuracy", "acc", "f1", "pass@1", "bleu", "perplexity")


class ReportError(GreenpruneError, ValueError):
    """Nothing to report from the given folders."""


def lower_is_better(metric: str) -> bool:
    return any(word in metric.lower() for word in LOWER_IS_BETTER)


@dataclass
class Row:
    """One stack of one unit: its record, its baseline's record and the ratios measured beside them."""

    run: str
    unit: str
    pipeline: str
    point: dict[str, Any]
    label: str
    model: str
    task: str | None
    record: ResultRecord
    baseline: ResultRecord
    ratios: dict[str, float] = field(default_factory=dict)
    verdict: str = ""
    step: int = 0
    # per-problem pass/fail of this stack and of the unit's baseline, per evaluated task (for paired tests)
    outcomes: dict[str, dict[str, bool]] = field(default_factory=dict)
    baseline_outcomes: dict[str, dict[str, bool]] = field(default_factory=dict)
    # per-example (id, label, prediction) of classification evaluations, this stack's and the baseline's, per task
    examples: dict[str, list[tuple[str, int, int]]] = field(default_factory=dict)
    baseline_examples: dict[str, list[tuple[str, int, int]]] = field(default_factory=dict)

    @property
    def quality(self) -> dict[str, float]:
        return split_profile(self.record.metrics)[0]

    @property
    def baseline_quality(self) -> dict[str, float]:
        return split_profile(self.baseline.metrics)[0]

    @property
    def profile(self) -> dict[str, dict[str, float]]:
        return split_profile(self.record.metrics)[1]

    @property
    def cost(self) -> CostRecord | None:
        return self.record.cost

    def primary_metric(self) -> str | None:
        """The pipeline task's own headline metric first (un-prefixed; the metric the task itself ranks by, e.g.
        clone's F1), then other tasks' (`generate.pass@1`)."""
        from greenprune.tasks import TASKS

        names = [k for k in self.quality if not k.endswith("_seconds")]
        own = [n for n in names if "." not in n]
        task = TASKS.get(str(self.task))
        if task is not None and task.primary_metric in own:
            return task.primary_metric
        for group in (own, names):
            for preferred in PREFERRED_METRICS:
                for name in group:
                    if name == preferred or name.endswith("." + preferred):
                        return name
        return (own or names or [None])[0]

    def quality_ratio(self, metric: str) -> float | None:
        base, cand = self.baseline_quality.get(metric), self.quality.get(metric)
        if base is None or cand is None or base == 0:
            return None
        return cand / base

    @property
    def is_baseline(self) -> bool:
        return self.verdict == "baseline"

    @property
    def stack_id(self) -> str:
        return f"{self.unit}:{self.label}"


def _outcomes_by_label(steps: list[Any]) -> dict[str, dict[str, dict[str, bool]]]:
    """stack label → task → problem id → solved, from the evaluate records that kept per-problem outcomes."""
    found: dict[str, dict[str, dict[str, bool]]] = {}
    for rec in _evaluations(steps, "per_problem"):
        per = {str(p["id"]): bool(p["passed"]) for p in rec.details["per_problem"]}
        found.setdefault(str(rec.config.get("label", "baseline")), {})[str(rec.task)] = per
    return found


def _examples_by_label(steps: list[Any]) -> dict[str, dict[str, list[tuple[str, int, int]]]]:
    """stack label → task → [(example id, label, prediction)], from classification evaluate records."""
    found: dict[str, dict[str, list[tuple[str, int, int]]]] = {}
    for rec in _evaluations(steps, "per_example"):
        per = [(str(e["id"]), int(e["label"]), int(e["pred"])) for e in rec.details["per_example"]
               if "label" in e and "pred" in e]  # (code-to-text keeps per-example BLEU, not predictions)
        if per:
            found.setdefault(str(rec.config.get("label", "baseline")), {})[str(rec.task)] = per
    return found


def _evaluations(steps: list[Any], detail: str) -> list[ResultRecord]:
    """Records that evaluated a stack and kept `detail`: evaluate steps, and comparisons whose candidate was
    evaluated by the step itself (truncation)."""
    found = []
    for step in steps:
        rec = step.record
        if isinstance(rec, ResultRecord) and rec.method == "evaluate" and rec.details.get(detail):
            found.append(rec)
        elif isinstance(rec, Comparison) and rec.candidate.details.get(detail):
            found.append(rec.candidate)
    return found


def _unit_rows(run_dir: Path, unit: UnitEntry, unit_dir: Path) -> list[Row]:
    rows: list[Row] = []
    baseline_record: ResultRecord | None = None
    steps = list(finished_steps(unit_dir))
    outcomes, examples = _outcomes_by_label(steps), _examples_by_label(steps)
    for result in steps:
        rec = result.record
        common = dict(run=run_dir.name, unit=unit.id, pipeline=unit.pipeline, point=unit.point,
                      model=unit.model, step=result.index)
        if isinstance(rec, ResultRecord) and rec.method == "baseline" and rec.cost is not None:
            baseline_record = rec
            # a baseline against itself: 1.0 for every cost field it has
            ratios = {k: 1.0 for k, v in rec.cost.model_dump().items()
                      if isinstance(v, int | float) and not isinstance(v, bool) and v}
            rows.append(Row(label=str(rec.config.get("label", "baseline")), task=rec.task, record=rec, baseline=rec,
                            ratios=ratios, verdict="baseline", **common))
        elif isinstance(rec, Comparison):
            if baseline_record is None:  # the comparison carries its own baseline measurement
                baseline_record = rec.baseline
            rows.append(Row(label=str(rec.candidate.config.get("label", rec.candidate.method)), task=rec.candidate.task,
                            record=rec.candidate, baseline=rec.baseline, ratios=dict(rec.ratios),
                            verdict=rec.verdict, **common))
    for row in rows:
        row.outcomes = outcomes.get(row.label, {})
        row.baseline_outcomes = outcomes.get("baseline", {})
        row.examples = examples.get(row.label, {})
        row.baseline_examples = examples.get("baseline", {})
    return rows


def collect(run_dirs: list[str | os.PathLike[str]]) -> list[Row]:
    """Rows of every measured stack in the given run folders, in run / unit / step order."""
    rows: list[Row] = []
    for run_dir in run_dirs:
        run_dir = Path(run_dir)
        for unit in read_units(run_dir):
            unit_dir = unit_folder(run_dir, unit)
            if unit_dir.is_dir():
                rows.extend(_unit_rows(run_dir, unit, unit_dir))
    if not rows:
        raise ReportError(
            f"no measured stacks in {', '.join(str(d) for d in run_dirs)}: a recipe needs `measure` steps to report"
        )
    return rows


def pareto_front(points: list[tuple[float, float]], higher_quality_better: bool = True) -> list[int]:
    """Indices of the points no other point beats on both cost (lower) and quality; sorted by cost."""
    front = []
    for i, (cost_i, q_i) in enumerate(points):
        dominated = False
        for j, (cost_j, q_j) in enumerate(points):
            if i == j:
                continue
            better_q = q_j >= q_i if higher_quality_better else q_j <= q_i
            strictly = cost_j < cost_i or (q_j > q_i if higher_quality_better else q_j < q_i)
            if cost_j <= cost_i and better_q and strictly:
                dominated = True
                break
        if not dominated:
            front.append(i)
    return sorted(front, key=lambda i: points[i][0])
