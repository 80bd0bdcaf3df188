"""What every verb shares: quiet library logging, one-line errors for bad input, rich console."""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from collections.abc import Iterator
from typing import Any

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
