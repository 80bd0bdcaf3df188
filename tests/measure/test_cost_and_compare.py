from __future__ import annotations

import copy

import pytest
import torch

from greenprune.measure import (
    Comparison,
    CostMeter,
    ResultRecord,
    TensorMemoryTracker,
    compare,
    load_json,
    measure_cost,
    ratio_interval,
    save_json,
)
from greenprune.measure.inputs import code_batches
from greenprune.models import load_model


@pytest.fixture(scope="module")
def tiny():
    return load_model("tiny-bert")


@pytest.fixture(scope="module")
def batches(tiny):
    return list(code_batches(tiny.tokenizer, batch_size=4, seq_len=64, n_batches=2))


def test_measure_cost_fills_every_field(tiny, batches):
    cost = measure_cost(tiny.model, batches, passes=2, energy=True)
    assert cost.samples == 8 and cost.batch_size == 4 and cost.timed_batches == 4
    assert cost.params_total == sum(p.numel() for p in tiny.model.parameters())
    assert cost.params_embedding + cost.params_non_embedding == cost.params_total
    assert cost.params_embedding > tiny.model.config.vocab_size * 64  # word + position + type tables
    assert cost.checkpoint_bytes > 4 * cost.params_total  # fp32 + safetensors header
    assert cost.flops_per_sample == pytest.approx(cost.flops_analytic_per_sample, rel=0.05)
    assert cost.peak_memory_bytes > 4 * cost.params_total
    assert 0 < cost.latency_p50_s <= cost.latency_p95_s
    assert cost.throughput_samples_s > 0 and cost.throughput_tokens_s > cost.throughput_samples_s
    assert cost.tokens <= 8 * 64
    assert cost.energy_kwh is not None and cost.energy_kwh > 0 and cost.co2_kg > 0
    assert "codecarbon" in cost.energy_method


def test_peak_memory_grows_with_sequence_length(tiny):
    short = list(code_batches(tiny.tokenizer, batch_size=4, seq_len=32, n_batches=1))
    long = list(code_batches(tiny.tokenizer, batch_size=4, seq_len=256, n_batches=1))
    a = measure_cost(tiny.model, short, passes=1, energy=False)
    b = measure_cost(tiny.model, long, passes=1, energy=False)
    assert b.peak_memory_bytes > a.peak_memory_bytes


def test_memory_tracker_sees_allocations_and_frees():
    with TensorMemoryTracker() as tracker:
        a = torch.ones(1024, 1024)  # 4 MiB
        b = a + 1  # 4 MiB
        del b
        c = a * 2  # reuses the freed budget: peak stays 8 MiB
        view = c.view(-1)  # a view allocates nothing
        del view
    assert tracker.peak == 2 * 4 * 1024 * 1024
    del a, c
    assert tracker.current == 0


def test_self_comparison_is_within_noise_and_roundtrips(tiny, batches, tmp_path):
    comparison = compare(tiny.model, tiny.model, batches, rounds=6, energy=False)
    assert comparison.rounds == 6
    for key in ("params_total", "checkpoint_bytes", "flops_per_sample", "peak_memory_bytes"):
        assert comparison.ratios[key] == 1.0
    low, high = comparison.latency_ratio_ci95
    assert low <= 1.0 <= high
    assert comparison.within_noise is True
    assert "within noise" in comparison.verdict
    path = save_json(comparison, tmp_path / "cmp.json")
    again = load_json(path)
    assert isinstance(again, Comparison)
    assert again == comparison


def test_comparison_sees_a_real_difference(tiny, batches):
    """A candidate doing far more work per token must come out slower beyond noise, and FLOPs must say so."""
    big = load_model("tiny-bert").model
    wide = copy.deepcopy(big)
    # pad the FFN to 64× its width with zero weights: same output, several times the work, so that the difference
    # stands out of the noise even on a loaded shared CPU (16× gave a 1.6× ratio whose interval reached 0.95 there)
    for layer in wide.bert.encoder.layer:
        inter, out = layer.intermediate.dense, layer.output.dense
        new_in = torch.nn.Linear(inter.in_features, inter.out_features * 64)
        new_out = torch.nn.Linear(out.in_features * 64, out.out_features)
        with torch.no_grad():
            new_in.weight.zero_()
            new_in.bias.zero_()
            new_out.weight.zero_()
            new_in.weight[: inter.out_features] = inter.weight
            new_in.bias[: inter.out_features] = inter.bias
            new_out.weight[:, : out.in_features] = out.weight
            new_out.bias.copy_(out.bias)
        layer.intermediate.dense, layer.output.dense = new_in, new_out
    long = list(code_batches(tiny.tokenizer, batch_size=16, seq_len=256, n_batches=1))
    comparison = compare(big, wide, long, rounds=8, energy=False)
    assert comparison.ratios["flops_per_sample"] > 2
    assert comparison.ratios["params_non_embedding"] > 2
    assert comparison.within_noise is False
    assert comparison.ratios["latency_interleaved"] > 1


