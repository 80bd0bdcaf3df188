"""`greenprune run RECIPE.yaml` / `greenprune run --resume DIR` and `greenprune report RUN_DIR...`."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from greenprune.commands._common import command_line, console, quiet_libraries, user_errors

if TYPE_CHECKING:
    from greenprune.report import Report

PIPED_WIDTH = 200  # characters per line when stdout is not a terminal


def print_report(report_obj: Report, title: str) -> None:
    from rich.console import Console

    from greenprune.report import rich_table

    # piped output (make demo > log) gets a readable width instead of rich's 80-column default
    out = console if console.is_terminal else Console(width=PIPED_WIDTH)
    out.print(rich_table(report_obj.rows, title=title))
    console.print(f"report: [bold]{report_obj.html}[/] (markdown: {report_obj.markdown})")


def run(
    recipe: Path = typer.Argument(None, help="recipe YAML file (omit with --resume)"),
    resume: Path = typer.Option(None, "--resume", help="continue this run folder after its last finished step"),
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="where new run folders are created"),
    executor: str = typer.Option("sequential", "--executor", help="sequential | ray (one task per grid point)"),
    address: str = typer.Option(None, "--address", help="Ray address (default: start or join a local instance)"),
) -> None:
    """Run a recipe into runs/<name>-<time>/ (records, checkpoints, emissions, report)."""
    quiet_libraries()
    from greenprune.errors import GreenpruneError
    from greenprune.recipe import make_executor, resume_run, run_recipe
    from greenprune.report import build_report

    with user_errors():
        if (recipe is None) == (resume is None):
            raise GreenpruneError("give either a RECIPE file or --resume RUN_DIR (exactly one)")
        chosen = make_executor(executor, address)
        if resume is not None:
            run_dir = resume_run(resume, executor=chosen, command=command_line(), report=False)
        else:
            run_dir = run_recipe(recipe, root=runs_dir, executor=chosen, command=command_line(), report=False)
        console.print(f"run folder: [bold]{run_dir}[/]")
        report_obj = build_report([run_dir], run_dir / "report")
    print_report(report_obj, f"{run_dir.name}: every stack vs its baseline (candidate / baseline)")


def report(
    run_dirs: list[Path] = typer.Argument(..., help="one or more run folders"),
    out: Path = typer.Option(None, "--out", help="report folder (default: RUN_DIR/report, or report-merged-<time>)"),
) -> None:
    """Rebuild a report from run records, or merge several runs into one report."""
    quiet_libraries()
    from greenprune.report import build_report

    with user_errors():
        if out is None:
            stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
            out = run_dirs[0] / "report" if len(run_dirs) == 1 else Path(f"report-merged-{stamp}")
        report_obj = build_report(list(run_dirs), out)
    print_report(report_obj, f"{len(run_dirs)} run(s): every stack vs its baseline (candidate / baseline)")


def register(app: typer.Typer) -> None:
    app.command("run")(run)
    app.command("report")(report)
