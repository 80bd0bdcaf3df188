"""A model spec's configuration without its weights: what preflight checks (layer counts, family) need in a second.

Resolves a spec with `load_model`'s resolver (`hub.resolve_spec`: embedded alias, `.gguf` file, HF folder, hub id)
and fails with the same kind of message, but reads only `config.json` (or the GGUF header), so a recipe or command
can be checked before anything heavy loads.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from greenprune.models.bundled import EMBEDDED, tiny_config
from greenprune.models.families import UnsupportedModelError, family_of
from greenprune.models.hub import ModelLoadError, family_for_load, hub_reachable, resolve_spec


def _auto_config(source: str | Path, name: str, **kwargs: Any) -> Any:
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(source, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{name}: not a Hugging Face model folder ({exc})") from exc


def model_config(spec: str | os.PathLike[str]) -> Any:
    """The transformers config of `spec` (a supported family), or a ModelLoadError saying what was tried."""
    resolved = resolve_spec(spec)
    name = resolved.name
    if resolved.kind == "tiny":
        config = tiny_config(name)
    elif resolved.kind == "folder" and resolved.path is not None:
        extra = {"gguf_file": resolved.gguf_file} if resolved.gguf_file else {}
        config = _auto_config(resolved.path, name, **extra)
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
    family_for_load(config.model_type, name)
    return config


def num_layers(config: Any) -> int:
    """Transformer blocks in a model with this config (each family's table entry says which attribute holds it)."""
    try:
        return family_of(getattr(config, "model_type", None) or "").num_layers(config)
    except UnsupportedModelError as exc:
        raise ModelLoadError(f"{getattr(config, 'model_type', 'this model')}: the config does not say how many "
                             f"layers ({exc})") from exc


__all__ = ["model_config", "num_layers"]


def check_model_for_task(spec: str | os.PathLike[str], task: str) -> None:
    """Refuse a model/task pairing (an encoder asked for an LM task) from the config alone, before data or weights
    are loaded; the same check `load_model` makes."""
    from greenprune.models.hub import head_for

    config = model_config(spec)
    head_for(task, family_of(config.model_type), model_type=config.model_type, name=str(spec))
