"""Fine-tune / evaluate loops on tiny models: learning happens, the best checkpoint is kept and reloadable."""

from __future__ import annotations

import copy
import random

import pytest
import torch

from greenprune.tasks import Example, Splits, TaskDataError, TrainConfig, get_task


@pytest.fixture(scope="module")
def tiny_bert():
    from greenprune.models import load_model

    return load_model("tiny-bert", task="defect")


def _toy_classification(n: int, seed: int) -> list[Example]:
    """Label 1 iff the function compares with `<=` — a one-token cue a tiny model can learn in a few steps."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = i % 2
        op = "<=" if label else "=="
        name = rng.choice(["count", "size", "total", "index"])
        out.append(Example(text=f"def f(x):\n    if x {op} {name}:\n        return {rng.randint(0, 9)}\n", label=label))
    return out


def test_classification_batches_carry_labels(tiny_bert):
    task = get_task("defect")
    batch = next(task.batches(tiny_bert.tokenizer, _toy_classification(6, 0), batch_size=4, max_length=32))
    assert set(batch) >= {"input_ids", "attention_mask", "labels"}
    assert batch["labels"].tolist() == [0, 1, 0, 1] and batch["input_ids"].shape[0] == 4
    pair = next(get_task("clone").batches(
        tiny_bert.tokenizer, [Example(text="def a(): pass", text_pair="def b(): pass", label=1)], 2, 32))
    sep = tiny_bert.tokenizer.sep_token_id
    assert (pair["input_ids"][0] == sep).sum() == 2  # one sequence holding both functions


def test_evaluate_keeps_each_examples_prediction_for_paired_tests(tiny_bert):
    """The report's bootstrap intervals and paired differences read these; they must be the predictions scored."""
    task = get_task("defect")
    examples = _toy_classification(10, 1)
    scores = task.evaluate(tiny_bert.model, tiny_bert.tokenizer, examples, batch_size=4, max_length=32)
    per = scores.details["per_example"]
    preds = task.predict(tiny_bert.model, tiny_bert.tokenizer, examples, 4, 32)
    assert [e["pred"] for e in per] == preds and [e["label"] for e in per] == [e.label for e in examples]
    assert len({e["id"] for e in per}) == 10  # unnamed examples get their position as id
    assert scores["accuracy"] == sum(p == e.label for p, e in zip(preds, examples, strict=True)) / 10


def test_finetune_learns_and_keeps_best_checkpoint(tiny_bert, tmp_path):
    task = get_task("defect")
    model = copy.deepcopy(tiny_bert.model)
    splits = Splits(_toy_classification(64, 1), _toy_classification(16, 2), _toy_classification(16, 3))
    before = task.evaluate(model, tiny_bert.tokenizer, splits.test, batch_size=16, max_length=32)
    config = TrainConfig(epochs=3, lr=3e-3, batch_size=8, max_length=32, seed=0, eval_every=4,
                         output_dir=str(tmp_path / "out"))
    result = task.finetune(model, tiny_bert.tokenizer, splits, config)
    after = task.evaluate(result.model, tiny_bert.tokenizer, splits.test, batch_size=16, max_length=32)
    assert len(result.history) >= 6 and all("accuracy" in row for row in result.history)
    assert before["accuracy"] <= 0.75 and after["accuracy"] >= 0.9  # it learned the cue, not a lucky draw
    best = max(row["accuracy"] for row in result.history)
    assert result.best_metrics["accuracy"] == best
    # the returned model is the best checkpoint, not the last one
    again = task.evaluate(result.model, tiny_bert.tokenizer, splits.valid, batch_size=16, max_length=32)
    assert again["accuracy"] == pytest.approx(best)
    from transformers import AutoModelForSequenceClassification

    assert (tmp_path / "out" / "best" / "model.safetensors").is_file()
    reloaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "out" / "best")
    x = next(task.batches(tiny_bert.tokenizer, splits.valid, 4, 32))
    x.pop("labels")
    with torch.no_grad():
        assert torch.allclose(reloaded(**x).logits, result.model(**x).logits, atol=1e-5)


def test_the_best_checkpoint_is_returned_when_the_last_one_is_worse(tiny_bert):
    """Validation labels are the opposite of training labels: the better the model learns, the worse it validates,
    so the best validation row comes early and the last one is worse; the returned model must be the early one."""
    task = get_task("defect")
    model = copy.deepcopy(tiny_bert.model)
    valid = [Example(text=e.text, label=1 - e.label) for e in _toy_classification(16, 2)]
    splits = Splits(_toy_classification(64, 1), valid, [])
    config = TrainConfig(epochs=3, lr=3e-3, batch_size=8, max_length=32, seed=0, eval_every=4)
    result = task.finetune(model, tiny_bert.tokenizer, splits, config)
    scores = [row["accuracy"] for row in result.history]
    best, last = max(scores), scores[-1]
    assert last < best  # the history this test needs: best is not last
    assert result.best_step == result.history[scores.index(best)]["step"] < result.history[-1]["step"]
    assert result.best_metrics["accuracy"] == best
    again = task.evaluate(result.model, tiny_bert.tokenizer, valid, batch_size=16, max_length=32)
    assert again["accuracy"] == pytest.approx(best) and again["accuracy"] != pytest.approx(last)


