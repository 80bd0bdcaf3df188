"""Baselines at matched cost: truncation at matched FLOPs lands within 2%; random dropping keeps static's count."""

from __future__ import annotations

import pytest
import torch

from greenprune.models import load_model
from greenprune.tasks import get_task
from greenprune.tokens import AlpineConfig, AlpineError, attach, keep_mask, static_keep
from greenprune.tokens.baselines import flops_per_sample, match_truncation, matched_configs
from greenprune.tokens.rules import random_keep


@pytest.fixture(scope="module")
def setup():
    torch.set_num_threads(1)
    loaded = load_model("tiny-bert", task="classification")
    examples = get_task("defect").embedded_long(size=60, seed=1).test[:6]
    task = get_task("defect")

    def batches_at(n: int):
        return list(task.batches(loaded.tokenizer, examples, batch_size=3, max_length=n))

    return loaded, batches_at


def test_truncation_lands_within_two_percent_of_an_alpine_rows_flops(setup):
    loaded, batches_at = setup
    full = batches_at(512)
    with attach(loaded, AlpineConfig(layers="all", alpha=0.5)):
        target = flops_per_sample(loaded.model, full)  # an ALPINE row's counted FLOPs per sample
    base = flops_per_sample(loaded.model, full)
    assert target < 0.8 * base  # something to match: ALPINE saved FLOPs
    match = match_truncation(loaded.model, batches_at, target, high=512)
    assert match.relative_error <= 0.02
    assert match.flops_per_sample == pytest.approx(flops_per_sample(loaded.model, batches_at(match.max_length)))
    assert 8 < match.max_length < 512 and len(match.tried) <= 12  # a bisection, not a scan


@pytest.mark.parametrize("alpha", [0.5, 1.0, 2.0])
def test_truncation_search_finds_what_a_scan_of_every_length_finds_with_few_probes(setup, alpha):
    loaded, batches_at = setup
    with attach(loaded, AlpineConfig(layers="all", alpha=alpha)):
        target = flops_per_sample(loaded.model, batches_at(96))
    scan = {n: flops_per_sample(loaded.model, batches_at(n)) for n in range(4, 97)}
    closest = min(scan.values(), key=lambda f: abs(f - target))
    match = match_truncation(loaded.model, batches_at, target, low=4, high=96)
    assert match.flops_per_sample == closest and scan[match.max_length] == closest
    assert len(match.tried) <= 9  # both ends, then a bisection: a handful of probes, not a scan of 93


def test_truncation_target_beyond_the_range_takes_the_nearest_end(setup):
    loaded, batches_at = setup
    top = match_truncation(loaded.model, batches_at, 1e18, high=64)
    assert top.max_length == 64
    bottom = match_truncation(loaded.model, batches_at, 1.0, low=4, high=64)
    assert bottom.max_length == 4 and bottom.relative_error > 1
    with pytest.raises(AlpineError, match="target > 0"):
        match_truncation(loaded.model, batches_at, 0.0)


def test_random_keep_keeps_the_static_count_and_is_seeded():
    scores = torch.rand(3, 10)
    ordinary = torch.ones(3, 10, dtype=torch.bool)
    ordinary[:, 0] = False
    ordinary[2, 6:] = False
    a = random_keep(scores, ordinary, 0.4, seed=1)
    assert torch.equal(a.sum(1), static_keep(scores, ordinary, 0.4).sum(1))
    assert torch.equal(a, random_keep(scores * 0 + 5, ordinary, 0.4, seed=1))  # ignores the scores
    assert not torch.equal(a, random_keep(scores, ordinary, 0.4, seed=2))
    assert a[~ordinary].all()
    cfg = AlpineConfig(rule="random", ratio=0.4, seed=1)
    assert torch.equal(keep_mask(scores, torch.ones_like(ordinary), ~ordinary, cfg), a)
    assert cfg.describe() == {"layers": "all", "rule": "random", "merge": True, "ratio": 0.4, "seed": 1}


def test_matched_configs_use_the_adaptive_layers_and_ratio():
    from greenprune.tokens import LengthTrace

    trace = LengthTrace(pruning_layers=[0], num_layers=2)
    trace.record([torch.tensor([10]), torch.tensor([6]), torch.tensor([6])], [10, 6, 6])
    configs = matched_configs(AlpineConfig(layers="even", alpha=1.0), trace, seed=3)
    assert configs["static"].rule == "static" and configs["random"].rule == "random"
    assert configs["static"].ratio == pytest.approx(0.4) == configs["random"].ratio
    assert configs["random"].layers == "even" and configs["random"].seed == 3
