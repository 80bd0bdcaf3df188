"""Embedded datasets: deterministic for a seed, cached, split by source file, valid mutants, balanced classes."""

from __future__ import annotations

import ast
import json

import pytest

from greenprune.tasks import TaskDataError, get_task
from greenprune.tasks.bundled import cache_path

SIZE = 60


def _files(splits, key="file"):
    return [{e.meta[key] for e in part} for part in (splits.train, splits.valid, splits.test)]


@pytest.mark.parametrize("name", ["defect", "clone", "summarize", "perplexity"])
def test_same_seed_identical_and_cached(name, tmp_path, monkeypatch):
    from greenprune._utils import cache_dir
    from greenprune.tasks.corpus import all_stdlib_functions

    all_stdlib_functions()  # the parsed stdlib is cached too; link it so the moved cache does not re-parse it
    (tmp_path / "datasets").mkdir()
    for parsed in cache_dir("datasets").glob("stdlib-functions-*.json"):
        (tmp_path / "datasets" / parsed.name).symlink_to(parsed)
    monkeypatch.setenv("GREENPRUNE_CACHE", str(tmp_path))  # the README's way to move the cache
    task = get_task(name)
    fresh = task.embedded(size=SIZE, seed=11, refresh=True)
    again = task.embedded(size=SIZE, seed=11, refresh=True)
    cached = task.embedded(size=SIZE, seed=11)
    path = cache_path(name, SIZE, 11)
    assert path.is_file() and path.parent == tmp_path / "datasets"
    for split in ("train", "valid", "test"):
        assert fresh[split] == again[split] == cached[split]
    # the next call reads that file rather than rebuilding: a marker written into it comes back
    data = json.loads(path.read_text())
    data["train"][0]["text"] = "# read from the cache"
    path.write_text(json.dumps(data))
    assert task.embedded(size=SIZE, seed=11).train[0].text == "# read from the cache"
    monkeypatch.undo()  # the other seed below comes from (and stays in) the usual cache
    assert fresh.sizes() == {"train": 48, "valid": 6, "test": 6}
    other = task.embedded(size=SIZE, seed=12)
    assert [e.text for e in other.train] != [e.text for e in fresh.train]


@pytest.mark.parametrize("name", ["defect", "clone", "summarize", "perplexity"])
def test_no_source_file_in_two_splits(name):
    splits = get_task(name).embedded(size=SIZE, seed=0)
    train, valid, test = _files(splits)
    assert not train & valid and not train & test and not valid & test
    if name == "clone":  # the partner of a negative pair comes from the same split too
        pair_files = _files(splits, "pair_file")
        assert not pair_files[0] & (valid | test) and not pair_files[2] & (train | valid)


def test_defect_mutants_parse_differ_and_are_balanced():
    splits = get_task("defect").embedded(size=200, seed=0)
    for part in (splits.train, splits.valid, splits.test):
        labels = [e.label for e in part]
        assert abs(labels.count(1) - labels.count(0)) <= 1
    operators = set()
    for e in splits.train + splits.valid + splits.test:
        ast.parse(e.text)
        if e.label == 1:
            operators.add(e.meta["operator"])
    assert len(operators) >= 5
    assert len({(e.id, e.label) for e in splits.train}) == len(splits.train)  # each function once per class
    assert len({e.id for e in splits.test}) == len(splits.test)


def test_clone_pairs_are_balanced_and_negatives_differ():
    splits = get_task("clone").embedded(size=SIZE, seed=0)
    for e in splits.train:
        ast.parse(e.text_pair)
        a, b = e.id.split("|")
        assert (a == b) == (e.label == 1)
    labels = [e.label for e in splits.train]
    assert labels.count(1) == labels.count(0)


def test_summarize_targets_are_first_sentences_and_inputs_lack_docstrings():
    splits = get_task("summarize").embedded(size=SIZE, seed=0)
    for e in splits.test:
        fn = ast.parse(e.text).body[0]
        assert ast.get_docstring(fn) is None
        assert e.target and "\n" not in e.target


def test_generate_is_humaneval():
    splits = get_task("generate").embedded()
    assert len(splits.test) == 164 and splits.test[0].id == "HumanEval/0"


def test_too_small_or_too_large_sizes_fail_clearly():
    with pytest.raises(TaskDataError, match=r"size >= 3"):
        get_task("defect").embedded(size=2)
    with pytest.raises(TaskDataError, match=r"use a smaller size|yields only"):
        get_task("defect").embedded(size=10**6, seed=0)


def test_cache_file_is_plain_json():
    get_task("perplexity").embedded(size=SIZE, seed=0)
    data = json.loads(cache_path("perplexity", SIZE, 0).read_text())
    assert set(data) >= {"train", "valid", "test"}
