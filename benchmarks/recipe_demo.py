"""Headline run of issue #7: the shipped recipes/demo.yaml end to end, with its wall time per step.

    python benchmarks/recipe_demo.py                       # run the demo recipe, then write the results
    python benchmarks/recipe_demo.py --from-run runs/demo-…  # only write the results of a finished run

Writes benchmarks/results/recipe_demo.md: the command line, step timings, the comparison table (every stack vs its
baseline, measured interleaved in the same process) and all quality metrics.
"""

from __future__ import annotations

import argparse
import os
import re
import shlex
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--recipe", type=Path, default=ROOT / "recipes" / "demo.yaml")
    parser.add_argument("--runs-dir", type=Path, default=ROOT / "runs")
    parser.add_argument("--from-run", type=Path, nargs="+", default=None,
                        help="finished (or partial) run folders: skip running, merge their records")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "recipe_demo.md")
    args = parser.parse_args()

    from greenprune.recipe import load_run, run_recipe
    from greenprune.report import build_report
    from greenprune.report.html import markdown_table, quality_lines
    from greenprune.run_folder import finished_steps, unit_folder

    load_before = os.getloadavg()
    start = time.perf_counter()
    run_dirs = args.from_run or [run_recipe(args.recipe, root=args.runs_dir, report=False)]
    wall = None if args.from_run else time.perf_counter() - start
    report = build_report(run_dirs, run_dirs[0] / "report")

    lines = ["# recipes/demo.yaml end to end", "",
             f"Command: `{shlex.join([sys.executable.rsplit('/', 1)[-1], *sys.argv])}`", "",
             f"Run folder(s): {', '.join(f'`{d}`' for d in run_dirs)}; HTML report: `{report.html}`", ""]
    if wall is not None:
        lines.append(f"Wall time: {wall / 60:.1f} min; load average before the run: "
                     f"{load_before[0]:.1f} on {os.cpu_count()} cores (shared machine).")
    lines += ["", "## Step timings", "", "| unit | step | seconds |", "|---|---|---:|"]
    total = 0.0
    for run_dir, unit in [(d, u) for d in run_dirs for u in load_run(d)[1]]:
        for step in finished_steps(unit_folder(run_dir, unit)):
            record = step.record.candidate if hasattr(step.record, "candidate") else step.record
            took = next((float(m.group(1)) for n in record.notes if (m := re.search(r"took ([\d.]+)s", n))), None)
            total += took or 0.0
            lines.append(f"| {unit.id} | {step.index:02d}-{step.kind} | {took if took is not None else '?'} |")
    lines += [f"| **all** | | **{total:.0f}** |", "", "## Every stack vs its baseline", "",
              markdown_table(report.rows), "", "## All quality metrics", ""]
    lines += [f"- {q}" for q in quality_lines(report.rows)]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
