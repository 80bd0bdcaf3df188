"""Position limits of loaded models: what a sequence-length option is checked against."""

from __future__ import annotations

import pytest
from torch import nn

from greenprune.models import load_model
from greenprune.models.positions import SequenceLengthError, check_sequence_length, position_limit


@pytest.mark.parametrize(("alias", "positions"), [
    ("tiny-bert", 512),
    ("tiny-roberta", 513),  # 514 learned positions, counted from padding index 0 + 1
    ("tiny-llama", 2048),
])
def test_position_limit_of_embedded_models(alias, positions):
    model = load_model(alias).model
    assert position_limit(model).positions == positions
    check_sequence_length(model, positions, option="--max-length", name=alias)  # the limit itself is fine
    with pytest.raises(SequenceLengthError, match=rf"--max-length {positions + 1} is longer than {alias} can take: "
                                                  rf"{positions} positions"):
        check_sequence_length(model, positions + 1, option="--max-length", name=alias)


def test_roberta_message_explains_the_padding_offset():
    model = load_model("tiny-roberta").model
    assert "max_position_embeddings 514 of its roberta config, less the padding offset 1" in position_limit(model).why


def test_no_limit_without_max_position_embeddings():
    assert position_limit(nn.Linear(2, 2)) is None
    check_sequence_length(nn.Linear(2, 2), 10**6, option="--seq-len", name="linear")
