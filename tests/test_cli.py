from __future__ import annotations

import subprocess
import sys

import pytest
from typer.testing import CliRunner

from greenprune.cli import app
from greenprune.measure import load_json

runner = CliRunner()


def test_measure_cli_writes_records(tmp_path):
    out = tmp_path / "cost.json"
    args = ["measure", "tiny-bert", "--batches", "1", "--batch-size", "2", "--seq-len", "32", "--passes", "1",
            "--no-energy", "--json", str(out)]
    result = subprocess.run([sys.executable, "-m", "greenprune.cli", *args], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert "FLOPs / sample (counted)" in result.stdout
    records = load_json(out)
    assert len(records) == 1 and records[0].model == "tiny-bert"
    assert records[0].cost.samples == 2
    assert "greenprune measure tiny-bert" in records[0].command
    # the record carries the exact command line and the versions of the libraries that produced it
    import shlex
    from importlib.metadata import version

    import torch
    import transformers

    assert records[0].command == shlex.join(["greenprune", *args])
    versions = records[0].versions
    assert versions["torch"] == torch.__version__ and versions["transformers"] == transformers.__version__
    assert versions["greenprune"] == version("greenprune") and versions["python"] == sys.version.split()[0]


def test_bad_model_is_one_clear_error():
    result = runner.invoke(app, ["measure", "./no/such/model"])
    assert result.exit_code == 2
    assert "no such folder" in result.output
    assert "Traceback" not in result.output


# ---------------------------------------------------------------- outputs never destroy (issue 14)

PRUNE = ["prune", "tiny-bert", "--sparsity", "0.3"]


def test_prune_refuses_a_folder_of_user_files(tmp_path):
    out = tmp_path / "d"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    for extra in ([], ["--overwrite"]):
        result = runner.invoke(app, [*PRUNE, "--out", str(out), *extra])
        assert result.exit_code == 2, result.output
        assert "greenprune did not write (notes.txt)" in " ".join(result.output.split())
        assert sorted(p.name for p in out.iterdir()) == ["notes.txt"] and (out / "notes.txt").read_text() == "mine"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_prune_refuses_the_current_folder_and_its_parent(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    (work / "keep.py").write_text("x = 1\n")
    monkeypatch.chdir(work)
    for target, why in ((".", "is the current folder"), ("..", "is a parent of the current folder")):
        result = runner.invoke(app, [*PRUNE, "--out", target, "--overwrite"])
        assert result.exit_code == 2, result.output
        assert why in " ".join(result.output.split())
    assert sorted(p.name for p in work.iterdir()) == ["keep.py"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["work"]


def test_prune_replaces_its_own_output_only_with_overwrite(tmp_path):
    out = tmp_path / "d"
    assert runner.invoke(app, [*PRUNE, "--dense", "--out", str(out)]).exit_code == 0
    before = (out / "model.safetensors").read_bytes()
    result = runner.invoke(app, [*PRUNE, "--out", str(out)])
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (out / "model.safetensors").read_bytes() == before
    result = runner.invoke(app, [*PRUNE, "--compact", "--out", str(out), "--overwrite"])
    assert result.exit_code == 0, result.output
    assert (out / "model.sparse.safetensors").is_file()
    assert not (out / "model.safetensors").exists()  # replaced whole: never dense and compact side by side
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d"]


def test_every_folder_writing_verb_refuses_user_folders_before_working(tmp_path):
    user = tmp_path / "user"
    user.mkdir()
    (user / "data.csv").write_text("a,b\n")
    for args in (["structure", "tiny-llama", "--layers", "1", "--no-measure", "--out", str(user)],
                 ["recover", "tiny-llama", "--steps", "1", "--out", str(user)],
                 ["quantize", "tiny-bert", "--dtype", "fp16", "--no-energy", "--out", str(user)],
                 ["finetune", "tiny-bert", "--task", "defect", "--output", str(tmp_path), "--json", str(user)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2, (args, result.output)
        assert str(user) in " ".join(result.output.split()), result.output
    assert sorted(p.name for p in user.iterdir()) == ["data.csv"]


def test_json_records_are_not_replaced_without_overwrite(tmp_path):
    old = tmp_path / "old.json"
    old.write_text("[]\n")
    for args in (["measure", "tiny-bert", "--no-energy", "--json", str(old)],
                 ["quantize", "tiny-bert", "--no-energy", "--json", str(old)]):
        result = runner.invoke(app, args)
        assert result.exit_code == 2 and "pass --overwrite" in result.output, result.output
    assert old.read_text() == "[]\n"
    args = ["measure", "tiny-bert", "--batches", "1", "--batch-size", "2", "--seq-len", "16", "--passes", "1",
            "--no-energy", "--json", str(old), "--overwrite"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert load_json(old)[0].model == "tiny-bert"


def test_seq_len_beyond_the_models_positions_names_model_and_limit():
    result = runner.invoke(app, ["measure", "tiny-bert", "--seq-len", "600", "--no-energy"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert ("--seq-len 600 is longer than tiny-bert can take: 512 positions (max_position_embeddings 512 of its bert "
            "config); use --seq-len 512 or less") in " ".join(result.output.split())


PLAIN_RELOAD = """
import json, sys, torch
from transformers import AutoModelForSequenceClassification
m = AutoModelForSequenceClassification.from_pretrained(sys.argv[1]).eval()
ids = torch.tensor(json.loads(sys.argv[2]))
with torch.no_grad():
    logits = m(input_ids=ids).logits.tolist()
linears = [x.weight for n, x in m.named_modules() if isinstance(x, torch.nn.Linear) and ".encoder." in f".{n}."]
zeros = sum(int((w == 0).sum()) for w in linears) / sum(w.numel() for w in linears)
assert "greenprune" not in sys.modules
print(json.dumps({"logits": logits, "zeros": zeros}))
"""


def test_prune_writes_a_plain_hf_folder_by_default_that_reloads_without_greenprune(tmp_path):
    """The README's promise: every pruned model is a plain HF folder `from_pretrained` reloads without greenprune."""
    import json

    import torch

    from greenprune.models import load_model
    from greenprune.weights import WeightPruningConfig, make_permanent, prune

    out = tmp_path / "pruned"
    result = runner.invoke(app, [*PRUNE, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "model.safetensors").is_file() and not (out / "model.sparse.safetensors").exists()
    ids = [[101, 2000, 2001, 2002, 102], [101, 3000, 3001, 3002, 102]]
    proc = subprocess.run([sys.executable, "-c", PLAIN_RELOAD, str(out), json.dumps(ids)],
                          capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["zeros"] == pytest.approx(0.3, abs=0.02)
    # the same pruning done here, in memory, gives the same outputs
    reference = load_model("tiny-bert", task="defect").model
    prune(reference, WeightPruningConfig(sparsity=0.3))
    make_permanent(reference)
    with torch.no_grad():
        expected = reference(input_ids=torch.tensor(ids)).logits
    assert torch.allclose(torch.tensor(got["logits"]), expected, atol=1e-5)
    # --compact stays available for the smaller format greenprune reads back
    compact = tmp_path / "compact"
    assert runner.invoke(app, [*PRUNE, "--compact", "--out", str(compact)]).exit_code == 0
    assert (compact / "model.sparse.safetensors").is_file() and not (compact / "model.safetensors").exists()


def test_prune_lottery_rewinds_survivors_to_the_snapshot_it_names(tmp_path):
    """`--lottery N --rewind pretrained` ends (without the final fine-tune) on the pre-trained weights under the
    mask; `--rewind finetuned` on the weights after the first round's fine-tune."""
    import json

    import torch
    from transformers import AutoModelForSequenceClassification

    from greenprune.models import load_model

    pretrained = dict(load_model("tiny-bert", task="defect").model.named_parameters())
    lottery = ["--lottery", "2", "--per-round", "0.2", "--no-final-finetune", "--steps-per-round", "3",
               "--eval-every", "3", "--data-size", "40", "--eval-limit", "4", "--batch-size", "4", "--lr", "1e-3"]
    survivors = {}
    for rewind in ("pretrained", "finetuned"):
        out = tmp_path / rewind
        result = runner.invoke(app, [*PRUNE, *lottery, "--rewind", rewind, "--out", str(out)])
        assert result.exit_code == 0, result.output
        record = json.loads((out / "greenprune_record.json").read_text())
        assert record["config"]["lottery"]["rewind"] == rewind and len(record["config"]["curve"]) == 2
        model = AutoModelForSequenceClassification.from_pretrained(out)
        query = model.bert.encoder.layer[0].attention.self.query.weight
        base = pretrained["bert.encoder.layer.0.attention.self.query.weight"]
        assert float((query == 0).float().mean()) == pytest.approx(0.4, abs=0.1)
        kept = query != 0
        survivors[rewind] = torch.equal(query[kept], base[kept])
    assert survivors == {"pretrained": True, "finetuned": False}
