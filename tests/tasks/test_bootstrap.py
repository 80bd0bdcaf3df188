"""Paired bootstrap of a metric difference, checked against cases whose resamples can be enumerated by hand."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from greenprune.tasks.metrics import classification_metrics, paired_bootstrap, paired_differences, paired_predictions


def _all_resamples(n: int) -> np.ndarray:
    return np.array(list(itertools.product(range(n), repeat=n)))


def test_accuracy_difference_is_resampled_jointly():
    # baseline right only on example 0, candidate right only on example 1. The 4 equally likely resamples:
    # (0,0) → 0 - 1 = -1, (1,1) → 1 - 0 = +1, (0,1) and (1,0) → 0.5 - 0.5 = 0. Resampling the two sides
    # independently would also produce ±0.5, so the exact set checks that one draw serves both sides.
    labels, base, cand = [1, 0], [1, 1], [0, 0]
    diffs = paired_differences(labels, base, cand, "accuracy", _all_resamples(2))
    assert sorted(diffs.tolist()) == [-1.0, 0.0, 0.0, 1.0]
    out = paired_bootstrap(labels, base, cand, "accuracy", resamples=4000, seed=1)
    assert out["difference"] == 0.0
    assert (out["ci_low"], out["ci_high"]) == (-1.0, 1.0)
    assert out["p_worse"] == pytest.approx(0.25, abs=0.03)


def test_f1_difference_matches_hand_computed_distribution():
    # baseline F1 1; candidate misses example 1. Resamples: (0,0) F1 1 → 0, (1,1) F1 0 → -1, mixed F1 2/3 → -1/3.
    labels, base, cand = [1, 1], [1, 1], [1, 0]
    diffs = paired_differences(labels, base, cand, "f1", _all_resamples(2))
    assert sorted(diffs.tolist()) == pytest.approx([-1.0, -1 / 3, -1 / 3, 0.0])
    out = paired_bootstrap(labels, base, cand, "f1", resamples=4000, seed=0)
    assert out["difference"] == pytest.approx(-1 / 3)
    assert (out["ci_low"], out["ci_high"]) == (-1.0, 0.0)
    assert out["p_worse"] == pytest.approx(0.75, abs=0.03)


def test_enumerated_values_equal_classification_metrics_on_each_resample():
    labels, base, cand = [1, 0, 1], [1, 1, 0], [0, 0, 1]
    rows = _all_resamples(3)
    for metric in ("f1", "accuracy", "precision", "recall"):
        diffs = paired_differences(labels, base, cand, metric, rows)
        for row, d in zip(rows, diffs, strict=True):
            g = [labels[i] for i in row]
            want = (classification_metrics([cand[i] for i in row], g)[metric]
                    - classification_metrics([base[i] for i in row], g)[metric])
            assert d == pytest.approx(want)


def test_identical_predictions_give_a_zero_interval_and_seed_fixes_the_result():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 50).tolist()
    preds = rng.integers(0, 2, 50).tolist()
    same = paired_bootstrap(labels, preds, preds)
    assert (same["difference"], same["ci_low"], same["ci_high"], same["p_worse"]) == (0.0, 0.0, 0.0, 0.0)
    other = rng.integers(0, 2, 50).tolist()
    assert paired_bootstrap(labels, preds, other, seed=3) == paired_bootstrap(labels, preds, other, seed=3)
    assert paired_bootstrap(labels, preds, other, seed=3) != paired_bootstrap(labels, preds, other, seed=4)


def test_bad_inputs_name_the_problem():
    with pytest.raises(ValueError, match="equally long"):
        paired_bootstrap([1, 0], [1], [1, 0])
    with pytest.raises(ValueError, match="unknown metric 'bleu'"):
        paired_bootstrap([1], [1], [1], "bleu")


def test_single_model_interval_is_the_percentile_of_the_resampled_metric():
    from greenprune.tasks.metrics import bootstrap_metric_interval

    labels, preds = [1, 1, 0, 0], [1, 0, 0, 1]
    low, high = bootstrap_metric_interval(labels, preds, "accuracy", resamples=4000, seed=1)
    # accuracy of 4 draws with p = 1/2 of being right: the 2.5% and 97.5% quantiles are 0 and 1
    assert (low, high) == (0.0, 1.0)
    assert bootstrap_metric_interval(labels * 10, labels * 10, "f1") == (1.0, 1.0)  # perfect on every resample
    with pytest.raises(ValueError, match="equally long"):
        bootstrap_metric_interval(labels, preds[:3])


def test_paired_predictions_pair_only_the_same_labelled_examples_in_order():
    base = [("a", 1, 1), ("b", 0, 1), ("c", 1, 0)]
    cand = [("a", 1, 0), ("b", 0, 0), ("c", 1, 1)]
    assert paired_predictions(base, cand) == ([1, 0, 1], [1, 1, 0], [0, 0, 1])
    assert paired_predictions(base, cand[::-1]) is None  # other order: positions would pair unrelated examples
    assert paired_predictions(base, [("a", 1, 0), ("b", 1, 0), ("c", 1, 1)]) is None  # a label differs
    assert paired_predictions(base, cand[:2]) is None  # fewer examples
    assert paired_predictions([], []) is None  # nothing to pair