def test_same_seed_same_training(tiny_bert):
    task = get_task("defect")
    splits = Splits(_toy_classification(16, 1), _toy_classification(8, 2), [])
    config = TrainConfig(epochs=1, lr=1e-3, batch_size=8, max_length=32, seed=5)
    a = task.finetune(copy.deepcopy(tiny_bert.model), tiny_bert.tokenizer, splits, config)
    b = task.finetune(copy.deepcopy(tiny_bert.model), tiny_bert.tokenizer, splits, config)
    assert a.history[-1]["train_loss"] == b.history[-1]["train_loss"]


def test_empty_train_split_is_a_user_error(tiny_bert):
    with pytest.raises(TaskDataError, match="train split is empty"):
        get_task("defect").finetune(tiny_bert.model, tiny_bert.tokenizer, Splits([], [], []), TrainConfig())


def test_causal_lm_perplexity_and_finetune():
    from greenprune.models import load_model

    model, tokenizer = load_model("tiny-llama", task="perplexity")
    task = get_task("perplexity")
    text = [Example(text="def add(a, b):\n    return a + b\n")] * 8
    ppl = task.evaluate(model, tokenizer, text[:2], batch_size=2, max_length=32)
    assert ppl["perplexity"] > 1000  # random weights over a 49k vocabulary
    batch = next(task.train_batches(tokenizer, text[:2], 2, 32))
    assert (batch["labels"][batch["attention_mask"] == 0] == -100).all()
    result = task.finetune(model, tokenizer, Splits(text, text[:2], []),
                           TrainConfig(epochs=5, lr=1e-2, batch_size=4, max_length=32, warmup_ratio=0.0))
    assert result.best_metrics["valid_perplexity"] < ppl["perplexity"] / 5


def test_summarize_masks_the_prompt():
    from greenprune.models import load_model

    model, tokenizer = load_model("tiny-llama", task="summarize")
    task = get_task("summarize")
    ex = Example(text="def neg(x):\n    return -x", target="Negate a number.")
    batch = next(task.train_batches(tokenizer, [ex], 1, 128))
    trained = batch["labels"][0][batch["labels"][0] != -100].tolist()
    assert tokenizer.decode(trained).strip().startswith("Negate a number.")
    metrics = task.evaluate(model, tokenizer, [ex], batch_size=1, max_length=64, max_new_tokens=4)
    assert set(metrics) >= {"bleu4_smoothed", "sacrebleu", "exact_match"}


def test_token_nll_matches_transformers_loss():
    from greenprune.models import load_model

    model, tokenizer = load_model("tiny-llama", task="perplexity")
    task = get_task("perplexity")
    example = Example(text="def add(a, b):\n    return a + b\n")
    nll, tokens = task.token_nll(model, tokenizer, [example], batch_size=1, max_length=64)
    batch = next(task.train_batches(tokenizer, [example], 1, 64))
    with torch.no_grad():
        hf = model(input_ids=batch["input_ids"], labels=batch["labels"]).loss
    assert nll / tokens == pytest.approx(float(hf), rel=1e-4)
    # padding a batch does not change the per-token NLL
    other = Example(text="x = 1\n")
    padded, padded_tokens = task.token_nll(model, tokenizer, [example, other], batch_size=2, max_length=64)
    alone, alone_tokens = task.token_nll(model, tokenizer, [other], batch_size=1, max_length=64)
    assert padded == pytest.approx(nll + alone, rel=1e-4) and padded_tokens == tokens + alone_tokens
    # the forward-free count is the one token_nll scores, per example
    assert task.scored_tokens(tokenizer, [example, other], 64) == [tokens, alone_tokens]
    prompted = Example(text="def neg(x):\n    return -x", target="Negate a number.")
    summarize = get_task("summarize")
    assert summarize.scored_tokens(tokenizer, [prompted], 64) == [summarize.token_nll(model, tokenizer, [prompted],
                                                                                      1, 64)[1]]


def test_shuffle_groups_keep_pairs_together_and_leave_unpaired_data_alone():
    from greenprune.tasks.train import shuffle_groups

    paired = [Example(text=t, label=lab, id=f) for f in ("a", "b", "c") for t, lab in (("bug", 1), ("ok", 0))]
    assert shuffle_groups(paired) == [[0, 1], [2, 3], [4, 5]]
    assert shuffle_groups([Example(text="x", id="a"), Example(text="y", id="b")]) == [[0], [1]]
    assert shuffle_groups([Example(text="x"), Example(text="y")]) == [[0], [1]]  # empty ids never group


