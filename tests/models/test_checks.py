"""Loads refuse what they cannot trust: pickles, broken safetensors, missing tokenizers, junk GGUF, LM tasks on
encoders; each is one ModelLoadError naming the file (or model type and task)."""

from __future__ import annotations

import json
import struct

import pytest
import torch
from typer.testing import CliRunner

from greenprune.cli import app
from greenprune.models import ModelLoadError, load_model


@pytest.fixture(scope="module")
def tiny_bert():
    return load_model("tiny-bert")


@pytest.fixture
def no_unpickling(monkeypatch):
    """Fail the test if anything unpickles a checkpoint."""

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load was called on a checkpoint")

    monkeypatch.setattr(torch, "load", refuse)


def _save(loaded, folder, tokenizer=True, **kwargs):
    loaded.model.save_pretrained(folder, **kwargs)
    if tokenizer:
        loaded.tokenizer.save_pretrained(folder)
    return folder


def _pickle_folder(loaded, folder, weights="pytorch_model.bin"):
    """config + tokenizer + a pickle state dict: written with torch.save, never read back."""
    folder.mkdir(parents=True, exist_ok=True)
    loaded.model.config.save_pretrained(folder)
    loaded.tokenizer.save_pretrained(folder)
    torch.save(loaded.model.state_dict(), folder / weights)
    return folder


@pytest.mark.parametrize("weights", ["pytorch_model.bin", "model.pt", "weights.ckpt"])
def test_pickle_only_folder_refused_with_how_to_convert(tiny_bert, tmp_path, no_unpickling, weights):
    folder = _pickle_folder(tiny_bert, tmp_path / "pickle", weights)
    with pytest.raises(ModelLoadError) as info:
        load_model(folder)
    message = str(info.value)
    assert str(folder / weights) in message
    assert "safetensors only" in message and "save_pretrained" in message


def test_safetensors_preferred_over_a_pickle_beside_it(tiny_bert, tmp_path, no_unpickling):
    folder = _save(tiny_bert, tmp_path / "both")
    torch.save({"junk": torch.zeros(1)}, folder / "pytorch_model.bin")
    again = load_model(folder)
    assert torch.equal(again.model.bert.embeddings.word_embeddings.weight,
                       tiny_bert.model.bert.embeddings.word_embeddings.weight)


def test_config_naming_a_pickle_weights_file_refused(tiny_bert, tmp_path, no_unpickling):
    folder = _save(tiny_bert, tmp_path / "named")
    torch.save(tiny_bert.model.state_dict(), folder / "adapter_model.bin")
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "transformers_weights": "adapter_model.bin"}))
    with pytest.raises(ModelLoadError, match=r"transformers_weights names 'adapter_model\.bin'"):
        load_model(folder)


def test_hub_id_with_only_pickle_weights_refused(tiny_bert, tmp_path, monkeypatch, no_unpickling):
    """A cached hub repo holding only pytorch_model.bin: use_safetensors=True, so no pickle fallback online either."""
    import huggingface_hub.constants

    commit = "0" * 40
    repo = tmp_path / "hub" / "models--acme--tiny-bert"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    _pickle_folder(tiny_bert, repo / "snapshots" / commit)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as info:
        load_model("acme/tiny-bert")
    message = str(info.value)
    assert message.startswith("acme/tiny-bert:") and "safetensors" in message and "save_pretrained" in message


@pytest.mark.parametrize("keep", [4, 100, "half", -10])
def test_truncated_safetensors_named(tiny_bert, tmp_path, keep):
    folder = _save(tiny_bert, tmp_path / "trunc")
    weights = folder / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2 if keep == "half" else keep])
    with pytest.raises(ModelLoadError) as info:
        load_model(folder)
    assert str(weights) in str(info.value) and "truncated or corrupt" in str(info.value)


def test_corrupt_safetensors_header_named(tiny_bert, tmp_path):
    folder = _save(tiny_bert, tmp_path / "corrupt")
    weights = folder / "model.safetensors"
    data = bytearray(weights.read_bytes())
    (length,) = struct.unpack("<Q", data[:8])
    data[8 : 8 + length] = b"{" + b"x" * (length - 1)  # same length, not JSON
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelLoadError, match=r"model\.safetensors: not a readable safetensors file"):
        load_model(folder)


@pytest.fixture
def sharded(tiny_bert, tmp_path):
    folder = _save(tiny_bert, tmp_path / "sharded", max_shard_size="2MB")
    shards = sorted(folder.glob("model-*-of-*.safetensors"))
    assert len(shards) >= 2 and (folder / "model.safetensors.index.json").is_file()
    return folder, shards


def test_sharded_checkpoint_loads(sharded, tiny_bert):
    folder, _ = sharded
    again = load_model(folder)
    for (name, a), (_, b) in zip(tiny_bert.model.named_parameters(), again.model.named_parameters(), strict=True):
        assert torch.equal(a, b), name


