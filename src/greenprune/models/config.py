"""A model spec's configuration without its weights: what preflight checks (layer counts, family) need in a second.

Resolves a spec the way `load_model` does (embedded alias, `.gguf` file, HF folder, hub id) and fails with the same
kind of message, but reads only `config.json` (or the GGUF header), so a recipe or command can be checked before
anything heavy loads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from greenprune.models.embedded import EMBEDDED, tiny_config
from greenprune.models.families import UnsupportedModelError, family_of
from greenprune.models.hub import ModelLoadError, hub_reachable


def _auto_config(source: str | Path, name: str, **kwargs: Any) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{name}: not a Hugging Face model folder ({exc})") from exc


def model_config(spec: str | os.PathLike[str]) -> Any:
    """The transformers config of `spec` (a supported family), or a ModelLoadError saying what was tried."""
    name = str(spec)
    if name in EMBEDDED:
        entry = EMBEDDED[name]
        config = tiny_config(name) if entry.resolve is None else _auto_config(entry.resolve(), name)
    else:
        path = Path(name).expanduser()
        if path.is_file() and path.suffix == ".gguf":
            config = _auto_config(path.parent, name, gguf_file=path.name)
        elif path.is_dir():
            ggufs = sorted(path.glob("*.gguf"))
            if (path / "config.json").is_file():
                config = _auto_config(path, name)
            elif len(ggufs) == 1:
                config = _auto_config(path, name, gguf_file=ggufs[0].name)
            else:
                raise ModelLoadError(f"{path}: a model folder needs config.json (HF layout) or exactly one .gguf file")
        elif name.startswith((".", "/", "~")) or os.sep + os.sep in name:
            raise ModelLoadError(f"{name}: no such folder or file")
        else:
            online = hub_reachable()
            try:
                config = _auto_config(name, name, local_files_only=not online)
            except ModelLoadError as exc:
                where = "the Hugging Face Hub" if online else "the local Hugging Face cache (offline)"
                raise ModelLoadError(
                    f"could not find {name!r}: it is not an embedded alias ({', '.join(EMBEDDED)}), not a local "
                    f"folder, and {where} does not have it"
                ) from exc
    try:
        family_of(config.model_type)
    except UnsupportedModelError as exc:
        raise ModelLoadError(f"{name}: {exc}") from exc
    return config


def num_layers(config: Any) -> int:
    """Transformer blocks in a model with this config (the names differ between families)."""
    for attr in ("num_hidden_layers", "n_layer", "num_layers"):
        value = getattr(config, attr, None)
        if isinstance(value, int):
            return value
    raise ModelLoadError(f"{getattr(config, 'model_type', 'this model')}: the config does not say how many layers")


__all__ = ["model_config", "num_layers"]


def check_model_for_task(spec: str | os.PathLike[str], task: str) -> None:
    """Refuse a model/task pairing (an encoder asked for an LM task) from the config alone, before data or weights
    are loaded; the same check `load_model` makes."""
    from greenprune.models.hub import head_for

    config = model_config(spec)
    head_for(task, family_of(config.model_type), model_type=config.model_type, name=str(spec))
