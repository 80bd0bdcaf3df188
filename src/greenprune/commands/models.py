"""`greenprune models`: the embedded aliases with their sizes."""

from __future__ import annotations

import typer
from rich.table import Table

from greenprune.commands._common import console, quiet_libraries


def models() -> None:
    """List the embedded model aliases (usable offline) with architecture and size."""
    quiet_libraries()
    from greenprune.models import list_models

    table = Table(title="embedded models (also accepted: a local HF folder, a .gguf file, or a hub id)")
    for col in ("alias", "type", "layers", "hidden", "params", "available", "description"):
        table.add_column(col)
    for info in list_models():
        table.add_row(
            info.alias,
            info.model_type or "-",
            str(info.layers or "-"),
            str(info.hidden or "-"),
            f"{info.params / 1e6:.1f}M" if info.params else "-",
            "yes" if info.available else f"no: {info.note}",
            info.description,
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("models")(models)
