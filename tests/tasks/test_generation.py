"""Our greedy loop (finished rows leave the batch) must write exactly what `transformers`' generate writes."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from greenprune.tasks import get_task
from greenprune.tasks.generation import CODE_STOPS, generate_texts

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def tiny_llama():
    from greenprune.models import load_model

    loaded = load_model("tiny-llama", task="generate")
    return loaded.model, loaded.tokenizer


def test_dropping_finished_rows_matches_generate_on_mixed_lengths(tiny_llama):
    model, tokenizer = tiny_llama
    prompts = ["def f(x):\n", "x = 1", "import os\nclass A:\n    def g(self, y):\n        return", "a" * 40]
    stops = ("e", "\n", "(")  # a random model hits these at different steps: rows finish at different times
    ours = generate_texts(model, tokenizer, prompts, max_new_tokens=24, stops=stops, batch_size=4)
    ref = generate_texts(model, tokenizer, prompts, max_new_tokens=24, stops=stops, batch_size=4,
                         drop_finished=False)
    assert ours == ref
    assert len({len(t) for t in ours}) > 1  # the rows really did finish at different lengths


def test_continuous_batching_refills_and_still_writes_what_generate_writes(smollm2, monkeypatch):
    """Nine prompts through four places on a real model (a random one ignores positions): rows finish at different
    steps, new prompts join a running batch (its cache right-aligned, columns nobody needs dropped), and every
    reply is `generate`'s for that prompt alone."""
    from greenprune.tasks import generation

    model, tokenizer = smollm2.model, smollm2.tokenizer
    prompts = ["def add(a, b):\n", "x = 1\ny =", "import os\nclass A:\n    def g(self, y):\n        return",
               "# sort a list\ndef sort_list(xs):", "for i in range(3):", "while True:\n    pass\n" * 3,
               "def is_even(n):\n    \"\"\"True when n is even.\"\"\"\n", "return [x for x in y if x]", "z = 7"]
    stops = ("\n\n", "(")
    merges: list[tuple[int, int]] = []
    real_merge = generation._merged_cache

    def spy(model, old, old_mask, fresh, fresh_mask, reserve):
        merged, mask = real_merge(model, old, old_mask, fresh, fresh_mask, reserve)
        merges.append((0 if old_mask is None else old_mask.shape[0], fresh_mask.shape[0]))
        return merged, mask

    monkeypatch.setattr(generation, "_merged_cache", spy)
    ours = generate_texts(model, tokenizer, prompts, max_new_tokens=20, stops=stops, batch_size=4)
    alone = [generate_texts(model, tokenizer, [p], max_new_tokens=20, stops=stops, batch_size=1,
                            drop_finished=False)[0] for p in prompts]
    assert ours == alone
    assert any(running > 0 for running, _ in merges)  # prompts joined a batch that was already decoding
    assert sum(fresh for _, fresh in merges) <= len(prompts) and len({len(t) for t in ours}) > 1


def test_merged_cache_right_aligns_rows_and_zeroes_what_they_never_filled(tiny_llama):
    from greenprune.tasks.generation import _merged_cache, preallocated_cache

    model, _ = tiny_llama
    old, fresh = preallocated_cache(model, 5), preallocated_cache(model, 3)
    for cache, rows, width, value in ((old, 2, 5, 1.0), (fresh, 1, 3, 2.0)):
        for layer in cache.layers:
            heads, dim = model.config.num_key_value_heads, model.config.hidden_size // model.config.num_attention_heads
            kv = torch.full((rows, heads, width, dim), value)
            layer.update(kv, kv * 10)
    old_mask = torch.tensor([[0, 0, 1, 1, 1], [0, 0, 0, 1, 1]])  # two leading columns nobody attends to
    fresh_mask = torch.tensor([[1, 1, 1]])
    merged, mask = _merged_cache(model, old, old_mask, fresh, fresh_mask, reserve=4)
    assert mask.tolist() == [[1, 1, 1], [0, 1, 1], [1, 1, 1]]  # width 3 = max(5 - 2, 3)
    layer = merged.layers[0]
    assert layer.get_seq_length() == 3 and layer.capacity == 3 + 4
    assert layer.keys[:2].eq(1.0).all() and layer.keys[2].eq(2.0).all() and layer.values[2].eq(20.0).all()
    assert layer._k[:, :, 3:].eq(0).all()  # reserved room starts clean


def test_order_is_kept_when_prompts_are_batched_by_length(tiny_llama):
    model, tokenizer = tiny_llama
    prompts = ["def long_function_name(a, b, c):\n    return", "x", "def g():\n"]
    together = generate_texts(model, tokenizer, prompts, max_new_tokens=8, stops=CODE_STOPS, batch_size=2)
    alone = [generate_texts(model, tokenizer, [p], max_new_tokens=8, stops=CODE_STOPS, batch_size=1)[0]
             for p in prompts]
    assert together == alone


