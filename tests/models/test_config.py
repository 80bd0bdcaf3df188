"""`model_config`: a spec's config without its weights, resolved like `load_model` (for preflight checks)."""

from __future__ import annotations

import pytest

from greenprune.models.bundled import tiny_config
from greenprune.models.config import model_config, num_layers
from greenprune.models.hub import ModelLoadError


def test_embedded_alias_and_local_folder_give_their_config(tmp_path):
    assert num_layers(model_config("tiny-llama")) == 4
    config = tiny_config("tiny-bert")
    config.num_hidden_layers = 3
    config.save_pretrained(tmp_path / "m")
    assert not (tmp_path / "m" / "model.safetensors").exists()  # a config alone is enough
    assert num_layers(model_config(tmp_path / "m")) == 3


@pytest.mark.parametrize(
    ("spec", "message"),
    [("./no/such/model", "no such folder or file"), ("tiny-bertt", "could not find 'tiny-bertt'"),
     ("{tmp}", "needs config.json")],
)
def test_unusable_specs_name_what_was_tried(tmp_path, spec, message):
    with pytest.raises(ModelLoadError, match=message):
        model_config(spec.format(tmp=tmp_path))
