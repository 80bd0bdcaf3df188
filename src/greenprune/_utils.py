"""Small helpers shared across greenprune: cache folder, text/JSONL reading, atomic writes, progress bars, quiet
logging."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def cache_dir(*parts: str) -> Path:
    """greenprune's on-disk cache (`$GREENPRUNE_CACHE`, default `~/.cache/greenprune`), created on demand."""
    root = Path(os.environ.get("GREENPRUNE_CACHE", Path.home() / ".cache" / "greenprune")).expanduser()
    path = root.joinpath(*parts)
    path.mkdir(parents=True, exist_ok=True)
    return path


def _opener(path: Path) -> Any:
    import gzip

    return gzip.open if path.suffix == ".gz" else open


def _undecodable(path: Path) -> str:
    """Where a file stops being UTF-8: `path:line: ... byte offset N`, found by re-reading it line by line in bytes.

    Only runs once decoding has failed, so the ordinary read stays a plain text-mode read.
    """
    offset = 0
    with _opener(path)(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                where = offset + exc.start
                of = " of the decompressed data" if path.suffix == ".gz" else ""
                return (f"{path}:{lineno}: not valid UTF-8: byte 0x{raw[exc.start]:02x} at byte offset {where}{of} "
                        f"(column {exc.start + 1} of the line); re-encode the file as UTF-8 "
                        "(e.g. iconv -f latin1 -t utf-8)")
            offset += len(raw)
    return f"{path}: not valid UTF-8"  # pragma: no cover - a decoder error always has a line


def read_text_lines(
    path: str | os.PathLike[str], error: type[Exception] = ValueError, newline: str | None = None
) -> Iterator[str]:
    """The lines of a UTF-8 text file (gzip if it ends in .gz; a leading BOM is dropped).

    Bytes that are not UTF-8, or a broken gzip stream, raise `error` naming the file, the line and the byte
    offset instead of the codec's bare "can't decode byte 0xff in position 50" (a position inside a read buffer).
    """
    import gzip
    import zlib

    path = Path(path)
    if not path.is_file():
        raise error(f"expected the file {path}, which does not exist")
    try:
        with _opener(path)(path, "rt", encoding="utf-8-sig", newline=newline) as fh:
            yield from fh
    except UnicodeDecodeError as exc:
        raise error(_undecodable(path)) from exc
    except (gzip.BadGzipFile, EOFError, zlib.error) as exc:
        raise error(f"{path}: not a readable gzip file ({exc})") from exc


def read_jsonl(
    path: str | os.PathLike[str], error: type[Exception] = ValueError
) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, object) per non-blank line of a JSONL file (gzip if it ends in .gz).

    Bad JSON, bytes that are not UTF-8 or a row that is not an object raise `error` naming the file and line, so
    every area reports malformed user data the same way with its own error type.
    """
    import json

    path = Path(path)
    for lineno, line in enumerate(read_text_lines(path, error), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise error(f"{path}:{lineno}: not valid JSON ({exc.msg} at column {exc.colno})") from exc
        if not isinstance(row, dict):
            raise error(f"{path}:{lineno}: expected a JSON object, got {type(row).__name__}")
        yield lineno, row


CODE_FIELDS = ("code", "content", "text", "func")


def read_code_jsonl(path: str | os.PathLike[str], error: type[Exception] = ValueError) -> Iterator[tuple[int, str]]:
    """(line number, code) per row of a code corpus in JSONL: the first string among `CODE_FIELDS`."""
    for lineno, row in read_jsonl(path, error):
        text = next((row[k] for k in CODE_FIELDS if isinstance(row.get(k), str)), None)
        if text is None:
            names = ", ".join(repr(k) for k in CODE_FIELDS[:-1]) + f" or {CODE_FIELDS[-1]!r}"
            raise error(f"{path}:{lineno}: no {names} string field")
        yield lineno, text


def _umask_mode(base: int = 0o666) -> int:
    """The mode an ordinary open() would give a new file (mkstemp's 0600 would hide reports from other users)."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def atomic_write_text(
    path: str | os.PathLike[str], text: str, encoding: str = "utf-8", *, overwrite: bool = True
) -> Path:
    """Write a file so readers see either the old content or the new, never half of it.

    With `overwrite=False` an existing file is never replaced (`FileExistsError`), atomically: the finished
    temporary file is hard-linked into place, which fails if the name is taken.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding=encoding) as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, _umask_mode())
        if overwrite:
            os.replace(tmp, path)
        else:
            os.link(tmp, path)
            os.unlink(tmp)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


@contextlib.contextmanager
def scoring_mode(model: Any) -> Iterator[None]:
    """Eval mode (no dropout noise in importance scores) and no autograd, restoring the training flag after."""
    import torch

    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode():
            yield
    finally:
        model.train(was_training)


def progress(iterable: Iterable[T], desc: str, total: int | None = None, disable: bool | None = None) -> Iterable[T]:
    """A tqdm progress bar on stderr; silent when `GREENPRUNE_NO_PROGRESS` is set."""
    from tqdm.auto import tqdm

    if disable is None:
        disable = bool(os.environ.get("GREENPRUNE_NO_PROGRESS"))
    return tqdm(iterable, desc=desc, total=total, disable=disable, leave=False, dynamic_ncols=True)


def progress_bar(desc: str, total: int, disable: bool | None = None) -> Any:
    """A tqdm bar updated by hand (`bar.update(n)`, a context manager); silent like `progress`."""
    from tqdm.auto import tqdm

    if disable is None:
        disable = bool(os.environ.get("GREENPRUNE_NO_PROGRESS"))
    return tqdm(desc=desc, total=total, disable=disable, leave=False, dynamic_ncols=True)


def quiet_libraries() -> None:
    """Silence the libraries' own logging and progress bars, so a verb's output (or a Ray worker's) stays readable.

    Lives here, not in the CLI, because non-CLI entry points (the Ray executor's workers) need it too.
    """
    import logging

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    with contextlib.suppress(Exception):
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    for name in ("codecarbon", "accelerate", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)