def _varied_pairs(n: int) -> list[Example]:
    """Defect-like pairs (clean, buggy: same id, stored side by side) of lengths from one to sixty lines."""
    rng = random.Random(3)
    out = []
    for i in range(n):
        body = "".join(f"    x{j} = x{j - 1} + {rng.randint(0, 9)}\n" for j in range(1, rng.randint(1, 60)))
        out += [Example(text=f"def f{i}(x0):\n{body}    return x0\n", label=0, id=f"p{i}"),
                Example(text=f"def f{i}(x0):\n{body}    return x1\n", label=1, id=f"p{i}")]
    return out


def test_token_lengths_are_the_unpadded_widths_the_batches_carry(tiny_bert):
    from greenprune.models import load_model

    examples = _varied_pairs(6)
    for task, tokenizer in ((get_task("defect"), tiny_bert.tokenizer),
                            (get_task("perplexity"), load_model("tiny-llama", task="perplexity").tokenizer)):
        lengths = task.token_lengths(tokenizer, examples, max_length=256)
        widths = [int(n) for b in task.train_batches(tokenizer, examples, 4, 256) for n in b["attention_mask"].sum(1)]
        assert lengths == widths and max(lengths) == 256 and min(lengths) < 100  # some cut, some short
    pair = [Example(text="def a(): pass", text_pair="def b(): pass", label=1)]
    assert get_task("clone").token_lengths(tiny_bert.tokenizer, pair, 32) == [
        int(next(get_task("clone").batches(tiny_bert.tokenizer, pair, 1, 32))["attention_mask"].sum())]


def test_length_grouped_epochs_cover_every_example_keep_pairs_in_one_batch_and_pad_less(tiny_bert):
    from greenprune.tasks.train import epoch_order, shuffle_groups

    examples = _varied_pairs(200)
    groups = shuffle_groups(examples)
    lengths = get_task("defect").token_lengths(tiny_bert.tokenizer, examples, max_length=512)

    def padded(order: list[int]) -> int:  # what a batch of 16 costs: its longest member times its size
        return sum(max(lengths[i] for i in order[s:s + 16]) * len(order[s:s + 16]) for s in range(0, len(order), 16))

    grouped = epoch_order(groups, torch.Generator().manual_seed(0), 16, lengths)
    shuffled = epoch_order(groups, torch.Generator().manual_seed(0), 16)
    assert sorted(grouped) == list(range(400))  # every example once
    assert all(examples[grouped[k]].id == examples[grouped[k + 1]].id for k in range(0, 400, 2))  # pairs adjacent
    assert padded(grouped) < 0.7 * padded(shuffled)  # the point of grouping
    assert grouped == epoch_order(groups, torch.Generator().manual_seed(0), 16, lengths)  # deterministic per seed
    assert grouped != epoch_order(groups, torch.Generator().manual_seed(1), 16, lengths)
    generator = torch.Generator().manual_seed(0)
    assert epoch_order(groups, generator, 16, lengths) != epoch_order(groups, generator, 16, lengths)  # new epoch


def test_length_grouped_fine_tuning_is_repeatable_and_learns(tiny_bert, monkeypatch):
    import greenprune.tasks.train as train_module

    task = get_task("defect")
    splits = Splits(_toy_classification(64, 1), _toy_classification(16, 2), [])
    config = TrainConfig(epochs=2, lr=1e-3, batch_size=8, max_length=32, seed=5, group_by_length=True)
    seen: list[object] = []
    real = train_module.epoch_order
    monkeypatch.setattr(train_module, "epoch_order", lambda *a: seen.append(a[3]) or real(*a))
    a = task.finetune(copy.deepcopy(tiny_bert.model), tiny_bert.tokenizer, splits, config)
    assert seen == [task.token_lengths(tiny_bert.tokenizer, splits.train, 32)] * 2  # the loop orders by length
    b = task.finetune(copy.deepcopy(tiny_bert.model), tiny_bert.tokenizer, splits, config)
    assert a.history == [{**h, "seconds": a.history[i]["seconds"]} for i, h in enumerate(b.history)]
    assert a.best_metrics["accuracy"] >= 0.9


@pytest.mark.parametrize(("task_name", "option", "value"), [
    ("defect", "batch_size", 0),  # was a ZeroDivisionError in predict
    ("defect", "max_length", 0),  # was a score on inputs truncated to nothing
    ("perplexity", "max_length", -1),
])
def test_evaluate_refuses_zero_sizes(tiny_bert, task_name, option, value):
    from greenprune.errors import OptionError

    examples = _toy_classification(4, 0)
    with pytest.raises(OptionError, match=rf"{option} must be a positive integer, got {value}"):
        get_task(task_name).evaluate(tiny_bert.model, tiny_bert.tokenizer, examples, **{option: value})


def test_finetune_refuses_a_zero_max_length(tiny_bert):
    from greenprune.errors import OptionError

    splits = Splits(_toy_classification(4, 0), [], [])
    with pytest.raises(OptionError, match="max_length must be a positive integer, got 0"):
        get_task("defect").finetune(copy.deepcopy(tiny_bert.model), tiny_bert.tokenizer, splits,
                                    TrainConfig(max_length=0))