def test_sharded_checkpoint_checked_shard_by_shard(sharded):
    folder, shards = sharded
    shards[-1].write_bytes(shards[-1].read_bytes()[:-1])
    with pytest.raises(ModelLoadError, match=rf"{shards[-1].name}: not a readable safetensors file"):
        load_model(folder)
    shards[-1].unlink()
    with pytest.raises(ModelLoadError, match=rf"{shards[-1].name}: shard listed in model\.safetensors\.index\.json "
                                             "is missing"):
        load_model(folder)


def test_shard_index_pointing_at_the_wrong_shard_named(sharded):
    folder, shards = sharded
    index_path = folder / "model.safetensors.index.json"
    index = json.loads(index_path.read_text())
    moved = next(t for t, s in index["weight_map"].items() if s == shards[-1].name)
    index["weight_map"][moved] = shards[0].name
    index_path.write_text(json.dumps(index))
    with pytest.raises(ModelLoadError, match=rf"{shards[0].name}: lacks 1 tensor\(s\) its index lists"):
        load_model(folder)


@pytest.mark.parametrize("keep", [(), ("tokenizer_config.json",)])
def test_folder_without_tokenizer_files_refused(tiny_bert, tmp_path, keep):
    """Today transformers builds a 5-token tokenizer from nothing (or from tokenizer_config.json alone)."""
    folder = _save(tiny_bert, tmp_path / "notok")
    for path in folder.iterdir():
        if path.name not in ("config.json", "model.safetensors", *keep):
            path.unlink()
    with pytest.raises(ModelLoadError) as info:
        load_model(folder)
    message = str(info.value)
    assert message.startswith(f"{folder}: no tokenizer files")
    assert "tokenizer.json" in message and "vocab.txt" in message and "merges.txt" in message


def test_tokenizer_far_smaller_than_the_embedding_refused(tiny_bert, tmp_path):
    folder = _save(tiny_bert, tmp_path / "small", tokenizer=False)
    (folder / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "def", "return"]))
    with pytest.raises(ModelLoadError, match=r"the tokenizer has 7 tokens but the model embeds 30522"):
        load_model(folder)


JUNK_GGUF = {
    "bad-version": b"GGUF" + b"\xff" * 64,
    "huge-counts": b"GGUF" + struct.pack("<IQQ", 3, 5, 2) + b"\x07" * 64,
    "short": b"GGUF" + struct.pack("<I", 3) + b"\x01\x00",
}


@pytest.mark.parametrize("junk", sorted(JUNK_GGUF))
def test_junk_gguf_named(tmp_path, junk):
    path = tmp_path / f"{junk}.gguf"
    path.write_bytes(JUNK_GGUF[junk])
    for spec in (path, tmp_path):  # the file itself, or a folder holding just it
        with pytest.raises(ModelLoadError) as info:
            load_model(spec)
        assert str(path) in str(info.value) and "GGUF" in str(info.value)


@pytest.mark.parametrize("alias,model_type", [("tiny-bert", "bert"), ("tiny-roberta", "roberta")])
@pytest.mark.parametrize("task", ["generate", "summarize", "perplexity", "causal-lm"])
def test_encoder_on_an_lm_task_refused(alias, model_type, task):
    with pytest.raises(ModelLoadError) as info:
        load_model(alias, task=task)
    message = str(info.value)
    assert f"{alias} (model type {model_type!r}) is an encoder" in message
    assert f"task {task!r} needs a decoder" in message
    assert "works with: defect, clone, classification, base" in message and "llama" in message


def test_encoder_folder_on_an_lm_task_refused(tiny_bert, tmp_path):
    folder = _save(tiny_bert, tmp_path / "enc")
    with pytest.raises(ModelLoadError, match=r"model type 'bert'\) is an encoder: task 'perplexity'"):
        load_model(folder, task="perplexity")


def test_decoders_and_encoder_tasks_still_load():
    assert load_model("tiny-llama", task="generate").head == "causal-lm"
    assert load_model("tiny-roberta", task="clone").head == "classification"


@pytest.mark.parametrize("verb", ["eval", "finetune"])
@pytest.mark.parametrize("task", ["generate", "summarize", "perplexity"])
def test_cli_encoder_on_an_lm_task_is_one_line(tmp_path, verb, task):
    data = tmp_path / "code"
    data.mkdir()
    (data / "a.py").write_text("def f(x):\n    return x\n")
    args = [verb, "tiny-bert", "--task", task, "--json", str(tmp_path / "r.json")]
    if task == "perplexity":
        args += ["--data", str(data)]  # skip building the embedded corpus: the model is refused anyway
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 2, result.output
    assert result.output.count("error:") == 1 and "Traceback" not in result.output
    flat = " ".join(result.output.split())
    assert "model type 'bert'" in flat and f"task '{task}'" in flat
    assert not (tmp_path / "r.json").exists()
