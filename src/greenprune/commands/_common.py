"""What every verb shares: quiet library logging, one-line errors for bad input, rich console."""

from __future__ import annotations

import contextlib
import shlex
import sys
from collections.abc import Iterator
from typing import Any

import typer
from rich.console import Console

from greenprune._utils import quiet_libraries

__all__ = ["check_lengths", "command_line", "console", "err_console", "quiet_libraries", "user_errors"]

console = Console()
err_console = Console(stderr=True)


def command_line() -> str:
    """The command as the user typed it, recorded beside every result."""
    return shlex.join(["greenprune", *sys.argv[1:]])


@contextlib.contextmanager
def user_errors() -> Iterator[None]:
    """Turn the errors greenprune raises for bad input into one red line and exit code 2 (no traceback)."""
    from greenprune.errors import GreenpruneError

    try:
        yield
    except (GreenpruneError, FileNotFoundError, ValueError, KeyError) as exc:
        err_console.print(f"[bold red]error:[/] {exc}")
        raise typer.Exit(code=2) from exc


def check_lengths(loaded: Any, **lengths: int | None) -> None:
    """Refuse sequence-length options (given as seq_len=..., max_length=...) longer than the loaded model's positions.

    Called right after a verb loads its model, so `--max-length 600` on a 512-position BERT is one line naming the
    option, the model and its limit instead of a tensor-size traceback (or, on a rotary decoder, a quietly worse
    score on positions it was never trained on).
    """
    from greenprune.models.positions import check_sequence_length

    for key, value in lengths.items():
        if value is not None:
            check_sequence_length(loaded.model, value, option="--" + key.replace("_", "-"), name=loaded.name)
