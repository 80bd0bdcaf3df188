"""LoRA recovery: data loading with clear errors, loss goes down, merged model is plain transformers."""

from __future__ import annotations

import json

import pytest
import torch

from greenprune.models import load_model
from greenprune.recover import Pair, RecoveryConfig, RecoveryError, load_pairs, recover, stdlib_pairs


def test_load_pairs_jsonl_and_csv(tmp_path) -> None:
    jl = tmp_path / "d.jsonl"
    jl.write_text(json.dumps({"prompt": "def f():\n", "completion": "    return 1\n"}) + "\n\n"
                  + json.dumps({"prompt": "def g():\n", "completion": "    return 2\n"}) + "\n")
    assert load_pairs(jl) == [Pair("def f():\n", "    return 1\n"), Pair("def g():\n", "    return 2\n")]
    cs = tmp_path / "d.csv"
    cs.write_text('src,tgt\n"def h():\n","    pass\n"\n')
    assert load_pairs(cs) == [Pair("def h():\n", "    pass\n")]


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("bad.jsonl", '{"prompt": "a", "completion": "b"}\n{oops\n', r"bad.jsonl:2: not valid JSON"),
        ("cols.jsonl", '{"question": "a", "answer": "b"}\n', r"cols.jsonl:1: expected columns"),
        ("x.txt", "hello", r"must be .jsonl or .csv"),
    ],
)
def test_load_pairs_errors_name_file_and_line(tmp_path, name: str, text: str, match: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(RecoveryError, match=match):
        load_pairs(path)


def test_stdlib_pairs_are_humaneval_shaped() -> None:
    pairs = stdlib_pairs(limit=20)
    assert len(pairs) == 20
    for p in pairs:
        assert p.prompt.startswith(("def ", "async def ")) and '"""' in p.prompt
        assert p.completion.startswith("    ") and p.completion.strip()


def test_recover_lowers_loss_and_merges_to_plain_model(tmp_path) -> None:
    lm = load_model("tiny-llama")
    model = lm.model
    pairs = [Pair(f"def add_{i}(x):\n", f"    return x + {i}\n") for i in range(8)]
    names_before = set(dict(model.named_parameters()))
    # full lr from the second step on: transformers' warm-up ramps from 0, so one warm-up step (the hand-written
    # schedule this test was written for ramped from lr/warmup and said warmup=2 for the same ramp end)
    config = RecoveryConfig(steps=40, lr=2e-2, batch_size=4, r=8, warmup=1, dropout=0.0)
    result = recover(model, lm.tokenizer, pairs, config)
    merged = result.model
    assert type(merged).__name__ == "LlamaForCausalLM"
    assert set(dict(merged.named_parameters())) == names_before  # no lora_A / lora_B left
    first, last = sum(result.losses[:5]) / 5, sum(result.losses[-5:]) / 5
    assert last < first - 0.3  # a random tiny model learns slowly, but it must learn
    assert result.trainable_params > 0
    merged.save_pretrained(tmp_path)
    from transformers import AutoModelForCausalLM

    reloaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    ids = lm.tokenizer("def add_3(x):\n", return_tensors="pt")["input_ids"]
    with torch.no_grad():
        torch.testing.assert_close(reloaded(input_ids=ids).logits, merged(input_ids=ids).logits)


def test_recover_rejects_bad_options() -> None:
    lm = load_model("tiny-llama")
    with pytest.raises(RecoveryError, match="steps"):
        recover(lm.model, lm.tokenizer, [Pair("a", "b")], RecoveryConfig(steps=0))
    with pytest.raises(RecoveryError, match="no usable"):
        recover(lm.model, lm.tokenizer, [], RecoveryConfig(steps=1))
