"""Physical removal of row-pruned FFN neurons; encoder-decoder summarisers; the prune / quantize CLI."""

from __future__ import annotations

import json

import pytest
import torch
from typer.testing import CliRunner

from greenprune.cli import app
from greenprune.errors import GreenpruneError
from greenprune.models import load_model
from greenprune.tasks import Example
from greenprune.tasks.seq2seq import build_encoder_decoder, seq2seq_batches, seq2seq_bleu
from greenprune.weights import WeightPruningConfig, default_target_names, dense_state_dict, prune
from greenprune.weights.dead_neurons import slice_dead_ffn_neurons
from greenprune.weights.lottery import LotteryConfig, run_lottery
from greenprune.weights.sparse_io import load_sparse


def test_shrinking_dead_ffn_neurons_keeps_outputs_and_cuts_flops():
    model = load_model("tiny-llama").model
    prune(model, WeightPruningConfig(granularity="rows", scope="per-tensor", sparsity=0.5, targets=["*.mlp.up_proj"]))
    ids = torch.randint(0, 2000, (2, 11), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        before = model(input_ids=ids).logits
        widths = slice_dead_ffn_neurons(model)
        after = model(input_ids=ids).logits
    assert set(widths.values()) == {model.config.intermediate_size // 2}
    assert model.model.layers[0].mlp.down_proj.in_features == model.config.intermediate_size // 2
    assert torch.allclose(before, after, atol=1e-5)


def test_shrink_refuses_ungated_ffn():
    with pytest.raises(GreenpruneError, match="not gated"):
        slice_dead_ffn_neurons(load_model("tiny-bert").model)


EXAMPLES = [Example(text=f"def f{i}(x):\n    return x + {i}", target=f"add {i} to x") for i in range(6)]


def test_encoder_decoder_lottery_prunes_only_the_encoder():
    model, tok = build_encoder_decoder("tiny-bert", decoder_layers=2)
    targets = default_target_names(model)
    assert targets and all(t.startswith("encoder.") for t in targets)
    decoder_before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    batches = list(seq2seq_batches(tok, EXAMPLES, batch_size=3))
    with torch.no_grad():
        assert float(model(**batches[0]).loss) > 0

    def evaluate(m) -> float:
        return seq2seq_bleu(m, tok, EXAMPLES[:2], max_new_tokens=4)["bleu4_smoothed"]

    config = LotteryConfig(rounds=1, prune_per_round=0.4, eval_every=2, steps_per_round=2, lr=1e-3)
    result = run_lottery(model, batches, evaluate, config)
    assert result.final_report.sparsity == pytest.approx(0.4, abs=1 / result.final_report.targeted)
    # rewound to pre-trained: the decoder is back to its warm-start weights
    for key, value in model.decoder.state_dict().items():
        assert torch.equal(value, decoder_before[key]), key


def test_cli_prune_then_quantize(tmp_path, monkeypatch):
    monkeypatch.setenv("GREENPRUNE_NO_PROGRESS", "1")
    runner = CliRunner()
    out = tmp_path / "pruned"
    res = runner.invoke(app, ["prune", "tiny-bert", "--method", "l1", "--scope", "per-tensor", "--sparsity", "0.3",
                              "--compact", "--out", str(out)])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "sparsity_report.json").read_text())
    assert report["sparsity"] == pytest.approx(0.3, abs=1e-3)
    assert json.loads((out / "greenprune_record.json").read_text())["command"].startswith("greenprune")
    model = load_sparse(out)
    zeros = sum(int((w == 0).sum()) for k, w in dense_state_dict(model).items() if "encoder.layer" in k
                and k.endswith("weight") and "LayerNorm" not in k)
    assert zeros == report["zeros"]
    res = runner.invoke(app, ["quantize", str(out), "--dtype", "int8", "--rounds", "2", "--no-energy",
                              "--json", str(tmp_path / "q.json")])
    assert res.exit_code == 0, res.output
    assert "int8: latency" in res.output
    bad = runner.invoke(app, ["prune", "tiny-bert", "--method", "magnitude"])
    assert bad.exit_code == 2 and "magnitude" in bad.output
