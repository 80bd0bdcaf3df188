"""The one checkpoint writer never destroys what it did not write, and the load check refuses unfinished folders."""

from __future__ import annotations

import json
import logging
import os
import stat
import subprocess
import sys
import textwrap

import pytest

from greenprune import checkpoint
from greenprune.checkpoint import (
    IN_PROGRESS,
    MARKER,
    CheckpointError,
    OutputError,
    check_checkpoint_folder,
    check_output_target,
    write_checkpoint,
)


def _save(target, text="x", **kwargs):
    with write_checkpoint(target, "dense", **kwargs) as tmp:
        (tmp / "model.safetensors").write_text(text)
        (tmp / "config.json").write_text("{}")


def test_a_failed_save_leaves_neither_target_nor_temporary(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(RuntimeError), write_checkpoint(target, "dense") as tmp:
        (tmp / "half.bin").write_text("x")
        raise RuntimeError("boom")
    assert not target.exists()
    assert list(tmp_path.iterdir()) == []
    with write_checkpoint(target, "dense") as tmp:
        (tmp / "whole.bin").write_text("x")
    assert (target / "whole.bin").read_text() == "x"


def test_marker_records_kind_files_and_version_and_folder_is_readable(tmp_path):
    _save(tmp_path / "out", "abc")
    info = json.loads((tmp_path / "out" / MARKER).read_text())
    assert info["kind"] == "dense" and info["weights"] == "dense" and info["greenprune"]
    assert info["files"] == {"config.json": 2, "model.safetensors": 3}
    assert not (tmp_path / "out" / IN_PROGRESS).exists()
    mask = os.umask(0)
    os.umask(mask)
    assert stat.S_IMODE((tmp_path / "out").stat().st_mode) == 0o777 & ~mask  # not mkdtemp's 0700
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_refuses_current_folder_its_parents_root_and_home(tmp_path, monkeypatch):
    work = tmp_path / "a" / "b"
    work.mkdir(parents=True)
    (work / "mine.txt").write_text("keep")
    monkeypatch.chdir(work)
    for bad, why in ((".", "current folder"), ("..", "parent of the current folder"),
                     (str(tmp_path), "parent of the current folder"), ("/", "parent of the current folder")):
        with pytest.raises(OutputError, match=why):
            _save(bad)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    with pytest.raises(OutputError, match="refusing to write a model over"):
        _save(home)
    assert (work / "mine.txt").read_text() == "keep"
    assert sorted(p.name for p in work.iterdir()) == ["mine.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a", "home"]


def test_refuses_a_folder_of_user_files_and_a_file(tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    (user / "thesis.tex").write_text("years of work")
    with pytest.raises(OutputError, match=r"did not write \(thesis.tex\)"):
        _save(user, overwrite=True)  # --overwrite only ever replaces greenprune's own output
    assert sorted(p.name for p in user.iterdir()) == ["thesis.tex"]
    (tmp_path / "file").write_text("data")
    with pytest.raises(OutputError, match="is a file"):
        _save(tmp_path / "file")
    assert (tmp_path / "file").read_text() == "data"
    link = tmp_path / "link"
    link.symlink_to(user)
    with pytest.raises(OutputError, match="symbolic link"):
        _save(link)
    empty = tmp_path / "empty"
    empty.mkdir()
    _save(empty)  # an empty folder is fine
    assert (empty / MARKER).is_file()


@pytest.mark.parametrize("exchange", [True, False])
def test_previous_output_replaced_only_with_overwrite(tmp_path, monkeypatch, exchange):
    if not exchange:
        monkeypatch.setattr(checkpoint, "_exchange", lambda a, b: False)  # the rename-aside fallback
    target = tmp_path / "out"
    with write_checkpoint(target, "dense") as tmp:
        (tmp / "model.safetensors").write_text("old")
        (tmp / "stale.txt").write_text("only in the old output")
    with pytest.raises(OutputError, match=r"already holds a dense checkpoint.*--overwrite"):
        _save(target, "new")
    assert (target / "model.safetensors").read_text() == "old"
    _save(target, "new", overwrite=True)
    assert (target / "model.safetensors").read_text() == "new"
    assert not (target / "stale.txt").exists()  # replaced whole, not mixed
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # the old copy is gone, nothing left aside


def test_commit_rechecks_the_target(tmp_path):
    target = tmp_path / "out"
    with pytest.raises(OutputError, match="did not write"), write_checkpoint(target, "dense") as tmp:
        (tmp / "model.safetensors").write_text("x")
        target.mkdir()
        (target / "theirs.txt").write_text("appeared meanwhile")
    assert sorted(p.name for p in target.iterdir()) == ["theirs.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]


def test_a_save_of_both_weight_formats_is_refused(tmp_path):
    with pytest.raises(CheckpointError, match="both"), write_checkpoint(tmp_path / "out", "compact") as tmp:
        (tmp / "model.safetensors").write_text("x")
        (tmp / "model.sparse.safetensors").write_text("x")
    assert list(tmp_path.iterdir()) == []


KILLED_SAVE = textwrap.dedent("""
    import os, signal, sys
    from greenprune.checkpoint import write_checkpoint
    with write_checkpoint(sys.argv[1], "dense") as tmp:
        (tmp / "config.json").write_text("{}")
        (tmp / "model.safetensors").write_bytes(b"half")
        os.kill(os.getpid(), signal.SIGKILL)
""")


def test_a_save_killed_midway_is_refused_on_load_and_swept_by_the_next_save(tmp_path, caplog):
    target = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-c", KILLED_SAVE, str(target)], capture_output=True, text=True)
    assert proc.returncode == -9, proc.stderr
    assert not target.exists()
    (left,) = tmp_path.iterdir()
    assert left.name.startswith(".out.") and left.name.endswith(".tmp") and (left / IN_PROGRESS).is_file()
    with pytest.raises(CheckpointError, match=f"{left}: an unfinished greenprune save"):
        check_checkpoint_folder(left)
    # a complete checkpoint left aside by an interrupted replace, and a stranger's folder: reported, kept
    aside = tmp_path / ".out.aside.tmp"
    aside.mkdir()
    (aside / MARKER).write_text("{}")
    foreign = tmp_path / ".out.foreign.tmp"
    foreign.mkdir()
    with caplog.at_level(logging.WARNING, logger="greenprune.checkpoint"):
        _save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == [".out.aside.tmp", ".out.foreign.tmp", "out"]
    assert "removed the unfinished save" in caplog.text and "interrupted replace" in caplog.text
    check_checkpoint_folder(target)


def test_a_live_save_is_not_swept(tmp_path):
    live = tmp_path / ".out.live.tmp"
    live.mkdir()
    import socket

    (live / IN_PROGRESS).write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
    assert checkpoint.sweep_leftovers(tmp_path / "out") == []
    assert live.is_dir()


def test_load_check_refuses_mixed_and_unfinished_and_cut_folders(tmp_path):
    mixed = tmp_path / "mixed"
    mixed.mkdir()
    (mixed / "model.safetensors").write_text("x")
    (mixed / "model.sparse.safetensors").write_text("x")
    with pytest.raises(CheckpointError, match=r"mixed: holds both dense .*model\.safetensors.*compact"):
        check_checkpoint_folder(mixed)
    ours = tmp_path / "ours"
    ours.mkdir()
    (ours / "config.json").write_text("{}")
    (ours / "model.sparse.safetensors").write_text("x")
    with pytest.raises(CheckpointError, match=r"no greenprune-checkpoint\.json completion marker"):
        check_checkpoint_folder(ours)
    cut = tmp_path / "cut"
    _save(cut, "0123456789")
    (cut / "model.safetensors").write_text("01234")
    with pytest.raises(CheckpointError, match="5 bytes, but the save wrote 10"):
        check_checkpoint_folder(cut)
    (cut / "model.safetensors").unlink()
    with pytest.raises(CheckpointError, match=r"model\.safetensors is missing"):
        check_checkpoint_folder(cut)
    plain = tmp_path / "plain"  # an HF folder another tool wrote: no marker, loads as before
    plain.mkdir()
    (plain / "config.json").write_text("{}")
    (plain / "model.safetensors").write_text("x")
    check_checkpoint_folder(plain)


def test_load_model_and_load_sparse_refuse_bad_folders(tmp_path):
    from greenprune.models import load_model
    from greenprune.weights.sparse_io import load_sparse, save_sparse

    loaded = load_model("tiny-bert", task="classification")
    folder = tmp_path / "compact"
    save_sparse(loaded.model, folder, loaded.tokenizer)
    load_sparse(folder)
    with pytest.raises(OutputError, match="already holds a compact checkpoint"):
        save_sparse(loaded.model, folder, loaded.tokenizer)
    save_sparse(loaded.model, folder, loaded.tokenizer, overwrite=True)
    (folder / "model.safetensors").write_text("a dense copy dropped in by hand")
    with pytest.raises(CheckpointError, match="both dense"):
        load_sparse(folder)
    with pytest.raises(CheckpointError, match="both dense"):
        load_model(folder)
    dense = tmp_path / "dense"
    checkpoint.save_hf(loaded.model, loaded.tokenizer, dense)
    assert load_model(dense, task="classification").model is not None
    (dense / IN_PROGRESS).write_text("{}")  # what a save killed before its rename leaves
    with pytest.raises(CheckpointError, match="unfinished greenprune save"):
        load_model(dense, task="classification")


def test_output_target_returns_resolved_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert check_output_target("new") == tmp_path.resolve() / "new"


def test_record_writer_never_replaces_silently(tmp_path):
    from greenprune.measure.records import ResultRecord, load_json, save_json

    path = tmp_path / "r.json"
    save_json(ResultRecord(model="a", method="m"), path, overwrite=False)
    with pytest.raises(OutputError, match="pass --overwrite"):
        save_json(ResultRecord(model="b", method="m"), path, overwrite=False)
    assert load_json(path).model == "a"
    fresh = save_json(ResultRecord(model="c", method="m"), path, overwrite=False, fresh=True)
    assert fresh.name == "r-2.json" and load_json(path).model == "a" and load_json(fresh).model == "c"
    save_json(ResultRecord(model="d", method="m"), path, overwrite=True)
    assert load_json(path).model == "d"
    with pytest.raises(OutputError, match="is a folder"):
        save_json(ResultRecord(model="e", method="m"), tmp_path, overwrite=True)
