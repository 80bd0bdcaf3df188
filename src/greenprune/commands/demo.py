"""`greenprune demo`: what `make demo` runs — the main job on the embedded defaults."""

from __future__ import annotations

import typer

from greenprune.commands._common import command_line, console, quiet_libraries, user_errors


def demo() -> None:
    """Measure both embedded models (minilm, smollm2-135m) on stdlib code and print the cost table."""
    quiet_libraries()
    from greenprune.commands.measure import measure_models
    from greenprune.measure.display import cost_table

    with user_errors():
        records = measure_models(
            ["minilm", "smollm2-135m"], task=None, batch_size=8, seq_len=128, batches=2, passes=2,
            country="USA", energy=True,
        )
    console.print(cost_table(records, title=f"cost per sample — {command_line()}"))


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
