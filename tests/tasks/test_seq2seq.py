"""Encoder-decoder summarisers: built from an encoder only, batches whose padded labels are ignored."""

from __future__ import annotations

import pytest

from greenprune.models import load_model
from greenprune.tasks import Example
from greenprune.tasks.seq2seq import IGNORE_INDEX, Seq2SeqError, build_encoder_decoder, seq2seq_batches


def test_padded_target_positions_are_ignored_in_the_loss():
    tok = load_model("tiny-bert", task="base").tokenizer
    examples = [Example(text="def f(x): return x", target="identity"),
                Example(text="def g(): pass", target="does nothing at all, ever, in any way")]
    (batch,) = list(seq2seq_batches(tok, examples, batch_size=2))
    short = tok(["identity"])["input_ids"][0]
    assert (batch["labels"][0, : len(short)] != IGNORE_INDEX).all()
    assert (batch["labels"][0, len(short):] == IGNORE_INDEX).all()
    assert (batch["labels"][1] != IGNORE_INDEX).all()


def test_encoder_decoder_needs_an_encoder():
    with pytest.raises(Seq2SeqError, match="needs an encoder model, got a decoder"):
        build_encoder_decoder("tiny-llama")
