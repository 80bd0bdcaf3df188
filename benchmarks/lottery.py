"""Lottery-ticket rounds on a small code LLM (issue 19): both rewinds × the three stop policies, on code-to-text.

Each configuration runs `--rounds` rounds (fine-tune, select by the stop policy on validation BLEU, prune
`--per-round` more of the targeted weights by global L1, rewind the survivors to the pre-trained or the
first-fine-tuned weights) and a final fine-tune at the last sparsity. The final model is scored on held-out
functions (test split, by file) with smoothed BLEU-4 and a bootstrap interval, beside the dense model given the same
fine-tuning budget (one round at 0% sparsity: the fair reference), and the paired bootstrap of the difference.
Rows are saved one by one, so a rerun resumes with the next configuration; the results file is re-rendered from
the saved rows after each one (with the command that measured them and the computed check).

    OMP_NUM_THREADS=1 python benchmarks/lottery.py                    # 6 configurations (hours on a CPU)
    python benchmarks/lottery.py --rounds 1 --steps 2 --eval-every 1 --examples 4 --valid 2 \\
        --rows-file /tmp/l.rows.json --out /tmp/l.md                  # a smoke run
    python benchmarks/lottery.py --markdown-only                      # re-render from the saved rows
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("GREENPRUNE_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS = Path(__file__).parent / "results"
REWINDS = ("pretrained", "finetuned")
STOPS = ("best-no-stop", "best", "last")


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--examples", type=int, default=200, help="held-out test functions scored at the end")
    ap.add_argument("--valid", type=int, default=40, help="validation functions the stop policy reads")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--per-round", type=float, default=0.2, help="targeted sparsity added per round (linear)")
    ap.add_argument("--steps", type=int, default=60, help="fine-tuning steps per round")
    ap.add_argument("--eval-every", type=int, default=20)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=192)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--configs", default="all", help="comma list of REWIND/STOP, or 'all'")
    ap.add_argument("--rows-file", type=Path, default=None, help="default results/lottery-<model>.rows.json")
    ap.add_argument("--out", type=Path, default=None, help="default results/lottery-<model>.md")
    ap.add_argument("--markdown-only", action="store_true")
    args = ap.parse_args()
    stem = f"lottery-{args.model.replace('/', '_')}"
    args.rows_file = args.rows_file or RESULTS / f"{stem}.rows.json"
    args.out = args.out or RESULTS / f"{stem}.md"
    every = [f"{r}/{s}" for r in REWINDS for s in STOPS]
    args.config_keys = every if args.configs == "all" else [c for c in args.configs.split(",") if c]
    unknown = sorted(set(args.config_keys) - set(every))
    if unknown:
        ap.error(f"unknown configuration(s) {', '.join(unknown)}; choose from {', '.join(every)}")
    return args


class Bench:
    """The model, the code-to-text splits and the dense fine-tuned reference shared by every configuration."""

    def __init__(self, args: argparse.Namespace) -> None:
        from greenprune.models import load_model
        from greenprune.tasks import get_task

        self.args = args
        self.task = get_task("summarize")
        splits = self.task.embedded(size=max(400, 10 * args.examples), seed=0)
        self.train, self.valid, self.test = splits.train, splits.valid[: args.valid], splits.test[: args.examples]
        if len(self.test) < args.examples:
            raise SystemExit(f"only {len(self.test)} test functions, asked for {args.examples}")
        loaded = load_model(args.model, task="summarize")
        self.pretrained, self.tok = loaded.model, loaded.tokenizer

    def batches(self) -> Any:
        return self.task.train_batches(self.tok, self.train, self.args.batch_size, self.args.max_length)

    def epochs(self) -> Any:
        """Training batches, epoch after epoch (what `run_lottery` does with the `batches` factory)."""
        while True:
            yield from self.batches()

    def valid_bleu(self, model: Any) -> float:
        return float(self.task.evaluate(model, self.tok, self.valid, batch_size=8,
                                        max_new_tokens=self.args.max_new_tokens)["bleu4_smoothed"])

    def test_scores(self, model: Any) -> list[float]:
        model.eval()
        scores = self.task.evaluate(model, self.tok, self.test, batch_size=8, max_new_tokens=self.args.max_new_tokens)
        return [e["bleu4_smoothed"] for e in scores.details["per_example"]]

    def config(self, rewind: str, stop: str, rounds: int) -> Any:
        from greenprune.weights import WeightPruningConfig
        from greenprune.weights.lottery import LotteryConfig

        a = self.args
        return LotteryConfig(rounds=rounds, prune_per_round=a.per_round, rewind=rewind, stop=stop,
                             eval_every=a.eval_every, steps_per_round=a.steps, lr=a.lr, final_finetune=True,
                             pruning=WeightPruningConfig(method="l1", scope="global"))

    def dense_reference(self) -> dict[str, Any]:
        """The dense model fine-tuned with one round's budget and the same selection (best-no-stop)."""
        from greenprune.weights.lottery import train_round

        model = copy.deepcopy(self.pretrained)
        t = time.time()
        score, selected, steps, _, evals = train_round(model, self.epochs(), self.valid_bleu,
                                                       self.config("pretrained", "best-no-stop", 1), desc="dense")
        return {"row": "dense+ft", "valid_bleu": score, "selected_step": selected, "steps": steps,
                "evals": evals, "test_bleu_per_example": self.test_scores(model), "seconds": round(time.time() - t)}

    def oneshot(self) -> dict[str, Any]:
        """The naive alternative: the pre-trained model pruned to the final sparsity at once (global L1), then
        fine-tuned for the lottery's whole training budget ((rounds + 1) x steps) with the same selection."""
        import dataclasses

        from greenprune.weights import WeightPruningConfig, prune
        from greenprune.weights.lottery import train_round

        a = self.args
        model = copy.deepcopy(self.pretrained)
        t = time.time()
        sparsity = a.rounds * a.per_round
        report = prune(model, WeightPruningConfig(method="l1", scope="global", sparsity=sparsity))
        config = dataclasses.replace(self.config("pretrained", "best-no-stop", 1),
                                     steps_per_round=a.steps * (a.rounds + 1))
        score, selected, steps, _, evals = train_round(model, self.epochs(), self.valid_bleu, config, desc="one-shot")
        return {"row": "oneshot", "valid_bleu": score, "selected_step": selected, "steps": steps, "evals": evals,
                "sparsity": report.sparsity, "model_sparsity": report.model_sparsity,
                "test_bleu_per_example": self.test_scores(model), "seconds": round(time.time() - t)}

    def lottery(self, rewind: str, stop: str) -> dict[str, Any]:
        from greenprune.weights.lottery import run_lottery

        model = copy.deepcopy(self.pretrained)
        t = time.time()
        result = run_lottery(model, self.batches, self.valid_bleu, self.config(rewind, stop, self.args.rounds))
        return {"row": f"{rewind}/{stop}", "rounds": [vars(r) for r in result.rounds],
                "sparsity": result.final_report.sparsity, "model_sparsity": result.final_report.model_sparsity,
                "test_bleu_per_example": self.test_scores(model), "seconds": round(time.time() - t)}


