"""Task metrics, computed the way the papers users compare against compute them.

- classification: accuracy, precision, recall, F1 of the positive class (buggy / clone), as CodeXGLUE reports.
- code-to-text: smoothed sentence BLEU-4 averaged over the corpus, following the CodeXGLUE evaluator (lower-cased,
  punctuation split, +1 smoothing of n>1 precisions, brevity penalty on (ref+1)/(hyp+1)), plus sacreBLEU's corpus
  BLEU for comparability with NLP work.
- generation: pass@k with the unbiased estimator of Chen et al. (2021).
- language modelling: perplexity = exp(mean token negative log-likelihood).
"""

from __future__ import annotations

import math
import re
import sys
from collections import Counter
from collections.abc import Sequence

import numpy as np


def classification_metrics(predictions: Sequence[int], labels: Sequence[int]) -> dict[str, float]:
    """Accuracy and precision/recall/F1 of class 1; empty denominators give 0.0 (not NaN) so records stay JSON."""
    if len(predictions) != len(labels):
        raise ValueError(f"{len(predictions)} predictions for {len(labels)} labels")
    if not labels:
        raise ValueError("no examples to score")
    pred = np.asarray(predictions, dtype=np.int64)
    gold = np.asarray(labels, dtype=np.int64)
    tp = int(((pred == 1) & (gold == 1)).sum())
    fp = int(((pred == 1) & (gold != 1)).sum())
    fn = int(((pred != 1) & (gold == 1)).sum())
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"accuracy": float((pred == gold).mean()), "precision": precision, "recall": recall, "f1": f1}


def wilson_interval(successes: int, n: int, z: float = 1.959964) -> tuple[float, float]:
    """Wilson score interval of a binomial proportion (95% for the default z): e.g. is accuracy above chance."""
    if n <= 0 or not 0 <= successes <= n:
        raise ValueError(f"need 0 <= successes <= n and n > 0, got {successes} of {n}")
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


# --- paired bootstrap of a metric difference (issue 16) ----------------------------------------------------------

def resampled_metric(labels: Sequence[int], predictions: Sequence[Sequence[int]], metric: str,
                     indices: np.ndarray) -> np.ndarray:
    """metric of each prediction list on each row of `indices` (resamples × n example indices): an array of shape
    (models, resamples). The same rows apply to the labels and every model, so models can be compared pairwise.
    Undefined precision/recall/F1 count as 0 (as classification_metrics)."""
    if metric not in ("f1", "accuracy", "precision", "recall"):
        raise ValueError(f"bootstrap: unknown metric {metric!r}; expected f1, accuracy, precision or recall")
    gold = np.asarray(labels, dtype=np.int64)[indices]
    preds = np.stack([np.asarray(p, dtype=np.int64) for p in predictions])[:, indices]
    tp = ((preds == 1) & (gold == 1)).sum(-1)
    fp = ((preds == 1) & (gold != 1)).sum(-1)
    fn = ((preds != 1) & (gold == 1)).sum(-1)
    with np.errstate(divide="ignore", invalid="ignore"):
        if metric == "accuracy":
            return (preds == gold).mean(-1)
        if metric == "precision":
            return np.where(tp + fp > 0, tp / (tp + fp), 0.0)
        if metric == "recall":
            return np.where(tp + fn > 0, tp / (tp + fn), 0.0)
        return np.where(2 * tp + fp + fn > 0, 2 * tp / (2 * tp + fp + fn), 0.0)  # F1 = 2tp / (2tp + fp + fn)


def paired_differences(labels: Sequence[int], baseline: Sequence[int], candidate: Sequence[int], metric: str,
                       indices: np.ndarray) -> np.ndarray:
    """metric(candidate) - metric(baseline) on each row of `indices`, the same rows applied to labels and both."""
    values = resampled_metric(labels, [baseline, candidate], metric, indices)
    return values[1] - values[0]


