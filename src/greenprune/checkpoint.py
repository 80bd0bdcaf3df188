"""The one way greenprune writes a model folder, and the check every folder load starts with.

Outputs never destroy: `write_checkpoint` refuses the current folder, its parents, `/` and the home folder, refuses
a non-empty folder greenprune did not write, and replaces an earlier greenprune output only with `overwrite=True`
(`--overwrite` on the command line). It writes into a temporary sibling folder (`.NAME.XXXX.tmp`) that holds an
in-progress marker while files arrive, fsyncs, writes the completion marker `greenprune-checkpoint.json` (kind,
files and sizes, version, time) and only then renames the folder into place, so a reader sees the old output or the
whole new one. A sibling left by a killed save is removed on the next save to the same target.

`check_checkpoint_folder` refuses on load a folder whose save did not finish, or that mixes dense
(`model.safetensors`) and compact (`model.sparse.safetensors`) weights. Plain HF folders written by other tools
carry no marker and load as before.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import logging
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator, Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from greenprune.errors import GreenpruneError

log = logging.getLogger(__name__)

MARKER = "greenprune-checkpoint.json"
IN_PROGRESS = ".greenprune-in-progress"
DENSE_WEIGHTS = ("model.safetensors", "model.safetensors.index.json")
COMPACT_WEIGHTS = "model.sparse.safetensors"
# files only greenprune writes: their presence without a completion marker means a save that did not finish
GREENPRUNE_FILES = (COMPACT_WEIGHTS, "greenprune_record.json", "sparsity_report.json", "structure.json")
KINDS = frozenset({"dense", "compact", "quantized", "structure", "recover", "finetune", "densified", "recipe-step",
                   "cache"})


class OutputError(GreenpruneError, ValueError):
    """An output path greenprune refuses to write (it would delete or mix in data that is not its own)."""


class CheckpointError(GreenpruneError, ValueError):
    """A model folder greenprune refuses to load: an unfinished save, or weights in two formats."""


# ---------------------------------------------------------------- where a save may go


def _marker(folder: Path) -> dict[str, Any] | None:
    path = folder / MARKER
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def check_output_target(path: str | os.PathLike[str], *, overwrite: bool = False, option: str = "--out") -> Path:
    """The resolved `path` if a save may go there; `OutputError` (naming the path and the way out) if not.

    Commands call this before hours of work, and `write_checkpoint` again right before it commits.
    """
    given = Path(path).expanduser()
    if given.is_symlink():
        raise OutputError(f"{option} {given}: is a symbolic link; give the folder it points to, or a new path")
    target = given.resolve()
    cwd, home = Path.cwd().resolve(), Path.home().resolve()
    if target == cwd:
        raise OutputError(f"{option} {given}: is the current folder; name a new subfolder, e.g. {option} ./out")
    if target in cwd.parents:
        raise OutputError(f"{option} {given}: {target} is a parent of the current folder; name a new folder")
    if target == Path(target.anchor) or target == home or target in home.parents:
        raise OutputError(f"{option} {given}: refusing to write a model over {target}; name a new folder")
    if target.exists() and not target.is_dir():
        raise OutputError(f"{option} {given}: is a file, not a folder; remove it or choose another path")
    if target.is_dir() and any(target.iterdir()):
        info = _marker(target)
        if info is None:
            some = sorted(p.name for p in target.iterdir())
            shown = ", ".join(some[:4]) + (f" and {len(some) - 4} more" if len(some) > 4 else "")
            raise OutputError(f"{option} {given}: the folder holds files greenprune did not write ({shown}); "
                              "choose a new or empty folder (--overwrite only replaces a previous greenprune output)")
        if not overwrite:
            what = f"a {info.get('kind', 'greenprune')} checkpoint" + (
                f" written {info['created']}" if info.get("created") else "")
            raise OutputError(f"{option} {given}: already holds {what}; pass --overwrite to replace it")
    return target


# ---------------------------------------------------------------- leftovers of killed saves


def _pid_alive(info: Mapping[str, Any]) -> bool:
    if info.get("host") != socket.gethostname():
        return False
    try:
        os.kill(int(info.get("pid", -1)), 0)
    except (OSError, ValueError, OverflowError):
        return False
    return True


def sweep_leftovers(target: str | os.PathLike[str]) -> list[Path]:
    """Remove `.NAME.*.tmp` siblings of `target` a killed save left; returns them. Others are reported, not touched.

    Only a sibling carrying greenprune's in-progress marker from a process that is gone is removed; one holding a
    complete checkpoint (a replace interrupted between its two renames) is logged so nothing finished is lost.
    """
    target = Path(target)
    removed: list[Path] = []
    if not target.parent.is_dir():
        return removed
    prefix = f".{target.name}."
    for sib in target.parent.iterdir():
        if not (sib.name.startswith(prefix) and sib.name.endswith(".tmp") and sib.is_dir() and not sib.is_symlink()):
            continue
        flag = sib / IN_PROGRESS
        if flag.is_file():
            try:
                info = json.loads(flag.read_text(encoding="utf-8"))
            except (OSError, ValueError):
                info = {}
            if isinstance(info, dict) and _pid_alive(info):
                log.warning("%s: another greenprune save (pid %s) is writing here; left alone", sib, info.get("pid"))
                continue
            shutil.rmtree(sib, ignore_errors=True)
            removed.append(sib)
            log.warning("%s: removed the unfinished save a killed run left", sib)
        elif (sib / MARKER).is_file():
            log.warning("%s: a complete greenprune checkpoint left by an interrupted replace of %s; "
                        "rename or delete it yourself", sib, target)
        else:
            log.warning("%s: looks like a temporary folder but has no greenprune marker; left alone", sib)
    return removed


# ---------------------------------------------------------------- the writer


def _umask_dir_mode() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return 0o777 & ~mask


def _fsync(path: Path) -> None:
    flags = os.O_RDONLY | (os.O_DIRECTORY if path.is_dir() else 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):  # some filesystems cannot fsync a directory
            os.fsync(fd)
    finally:
        os.close(fd)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths atomically (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        fn = ctypes.CDLL(None, use_errno=True).renameat2
    except (AttributeError, OSError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    return fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


def _files(folder: Path) -> dict[str, int]:
    return {p.relative_to(folder).as_posix(): p.stat().st_size
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != IN_PROGRESS}


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("greenprune")
    except Exception:  # not installed as a distribution (plain PYTHONPATH)
        return "unknown"


def _commit(tmp: Path, target: Path) -> None:
    """Rename `tmp` onto `target`, replacing an earlier output with no moment where neither exists if we can."""
    if target.is_dir() and any(target.iterdir()):
        if _exchange(tmp, target):
            shutil.rmtree(tmp, ignore_errors=True)  # now holds the old output
            return
        aside = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".old.tmp"))
        os.rmdir(aside)
        os.rename(target, aside)
        os.rename(tmp, target)
        shutil.rmtree(aside, ignore_errors=True)
        return
    os.replace(tmp, target)  # also onto an empty folder


@contextlib.contextmanager
def write_checkpoint(
    out: str | os.PathLike[str], kind: str, *, overwrite: bool = False, option: str = "--out",
    extra: Mapping[str, Any] | None = None,
) -> Iterator[Path]:
    """Yield a temporary folder to write a checkpoint into; on success it becomes `out`, on failure it vanishes.

    `kind` says what wrote it (one of `KINDS`) and lands in the completion marker with `extra`.
    """
    if kind not in KINDS:
        raise ValueError(f"checkpoint kind {kind!r}: expected one of {', '.join(sorted(KINDS))}")
    target = check_output_target(out, overwrite=overwrite, option=option)
    target.parent.mkdir(parents=True, exist_ok=True)
    sweep_leftovers(target)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp"))
    try:
        os.chmod(tmp, _umask_dir_mode())  # mkdtemp's 0700 would hide the model from other users
        started = datetime.now(timezone.utc).isoformat(timespec="seconds")
        (tmp / IN_PROGRESS).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(), "kind": kind,
                                                   "target": str(target), "started": started}), encoding="utf-8")
        yield tmp
        files = _files(tmp)
        files.pop(MARKER, None)
        dense = [n for n in DENSE_WEIGHTS if n in files]
        if dense and COMPACT_WEIGHTS in files:
            raise CheckpointError(f"{target}: a save wrote both {dense[0]} and {COMPACT_WEIGHTS}; refusing to mix")
        for name in files:
            _fsync(tmp / name)
        marker = {"format": "greenprune-checkpoint", "version": 1, "kind": kind,
                  "weights": "compact" if COMPACT_WEIGHTS in files else ("dense" if dense else "none"),
                  "files": files, "greenprune": _version(),
                  "created": datetime.now(timezone.utc).isoformat(timespec="seconds"), **(extra or {})}
        with open(tmp / MARKER, "w", encoding="utf-8") as fh:
            fh.write(json.dumps(marker, indent=2) + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        (tmp / IN_PROGRESS).unlink()
        _fsync(tmp)
        check_output_target(target, overwrite=overwrite, option=option)  # nothing appeared there meanwhile
        _commit(tmp, target)
        _fsync(target.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def save_hf(
    model: Any, tokenizer: Any | None, out: str | os.PathLike[str], *, kind: str = "dense", overwrite: bool = False,
    files: Mapping[str, str] | None = None, option: str = "--out", extra: Mapping[str, Any] | None = None,
) -> Path:
    """A plain HF folder (safetensors weights, config, tokenizer, extra text `files`) through `write_checkpoint`."""
    with write_checkpoint(out, kind, overwrite=overwrite, option=option, extra=extra) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        if tokenizer is not None:
            tokenizer.save_pretrained(tmp)
        for name, text in (files or {}).items():
            (tmp / name).write_text(text, encoding="utf-8")
    return Path(out)


# ---------------------------------------------------------------- result records


def check_record_target(path: str | os.PathLike[str], *, overwrite: bool = False, option: str = "--json") -> Path:
    """`path` if a record file may be written there: never over a folder, over a file only with `overwrite`."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise OutputError(f"{option} {path}: is a folder; give a file name such as {path / 'record.json'}")
    if path.exists() and not overwrite:
        raise OutputError(f"{option} {path}: already exists; pass --overwrite to replace it, or choose another file")
    return path