def test_real_model_humaneval_completions_match_generate(smollm2):
    task = get_task("generate")
    problems = task.embedded().test[:3]
    prompts = [p.text for p in problems]
    model, tokenizer = smollm2.model, smollm2.tokenizer
    ours = generate_texts(model, tokenizer, prompts, max_new_tokens=32, batch_size=3)
    ref = generate_texts(model, tokenizer, prompts, max_new_tokens=32, batch_size=3, drop_finished=False)
    assert ours == ref and any(t.strip() for t in ours)


def test_qwen_humaneval_chat_replies_match_generate(qwen):
    """The model the benchmarks run: our loop (preallocated cache, finished rows leave) writes what `generate` writes,
    on HumanEval chat prompts of different lengths whose replies end at different steps."""
    from greenprune.tasks.generate import CHAT_STOPS, chat_prompt

    problems = get_task("generate").embedded().test
    prompts = [chat_prompt(qwen.tokenizer, problems[i]) for i in (0, 2, 7)]
    ours = generate_texts(qwen.model, qwen.tokenizer, prompts, max_new_tokens=48, stops=CHAT_STOPS, batch_size=3)
    ref = generate_texts(qwen.model, qwen.tokenizer, prompts, max_new_tokens=48, stops=CHAT_STOPS, batch_size=3,
                         drop_finished=False)
    assert ours == ref
    assert all("def " in t for t in ours)  # real replies: the model writes the function


@pytest.mark.parametrize(("task_name", "kwargs"), [
    ("generate", {"n_samples": 0}),  # was metrics over zero samples, written as a result
    ("generate", {"max_new_tokens": 0}),  # was pass@1 of empty completions
    ("summarize", {"max_new_tokens": 0}),  # was BLEU of empty summaries
])
def test_zero_generation_budgets_are_errors(tiny_llama, task_name, kwargs):
    from greenprune.errors import OptionError

    model, tokenizer = tiny_llama
    task = get_task(task_name)
    examples = task.embedded(size=4).test[:1]
    name, value = next(iter(kwargs.items()))
    with pytest.raises(OptionError, match=f"{name} must be a positive integer, got {value}"):
        task.evaluate(model, tokenizer, examples, **kwargs)


def test_generate_texts_refuses_a_zero_budget(tiny_llama):
    from greenprune.errors import OptionError

    model, tokenizer = tiny_llama
    with pytest.raises(OptionError, match="max_new_tokens must be a positive integer, got 0"):
        generate_texts(model, tokenizer, ["def f():"], max_new_tokens=0)


def test_preallocated_cache_writes_in_place_and_matches_the_dynamic_cache(tiny_llama):
    import inspect

    import torch
    from transformers import DynamicCache

    from greenprune.tasks.generation import preallocated_cache

    model, tokenizer = tiny_llama
    ids = tokenizer(["def f(x):\n    return x"], return_tensors="pt", add_special_tokens=False)["input_ids"]
    kw = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    cache, ref = preallocated_cache(model, ids.shape[1] + 3), DynamicCache(config=model.config)
    with torch.no_grad():
        out, ref_out = model(input_ids=ids, **{kw: cache}), model(input_ids=ids, **{kw: ref})
        pointer = cache.layers[0].keys.data_ptr()
        for _ in range(3):  # decode steps: the cache grows in its buffer, never reallocated
            nxt = out.logits[:, -1:].argmax(-1)
            out = model(input_ids=nxt, **{kw: cache})
            ref_out = model(input_ids=nxt, **{kw: ref})
            assert torch.equal(out.logits, ref_out.logits)
    assert cache.layers[0].keys.data_ptr() == pointer
    assert cache.get_seq_length() == ref.get_seq_length() == ids.shape[1] + 3
    for mine, theirs in zip(cache.layers, ref.layers, strict=True):
        assert torch.equal(mine.keys, theirs.keys) and torch.equal(mine.values, theirs.values)
    with pytest.raises(RuntimeError, match="cannot take position"), torch.no_grad():
        model(input_ids=nxt, **{kw: cache})  # one position past its capacity


def test_real_model_chat_prompts_match_generate(smollm2):
    from greenprune.tasks.generate import CHAT_STOPS, chat_prompt

    problems = get_task("generate").embedded().test[:3]
    model, tokenizer = smollm2.model, smollm2.tokenizer
    prompts = [chat_prompt(tokenizer, p) for p in problems]
    ours = generate_texts(model, tokenizer, prompts, max_new_tokens=40, stops=CHAT_STOPS, batch_size=3)
    ref = generate_texts(model, tokenizer, prompts, max_new_tokens=40, stops=CHAT_STOPS, batch_size=3,
                         drop_finished=False)
    assert ours == ref and all(t.strip() for t in ours)
