"""`.gguf` input and the embedded SmolLM2's "dequantised once and cached" (under `$GREENPRUNE_CACHE`).

The real SmolLM2 GGUF takes a minute to dequantise, so these tests write a tiny Llama GGUF (random weights, a
byte-level BPE vocabulary of 261 tokens) with the `gguf` package, the library transformers itself reads GGUF with.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

gguf = pytest.importorskip("gguf")

HIDDEN, LAYERS, HEADS, KV_HEADS, FFN = 32, 2, 4, 2, 64


def _byte_tokens() -> list[str]:
    """GPT-2's byte-to-unicode alphabet: the 256 single-byte tokens of a byte-level BPE."""
    keep = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    chars, extra = list(keep), 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return [chr(c) for c in chars]


def write_tiny_llama_gguf(path: Path, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    merges = ["Ġ t", "Ġ a", "r e", "Ġt h"]
    tokens = ["<|endoftext|>", *_byte_tokens(), "Ġt", "Ġa", "re", "Ġth"]
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_context_length(128)
    writer.add_embedding_length(HIDDEN)
    writer.add_block_count(LAYERS)
    writer.add_feed_forward_length(FFN)
    writer.add_head_count(HEADS)
    writer.add_head_count_kv(KV_HEADS)
    writer.add_rope_freq_base(10000.0)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(HIDDEN // HEADS)
    writer.add_vocab_size(len(tokens))
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("default")
    writer.add_token_list(tokens)
    writer.add_token_types([3] + [1] * (len(tokens) - 1))
    writer.add_token_merges(merges)
    writer.add_bos_token_id(0)
    writer.add_eos_token_id(0)

    def tensor(name: str, *shape: int) -> None:
        writer.add_tensor(name, (rng.standard_normal(shape) * 0.05).astype(np.float32))

    tensor("token_embd.weight", len(tokens), HIDDEN)
    kv = KV_HEADS * HIDDEN // HEADS
    for i in range(LAYERS):
        writer.add_tensor(f"blk.{i}.attn_norm.weight", np.ones(HIDDEN, np.float32))
        writer.add_tensor(f"blk.{i}.ffn_norm.weight", np.ones(HIDDEN, np.float32))
        tensor(f"blk.{i}.attn_q.weight", HIDDEN, HIDDEN)
        tensor(f"blk.{i}.attn_k.weight", kv, HIDDEN)
        tensor(f"blk.{i}.attn_v.weight", kv, HIDDEN)
        tensor(f"blk.{i}.attn_output.weight", HIDDEN, HIDDEN)
        tensor(f"blk.{i}.ffn_gate.weight", FFN, HIDDEN)
        tensor(f"blk.{i}.ffn_up.weight", FFN, HIDDEN)
        tensor(f"blk.{i}.ffn_down.weight", HIDDEN, FFN)
    writer.add_tensor("output_norm.weight", np.ones(HIDDEN, np.float32))
    tensor("output.weight", len(tokens), HIDDEN)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def tiny_gguf(tmp_path_factory) -> Path:
    return write_tiny_llama_gguf(tmp_path_factory.mktemp("gguf") / "tiny-llama.gguf")


def _logits(model, tokenizer, text: str = "def the(a):\n    return a") -> torch.Tensor:
    ids = tokenizer(text, return_tensors="pt").input_ids
    with torch.no_grad():
        return model(input_ids=ids).logits


def test_a_gguf_file_loads_as_transformers_reads_it(tiny_gguf):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from greenprune.models import load_model

    loaded = load_model(str(tiny_gguf), task="perplexity")
    assert loaded.family.kind == "decoder"
    assert loaded.model.config.num_hidden_layers == LAYERS and loaded.model.config.vocab_size == 261
    reference = AutoModelForCausalLM.from_pretrained(tiny_gguf.parent, gguf_file=tiny_gguf.name)
    ref_tok = AutoTokenizer.from_pretrained(tiny_gguf.parent, gguf_file=tiny_gguf.name)
    assert loaded.tokenizer("def the(a)").input_ids == ref_tok("def the(a)").input_ids
    ours, theirs = _logits(loaded.model, loaded.tokenizer), _logits(reference, ref_tok)
    assert ours.abs().max() > 0.01 and torch.allclose(ours, theirs, atol=1e-6)
    assert next(loaded.model.parameters()).dtype == torch.float32  # dequantised, plain fp32


def test_embedded_gguf_is_dequantised_once_into_greenprune_cache(tiny_gguf, tmp_path, monkeypatch):
    import transformers

    from greenprune.models import bundled, load_model

    monkeypatch.setenv("GREENPRUNE_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(bundled, "smollm2_gguf", lambda: tiny_gguf)
    reads: list[str] = []
    real = transformers.AutoModelForCausalLM.from_pretrained.__func__

    def counting(cls, *args, **kwargs):
        if kwargs.get("gguf_file"):
            reads.append(kwargs["gguf_file"])
        return real(cls, *args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForCausalLM, "from_pretrained", classmethod(counting))
    first = bundled.smollm2_dir()
    assert first == tmp_path / "cache" / "models" / "smollm2-135m"
    assert (first / "model.safetensors").is_file() and (first / "config.json").is_file()
    assert reads == [tiny_gguf.name]
    stamp = (first / "model.safetensors").stat().st_mtime_ns
    assert bundled.smollm2_dir() == first and reads == [tiny_gguf.name]  # cached: the GGUF is not read again
    assert (first / "model.safetensors").stat().st_mtime_ns == stamp
    # the alias loads from that cache, and it holds the GGUF's (dequantised) weights
    alias = load_model("smollm2-135m", task="perplexity")
    assert alias.model.config.num_hidden_layers == LAYERS and reads == [tiny_gguf.name]
    direct = load_model(str(tiny_gguf), task="perplexity")
    assert torch.allclose(_logits(alias.model, alias.tokenizer), _logits(direct.model, direct.tokenizer), atol=1e-6)