def test_ratio_interval():
    assert ratio_interval([1.0]) is None
    low, high = ratio_interval([0.5, 0.5, 0.5])
    assert low == pytest.approx(0.5) and high == pytest.approx(0.5)
    low, high = ratio_interval([0.9, 1.1, 1.0, 0.95, 1.05])
    assert low < 1.0 < high


def test_result_records_roundtrip(tiny, batches, tmp_path):
    rec = ResultRecord(model="tiny-bert", metrics={"f1": 0.5}, cost=measure_cost(tiny.model, batches, passes=1))
    path = save_json([rec, rec], tmp_path / "records.json")
    again = load_json(path)
    assert again == [rec, rec]
    with pytest.raises(ValueError):
        ResultRecord.model_validate({"model": "x", "unknown_field": 1})


def test_cost_meter_measures_a_block():
    with CostMeter("work", track_memory=True) as meter:
        x = torch.ones(256, 256)
        for _ in range(20):
            x = x @ x / 256
    reading = meter.reading
    assert reading is not None and reading.seconds > 0
    assert reading.peak_tensor_bytes >= 256 * 256 * 4
    assert reading.energy_kwh is not None and reading.energy_kwh > 0
    watts = reading.energy_kwh * 3.6e6 / reading.seconds
    assert 0.1 < watts < 2000, watts  # a CPU's power, not a unit slip (kWh vs Wh vs J)


def test_compare_alternates_the_order_of_the_two_models_each_round(tiny, batches, monkeypatch):
    """The noise claim rests on AB, BA, AB, ...: drift during a round then hits both models alike."""
    import importlib

    compare_module = importlib.import_module("greenprune.measure.compare")  # the package re-exports the function
    real = compare_module.timed_pass
    calls: list[tuple[str, float]] = []
    baseline, candidate = tiny.model, copy.deepcopy(tiny.model)

    def spy(model, data, timings):
        seconds = real(model, data, timings)
        calls.append(("A" if model is baseline else "B" if model is candidate else "?", seconds))
        return seconds

    monkeypatch.setattr(compare_module, "timed_pass", spy)
    comparison = compare(baseline, candidate, batches, rounds=5, energy=False, count_memory=False)
    assert "".join(name for name, _ in calls) == "AB" "BA" "AB" "BA" "AB"
    # the interleaved ratio is the geometric mean of candidate/baseline within each round
    per_round = []
    for r in range(5):
        pair = dict(calls[2 * r : 2 * r + 2])
        per_round.append(pair["B"] / pair["A"])
    expected = float(torch.tensor(per_round, dtype=torch.float64).log().mean().exp())
    assert comparison.ratios["latency_interleaved"] == pytest.approx(expected, rel=1e-9)
    assert comparison.latency_ratio_ci95 == pytest.approx(ratio_interval(per_round))


def test_candidate_batches_give_the_candidate_its_own_encoding_of_the_same_examples(tiny, batches):
    short = [{k: v[:, :8] for k, v in b.items()} for b in batches]  # the same rows, cut to 8 tokens
    comparison = compare(tiny.model, tiny.model, batches, candidate_batches=short, rounds=2, energy=False)
    assert comparison.candidate.cost.tokens == sum(int(b["attention_mask"][:, :8].sum()) for b in batches)
    assert comparison.ratios["flops_per_sample"] < 0.5  # the same model, on far fewer tokens
    with pytest.raises(ValueError, match="candidate_batches has 1 batches, batches has 2"):
        compare(tiny.model, tiny.model, batches, candidate_batches=short[:1], rounds=1, energy=False)
