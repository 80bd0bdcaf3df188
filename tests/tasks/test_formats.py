"""Official formats: fixtures load; malformed rows name file and line; missing splits name the file expected."""

from __future__ import annotations

from pathlib import Path

import pytest

from greenprune.errors import GreenpruneError
from greenprune.tasks import TaskDataError, get_task

FIX = Path(__file__).parent / "fixtures"


def test_devign_loads_every_split():
    splits = get_task("defect").load(FIX / "devign")
    assert splits.sizes() == {"train": 4, "valid": 4, "test": 4}
    assert [e.label for e in splits.train] == [0, 1, 0, 1]
    assert splits.test[1].text.startswith("static void copy_buf")
    assert splits.valid[0].id == "10"


def test_devign_malformed_row_names_file_and_line():
    with pytest.raises(TaskDataError, match=r"devign_bad/train\.jsonl:2: missing field 'target'"):
        get_task("defect").load(FIX / "devign_bad")


def test_devign_bad_json_names_line(tmp_path):
    for split in ("train", "valid", "test"):
        (tmp_path / f"{split}.jsonl").write_text('{"func": "int f();", "target": 0}\n\n{"func": oops}\n')
    with pytest.raises(GreenpruneError, match=r"train\.jsonl:3: not valid JSON"):
        get_task("defect").load(tmp_path)


def test_devign_missing_split_names_expected_file():
    with pytest.raises(TaskDataError, match=r"expected .*devign_missing/valid\.jsonl"):
        get_task("defect").load(FIX / "devign_missing")


def test_bigclonebench_pairs():
    splits = get_task("clone").load(FIX / "bigclonebench")
    assert splits.sizes() == {"train": 3, "valid": 2, "test": 2}
    first = splits.train[0]
    assert first.label == 1 and "add(int a" in first.text and "plus(int x" in first.text_pair


def test_bigclonebench_unknown_idx_and_bad_label(tmp_path):
    (tmp_path / "data.jsonl").write_text((FIX / "bigclonebench" / "data.jsonl").read_text())
    (tmp_path / "train.txt").write_text("101\t102\t1\n101\t999\t0\n")
    (tmp_path / "valid.txt").write_text("101\t102\t2\n")
    (tmp_path / "test.txt").write_text("101 102\n")
    with pytest.raises(TaskDataError, match=r"train\.txt:2: idx 999 is not in"):
        get_task("clone").load(tmp_path)
    (tmp_path / "train.txt").write_text("101\t102\t1\n")
    with pytest.raises(TaskDataError, match=r"valid\.txt:1: label must be 0 or 1"):
        get_task("clone").load(tmp_path)
    (tmp_path / "valid.txt").write_text("101\t102\t1\n")
    with pytest.raises(TaskDataError, match=r"test\.txt:1: expected 'idx1 idx2 label'"):
        get_task("clone").load(tmp_path)
    (tmp_path / "test.txt").unlink()
    with pytest.raises(TaskDataError, match=r"expected .*test\.txt"):
        get_task("clone").load(tmp_path)


def test_code_to_text_tokens_and_strings():
    splits = get_task("summarize").load(FIX / "code_to_text")
    assert splits.train[0].target == "Area of a circle ."  # docstring_tokens joined, as CodeXGLUE does
    assert splits.valid[0].target == "Add one to x."  # first sentence of a raw docstring
    assert splits.test[1].text.startswith("def sq")


def test_humaneval_and_mbpp_files():
    he = get_task("generate").load(FIX / "humaneval.jsonl")
    assert [e.id for e in he.test] == ["Fixture/0", "Fixture/1"]
    assert he.test[0].meta["entry_point"] == "add"
    mbpp = get_task("generate").load(FIX / "mbpp.jsonl")
    assert [e.meta["task_id"] for e in mbpp.test] == [11, 12]
    assert [e.meta["task_id"] for e in mbpp.valid] == [520]
    assert [e.meta["task_id"] for e in mbpp.train] == [700]
    assert "reverse a string" in mbpp.test[0].text and "assert rev('ab')" in mbpp.test[0].meta["test"]


def test_humaneval_missing_field(tmp_path):
    bad = tmp_path / "he.jsonl"
    bad.write_text('{"task_id": "x/0", "prompt": "def f():\\n", "canonical_solution": "  pass\\n", "test": ""}\n')
    with pytest.raises(TaskDataError, match=r"he\.jsonl:1: missing field 'entry_point'"):
        get_task("generate").load(bad)


def test_missing_folder():
    with pytest.raises(TaskDataError, match="no such folder"):
        get_task("defect").load(FIX / "nope")


@pytest.mark.parametrize(("task", "dataset_id"), [
    ("defect", "google/code_x_glue_cc_defect_detection"),
    ("clone", "google/code_x_glue_cc_clone_detection_big_clone_bench"),
    ("summarize", "google/code_x_glue_ct_code_to_text"),
    ("generate", "openai/openai_humaneval"),
])
def test_hub_ids_fail_clearly_offline(task, dataset_id):
    with pytest.raises(TaskDataError, match=dataset_id):
        get_task(task).load(dataset_id)
