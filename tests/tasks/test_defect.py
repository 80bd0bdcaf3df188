"""Embedded defect data: every example fits the token budget (so the bug is seen), train is paired, no leaks."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from greenprune.tasks import TaskDataError, get_task
from greenprune.tasks.corpus import CodeFunction
from greenprune.tasks.defect import MAX_CODE_TOKENS, build_defect_split, code_tokens
from greenprune.tasks.mutate import mutate, normalise

SIZE = 80


@pytest.fixture(scope="module")
def splits():
    return get_task("defect").embedded(size=SIZE, seed=3)


def _fn(name: str, body_lines: int, file: str = "m.py") -> CodeFunction:
    body = "\n".join(f"    x = x + {i}" for i in range(body_lines))
    source = f"def {name}(x, y):\n{body}\n    return x < y\n"
    return CodeFunction(source, name, name, None, f"def {name}(x, y):", body, file, 1)


def test_code_tokens_split_identifiers_numbers_and_punctuation():
    assert code_tokens("def f_1(x): return x[10] != 2") == len(
        ["def", "f", "_", "1", "(", "x", ")", ":", "return", "x", "[", "10", "]", "!", "=", "2"])


def test_every_example_fits_the_budget_and_is_normalised(splits):
    for e in splits.train + splits.valid + splits.test:
        assert code_tokens(e.text) <= MAX_CODE_TOKENS
        assert normalise(e.text) == e.text  # both classes printed by ast.unparse: no formatting cue


def test_budget_keeps_the_bug_within_128_minilm_word_pieces(splits):
    try:
        from transformers import AutoTokenizer

        from greenprune.models.bundled import minilm_dir

        tokenizer = AutoTokenizer.from_pretrained(minilm_dir())
    except Exception as exc:  # pragma: no cover - the embedded model package is a dependency
        pytest.skip(f"MiniLM tokenizer unavailable: {exc}")
    for e in splits.train + splits.valid + splits.test:
        assert len(tokenizer(e.text)["input_ids"]) <= 128, e.id


def test_train_is_paired_and_held_out_splits_are_not(splits):
    by_id: dict[str, list] = {}
    for e in splits.train:
        by_id.setdefault(e.id, []).append(e)
    assert len(by_id) == len(splits.train) // 2
    for pair in by_id.values():
        buggy, clean = sorted(pair, key=lambda e: -e.label)
        assert (buggy.label, clean.label) == (1, 0)
        assert buggy.meta["file"] == clean.meta["file"] and buggy.text != clean.text
        assert buggy.meta["operator"] and buggy.meta["line"] >= 1
    for part in (splits.valid, splits.test):
        assert len({e.id for e in part}) == len(part)  # independent functions
        labels = Counter(e.label for e in part)
        assert abs(labels[1] - labels[0]) <= 1


def test_untouched_examples_come_from_mutable_functions_too(splits):
    # otherwise "has no mutation site" would be a cue for the clean class
    for e in splits.valid + splits.test:
        if e.label == 0:
            assert mutate(e.text, random.Random(0)) is not None


def test_build_skips_functions_over_the_budget():
    functions = [_fn("long", 40), _fn("short_a", 2), _fn("short_b", 3), _fn("short_c", 2, "n.py")]
    out = build_defect_split(functions, 4, random.Random(0), "train", paired=True, max_tokens=60)
    assert {e.id.split("::")[1] for e in out} == {"short_a", "short_b"}
    assert [e.label for e in out] == [1, 0, 1, 0]
    everything = build_defect_split(functions, 2, random.Random(0), "train", paired=True, max_tokens=None)
    assert everything[0].id.endswith("long")
    with pytest.raises(TaskDataError, match=r"yields only 6 examples from 3 usable functions"):
        build_defect_split(functions, 8, random.Random(0), "train", paired=True, max_tokens=60)


def test_same_seed_same_pairs():
    a = get_task("defect").embedded(size=30, seed=5, refresh=True)
    b = get_task("defect").embedded(size=30, seed=5, refresh=True)
    assert a.train == b.train and a.test == b.test
