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


def _devign_dir(folder: Path, train: bytes, test: bytes | None = None) -> Path:
    good = b'{"func": "int f();", "target": 0}\n'
    for split, data in (("train", train), ("valid", good), ("test", good if test is None else test)):
        (folder / f"{split}.jsonl").write_bytes(data)
    return folder


def test_non_utf8_row_names_file_line_and_byte_offset(tmp_path):
    _devign_dir(tmp_path, b'{"func": "int f();", "target": 0}\n{"func": "int g(\xff);", "target": 1}\n')
    with pytest.raises(TaskDataError, match=r"train\.jsonl:2: not valid UTF-8: byte 0xff at byte offset 50 "
                                            r"\(column 17 of the line\)"):
        get_task("defect").load(tmp_path)


def test_non_utf8_gzipped_mbpp_names_line_and_offset(tmp_path):
    import gzip

    path = tmp_path / "mbpp.jsonl.gz"
    path.write_bytes(gzip.compress(b'{"task_id": 11, "text": "caf\xe9", "code": "", "test_list": []}\n'))
    with pytest.raises(TaskDataError, match=r"mbpp\.jsonl\.gz:1: not valid UTF-8: byte 0xe9 at byte offset 28 of "
                                            r"the decompressed data"):
        get_task("generate").load(path)


def test_code_to_text_tokens_must_be_strings(tmp_path):
    good = '{"code": "def f(): pass", "docstring": "Do f."}\n'
    for split in ("train", "valid", "test"):
        (tmp_path / f"{split}.jsonl").write_text(good)
    (tmp_path / "valid.jsonl").write_text(good + '{"code_tokens": ["def", 1, "f"], "docstring": "Do f."}\n')
    with pytest.raises(TaskDataError, match=r"valid\.jsonl:2: field 'code_tokens' should be a list of strings, "
                                            r"item 1 is int \(1\)"):
        get_task("summarize").load(tmp_path)
    (tmp_path / "valid.jsonl").write_text('{"code": "def f(): pass", "docstring_tokens": ["Do", null]}\n')
    with pytest.raises(TaskDataError, match=r"valid\.jsonl:1: field 'docstring_tokens' .* item 1 is NoneType"):
        get_task("summarize").load(tmp_path)


@pytest.mark.parametrize("task_id", ['"abc"', "-3", "1.5", "true", '{"n": 1}'])
def test_mbpp_bad_task_id_names_file_and_line(tmp_path, task_id):
    path = tmp_path / "mbpp.jsonl"
    row = '{"task_id": %s, "text": "t", "code": "def f(): pass", "test_list": ["assert f() is None"]}\n'
    path.write_text(row % 12 + row % task_id)
    with pytest.raises(TaskDataError, match=r"mbpp\.jsonl:2: MBPP task_id must be a non-negative integer"):
        get_task("generate").load(path)


def test_mbpp_digit_string_task_id_is_a_number(tmp_path):
    path = tmp_path / "mbpp.jsonl"
    path.write_text('{"task_id": "700", "text": "t", "code": "def f(): pass", "test_list": ["assert f() is None"]}\n')
    splits = get_task("generate").load(path)
    assert [e.meta["task_id"] for e in splits.train] == [700] and splits.train[0].id == "MBPP/700"


def test_empty_test_split_names_the_file(tmp_path):
    splits = get_task("defect").load(_devign_dir(tmp_path, b'{"func": "int f();", "target": 0}\n', test=b"\n"))
    assert splits.nonempty("train") == splits.train
    with pytest.raises(TaskDataError, match=r"the test split is empty: .*test\.jsonl has no rows \(examples per "
                                            r"split: train 1, valid 1, test 0\)"):
        splits.nonempty("test")


def test_mbpp_without_test_range_problems_says_how_mbpp_splits(tmp_path):
    path = tmp_path / "mbpp.jsonl"
    path.write_text('{"task_id": 700, "text": "t", "code": "def f(): pass", "test_list": ["assert f() is None"]}\n')
    with pytest.raises(TaskDataError, match=r"test split is empty: .*mbpp\.jsonl has none .*MBPP is split by "
                                            r"task_id: test 11-510"):
        get_task("generate").load(path).nonempty("test")


def test_bigclonebench_duplicate_idx_names_both_lines(tmp_path):
    fixture = (FIX / "bigclonebench").iterdir()
    for f in fixture:
        (tmp_path / f.name).write_bytes(f.read_bytes())
    with open(tmp_path / "data.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"func": "int other() { return 0; }", "idx": 102}\n')  # int 102 is the string "102" of line 2
    with pytest.raises(TaskDataError, match=r"data\.jsonl:\d+: duplicate idx 102 \(already defined at line 2\)"):
        get_task("clone").load(tmp_path)


def test_bigclonebench_pair_file_non_utf8(tmp_path):
    for f in (FIX / "bigclonebench").iterdir():
        (tmp_path / f.name).write_bytes(f.read_bytes())
    (tmp_path / "valid.txt").write_bytes(b"101\t102\t1\n101\t\xfe102\t0\n")
    with pytest.raises(TaskDataError, match=r"valid\.txt:2: not valid UTF-8: byte 0xfe at byte offset 14"):
        get_task("clone").load(tmp_path)