def write_text_output(
    path: str | os.PathLike[str], text: str, *, overwrite: bool = False, fresh: bool = False, option: str = "--json",
) -> Path:
    """Write a record file atomically without silently replacing an earlier one; returns where it went.

    `overwrite` replaces an existing file; `fresh` (for default names) picks `NAME-2.json`, `NAME-3.json`, ... instead.
    """
    from greenprune._utils import atomic_write_text

    path = check_record_target(path, overwrite=overwrite or fresh, option=option)
    if overwrite:
        return atomic_write_text(path, text)
    for n in range(1, 10_000):
        candidate = path if n == 1 else path.with_name(f"{path.stem}-{n}{path.suffix}")
        try:
            return atomic_write_text(candidate, text, overwrite=False)
        except FileExistsError:
            if not fresh:
                raise OutputError(f"{option} {path}: already exists; pass --overwrite to replace it") from None
    raise OutputError(f"{path}: 10,000 records of that name already exist; choose a --json path")


# ---------------------------------------------------------------- the load check


def check_checkpoint_folder(path: str | os.PathLike[str]) -> None:
    """Refuse (`CheckpointError`, naming the folder and the fault) a folder that is not a whole, single checkpoint.

    Unfinished: it carries the in-progress marker, or greenprune-only files without the completion marker, or the
    marker lists a weights file that is missing or has another size. Mixed: dense and compact weights side by side.
    """
    folder = Path(path)
    if not folder.is_dir():
        return
    if (folder / IN_PROGRESS).exists():
        raise CheckpointError(f"{folder}: an unfinished greenprune save ({IN_PROGRESS} is present: the process "
                              "writing it was killed or is still running); run the command that writes it again")
    dense = [n for n in DENSE_WEIGHTS if (folder / n).is_file()]
    if dense and (folder / COMPACT_WEIGHTS).is_file():
        raise CheckpointError(f"{folder}: holds both dense ({dense[0]}) and compact ({COMPACT_WEIGHTS}) weights, so "
                              "which one is the model is ambiguous; keep one (re-save into a new folder)")
    info = _marker(folder)
    if info is None:
        ours = [n for n in GREENPRUNE_FILES if (folder / n).exists()]
        if ours:
            raise CheckpointError(f"{folder}: holds greenprune output ({', '.join(ours)}) but no {MARKER} completion "
                                  "marker, so its save did not finish; run the command that writes it again")
        return
    listed = info.get("files")
    if not isinstance(listed, dict):
        raise CheckpointError(f"{folder / MARKER}: unreadable completion marker (no file list); re-save the model")
    for name, size in listed.items():
        if not name.endswith(".safetensors") and name not in ("config.json", "model.safetensors.index.json"):
            continue  # cards, tokenizer files and reports may be edited by hand
        file = folder / name
        if not file.is_file():
            raise CheckpointError(f"{folder}: {name} is missing, though the save that wrote the folder made it")
        if name.endswith(".safetensors") and file.stat().st_size != size:
            raise CheckpointError(f"{file}: {file.stat().st_size} bytes, but the save wrote {size}; "
                                  "the file was changed or cut short after saving")


__all__ = ["COMPACT_WEIGHTS", "IN_PROGRESS", "KINDS", "MARKER", "CheckpointError", "OutputError",
           "check_checkpoint_folder", "check_output_target", "check_record_target", "save_hf", "sweep_leftovers",
           "write_checkpoint", "write_text_output"]
