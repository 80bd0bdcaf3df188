"""One entry point from a model spec to a (model, tokenizer) pair.

A spec is an embedded alias (`minilm`, `smollm2-135m`, `tiny-*`), a local folder in HF layout (or a `.gguf`
file), or a Hugging Face hub id. Hub ids keep working for users with network; offline, they fail fast with one
message saying what was tried and how to pass a local folder instead.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch
from torch import nn

from greenprune.checkpoint import check_checkpoint_folder
from greenprune.models.bundled import EMBEDDED, strip_gguf_quantization, tiny_config, tiny_tokenizer_dir
from greenprune.models.checks import (
    ModelLoadError,
    check_gguf,
    check_tokenizer_files,
    check_tokenizer_vocab,
    check_weights_folder,
    convert_hint,
)
from greenprune.models.families import FAMILIES, Family, UnsupportedModelError, family_of, supported_model_types

HEADS = ("classification", "causal-lm", "base")
# The head each name `load_model(task=...)` accepts needs: every greenprune task (registered by greenprune.tasks from
# its `Task.head`, where it is declared once), then the bare heads. Tasks come first: messages list them in this order.
TASK_HEADS: dict[str, str] = {head: head for head in HEADS}


def register_task_head(task: str, head: str) -> None:
    """Let `load_model(task=task)` build the `head` a task needs (greenprune.tasks registers its tasks)."""
    if head not in HEADS:
        raise ValueError(f"task {task!r}: unknown model head {head!r}; expected one of: {', '.join(HEADS)}")
    TASK_HEADS[task] = head
    for bare in HEADS:  # keep the bare heads after the tasks
        TASK_HEADS[bare] = TASK_HEADS.pop(bare)


@dataclass(frozen=True)
class ResolvedSpec:
    """What a model spec names, decided from the spec and the file system alone (nothing is loaded).

    `kind`: "tiny" (an embedded random model built from its config), "folder" (HF layout, or one GGUF file in it)
    or "hub" (a hub id). `source` says where an embedded packaged model came from, for records.
    """

    kind: str
    name: str
    path: Path | None = None
    gguf_file: str | None = None
    source: str | None = None


def resolve_spec(spec: str | os.PathLike[str], *, check_folder: Callable[[Path], None] | None = None
                 ) -> ResolvedSpec:
    """Resolve `spec` the one way `load_model` and `model_config` both do: embedded alias, `.gguf` file, folder
    (config.json, or exactly one .gguf file), hub id. `check_folder` vets a folder before it is looked into."""
    name = str(spec)
    if name in EMBEDDED:
        entry = EMBEDDED[name]
        if entry.resolve is None:
            return ResolvedSpec("tiny", name)
        return ResolvedSpec("folder", name, entry.resolve(), source=f"embedded:{name} ({entry.package})")
    path = Path(name).expanduser()
    if path.is_file() and path.suffix == ".gguf":
        return ResolvedSpec("folder", name, path.parent, gguf_file=path.name)
    if path.is_dir():
        if check_folder is not None:
            check_folder(path)
        if (path / "config.json").is_file():
            return ResolvedSpec("folder", name, path)
        ggufs = sorted(path.glob("*.gguf"))
        if len(ggufs) == 1:
            return ResolvedSpec("folder", name, path, gguf_file=ggufs[0].name)
        raise ModelLoadError(f"{path}: a model folder needs config.json (HF layout) or exactly one .gguf file")
    if name.startswith((".", "/", "~")) or os.sep + os.sep in name:
        raise ModelLoadError(f"{name}: no such folder or file")
    return ResolvedSpec("hub", name)


def family_for_load(model_type: str, name: str) -> Family:
    """The family of `model_type`, or a ModelLoadError naming the spec `name`."""
    try:
        return family_of(model_type)
    except UnsupportedModelError as exc:
        raise ModelLoadError(f"{name}: {exc}") from exc


@dataclass
class LoadedModel:
    """A model, its tokenizer, and where they came from."""

    model: nn.Module
    tokenizer: Any
    name: str
    family: Family
    head: str
    source: str
    extra: dict[str, Any] = field(default_factory=dict)

    def __iter__(self):
        yield self.model
        yield self.tokenizer


def head_for(task: str | None, family: Family, *, model_type: str | None = None, name: str | None = None) -> str:
    """The head `task` needs; an encoder asked for an LM task is refused (its LM head would be random weights)."""
    if task is None:
        return "classification" if family.kind == "encoder" else "causal-lm"
    if task not in TASK_HEADS:
        raise ValueError(f"unknown task {task!r}; expected one of: {', '.join(sorted(TASK_HEADS))}")
    head = TASK_HEADS[task]
    if head == "causal-lm" and family.kind != "decoder":
        works = ", ".join(t for t, h in TASK_HEADS.items() if h != "causal-lm")
        decoders = ", ".join(t for f in FAMILIES if f.kind == "decoder" for t in f.model_types)
        kind = f"model type {model_type or family.name!r}"
        who = f"{name} ({kind})" if name else kind
        raise ModelLoadError(
            f"{who} is an {family.kind}: task {task!r} needs a decoder LM that predicts the next token. "
            f"An {family.kind} works with: {works}. For {task!r} use a decoder ({decoders}), e.g. smollm2-135m"
        )
    return head


def _auto_class(head: str):
    from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

    return {
        "classification": AutoModelForSequenceClassification,
        "causal-lm": AutoModelForCausalLM,
        "base": AutoModel,
    }[head]


def _prepare_tokenizer(tokenizer: Any, model: nn.Module) -> Any:
    """Decoders often ship without a pad token; batching needs one (EOS is the usual stand-in)."""
    if getattr(tokenizer, "pad_token", None) is None and getattr(tokenizer, "eos_token", None) is not None:
        tokenizer.pad_token = tokenizer.eos_token
    config = getattr(model, "config", None)
    if config is not None and getattr(config, "pad_token_id", None) is None and tokenizer.pad_token_id is not None:
        config.pad_token_id = tokenizer.pad_token_id
    return tokenizer


def _load_kwargs(head: str, num_labels: int, dtype: torch.dtype | None, attn: str | None) -> dict[str, Any]:
    kwargs: dict[str, Any] = {}
    if head == "classification":
        kwargs["num_labels"] = num_labels
    if dtype is not None:
        kwargs["dtype"] = dtype
    if attn is not None:
        kwargs["attn_implementation"] = attn
    return kwargs


def _finish(model: nn.Module, tokenizer: Any, name: str, head: str, source: str) -> LoadedModel:
    model.eval()
    return LoadedModel(model, _prepare_tokenizer(tokenizer, model), name, family_of(model), head, source)


def _load_tiny(alias: str, task: str | None, num_labels: int, dtype: torch.dtype | None, attn: str | None):
    from transformers import AutoTokenizer

    config = tiny_config(alias)
    family = family_of(config.model_type)
    head = head_for(task, family, model_type=config.model_type, name=alias)
    if head == "classification":
        config.num_labels = num_labels
    if attn is not None:
        config._attn_implementation = attn
    generator_state = torch.random.get_rng_state()
    try:
        torch.manual_seed(0)  # the same tiny model in every process
        model = _auto_class(head).from_config(config)
    finally:
        torch.random.set_rng_state(generator_state)
    if dtype is not None:
        model = model.to(dtype)
    tokenizer = AutoTokenizer.from_pretrained(tiny_tokenizer_dir(alias))
    return _finish(model, tokenizer, alias, head, f"embedded:{alias} (random, seed 0)")


def _load_folder(
    path: Path, name: str, task: str | None, num_labels: int, dtype: torch.dtype | None, attn: str | None,
    gguf_file: str | None = None, source: str | None = None,
) -> LoadedModel:
    from transformers import AutoConfig

    extra = {"gguf_file": gguf_file} if gguf_file else {}
    if gguf_file:
        check_gguf(path / gguf_file)  # before AutoConfig, which parses the GGUF and trips over junk
    try:
        config = AutoConfig.from_pretrained(path, **extra)
    except (OSError, ValueError) as exc:
        what = f"{path / gguf_file}: not a GGUF model" if gguf_file else f"{path}: not a Hugging Face model folder"
        raise ModelLoadError(f"{what} ({exc})") from exc
    family = family_for_load(config.model_type, name)
    head = head_for(task, family, model_type=config.model_type, name=name)
    if not gguf_file:
        check_weights_folder(path)
        check_tokenizer_files(path)
    weights = path / gguf_file if gguf_file else path
    model = _from_pretrained(head, path, weights, **extra, **_load_kwargs(head, num_labels, dtype, attn))
    if gguf_file:
        strip_gguf_quantization(model)
    tokenizer = _tokenizer(path, weights, **extra)
    check_tokenizer_vocab(tokenizer, model, weights)
    return _finish(model, tokenizer, name, head, source or str(path))


def _from_pretrained(head: str, spec: str | Path, shown: str | Path, **kwargs: Any) -> nn.Module:
    """`from_pretrained` of the head's auto class: safetensors only (no pickle fallback), errors naming `shown`."""
    from safetensors import SafetensorError

    if "gguf_file" not in kwargs:
        kwargs["use_safetensors"] = True
    try:
        return _auto_class(head).from_pretrained(spec, **kwargs)
    except (OSError, ValueError, RuntimeError, SafetensorError) as exc:
        # a hub repo with only pickle weights: transformers says it has no safetensors file
        hint = f"; {convert_hint(spec)}" if isinstance(exc, OSError) and "safetensors" in str(exc) else ""
        raise ModelLoadError(f"{shown}: could not load the weights ({type(exc).__name__}: {exc}){hint}") from exc