def bootstrap_metric_interval(labels: Sequence[int], predictions: Sequence[int], metric: str = "f1", *,
                              resamples: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of one model's metric (F1 has no closed-form interval like Wilson's), seeded."""
    n = len(labels)
    if not n or len(predictions) != n:
        raise ValueError(f"bootstrap needs equally long, non-empty labels and predictions; got {n} labels and "
                         f"{len(predictions)} predictions")
    indices = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    values = resampled_metric(labels, [predictions], metric, indices)[0]
    tail = (1 - level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return float(low), float(high)


# one scored example of a classification task: (example id, gold label, prediction)
Prediction = tuple[str, int, int]


def paired_predictions(baseline: Sequence[Prediction], candidate: Sequence[Prediction]
                       ) -> tuple[list[int], list[int], list[int]] | None:
    """(labels, baseline predictions, candidate predictions) when both scored the same labelled examples in the
    same order, else None: a paired test over different examples would pair unrelated outcomes."""
    if not baseline or [e[:2] for e in baseline] != [e[:2] for e in candidate]:
        return None
    return [y for _, y, _ in candidate], [p for _, _, p in baseline], [p for _, _, p in candidate]


def paired_bootstrap(
    labels: Sequence[int],
    baseline: Sequence[int],
    candidate: Sequence[int],
    metric: str = "f1",
    *,
    resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> dict[str, float]:
    """Percentile CI of metric(candidate) - metric(baseline) over examples resampled *jointly* (one draw of indices
    is applied to labels and both predictions), so example difficulty cancels out of the difference.

    `metric` is a key of `classification_metrics` (f1, accuracy, precision, recall). Fixed `seed`: same inputs,
    same interval. Returns the observed difference, the CI bounds and the share of resamples where the candidate
    is worse (a one-sided bootstrap p-value for "the candidate loses quality").
    """
    n = len(labels)
    if not n or len(baseline) != n or len(candidate) != n:
        raise ValueError(f"paired bootstrap needs equally long, non-empty labels and predictions; got {n} labels, "
                         f"{len(baseline)} baseline and {len(candidate)} candidate predictions")
    if resamples < 1 or not 0 < level < 1:
        raise ValueError(f"need resamples >= 1 and 0 < level < 1, got {resamples} and {level}")
    indices = np.random.default_rng(seed).integers(0, n, size=(resamples, n))
    diffs = paired_differences(labels, baseline, candidate, metric, indices)
    observed = float(paired_differences(labels, baseline, candidate, metric, np.arange(n)[None, :])[0])
    tail = (1 - level) / 2
    low, high = np.quantile(diffs, [tail, 1 - tail])
    return {"difference": observed, "ci_low": float(low), "ci_high": float(high),
            "p_worse": float((diffs < 0).mean()), "resamples": resamples, "seed": seed, "level": level}


def mcnemar_exact(only_a: int, only_b: int) -> float:
    """Two-sided exact McNemar p-value from the discordant pairs of paired pass/fail outcomes.

    Under "no difference" each discordant problem is equally likely to favour either side, so the count favouring
    one side is Binomial(only_a + only_b, 1/2); the p-value doubles the smaller tail (capped at 1).
    """
    if only_a < 0 or only_b < 0:
        raise ValueError(f"discordant counts must be non-negative, got {only_a} and {only_b}")
    n, k = only_a + only_b, min(only_a, only_b)
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2**n
    return min(1.0, 2 * tail)


def paired_outcomes(baseline: dict[str, bool], candidate: dict[str, bool]) -> dict[str, float]:
    """Per-problem pass/fail of two models on the same problems: both / only baseline / only candidate / neither,
    and the exact McNemar p-value. Both must cover the same problem ids."""
    if set(baseline) != set(candidate):
        missing = sorted(set(baseline) ^ set(candidate))[:5]
        raise ValueError(f"paired outcomes need the same problems on both sides; differing ids: {missing}")
    both = sum(baseline[i] and candidate[i] for i in baseline)
    only_base = sum(baseline[i] and not candidate[i] for i in baseline)
    only_cand = sum(candidate[i] and not baseline[i] for i in baseline)
    neither = len(baseline) - both - only_base - only_cand
    return {"both": both, "only_baseline": only_base, "only_candidate": only_cand, "neither": neither,
            "mcnemar_p": mcnemar_exact(only_base, only_cand)}


def accuracy(predictions: Sequence[int], labels: Sequence[int]) -> float:
    return classification_metrics(predictions, labels)["accuracy"]


def precision_recall_f1(predictions: Sequence[int], labels: Sequence[int]) -> tuple[float, float, float]:
    m = classification_metrics(predictions, labels)
    return m["precision"], m["recall"], m["f1"]


# --- smoothed BLEU-4 as the CodeXGLUE code-to-text evaluator computes it ----------------------------------------

_NORM1 = [(re.compile(r"<skipped>"), ""), (re.compile(r"-\n"), ""), (re.compile(r"\n"), " ")]
_NORM2 = [
    (re.compile(r"([\{-\~\[-\` -\&\(-\+\:-\@\/])"), r" \1 "),
    (re.compile(r"([^0-9])([\.,])"), r"\1 \2 "),
    (re.compile(r"([\.,])([^0-9])"), r" \1 \2"),
    (re.compile(r"([0-9])(-)"), r"\1 \2 "),
]


def _split_puncts(line: str) -> str:
    return " ".join(re.findall(r"[\w]+|[^\s\w]", line))


def _normalize(text: str) -> list[str]:
    for pattern, repl in _NORM1:
        text = pattern.sub(repl, text)
    text = text.replace("&quot;", '"').replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")
    text = f" {text} ".lower()
    for pattern, repl in _NORM2:
        text = pattern.sub(repl, text)
    return text.split()


def _ngrams(words: list[str], n: int = 4) -> Counter[tuple[str, ...]]:
    counts: Counter[tuple[str, ...]] = Counter()
    for k in range(1, n + 1):
        for i in range(len(words) - k + 1):
            counts[tuple(words[i : i + k])] += 1
    return counts


_TINY = sys.float_info.min  # the CodeXGLUE evaluator's epsilon (bleu.py score_cooked), in both log terms


def sentence_bleu4_smoothed(reference: str, hypothesis: str, n: int = 4) -> float:
    """Smoothed BLEU-4 of one hypothesis against one reference, in [0, 1] (CodeXGLUE's sentence score)."""
    ref = _normalize(_split_puncts(reference.strip().lower()))
    hyp = _normalize(_split_puncts(hypothesis.strip().lower()))
    ref_counts = _ngrams(ref, n)
    hyp_counts = _ngrams(hyp, n)
    log_bleu = 0.0
    for k in range(1, n + 1):
        guess = max(len(hyp) - k + 1, 0)
        correct = sum(min(c, ref_counts.get(g, 0)) for g, c in hyp_counts.items() if len(g) == k)
        add = 1 if k > 1 else 0
        # the evaluator's epsilon in both logs: an empty hypothesis then scores exp(brevity penalty), not 31.6×
        # less, and a unigram miss drives the score to ~0 as it does there
        log_bleu += math.log(correct + add + _TINY) - math.log(guess + add + _TINY)
    log_bleu /= n
    brevity = min(0.0, 1 - (len(ref) + 1) / (len(hyp) + 1))
    return math.exp(log_bleu + brevity)


def smoothed_bleu4(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Corpus score as CodeXGLUE reports it: mean sentence-level smoothed BLEU-4, ×100."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    if not references:
        raise ValueError("no examples to score")
    scores = [sentence_bleu4_smoothed(r, h) for r, h in zip(references, hypotheses, strict=True)]
    return 100.0 * sum(scores) / len(scores)


def bootstrap_mean_interval(values: Sequence[float], resamples: int = 2000, seed: int = 0,
                            level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of per-example scores (e.g. sentence BLEU), seeded."""
    if not values:
        raise ValueError("no values to bootstrap")
    data = np.asarray(values, dtype=np.float64)
    rng = np.random.default_rng(seed)
    means = data[rng.integers(0, len(data), size=(resamples, len(data)))].mean(axis=1)
    tail = (1.0 - level) / 2
    return float(np.quantile(means, tail)), float(np.quantile(means, 1.0 - tail))


def bootstrap_ratio_interval(candidate: Sequence[float], baseline: Sequence[float], resamples: int = 2000,
                             seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Paired percentile bootstrap interval of mean(candidate) / mean(baseline) over the same examples."""
    if len(candidate) != len(baseline) or not candidate:
        raise ValueError(f"paired bootstrap needs equal, non-empty lists (got {len(candidate)}, {len(baseline)})")
    cand, base = np.asarray(candidate, dtype=np.float64), np.asarray(baseline, dtype=np.float64)
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(cand), size=(resamples, len(cand)))
    num, den = cand[idx].mean(axis=1), base[idx].mean(axis=1)
    ratios = np.divide(num, den, out=np.full_like(num, np.nan), where=den > 0)
    ratios = ratios[~np.isnan(ratios)]
    if not len(ratios):
        return float("nan"), float("nan")
    tail = (1.0 - level) / 2
    return float(np.quantile(ratios, tail)), float(np.quantile(ratios, 1.0 - tail))


def sacrebleu(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """sacreBLEU corpus BLEU (default 13a tokenisation), ×100."""
    import sacrebleu as sb

    return float(sb.corpus_bleu(list(hypotheses), [list(references)]).score)


def exact_match(references: Sequence[str], hypotheses: Sequence[str]) -> float:
    """Share of hypotheses equal to their reference after stripping and collapsing whitespace."""
    if len(references) != len(hypotheses):
        raise ValueError(f"{len(hypotheses)} hypotheses for {len(references)} references")
    if not references:
        raise ValueError("no examples to score")
    same = sum(" ".join(r.split()) == " ".join(h.split()) for r, h in zip(references, hypotheses, strict=False))
    return same / len(references)


# --- pass@k ------------------------------------------------------------------------------------------------------

def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with `n` samples of which `c` pass: 1 - C(n-c, k) / C(n, k)."""
    if not 0 <= c <= n or k < 1:
        raise ValueError(f"pass_at_k needs 0 <= c <= n and k >= 1, got n={n}, c={c}, k={k}")
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples per problem, got {n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(samples: Sequence[int], correct: Sequence[int], k: int) -> float:
    """pass@k averaged over problems, given per-problem sample and pass counts."""
    if not samples:
        raise ValueError("no problems to score")
    return sum(pass_at_k(n, c, k) for n, c in zip(samples, correct, strict=False)) / len(samples)


# --- perplexity --------------------------------------------------------------------------------------------------

def perplexity(total_nll: float, total_tokens: int) -> float:
    """exp of the mean negative log-likelihood per predicted token."""
    if total_tokens <= 0:
        raise ValueError("perplexity needs at least one predicted token")
    return math.exp(total_nll / total_tokens)
