"""Metrics against hand-computed values."""

from __future__ import annotations

import math

import pytest

from greenprune.tasks import metrics


def test_classification_metrics():
    m = metrics.classification_metrics([1, 1, 0, 0, 1], [1, 0, 0, 1, 1])
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert metrics.classification_metrics([0, 0], [0, 0])["f1"] == 0.0
    with pytest.raises(ValueError):
        metrics.classification_metrics([1], [1, 0])


def test_pass_at_k_unbiased():
    assert metrics.pass_at_k(10, 0, 1) == 0.0
    assert metrics.pass_at_k(10, 10, 5) == 1.0
    assert metrics.pass_at_k(10, 3, 1) == pytest.approx(0.3)
    # 1 - C(7,2)/C(10,2) = 1 - 21/45
    assert metrics.pass_at_k(10, 3, 2) == pytest.approx(1 - 21 / 45)
    assert metrics.pass_at_k(5, 4, 2) == 1.0
    with pytest.raises(ValueError):
        metrics.pass_at_k(2, 1, 3)


def test_smoothed_bleu4():
    assert metrics.smoothed_bleu4(["returns the sum of two numbers"], ["returns the sum of two numbers"]) == \
        pytest.approx(100.0)
    # hand-computed: ref "a b c d" vs hyp "a b x": p1=2/3, p2=(1+1)/(2+1), p3=(0+1)/(1+1), p4=(0+1)/(0+1)
    expected = math.exp((math.log(2 / 3) + math.log(2 / 3) + math.log(1 / 2) + math.log(1)) / 4 + (1 - 5 / 4))
    assert metrics.sentence_bleu4_smoothed("a b c d", "a b x") == pytest.approx(expected, rel=1e-6)
    assert metrics.sentence_bleu4_smoothed("Hello, World", "hello , world") == pytest.approx(1.0)
    assert 0 < metrics.smoothed_bleu4(["open the file"], ["close the file"]) < 100


def test_sacrebleu_and_exact_match():
    assert metrics.sacrebleu(["the cat sat on the mat"], ["the cat sat on the mat"]) == pytest.approx(100.0)
    assert metrics.sacrebleu(["the cat sat on the mat"], ["a dog"]) < 10
    assert metrics.exact_match(["a  b", "c"], ["a b", "d"]) == 0.5


def test_perplexity():
    assert metrics.perplexity(math.log(4) * 10, 10) == pytest.approx(4.0)
    with pytest.raises(ValueError):
        metrics.perplexity(1.0, 0)


def test_wilson_interval_matches_the_textbook_values():
    low, high = metrics.wilson_interval(180, 300)  # 0.60 on 300 examples
    assert low == pytest.approx(0.5436, abs=1e-4) and high == pytest.approx(0.6538, abs=1e-4)
    assert metrics.wilson_interval(0, 10)[0] == 0.0 and metrics.wilson_interval(10, 10)[1] == pytest.approx(1.0)
    with pytest.raises(ValueError):
        metrics.wilson_interval(3, 2)


def test_mcnemar_exact_matches_hand_computed_binomial_tails():
    # 1 vs 5 discordant: P(X <= 1 | n=6, p=1/2) = (1 + 6) / 64, doubled
    assert metrics.mcnemar_exact(1, 5) == pytest.approx(14 / 64)
    assert metrics.mcnemar_exact(5, 1) == pytest.approx(14 / 64)
    assert metrics.mcnemar_exact(0, 10) == pytest.approx(2 / 1024)
    assert metrics.mcnemar_exact(3, 3) == 1.0  # the doubled tail exceeds 1 and is capped
    assert metrics.mcnemar_exact(0, 0) == 1.0
    with pytest.raises(ValueError):
        metrics.mcnemar_exact(-1, 2)


def test_paired_outcomes_count_each_cell():
    base = {"a": True, "b": True, "c": False, "d": False, "e": True}
    cand = {"a": True, "b": False, "c": True, "d": False, "e": False}
    out = metrics.paired_outcomes(base, cand)
    assert (out["both"], out["only_baseline"], out["only_candidate"], out["neither"]) == (1, 2, 1, 1)
    assert out["mcnemar_p"] == pytest.approx(metrics.mcnemar_exact(2, 1))
    with pytest.raises(ValueError, match="same problems"):
        metrics.paired_outcomes(base, {"a": True})


def test_smoothed_bleu4_epsilons_match_the_codexglue_evaluator():
    # The evaluator adds sys.float_info.min (2**-1022) inside both logs. An empty hypothesis has 0 correct of 0
    # guessed unigrams, log(eps) - log(eps) = 0, and 1 of 1 for n = 2..4 after +1 smoothing: every precision term
    # is 0, so the score is the brevity penalty alone, exp(1 - (6 + 1) / (0 + 1)) = exp(-6) for 6 reference words.
    assert metrics.sentence_bleu4_smoothed("returns the sum of two numbers", "") == pytest.approx(math.exp(-6),
                                                                                                 rel=1e-12)
    # a 3-word reference: exp(-3) = 4.98 BLEU points (the old 1e-15 / 1e-9 gave 31.6x less, 0.16)
    assert metrics.smoothed_bleu4(["open a file"], [""]) == pytest.approx(100 * math.exp(-3), rel=1e-12)
    # one wrong word: unigram term log(2**-1022) - log(1) = -1022 ln 2, n = 2..4 are 0 of 0 guessed (+1 each);
    # brevity 1 - 4/2 = -1
    expected = math.exp(-1022 * math.log(2) / 4 - 1)
    assert metrics.sentence_bleu4_smoothed("a b c", "x") == pytest.approx(expected, rel=1e-9)


def test_bootstrap_intervals_cover_the_mean_and_are_seeded():
    assert metrics.bootstrap_mean_interval([3.0] * 20) == (3.0, 3.0)
    values = [0.0] * 50 + [10.0] * 50  # mean 5, standard error 0.5: the 95% interval is about 5 ± 1
    low, high = metrics.bootstrap_mean_interval(values, resamples=4000)
    assert 3.7 < low < 4.3 and 5.7 < high < 6.3
    assert metrics.bootstrap_mean_interval(values, seed=1) == metrics.bootstrap_mean_interval(values, seed=1)
    assert metrics.bootstrap_ratio_interval(values, values) == (1.0, 1.0)  # paired: the same examples each draw
    low, high = metrics.bootstrap_ratio_interval([v / 2 for v in values], values)
    assert low == pytest.approx(0.5) and high == pytest.approx(0.5)
    with pytest.raises(ValueError):
        metrics.bootstrap_ratio_interval([1.0], [1.0, 2.0])
