"""The `greenprune` command line: one typer app; each area registers its verbs from `greenprune.commands`."""

from __future__ import annotations

import importlib

import typer

app = typer.Typer(
    name="greenprune",
    help="Prune tokens, weights and structure of language models of code, and measure what it buys.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)



@app.callback()
def main() -> None:
    """greenprune: HF models in, plain HF checkpoints out, every claim with a side-by-side measurement."""


# one module per area; each exposes register(app)
COMMAND_MODULES = [
    "greenprune.commands.models",
    "greenprune.commands.measure",
    "greenprune.commands.demo",
    "greenprune.commands.recipe",
    "greenprune.commands.tasks",
    "greenprune.commands.weights",
    "greenprune.commands.structure",
    "greenprune.commands.alpine",
]

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
