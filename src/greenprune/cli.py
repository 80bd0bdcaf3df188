"""The `greenprune` command line: one typer app; each area registers its verbs from `greenprune.commands`."""

from __future__ import annotations

import typer

from greenprune.commands import alpine, demo, measure, models, recipe, structure, tasks, weights

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


# one module per area; each exposes register(app) (in this order: the order of `greenprune --help`)
for _module in (models, measure, demo, recipe, tasks, weights, structure, alpine):
    _module.register(app)


if __name__ == "__main__":  # pragma: no cover
    app()
