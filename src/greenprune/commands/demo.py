"""`greenprune demo`: what `make demo` runs — the shipped recipes/demo.yaml on the embedded defaults.

Encoder path: MiniLM fine-tuned on the embedded defect task → ALPINE → ALPINE + FFN pruning + int8.
Generative path: SmolLM2-135M → vocabulary + layer + FFN pruning, judged by perplexity and a HumanEval subset.
Ends with the comparison table and the HTML report's path.
"""

from __future__ import annotations

from pathlib import Path

import typer

from greenprune.commands._common import command_line, console, quiet_libraries, user_errors


def demo_recipe() -> Path:
    """recipes/demo.yaml of the checkout (the working directory's, else the one beside the installed sources)."""
    from greenprune.errors import GreenpruneError

    candidates = [Path.cwd() / "recipes" / "demo.yaml", Path(__file__).resolve().parents[3] / "recipes" / "demo.yaml"]
    for path in candidates:
        if path.is_file():
            return path
    raise GreenpruneError(f"recipes/demo.yaml not found (looked in: {', '.join(str(c) for c in candidates)})")


def demo(
    runs_dir: Path = typer.Option(Path("runs"), "--runs-dir", help="where the run folder is created"),
    resume: Path = typer.Option(None, "--resume", help="continue an interrupted demo run folder"),
) -> None:
    """Run recipes/demo.yaml (~15 min on 2 CPU cores): print the comparison table and the HTML report path."""
    quiet_libraries()
    from greenprune.commands.recipe import print_report
    from greenprune.recipe import resume_run, run_recipe
    from greenprune.report import build_report

    with user_errors():
        if resume is not None:
            run_dir = resume_run(resume, command=command_line(), report=False)
        else:
            recipe = demo_recipe()
            console.print(f"running [bold]{recipe}[/] into {runs_dir}/ (resume an interrupted run with "
                          f"`greenprune demo --resume RUN_DIR`)")
            run_dir = run_recipe(recipe, root=runs_dir, command=command_line(), report=False)
        report = build_report([run_dir], run_dir / "report")
    print_report(report, f"demo ({run_dir.name}): every stack vs its baseline (candidate / baseline, same process)")


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
