"""Shallow baselines for the embedded defect task: does something trivial already explain a model's accuracy?

Trains two logistic regressions on the same embedded train split the fine-tune uses and scores the same test
split: (1) bag of code-token 1-3-grams (the strongest "surface statistics" probe: it can only see which tokens
occur, not where), (2) length only (code tokens, characters, lines). A fine-tuned model is only interesting
if it beats these. Writes a result record (method "probe") that `benchmarks/tasks.py` renders.

    python benchmarks/defect_probe.py --size 4000 --json benchmarks/results/tasks-defect-probe.json
"""

from __future__ import annotations

import argparse
import shlex
import sys
from collections import Counter
from pathlib import Path

import torch

from greenprune.measure.records import ResultRecord, save_json
from greenprune.tasks import get_task
from greenprune.tasks.defect import CODE_TOKEN, code_tokens
from greenprune.tasks.metrics import wilson_interval


def ngrams(text: str, n_max: int = 3) -> list[str]:
    toks = CODE_TOKEN.findall(text)
    return [" ".join(toks[i : i + n]) for n in range(1, n_max + 1) for i in range(len(toks) - n + 1)]


def bag(texts: list[str], vocab: dict[str, int]) -> torch.Tensor:
    x = torch.zeros(len(texts), len(vocab))
    for row, text in enumerate(texts):
        for gram, count in Counter(ngrams(text)).items():
            if gram in vocab:
                x[row, vocab[gram]] = count
    return torch.log1p(x)


def lengths(texts: list[str]) -> torch.Tensor:
    x = torch.tensor([[code_tokens(t), len(t), t.count("\n") + 1] for t in texts], dtype=torch.float32)
    return x


def fit_logistic(x: torch.Tensor, y: torch.Tensor, l2: float) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """L2-regularised logistic regression by L-BFGS on standardised features; returns (weights, bias, scale)."""
    mean, std = x.mean(0), x.std(0).clamp_min(1e-6)
    xs = (x - mean) / std
    w = torch.zeros(x.shape[1], requires_grad=True)
    b = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([w, b], max_iter=300, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(xs @ w + b, y) + l2 * (w * w).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return w.detach(), b.detach(), torch.stack([mean, std])


def accuracy(model: tuple[torch.Tensor, torch.Tensor, torch.Tensor], x: torch.Tensor, y: torch.Tensor) -> float:
    w, b, (mean, std) = model
    return float((((x - mean) / std @ w + b > 0).float() == y).float().mean())


def probe(features, splits, l2s=(1e-4, 1e-3, 1e-2, 1e-1)) -> tuple[float, float, float]:
    """(valid accuracy, test accuracy, chosen l2), regularisation chosen on the valid split."""
    (xtr, ytr), (xva, yva), (xte, yte) = ((features(s), torch.tensor([float(e.label) for e in s]))
                                          for s in (splits.train, splits.valid, splits.test))
    best = max(((accuracy(m := fit_logistic(xtr, ytr, l2), xva, yva), l2, m) for l2 in l2s), key=lambda t: t[0])
    return best[0], accuracy(best[2], xte, yte), best[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=4000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-count", type=int, default=2, help="n-grams seen fewer times in train are dropped")
    parser.add_argument("--max-features", type=int, default=20000)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    splits = get_task("defect").embedded(size=args.size, seed=args.seed)
    counts = Counter(g for e in splits.train for g in set(ngrams(e.text)))
    vocab = {g: i for i, (g, c) in enumerate(counts.most_common(args.max_features)) if c >= args.min_count}
    metrics: dict[str, float] = {}
    n = len(splits.test)
    for name, features in (("bag_of_ngrams", lambda s: bag([e.text for e in s], vocab)),
                           ("length", lambda s: lengths([e.text for e in s]))):
        valid_acc, test_acc, l2 = probe(features, splits)
        low, high = wilson_interval(round(test_acc * n), n)
        metrics.update({f"{name}_accuracy": test_acc, f"{name}_ci_low": low, f"{name}_ci_high": high,
                        f"{name}_valid_accuracy": valid_acc, f"{name}_l2": l2})
        print(f"{name}: test accuracy {test_acc:.3f} (95% CI {low:.3f}-{high:.3f}, n={n}), valid {valid_acc:.3f}")
    record = ResultRecord(model="logistic-probe", method="probe", task="defect", metrics=metrics,
                          config={"data": splits.source, "splits": splits.sizes(), "features": len(vocab)},
                          command=shlex.join(["python", *sys.argv]))
    if args.json:
        save_json(record, args.json)


if __name__ == "__main__":
    main()
