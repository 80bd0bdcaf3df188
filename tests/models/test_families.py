from __future__ import annotations

import pytest
from torch import nn

from greenprune.models import FAMILIES, load_model


def _linear_names(loaded):
    fam = loaded.family
    layer = fam.layers(loaded.model)[0]
    return {name: dict(layer.named_modules())[name] for name in fam.layer_linear_names()}


def test_every_family_resolves_its_module_names():
    for alias in ("tiny-bert", "tiny-roberta", "tiny-llama"):
        loaded = load_model(alias)
        modules = _linear_names(loaded)
        assert all(isinstance(m, nn.Linear) for m in modules.values()), alias
        assert isinstance(loaded.family.embeddings(loaded.model), nn.Embedding)
        assert len(loaded.family.layers(loaded.model)) == loaded.model.config.num_hidden_layers


def test_backbone_found_under_any_head():
    for head in ("classification", "base"):
        loaded = load_model("tiny-bert", task=head)
        assert type(loaded.family.backbone(loaded.model)).__name__ == "BertModel"
    loaded = load_model("tiny-llama", task="causal-lm")
    assert type(loaded.family.backbone(loaded.model)).__name__ == "LlamaModel"


def test_family_names_unique():
    names = [f.name for f in FAMILIES]
    types = [t for f in FAMILIES for t in f.model_types]
    assert len(names) == len(set(names)) and len(types) == len(set(types))


def test_head_geometry_and_sizes_come_from_the_table():
    from greenprune.models.families import HeadGeometry

    llama = load_model("tiny-llama")
    config = llama.model.config
    geo = llama.family.head_geometry(config)
    assert geo == HeadGeometry(config.num_attention_heads, config.num_key_value_heads,
                               config.hidden_size // config.num_attention_heads)
    assert geo.heads_per_group == 2 and geo.kv_width == geo.query_width // 2
    bert = load_model("tiny-bert")
    assert bert.family.head_geometry(bert.model.config).kv_heads == bert.model.config.num_attention_heads
    assert llama.family.intermediate_size(config) == config.intermediate_size
    assert llama.family.gated and not bert.family.gated
    assert llama.family.layers_parent(llama.model) is llama.model.model
    assert bert.family.layers_parent(bert.model) is bert.model.bert.encoder


def test_a_family_names_its_own_layer_count_attribute():
    """`num_layers_attr` is read: a family whose config says `n_layer` is counted and updated through it."""
    from dataclasses import replace

    from greenprune.models.families import UnsupportedModelError

    fam = replace(load_model("tiny-llama").family, num_layers_attr="n_layer")

    class Cfg:
        model_type = "llama"
        n_layer = 7

    config = Cfg()
    assert fam.num_layers(config) == 7
    fam.set_num_layers(config, 5)
    assert config.n_layer == 5
    with pytest.raises(UnsupportedModelError, match="num_hidden_layers"):
        load_model("tiny-llama").family.num_layers(Cfg())


def test_set_layers_installs_a_new_stack():
    loaded = load_model("tiny-bert")
    fam = loaded.family
    kept = nn.ModuleList(list(fam.layers(loaded.model))[:1])
    fam.set_layers(loaded.model, kept)
    assert fam.layers(loaded.model) is kept and loaded.model.bert.encoder.layer is kept


def test_weight_pruning_targets_the_encoder_of_an_encoder_decoder():
    from greenprune.models.families import is_encoder_decoder, pruned_stack
    from greenprune.tasks.seq2seq import build_encoder_decoder

    model, _ = build_encoder_decoder("tiny-bert", decoder_layers=1)
    assert is_encoder_decoder(model) and pruned_stack(model) is model.encoder
    plain = load_model("tiny-bert").model
    assert not is_encoder_decoder(plain) and pruned_stack(plain) is plain
