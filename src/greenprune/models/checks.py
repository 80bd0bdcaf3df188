"""Checks a model folder (or GGUF file, or loaded tokenizer) must pass before greenprune trusts it.

Each check raises `ModelLoadError` naming the file at fault, so a pickle checkpoint, a truncated safetensors file,
a folder without a tokenizer or a junk GGUF is one clear line instead of a traceback, a `torch.load` of untrusted
bytes, or a silent 5-token vocabulary that turns every input into `[UNK]`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from greenprune.errors import GreenpruneError


class ModelLoadError(GreenpruneError, RuntimeError):
    """A model spec could not be turned into a model; the message says what was tried."""


SAFE_WEIGHTS = "model.safetensors"
SAFE_INDEX = "model.safetensors.index.json"
# suffixes of pickle-based checkpoints: loading them runs arbitrary code, so greenprune never does
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
# files that carry a vocabulary (a tokenizer_config.json alone does not: transformers then builds a tokenizer of
# special tokens only); vocab.json counts only with the merges.txt of its BPE
VOCAB_FILES = ("tokenizer.json", "vocab.txt", "tokenizer.model", "spiece.model", "sentencepiece.bpe.model",
               "spm.model")
EXPECTED_TOKENIZER = "tokenizer.json, vocab.txt, vocab.json + merges.txt, or a SentencePiece tokenizer.model"
# a tokenizer covering less than this share of the embedding rows is not the model's tokenizer
MIN_VOCAB_SHARE = 0.5

CONVERT_HINT = (
    "greenprune loads safetensors only (a pickle checkpoint can run code when loaded). Convert it once, where you "
    "trust the file: `from transformers import AutoModelForCausalLM as M, AutoTokenizer as T; "
    "M.from_pretrained('{src}').save_pretrained('OUT', safe_serialization=True); "
    "T.from_pretrained('{src}').save_pretrained('OUT')` (AutoModelForSequenceClassification for a classifier; "
    "transformers 5 writes safetensors by default), then pass OUT"
)


def convert_hint(source: str | Path) -> str:
    """How to turn a pickle checkpoint at `source` (folder or hub id) into safetensors."""
    return CONVERT_HINT.format(src=source)


def _explicit_weights(folder: Path) -> str | None:
    """The weights file a config.json names itself (`transformers_weights`), which transformers loads first."""
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # AutoConfig reports an unreadable config.json with its own message
    value = config.get("transformers_weights") if isinstance(config, dict) else None
    return value if isinstance(value, str) else None


def check_weights_folder(folder: Path) -> None:
    """The folder's weights are safetensors, complete and readable; pickle-only folders are refused.

    Mirrors the file transformers would pick (`transformers_weights` in config.json, else model.safetensors, else
    the sharded index) and checks that file, or each shard of the index, with the safetensors reader itself.
    """
    explicit = _explicit_weights(folder)
    if explicit is not None:
        if not explicit.endswith((".safetensors", ".safetensors.index.json")):
            raise ModelLoadError(f"{folder / 'config.json'}: transformers_weights names {explicit!r}, which is not "
                                 f"a safetensors file; {convert_hint(folder)}")
        target = folder / explicit
        if not target.is_file():
            raise ModelLoadError(f"{target}: named by transformers_weights in config.json but missing")
        check_sharded(target) if explicit.endswith(".index.json") else check_safetensors(target)
        return
    if (folder / SAFE_WEIGHTS).is_file():
        check_safetensors(folder / SAFE_WEIGHTS)
        return
    if (folder / SAFE_INDEX).is_file():
        check_sharded(folder / SAFE_INDEX)
        return
    pickles = sorted(p.name for p in folder.iterdir() if p.is_file() and p.suffix in PICKLE_SUFFIXES)
    if pickles:
        others = f" (also {', '.join(pickles[1:])})" if len(pickles) > 1 else ""
        raise ModelLoadError(f"{folder / pickles[0]}: a pickle checkpoint{others}; {convert_hint(folder)}")
    raise ModelLoadError(f"{folder}: no model weights (expected {SAFE_WEIGHTS} or {SAFE_INDEX})")


def check_safetensors(path: Path, expect: set[str] | None = None) -> set[str]:
    """The tensor names of a readable safetensors file; a truncated or corrupt file is refused, naming it.

    `safe_open` validates the 8-byte header length, the JSON header and that the tensor offsets cover the file
    exactly, without reading the tensors themselves. `expect`: names the file must hold (from a shard index).
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as handle:
            names = set(handle.keys())
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelLoadError(f"{path}: not a readable safetensors file, truncated or corrupt ({exc}); "
                             f"re-download or re-save the checkpoint") from exc
    missing = sorted((expect or set()) - names)
    if missing:
        raise ModelLoadError(f"{path}: lacks {len(missing)} tensor(s) its index lists (first: {missing[0]!r}); "
                             f"the shard is incomplete or from another checkpoint")
    return names


def check_sharded(index: Path) -> None:
    """Every shard a safetensors index names exists, is readable and holds the tensors the index maps to it."""
    try:
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        if not isinstance(weight_map, dict) or not weight_map:
            raise ValueError("empty or not a mapping")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ModelLoadError(f"{index}: not a safetensors shard index with a 'weight_map' ({exc})") from exc
    shards: dict[str, set[str]] = {}
    for tensor, shard in weight_map.items():
        shards.setdefault(str(shard), set()).add(str(tensor))
    for shard, tensors in sorted(shards.items()):
        path = index.parent / shard
        if Path(shard).name != shard or not shard.endswith(".safetensors"):
            raise ModelLoadError(f"{index}: shard {shard!r} is not a safetensors file beside the index")
        if not path.is_file():
            raise ModelLoadError(f"{path}: shard listed in {index.name} is missing")
        check_safetensors(path, expect=tensors)


def check_gguf(path: Path) -> None:
    """A GGUF file parses (header, metadata, tensor table); junk after a valid magic is refused, naming the file."""
    from gguf import GGUFReader

    try:
        GGUFReader(path)
    except Exception as exc:  # the reader raises ValueError, IndexError, struct/numpy errors... on junk
        raise ModelLoadError(f"{path}: not a readable GGUF file, truncated or corrupt "
                             f"({type(exc).__name__}: {exc})") from exc


def check_tokenizer_files(folder: Path) -> None:
    """The folder ships a tokenizer with a vocabulary (else transformers silently builds one of special tokens)."""
    names = {p.name for p in folder.iterdir() if p.is_file()}
    if names & set(VOCAB_FILES) or {"vocab.json", "merges.txt"} <= names or any(n.endswith(".tiktoken")
                                                                                   for n in names):
        return
    raise ModelLoadError(f"{folder}: no tokenizer files (expected {EXPECTED_TOKENIZER}); save the tokenizer next "
                         f"to the model with tokenizer.save_pretrained('{folder}')")


def check_tokenizer_vocab(tokenizer: Any, model: Any, source: str | Path) -> None:
    """The tokenizer covers the model's embedding: one far smaller is not this model's tokenizer."""
    config = getattr(model, "config", None)
    rows = getattr(config, "vocab_size", None)
    try:
        size = len(tokenizer)
    except TypeError:
        return
    if isinstance(rows, int) and rows > 0 and size < MIN_VOCAB_SHARE * rows:
        raise ModelLoadError(f"{source}: the tokenizer has {size} tokens but the model embeds {rows}; it is not "
                             f"this model's tokenizer (expected {EXPECTED_TOKENIZER} from the same checkpoint)")
