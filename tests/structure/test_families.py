"""The structural steps work on other decoder families of the table (Qwen2 keeps per-layer `layer_types`)."""

from __future__ import annotations

import pytest
import torch

from greenprune.structure.ffn import FFNPruningConfig, prune_ffn
from greenprune.structure.layers import LayerPruningConfig, prune_layers
from greenprune.structure.pipeline import CorpusError, read_corpus


@pytest.fixture()
def tiny_qwen2():
    from transformers import AutoModelForCausalLM, Qwen2Config

    config = Qwen2Config(vocab_size=512, hidden_size=32, intermediate_size=64, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    torch.manual_seed(0)
    return AutoModelForCausalLM.from_config(config).eval()


def test_qwen2_layer_and_ffn_pruning_reload(tiny_qwen2, tmp_path) -> None:
    from transformers import AutoModelForCausalLM

    model = tiny_qwen2
    torch.manual_seed(1)
    batches = [{"input_ids": torch.randint(0, 512, (2, 32)), "attention_mask": torch.ones(2, 32, dtype=torch.long)}]
    with torch.no_grad():
        model.model.layers[1].self_attn.o_proj.weight.zero_()
        model.model.layers[1].mlp.down_proj.weight.zero_()
    result = prune_layers(model, batches, LayerPruningConfig(remove=1, metric="kl"))
    assert result.removed == [1]
    assert len(model.config.layer_types) == model.config.num_hidden_layers == 3
    prune_ffn(model, batches, FFNPruningConfig(fraction=0.5))
    model.save_pretrained(tmp_path)
    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = batches[0]["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=ids).logits, model(input_ids=ids).logits)
        out = reloaded.generate(ids[:1, :8], max_new_tokens=4, do_sample=False)
    assert out.shape == (1, 12)


def test_read_corpus_forms_and_errors(tmp_path) -> None:
    (tmp_path / "a.py").write_text("x = 1\n")
    (tmp_path / "b.bin").write_bytes(b"\x00")
    assert read_corpus(str(tmp_path)) == ["x = 1\n"]
    jl = tmp_path / "c.jsonl"
    jl.write_text('{"code": "y = 2"}\n{"other": 1}\n')
    with pytest.raises(CorpusError, match=r"c.jsonl:2"):
        read_corpus(str(jl))
    with pytest.raises(CorpusError, match="not 'stdlib'"):
        read_corpus(str(tmp_path / "missing"))