def _tokenizer(spec: str | Path, shown: str | Path, **kwargs: Any) -> Any:
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(spec, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"{shown}: could not load the tokenizer ({type(exc).__name__}: {exc})") from exc


def hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the HF endpoint answers a TCP connect within `timeout` seconds (and offline mode is off)."""
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in {"1", "true", "yes"}:
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    host, port = endpoint.hostname or "huggingface.co", endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _load_hub(
    repo_id: str, task: str | None, num_labels: int, dtype: torch.dtype | None, attn: str | None
) -> LoadedModel:
    from transformers import AutoConfig

    online = hub_reachable()
    try:
        # offline, only the local HF cache is consulted: no retries against an unreachable host
        snapshot = AutoConfig.from_pretrained(repo_id, local_files_only=not online)
    except Exception as exc:
        where = "the Hugging Face Hub" if online else "the local Hugging Face cache (the Hub is unreachable: offline)"
        raise ModelLoadError(
            f"could not load {repo_id!r}: it is not an embedded alias, not a local folder, and {where} does not "
            f"have it ({type(exc).__name__}). Download it where you have network "
            f"(`huggingface-cli download {repo_id} --local-dir DIR`) and pass DIR, or use an embedded alias: "
            f"{', '.join(EMBEDDED)}."
        ) from exc
    family = family_for_load(snapshot.model_type, repo_id)
    head = head_for(task, family, model_type=snapshot.model_type, name=repo_id)
    model = _from_pretrained(head, repo_id, repo_id, local_files_only=not online,
                             **_load_kwargs(head, num_labels, dtype, attn))
    tokenizer = _tokenizer(repo_id, repo_id, local_files_only=not online)
    check_tokenizer_vocab(tokenizer, model, repo_id)
    return _finish(model, tokenizer, repo_id, head, f"hub:{repo_id}")


def load_model(
    spec: str | os.PathLike[str],
    task: str | None = None,
    *,
    num_labels: int = 2,
    dtype: torch.dtype | None = None,
    attn_implementation: str | None = None,
) -> LoadedModel:
    """Load a model and its tokenizer with the head `task` needs.

    `task` is a head (`classification`, `causal-lm`, `base`) or a greenprune task name (`defect`, `clone`,
    `summarize`, `generate`, `perplexity`); by default encoders get a classification head and decoders an LM head.
    """
    resolved = resolve_spec(spec, check_folder=check_checkpoint_folder)  # refuse unfinished or mixed saves
    if resolved.kind == "tiny":
        return _load_tiny(resolved.name, task, num_labels, dtype, attn_implementation)
    if resolved.kind == "folder" and resolved.path is not None:
        return _load_folder(resolved.path, resolved.name, task, num_labels, dtype, attn_implementation,
                            gguf_file=resolved.gguf_file, source=resolved.source)
    return _load_hub(resolved.name, task, num_labels, dtype, attn_implementation)


__all__ = ["HEADS", "TASK_HEADS", "LoadedModel", "ModelLoadError", "ResolvedSpec", "head_for", "hub_reachable",
           "load_model", "register_task_head", "resolve_spec", "supported_model_types"]
