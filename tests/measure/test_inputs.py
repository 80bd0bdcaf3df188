"""Default measurement inputs: a zero size is an error, not an empty measurement."""

from __future__ import annotations

import pytest

from greenprune.errors import OptionError
from greenprune.measure.inputs import code_batches
from greenprune.models import load_model


@pytest.mark.parametrize("option", ["batch_size", "seq_len", "n_batches"])
def test_code_batches_refuse_zero_sizes(option):
    tokenizer = load_model("tiny-bert").tokenizer
    with pytest.raises(OptionError, match=f"{option} must be a positive integer, got 0"):
        list(code_batches(tokenizer, **{option: 0}))
    assert len(list(code_batches(tokenizer, batch_size=2, seq_len=16, n_batches=1))) == 1
