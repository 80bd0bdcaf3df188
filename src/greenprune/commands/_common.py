"""What every verb shares: quiet library logging, one-line errors for bad input, rich console."""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from collections.abc import Iterator

import typer
from rich.console import Console

console = Console()
err_console = Console(stderr=True)


def command_line() -> str:
    """The command as the user typed it, recorded beside every result."""
    return shlex.join(["greenprune", *sys.argv[1:]])


def quiet_libraries() -> None:
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with contextlib.suppress(Exception):
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    import logging

    for name in ("codecarbon", "accelerate", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors greenprune raises for bad input into one red line and exit code 2 (no traceback)."""
    from greenprune.errors import GreenpruneError

    try:
        yield
    except (GreenpruneError, FileNotFoundError, ValueError, KeyError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2) from exc
