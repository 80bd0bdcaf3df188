from __future__ import annotations

import subprocess
import sys
import time

import pytest
import torch

from greenprune.models import (
    EMBEDDED,
    ModelLoadError,
    UnsupportedModelError,
    family_of,
    list_models,
    load_model,
)


def test_minilm_real_forward(minilm):
    model, tokenizer = minilm
    assert minilm.family.name == "bert" and minilm.head == "classification"
    batch = tokenizer(["def add(a, b):\n    return a + b", "x = [i for i in range(3)]"], padding=True,
                      return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape == (2, 2)
    assert torch.isfinite(logits).all()
    assert sum(p.numel() for p in model.parameters()) > 22_000_000


def test_smollm2_real_forward_predicts_code(smollm2):
    model, tokenizer = smollm2
    assert smollm2.family.name == "llama" and smollm2.head == "causal-lm"
    assert model.config.num_hidden_layers == 30 and model.config.tie_word_embeddings
    ids = tokenizer("def add(a, b):\n    return a +", return_tensors="pt").input_ids
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape[-1] == 49152
    # a real language model continues `return a +` with ` b`
    assert tokenizer.decode(logits[0, -1].argmax()).strip() == "b"


@pytest.mark.parametrize("alias,family,layers", [("tiny-bert", "bert", 4), ("tiny-roberta", "roberta", 4),
                                                  ("tiny-llama", "llama", 4)])
def test_tiny_models_are_deterministic(alias, family, layers):
    a = load_model(alias)
    b = load_model(alias)
    assert a.family.name == family
    assert len(a.family.layers(a.model)) == layers
    for (name, pa), (_, pb) in zip(a.model.named_parameters(), b.model.named_parameters(), strict=True):
        assert torch.equal(pa, pb), name
    ids = a.tokenizer(["def f(x): return x"], return_tensors="pt")
    with torch.no_grad():
        out = a.model(**ids)
    assert torch.isfinite(out.logits).all()


def test_task_names_pick_heads():
    assert load_model("tiny-bert", task="defect").head == "classification"
    assert load_model("tiny-llama", task="perplexity").head == "causal-lm"
    assert load_model("tiny-bert", task="base").head == "base"
    with pytest.raises(ValueError, match="unknown task 'nonsense'"):
        load_model("tiny-bert", task="nonsense")


def test_local_folder_roundtrip(tmp_path):
    loaded = load_model("tiny-bert")
    loaded.model.save_pretrained(tmp_path)
    loaded.tokenizer.save_pretrained(tmp_path)
    again = load_model(tmp_path)
    for (name, pa), (_, pb) in zip(loaded.model.named_parameters(), again.model.named_parameters(), strict=True):
        assert torch.equal(pa, pb), name


def test_offline_hub_id_fails_fast_with_guidance(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    start = time.monotonic()
    with pytest.raises(ModelLoadError) as info:
        load_model("microsoft/codebert-base")
    assert time.monotonic() - start < 10
    message = str(info.value)
    assert "microsoft/codebert-base" in message
    assert "offline" in message
    assert "--local-dir" in message and "pass DIR" in message


def test_offline_hub_id_fails_fast_without_offline_flag(monkeypatch):
    """No HF_HUB_OFFLINE: the reachability probe must still keep the failure within seconds."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    start = time.monotonic()
    with pytest.raises(ModelLoadError, match="microsoft/codebert-base"):
        load_model("microsoft/codebert-base")
    assert time.monotonic() - start < 15


def test_missing_local_path_and_bad_folder(tmp_path):
    with pytest.raises(ModelLoadError, match="no such folder"):
        load_model("./does-not-exist")
    with pytest.raises(ModelLoadError, match=r"config\.json"):
        load_model(tmp_path)


def test_unsupported_architecture_lists_supported(tmp_path):
    from transformers import GPT2Config, GPT2Model

    GPT2Model(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=50)).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError) as info:
        load_model(tmp_path)
    assert "gpt2" in str(info.value) and "llama" in str(info.value) and "bert" in str(info.value)
    with pytest.raises(UnsupportedModelError, match="supported types"):
        family_of("gpt2")


def test_list_models_reports_sizes():
    infos = {i.alias: i for i in list_models()}
    assert set(infos) == set(EMBEDDED)
    assert infos["minilm"].params == pytest.approx(22.7e6, rel=0.01)
    assert infos["smollm2-135m"].params == pytest.approx(134.5e6, rel=0.01)


def test_models_cli_lists_aliases():
    out = subprocess.run([sys.executable, "-m", "greenprune.cli", "models"], capture_output=True, text=True,
                         check=True, env={"COLUMNS": "200", "PATH": "", "HF_HUB_OFFLINE": "1"}).stdout
    for alias in EMBEDDED:
        assert alias in out


def test_one_resolver_names_what_a_spec_is(tmp_path):
    from greenprune.models.hub import resolve_spec

    assert resolve_spec("tiny-bert").kind == "tiny"
    (tmp_path / "hf").mkdir()
    (tmp_path / "hf" / "config.json").write_text("{}")
    assert (resolve_spec(tmp_path / "hf").kind, resolve_spec(tmp_path / "hf").path) == ("folder", tmp_path / "hf")
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "m.gguf").write_bytes(b"")
    for spec in (tmp_path / "g", tmp_path / "g" / "m.gguf"):
        assert (resolve_spec(spec).path, resolve_spec(spec).gguf_file) == (tmp_path / "g", "m.gguf")
    assert resolve_spec("org/model").kind == "hub"
    seen = []
    resolve_spec(tmp_path / "hf", check_folder=seen.append)
    assert seen == [tmp_path / "hf"]


def test_task_heads_come_from_the_tasks_and_keep_tasks_first():
    from greenprune.models.hub import HEADS, TASK_HEADS, register_task_head
    from greenprune.tasks import TASKS

    assert {**{t.name: t.head for t in TASKS.values()}, **{h: h for h in HEADS}} == TASK_HEADS
    assert list(TASK_HEADS)[-len(HEADS):] == list(HEADS)
    with pytest.raises(ValueError, match="unknown model head 'seq2seq'"):
        register_task_head("translate", "seq2seq")
    assert "translate" not in TASK_HEADS
