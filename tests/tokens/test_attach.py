"""attach/detach on real HF encoders: exactness, padding isolation, reversibility, training, errors."""

from __future__ import annotations

import itertools

import pytest
import torch

from greenprune.models import UnsupportedModelError, load_model
from greenprune.tokens import AlpineConfig, AlpineError, attach, detach, handle_of

SNIPPETS = [
    "def add(a, b):\n    return a + b",
    "int main() { int total = 0; for (int i = 0; i < 10; i++) { total += i * i; } return total; }",
    "x = 1",
    "public static void swap(int[] a, int i, int j) { int t = a[i]; a[i] = a[j]; a[j] = t; }",
]


@pytest.fixture(scope="module", params=["tiny-bert", "tiny-roberta"])
def tiny(request):
    return load_model(request.param, task="classification")


def _batch(tokenizer, texts=SNIPPETS):
    return tokenizer(texts, padding=True, return_tensors="pt")


@pytest.mark.parametrize("merge", [False, True])
def test_alpha_large_equals_unpruned_on_mixed_lengths(tiny, merge):
    model, tok = tiny
    batch = _batch(tok)
    with torch.no_grad():
        base = model(**batch).logits
        with attach(tiny, AlpineConfig(layers="all", alpha=1e6, merge=merge)) as handle:
            pruned = model(**batch).logits
    assert handle.trace.mean_lengths()[0] == handle.trace.mean_lengths()[-1]  # nothing pruned
    torch.testing.assert_close(pruned, base, atol=1e-5, rtol=0)


def test_base_model_without_head_alpha_large_equal_on_valid_tokens():
    loaded = load_model("tiny-roberta", task="base")
    batch = _batch(loaded.tokenizer)
    valid = batch["attention_mask"].bool()
    with torch.no_grad():
        base = loaded.model(**batch).last_hidden_state
        with attach(loaded, AlpineConfig(layers="even", alpha=1e6)):
            pruned = loaded.model(**batch).last_hidden_state
    torch.testing.assert_close(pruned[valid], base[valid], atol=1e-5, rtol=0)


@pytest.mark.parametrize("config", [AlpineConfig(layers="all", alpha=0.5), AlpineConfig(rule="static", ratio=0.4)])
def test_batched_equals_each_sequence_alone(tiny, config):
    model, tok = tiny
    batch = _batch(tok)
    with torch.no_grad(), attach(tiny, config) as handle:
        batched = model(**batch).logits
        assert handle.trace.mean_lengths()[-1] < handle.trace.mean_lengths()[0]  # it really pruned
        alone = torch.cat([model(**_batch(tok, [text])).logits for text in SNIPPETS])
    torch.testing.assert_close(batched, alone, atol=1e-5, rtol=0)


def test_special_tokens_and_cls_position_survive_and_positions_map_back(tiny):
    model, tok = tiny
    batch = _batch(tok)
    with torch.no_grad(), attach(tiny, AlpineConfig(layers="all", alpha=0.3, merge=False)) as handle:
        model(**batch)
    state = handle.last_state
    ids = batch["input_ids"]
    specials = set(tok.all_special_ids)
    for b in range(ids.shape[0]):
        kept = [p for p in state.positions[b].tolist() if p >= 0]
        assert kept == sorted(kept) and kept[0] == 0
        valid_positions = [j for j in range(ids.shape[1]) if batch["attention_mask"][b, j]]
        must_keep = {j for j in valid_positions if int(ids[b, j]) in specials}
        assert must_keep <= set(kept)
        assert len(kept) < len(valid_positions)


def test_detach_restores_exact_forwards_and_config(tiny):
    model, tok = tiny
    batch = _batch(tok)
    family_layers = tiny.family.layers(model)
    before_cfg = [layer.attention.self.config for layer in family_layers]
    with torch.no_grad():
        base = model(**batch).logits
        handle = attach(tiny, AlpineConfig(layers="odd", alpha=0.5))
        assert handle_of(model) is handle
        # pruning layers got their own eager config; the others still share the model's (SDPA) config
        for i, layer in enumerate(family_layers):
            impl = layer.attention.self.config._attn_implementation
            assert impl == ("greenprune_alpine" if i in handle.layers else model.config._attn_implementation)
        assert not torch.allclose(model(**batch).logits, base)
        detach(model)
        after = model(**batch).logits
    assert torch.equal(after, base)
    assert [layer.attention.self.config for layer in family_layers] == before_cfg
    assert all("forward" not in layer.__dict__ for layer in family_layers)
    assert handle_of(model) is None
    with pytest.raises(AlpineError, match="not attached"):
        detach(model)


def test_loaded_model_attach_and_detach(tiny):
    handle = attach(tiny, AlpineConfig())
    assert handle_of(tiny) is handle and handle.special_ids == sorted(set(tiny.tokenizer.all_special_ids))
    detach(tiny)
    assert handle_of(tiny.model) is None


def test_attach_twice_is_refused(tiny):
    with attach(tiny, AlpineConfig()), pytest.raises(AlpineError, match="already attached"):
        attach(tiny, AlpineConfig())


def test_decoder_and_foreign_models_get_one_clear_error():
    from transformers import AutoModelForCausalLM

    from greenprune.models.bundled import tiny_config

    llama = AutoModelForCausalLM.from_config(tiny_config("tiny-llama"))  # no tokenizer needed to be refused
    with pytest.raises(AlpineError, match="llama"):
        attach(llama, AlpineConfig())
    with pytest.raises(UnsupportedModelError, match="model_type"):
        attach(torch.nn.Linear(2, 2), AlpineConfig())


def test_training_with_alpine_backpropagates_and_learns(tiny):
    import copy

    model = copy.deepcopy(tiny.model)
    batch = _batch(tiny.tokenizer)
    labels = torch.tensor([0, 1, 0, 1])
    attach(model, AlpineConfig(layers="even", alpha=0.5), tokenizer=tiny.tokenizer)
    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(8):
        out = model(**batch, labels=labels)
        opt.zero_grad()
        out.loss.backward()
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        assert grads and all(torch.isfinite(g).all() for g in grads)
        opt.step()
        losses.append(out.loss.item())
    assert losses[-1] < losses[0]
    assert len(handle_of(model).trace) == 8


def test_trace_export_and_plot(tiny, tmp_path):
    import json

    from greenprune.tokens import plot_trace

    model, tok = tiny
    with torch.no_grad(), attach(tiny, AlpineConfig(layers="even", alpha=0.5)) as handle:
        model(**_batch(tok))
        model(**_batch(tok, SNIPPETS[:2]))
    trace = handle.trace
    assert len(trace) == 2 and trace.sequences == 6
    means = trace.mean_lengths()
    assert len(means) == handle.num_layers + 1
    assert all(a >= b for a, b in itertools.pairwise(means))
    # only pruning layers change the length
    for i in range(handle.num_layers):
        if i not in handle.layers:
            assert means[i + 1] == means[i]
    data = json.loads(trace.save_json(tmp_path / "trace.json").read_text())
    assert data["pruning_layers"] == handle.layers and len(data["lengths"]) == 6
    png = plot_trace({"alpine even": trace}, tmp_path / "trace.png")
    assert png.stat().st_size > 1000
