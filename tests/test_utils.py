from __future__ import annotations

import os
import stat

import pytest

from greenprune._utils import atomic_write_text


def test_atomic_write_replaces_and_uses_ordinary_permissions(tmp_path):
    target = tmp_path / "sub" / "a.txt"
    atomic_write_text(target, "one")
    atomic_write_text(target, "two")
    assert target.read_text() == "two"
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~mask
    assert [p.name for p in target.parent.iterdir()] == ["a.txt"]  # no temporary left behind


def test_atomic_write_without_overwrite_keeps_the_existing_file(tmp_path):
    target = tmp_path / "a.txt"
    atomic_write_text(target, "one", overwrite=False)
    with pytest.raises(FileExistsError):
        atomic_write_text(target, "two", overwrite=False)
    assert target.read_text() == "one"
    assert [p.name for p in tmp_path.iterdir()] == ["a.txt"]


def test_non_utf8_jsonl_names_file_line_and_byte_offset(tmp_path):
    from greenprune._utils import read_jsonl

    path = tmp_path / "rows.jsonl"
    path.write_bytes(b'{"a": 1}\n{"a": "caf\xe9"}\n')
    with pytest.raises(KeyError) as info:  # each area's own error type, like bad JSON
        list(read_jsonl(path, KeyError))
    message = info.value.args[0]
    assert f"{path}:2: not valid UTF-8: byte 0xe9 at byte offset 19 " in message  # 9 bytes of line 1 + 10
    assert "(column 11 of the line)" in message


def test_non_utf8_gzip_reports_the_offset_in_the_decompressed_data(tmp_path):
    import gzip

    from greenprune._utils import read_jsonl

    path = tmp_path / "rows.jsonl.gz"
    path.write_bytes(gzip.compress(b'\n{"a": "\xff"}\n'))
    with pytest.raises(ValueError, match=r"rows\.jsonl\.gz:2: not valid UTF-8: byte 0xff at byte offset 8 of the "
                                         r"decompressed data"):
        list(read_jsonl(path))
    path.write_bytes(b"not gzip at all")
    with pytest.raises(ValueError, match=r"rows\.jsonl\.gz: not a readable gzip file"):
        list(read_jsonl(path))


def test_text_lines_drop_a_leading_bom(tmp_path):
    from greenprune._utils import read_jsonl, read_text_lines

    path = tmp_path / "bom.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\n')
    assert list(read_jsonl(path)) == [(1, {"a": 1})]
    assert list(read_text_lines(path)) == ['{"a": 1}\n']
