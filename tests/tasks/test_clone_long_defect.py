"""Issue 16 data: BigCloneBench-like clone pairs with same-module hard negatives, and Devign-like long defects."""

from __future__ import annotations

import ast
import random

import pytest

from greenprune.tasks import get_task
from greenprune.tasks.clone import MAX_SIDE_TOKENS, build_clone_split, canonical_form, hard_negative, name_parts
from greenprune.tasks.clone import _candidates as clone_candidates
from greenprune.tasks.corpus import CodeFunction, all_stdlib_functions, code_tokens, length_distribution
from greenprune.tasks.defect import build_long_defect_split, lognormal_bin_mass

SIZE = 120


@pytest.fixture(scope="module")
def clone():
    return get_task("clone").embedded(size=SIZE, seed=5, refresh=True)


@pytest.fixture(scope="module")
def stdlib_sources() -> dict[str, str]:
    return {f"{f.file}::{f.qualname}": f.source for f in all_stdlib_functions()}


def _fn(name: str, source: str, file: str = "m.py") -> CodeFunction:
    return CodeFunction(source, name, name, None, "", "", file, 1)


def test_clone_builder_is_deterministic_per_seed(clone):
    again = get_task("clone").embedded(size=SIZE, seed=5, refresh=True)
    assert [(e.text, e.text_pair, e.label) for e in clone.test] == [(e.text, e.text_pair, e.label) for e in again.test]
    other = get_task("clone").embedded(size=SIZE, seed=6, refresh=True)
    assert [e.text_pair for e in other.train] != [e.text_pair for e in clone.train]


def test_clone_no_file_crosses_splits_and_negatives_come_from_the_same_module(clone):
    files = [{e.meta["file"] for e in part} | {e.meta["pair_file"] for e in part}
             for part in (clone.train, clone.valid, clone.test)]
    assert not files[0] & files[1] and not files[0] & files[2] and not files[1] & files[2]
    for e in clone.train + clone.valid + clone.test:
        assert e.meta["pair_file"] == e.meta["file"]


def test_clone_has_balanced_twins_and_hard_negatives(clone):
    kinds = [e.meta["kind"] for e in clone.train]
    assert sum(k.startswith("twin") for k in kinds) == sum(k.startswith("hard-negative") for k in kinds)
    assert {"hard-negative:name", "hard-negative:length"} <= set(kinds)
    for e in clone.train:
        ast.parse(e.text_pair)
        assert code_tokens(e.text) <= MAX_SIDE_TOKENS and code_tokens(e.text_pair) <= MAX_SIDE_TOKENS
        a, b = e.id.split("|")
        assert (a == b) == (e.label == 1) == e.meta["kind"].startswith("twin")


def test_a_negative_pair_is_never_a_twin(clone, stdlib_sources):
    for e in clone.train + clone.valid + clone.test:
        if e.label == 0:
            a, b = e.id.split("|")
            assert a != b
            assert canonical_form(stdlib_sources[a]) != canonical_form(stdlib_sources[b])


def test_canonical_twins_are_excluded_from_hard_negatives():
    anchor = _fn("read_header", "def read_header(f):\n    data = f.read(4)\n    return data[0] + 1\n")
    renamed = _fn("read_footer", "def read_footer(stream):\n    chunk = stream.read(4)\n    return chunk[0] + 1\n")
    different = _fn("read_trailer", "def read_trailer(f):\n    return f.read(8)[::-1]\n")
    assert canonical_form(anchor.source) == canonical_form(renamed.source)
    assert canonical_form(anchor.source) != canonical_form(different.source)
    pool = clone_candidates([anchor, renamed, different], MAX_SIDE_TOKENS)
    for seed in range(20):
        other, _ = hard_negative(pool[0], pool, random.Random(seed))
        assert other.fn.name == "read_trailer"
    only_twin = clone_candidates([anchor, renamed], MAX_SIDE_TOKENS)
    assert hard_negative(only_twin[0], only_twin, random.Random(0)) is None


def test_hard_negatives_prefer_shared_name_words_or_close_length():
    assert name_parts("_readHeaderBytes") == {"read", "header", "bytes"}
    src = "def {}(x):\n" + "    x = x + 1\n" * 3 + "    return x\n"
    functions = [_fn("parse_header", src.format("parse_header")),
                 _fn("parse_footer", src.format("parse_footer").replace("+ 1", "- 2")),
                 _fn("unrelated", "def unrelated(y):\n" + "    y = [y, y]\n" * 30 + "    return y\n")]
    pool = clone_candidates(functions, MAX_SIDE_TOKENS)
    picks = {hard_negative(pool[0], pool, random.Random(s))[0].fn.name for s in range(20)}
    assert picks == {"parse_footer"}  # the same-name-word and the close-length choice agree here


def test_clone_split_too_small_names_the_split():
    with pytest.raises(Exception, match="test split yields only"):
        build_clone_split([_fn("f", "def f(x):\n    return x < 1\n")], 2, random.Random(0), "test")


def test_lognormal_bins_follow_median_and_p90():
    edges = [1.0, 155.0, 600.0, 1e9]
    mass = lognormal_bin_mass(edges, 155, 600)
    assert mass[0] == pytest.approx(0.5, abs=1e-3) and mass[2] == pytest.approx(0.1, abs=1e-3)


@pytest.fixture(scope="module")
def long_defect():
    return get_task("defect").embedded_long(size=300, seed=2, refresh=True)


def test_long_defect_is_deterministic_split_by_file_and_long(long_defect):
    again = get_task("defect").embedded_long(size=300, seed=2, refresh=True)
    assert [e.text for e in again.test] == [e.text for e in long_defect.test]
    files = [{e.meta["file"] for e in part} for part in (long_defect.train, long_defect.valid, long_defect.test)]
    assert not files[0] & files[1] and not files[0] & files[2] and not files[1] & files[2]
    dist = length_distribution(long_defect.train)
    assert dist["unit"] == "code tokens" and dist["n"] == 240
    assert 120 <= dist["median"] <= 200 and dist["p90"] >= 400  # Devign-like: median ~155, p90 ~600 code tokens
    short = get_task("defect").embedded(size=300, seed=2)
    assert length_distribution(short.train)["median"] < dist["median"] / 2
    labels = [e.label for e in long_defect.test]
    assert abs(labels.count(0) - labels.count(1)) <= 1
    assert len({e.id for e in long_defect.test}) == len(long_defect.test)


def test_long_defect_train_is_paired(long_defect):
    for clean_or_bug, other in zip(long_defect.train[::2], long_defect.train[1::2], strict=True):
        assert clean_or_bug.id == other.id and {clean_or_bug.label, other.label} == {0, 1}


def test_build_long_defect_split_fills_short_bins_from_neighbours():
    body = "\n".join(f"    x = x + {i}" for i in range(30))
    functions = [_fn(f"f{i}", f"def f{i}(x, y):\n{body}\n    return x < y\n", file=f"m{i}.py") for i in range(12)]
    out = build_long_defect_split(functions, 6, random.Random(0), "test")
    assert len(out) == 6 and {e.label for e in out} == {0, 1}
    with pytest.raises(Exception, match="yields only"):
        build_long_defect_split(functions, 20, random.Random(0), "test")


def test_length_distribution_counts_word_pieces_of_both_sides(clone):
    class Words:
        def __call__(self, text, add_special_tokens=False):
            return {"input_ids": text.split()}

    e = clone.test[0]
    dist = length_distribution([e], Words())
    assert dist["unit"] == "word pieces" and dist["median"] == len(e.text.split()) + len(e.text_pair.split())
    with pytest.raises(ValueError):
        length_distribution([])
