from __future__ import annotations

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