def load_rows(path: Path) -> dict[str, dict[str, Any]]:
    return {r["row"]: r for r in json.loads(path.read_text())} if path.is_file() else {}


def render(rows: dict[str, dict[str, Any]], args: argparse.Namespace, command: str) -> str:
    from greenprune.tasks.metrics import bootstrap_mean_interval, bootstrap_ratio_interval

    dense = rows.get("dense+ft")
    lines = [f"# Lottery-ticket rounds on {args.model} (code-to-text)", "", f"Command: `{command}`", "",
             f"{args.rounds} rounds of +{100 * args.per_round:.0f}% global-L1 sparsity (linear), {args.steps} "
             f"fine-tuning steps per round (batch {args.batch_size}, ≤ {args.max_length} tokens, lr {args.lr}), "
             f"selection on {args.valid} validation functions every {args.eval_every} steps, then a final fine-tune "
             f"at the last sparsity. Test: smoothed BLEU-4 on {args.examples} held-out functions, 95% bootstrap "
             "interval; kept = mean BLEU / dense+ft's with the paired bootstrap interval of that ratio (same "
             "functions resampled together). `dense+ft` is the fair reference: the dense model with one round's "
             "fine-tuning budget and selection. `oneshot` is the naive alternative the rounds must beat: the "
             "pre-trained model pruned to the final sparsity at once (global L1) and fine-tuned for the rounds' whole "
             f"budget ({args.steps * (args.rounds + 1)} steps).", "",
             "| row | sparsity | valid BLEU per round (sparsity it trained at) | test BLEU [95% CI] | "
             "kept × dense+ft [95% CI] | s |", "|---|---|---|---|---|---|"]
    order = ["dense+ft", "oneshot", *args.config_keys]
    for key in order:
        r = rows.get(key)
        if r is None:
            continue
        per = r["test_bleu_per_example"]
        mean = sum(per) / len(per)
        low, high = bootstrap_mean_interval(per)
        curve = " → ".join(f"{x['score']:.2f} ({100 * x['sparsity']:.0f}%)" for x in r.get("rounds", []))
        kept = "—"
        if dense and key != "dense+ft":
            base_per = dense["test_bleu_per_example"]
            base = sum(base_per) / len(base_per)
            k_low, k_high = bootstrap_ratio_interval(per, base_per)
            kept = f"{mean / base:.3f} [{k_low:.3f}, {k_high:.3f}]" if base else "—"
        sparsity = f"{100 * r['sparsity']:.0f}%" if "sparsity" in r else "0%"
        curve = curve or f"{r['valid_bleu']:.2f} ({100 * r.get('sparsity', 0):.0f}%)"
        lines.append(f"| {key} | {sparsity} | {curve} | {mean:.2f} [{low:.2f}, {high:.2f}] | {kept} | {r['seconds']} |")
    never = [k for k in args.config_keys if k in rows and k.endswith("/best")
             and not any(x.get("stopped_early") for x in rows[k].get("rounds", []))]
    if never:
        from greenprune.weights.lottery import LotteryConfig

        lines += ["", f"The `best` stop policy never stopped a round early in {', '.join(never)} (patience "
                  f"{LotteryConfig().patience} evaluations, {args.steps // args.eval_every} per round), so those rows "
                  "repeat best-no-stop's."]
    oneshot = rows.get("oneshot")
    if oneshot:
        lines.append("")
        for key in args.config_keys:
            if key in rows:
                diff = [a - b for a, b in zip(rows[key]["test_bleu_per_example"], oneshot["test_bleu_per_example"],
                                              strict=True)]
                low, high = bootstrap_mean_interval(diff)
                verdict = "beat" if low > 0 else "lose to" if high < 0 else "do not separate from"
                lines.append(f"- {key} − oneshot: {sum(diff) / len(diff):+.2f} BLEU [{low:+.2f}, {high:+.2f}] "
                             f"(paired bootstrap): the rounds {verdict} one-shot pruning with the same budget.")
    missing = [k for k in order if k not in rows]
    if missing:
        lines += ["", f"Not measured yet (the script resumes with them): {', '.join(missing)}."]
    return "\n".join(lines) + "\n"


def main() -> None:
    from greenprune._utils import atomic_write_text

    args = parse()
    command = shlex.join(["python", "benchmarks/lottery.py", *sys.argv[1:]])
    rows = load_rows(args.rows_file)
    if args.markdown_only:
        saved = {r.get("command") for r in rows.values()} - {None}
        atomic_write_text(args.out, render(rows, args, saved.pop() if len(saved) == 1 else command))
        return
    from transformers import set_seed

    bench: Bench | None = None
    for key in ["dense+ft", "oneshot", *args.config_keys]:
        if key in rows:
            print(f"[skip] {key}", flush=True)
            continue
        bench = bench or Bench(args)
        print(f"[row] {key} ...", flush=True)
        set_seed(0)  # per row, so a resumed run measures each row exactly as an uninterrupted one would
        row = (bench.dense_reference() if key == "dense+ft" else bench.oneshot() if key == "oneshot"
               else bench.lottery(*key.split("/")))
        row["command"] = command
        rows[key] = row
        atomic_write_text(args.rows_file, json.dumps(list(rows.values()), indent=1, default=str) + "\n")
        atomic_write_text(args.out, render(rows, args, command))
        print(f"[done] {key} in {row['seconds']}s", flush=True)


if __name__ == "__main__":
    main()
