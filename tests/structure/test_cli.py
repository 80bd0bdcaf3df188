"""`greenprune structure` end to end on a tiny model: plain folder, model card with measurements, clear errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from greenprune.cli import app

from .conftest import reload_plain


def test_structure_cli_writes_plain_folder_with_card(tmp_path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    (corpus / "a.py").write_text("def add(a, b):\n    return a + b\n\n\nclass Point:\n    x: int = 0\n" * 20)
    out = tmp_path / "out"
    result = CliRunner().invoke(app, [
        "structure", "tiny-llama", "--vocab", str(corpus), "--layers", "1", "--metric", "bi", "--ffn", "0.25",
        "--eval-texts", "4", "--no-energy", "--out", str(out),
    ])
    assert result.exit_code == 0, result.output
    card = (out / "README.md").read_text()
    assert "## What was removed" in card and "held-out perplexity" in card and "tokens / s" in card
    report = json.loads((out / "structure.json").read_text())
    assert [s["step"] for s in report["steps"]] == ["vocab", "layers", "ffn"]
    got = reload_plain(out, [[0, 1, 2]])
    assert got["params"] == report["params_after"]
    assert got["config"]["num_hidden_layers"] == 3 and got["config"]["intermediate_size"] == 96


def test_structure_cli_rejects_bad_metric(tmp_path) -> None:
    result = CliRunner().invoke(app, ["structure", "tiny-llama", "--layers", "1", "--metric", "cos",
                                      "--no-measure", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2
    assert "--metric" in result.output


def test_structure_cli_with_nothing_to_prune_fails_before_loading(tmp_path, monkeypatch) -> None:
    import greenprune.models

    loads: list[str] = []
    monkeypatch.setattr(greenprune.models, "load_model", lambda spec, **_: loads.append(spec))
    for extra in ([], ["--layers", "0", "--ffn", "0", "--kv-groups", "0"]):
        out = tmp_path / "x"
        result = CliRunner().invoke(app, ["structure", "tiny-llama", *extra, "--out", str(out)])
        assert result.exit_code == 2, result.output
        message = " ".join(result.output.split())
        assert "greenprune structure tiny-llama: nothing to prune" in message and "--layers N" in message
        assert "Traceback" not in result.output
        assert not out.exists() and loads == []


def test_structure_config_with_every_step_off_is_refused() -> None:
    import pytest

    from greenprune.structure.pipeline import NothingToPruneError, StructureConfig

    with pytest.raises(NothingToPruneError, match="nothing to prune"):
        StructureConfig()
    assert StructureConfig(ffn=0.25).ffn == 0.25


def test_structure_cli_chat_frame_switch_and_recover(tmp_path) -> None:
    """`--vocab` keeps the chat template's tokens unless `--no-chat-frame`; `--recover` merges LoRA back."""
    from safetensors import safe_open
    from transformers import AutoTokenizer

    corpus = tmp_path / "corpus.py"
    corpus.write_text("def add(a, b):\n    return a + b\n" * 10)
    outs = {}
    for name, extra in (("framed", ["--recover", "--recover-steps", "2"]), ("bare", ["--no-chat-frame"])):
        outs[name] = tmp_path / name
        result = CliRunner().invoke(app, ["structure", "tiny-llama", "--vocab", str(corpus), "--layers", "1",
                                          "--no-measure", "--out", str(outs[name]), *extra])
        assert result.exit_code == 0, result.output
    framed, bare = (AutoTokenizer.from_pretrained(outs[n]) for n in ("framed", "bare"))
    from greenprune.models import load_model

    original = load_model("tiny-llama", task="causal-lm").tokenizer
    frame = original.apply_chat_template([{"role": "user", "content": ""}], tokenize=False,
                                         add_generation_prompt=True) + "```python\n"

    def pieces(tok):
        return tok.convert_ids_to_tokens(tok(frame, add_special_tokens=False).input_ids)

    assert len(framed) > len(bare)
    assert pieces(framed) == pieces(original)  # the chat frame tokenises exactly as before
    assert len(pieces(bare)) > len(pieces(original))  # without it, the frame's words fall apart into pieces
    steps = {n: [s["step"] for s in json.loads((outs[n] / "structure.json").read_text())["steps"]] for n in outs}
    assert steps["framed"] == ["vocab", "layers", "recover (LoRA, merged)"] and steps["bare"] == ["vocab", "layers"]
    with safe_open(str(outs["framed"] / "model.safetensors"), "pt") as f:
        names = list(f.keys())
    assert names and not [k for k in names if "lora" in k]  # merged back, nothing of peft left
    got = reload_plain(outs["framed"], [[0, 1, 2]])
    assert got["config"]["num_hidden_layers"] == 3


def test_structure_cli_vocab_insurance_options_are_applied_and_recorded(tmp_path) -> None:
    """`--vocab-whitespace` and `--vocab-frequent N` reach the vocabulary step: more rows kept, the counts of why
    in structure.json, and held-out text tokenises into fewer pieces."""
    from transformers import AutoTokenizer

    corpus = tmp_path / "corpus.py"
    corpus.write_text("def add(a, b):\n    return a + b\n" * 10)
    outs = {}
    for name, extra in (("plain", []), ("insured", ["--vocab-whitespace", "--vocab-frequent", "300"])):
        outs[name] = tmp_path / name
        result = CliRunner().invoke(app, ["structure", "tiny-llama", "--vocab", str(corpus), "--no-measure",
                                          "--out", str(outs[name]), *extra])
        assert result.exit_code == 0, result.output
    steps = {n: json.loads((outs[n] / "structure.json").read_text())["steps"][0] for n in outs}
    assert steps["plain"]["kept"]["whitespace"] == steps["plain"]["kept"]["frequent"] == 0
    assert steps["insured"]["kept"]["frequent"] > 0
    assert steps["insured"]["vocab_after"] > steps["plain"]["vocab_after"]
    held_out = "class Parser:\n    def parse(self, text):\n        \n        return text.split()\n"
    plain, insured = (AutoTokenizer.from_pretrained(outs[n]) for n in outs)
    assert len(insured.tokenize(held_out)) < len(plain.tokenize(held_out))
