"""Length-grouped fine-tuning batches: how much training time they save and whether quality holds.

Code inputs vary in length (clone pairs: median 138 tokens, p90 285), so a randomly composed batch pads to its
longest member and much of the training compute goes to padding. `TrainConfig(group_by_length=True)` batches
examples of similar length (transformers' `get_length_grouped_indices` over greenprune's shuffle groups). This
benchmark fine-tunes the same pretrained model twice on the same data and seed — random batches, then grouped ones —
and reports, per configuration:

- padded tokens per epoch (exact, from the two epoch orders) and the training time ratio, measured by replaying
  every batch of both epochs (forward, backward, AdamW step on throwaway copies) interleaved in one process;
- the wall time of each real fine-tune (separate runs, same machine load);
- test F1 / accuracy of each with its interval, and the paired bootstrap of grouped − random on the same pairs.

    python benchmarks/group_by_length.py                          # clone, 1,000 pairs at 256 tokens (the demo's)
    python benchmarks/group_by_length.py --train-limit 2400 --max-length 512
    python benchmarks/group_by_length.py --markdown-only          # re-render from the saved rows
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

import torch

from greenprune._utils import atomic_write_text
from greenprune.tasks import Splits, TrainConfig, get_task
from greenprune.tasks.metrics import (
    bootstrap_metric_interval,
    classification_metrics,
    paired_bootstrap,
    wilson_interval,
)
from greenprune.tasks.train import epoch_order, shuffle_groups

RESULTS = Path(__file__).parent / "results"
ARMS = ("random", "grouped")


def config_key(args: argparse.Namespace) -> str:
    return (f"{args.model}/{args.task}/size{args.size}/{args.train_limit}/{args.max_length}/b{args.batch_size}"
            f"/e{args.epochs:g}/lr{args.lr:g}/s{args.seed}")


def padded_tokens(order: list[int], lengths: list[int], batch_size: int) -> int:
    """What one epoch in this order computes on: each batch pads to its longest member."""
    return sum(max(lengths[i] for i in order[s:s + batch_size]) * len(order[s:s + batch_size])
               for s in range(0, len(order), batch_size))


def replay_ratio(model: torch.nn.Module, batches: dict[str, list[dict[str, torch.Tensor]]], lr: float
                 ) -> dict[str, float]:
    """Seconds of one epoch per arm, every batch replayed (forward, backward, AdamW step) on a copy per arm, the
    arms alternating batch by batch (who goes first alternating too) so load drift hits both alike."""
    models = {arm: copy.deepcopy(model).train() for arm in ARMS}
    optimizers = {arm: torch.optim.AdamW(m.parameters(), lr=lr) for arm, m in models.items()}
    spent = dict.fromkeys(ARMS, 0.0)
    for k in range(max(len(b) for b in batches.values())):
        for arm in ARMS if k % 2 == 0 else ARMS[::-1]:
            if k >= len(batches[arm]):
                continue
            start = time.perf_counter()
            models[arm](**batches[arm][k]).loss.backward()
            optimizers[arm].step()
            optimizers[arm].zero_grad(set_to_none=True)
            spent[arm] += time.perf_counter() - start
    return {**{f"replay_seconds_{arm}": s for arm, s in spent.items()},
            "time_ratio": spent["grouped"] / spent["random"]}


def measure(args: argparse.Namespace, row: dict[str, Any], save: Any) -> None:
    from greenprune.models import load_model

    task = get_task(args.task)
    full = task.embedded(size=args.size, seed=0)
    splits = Splits(full.train[: args.train_limit], full.valid, full.test, source=full.source)
    torch.manual_seed(args.seed)  # the freshly initialised head: the same in any process, so arms resume alike
    pretrained = load_model(args.model, task=args.task)
    tokenizer = pretrained.tokenizer
    lengths = task.token_lengths(tokenizer, splits.train, args.max_length)
    groups = shuffle_groups(splits.train)
    orders = {"random": epoch_order(groups, torch.Generator().manual_seed(args.seed), args.batch_size),
              "grouped": epoch_order(groups, torch.Generator().manual_seed(args.seed), args.batch_size, lengths)}
    row.update({"train": len(splits.train), "test": len(splits.test), "real_tokens": sum(lengths),
                **{f"padded_tokens_{arm}": padded_tokens(o, lengths, args.batch_size) for arm, o in orders.items()}})
    labels = [int(e.label) for e in splits.test]  # type: ignore[arg-type]
    row["labels"] = labels
    for arm in ARMS:
        if arm in row.get("arms", {}):
            continue
        print(f"[{arm}] fine-tuning on {len(splits.train)} pairs ...", flush=True)
        model = copy.deepcopy(pretrained.model)
        config = TrainConfig(epochs=args.epochs, lr=args.lr, batch_size=args.batch_size, max_length=args.max_length,
                             seed=args.seed, device="cpu", group_by_length=arm == "grouped")
        start = time.perf_counter()
        task.finetune(model, tokenizer, splits, config)
        seconds = time.perf_counter() - start
        preds = task.predict(model, tokenizer, splits.test, args.batch_size, args.max_length)
        row.setdefault("arms", {})[arm] = {"finetune_seconds": seconds, "preds": preds,
                                           "metrics": classification_metrics(preds, labels)}
        save()
        print(f"[{arm}] {row['arms'][arm]['metrics']} in {seconds:.0f} s", flush=True)
    if "time_ratio" not in row:
        print("[replay] both epochs, batch by batch interleaved ...", flush=True)
        batches = {arm: list(task.train_batches(tokenizer, [splits.train[i] for i in order], args.batch_size,
                                                args.max_length)) for arm, order in orders.items()}
        row.update(replay_ratio(pretrained.model, batches, args.lr))
        save()


def render(rows: dict[str, Any]) -> str:
    lines = [
        "# Length-grouped fine-tuning batches (`TrainConfig(group_by_length=True)`)",
        "",
        "Commands (one per configuration; rows in `group-by-length.rows.json`):",
        "",
        *(f"- {key}: `{row['command']}`" for key, row in rows.items()),
        "",
        "Same pretrained model (the configuration's first field), same data and seed, fine-tuned twice: random "
        "batches vs batches of similar length (transformers' `get_length_grouped_indices` over greenprune's shuffle "
        "groups). *padded tokens*: what an epoch computes on (each batch pads to its longest member), exact. "
        "*replayed time ×*: every batch of both epochs run again (forward, backward, AdamW step on throwaway "
        "copies), the two arms alternating batch by batch in one process, grouped ÷ random (the fair ratio). "
        "*fine-tune wall*: the two real fine-tunes, separate runs, random first, on a shared machine: not a fair "
        "ratio. F1 intervals: percentile bootstrap; accuracy: Wilson; Δ: paired bootstrap of grouped − random on "
        "the same test pairs (2,000 joint resamples, seed 0), over test pairs, not over training runs (one seed).",
        "",
        "| configuration | train / test | padded tokens random → grouped (×) | replayed time × | fine-tune wall "
        "random → grouped | F1 random | F1 grouped | ΔF1 [95% CI] | accuracy random → grouped |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    verdicts = []
    for key, row in rows.items():
        if len(row.get("arms", {})) < len(ARMS) or "time_ratio" not in row:
            lines.append(f"| {key} | not finished | | | | | | | |")
            continue
        labels, arms = row["labels"], row["arms"]
        f1 = {a: bootstrap_metric_interval(labels, arms[a]["preds"], "f1") for a in ARMS}
        acc = {a: wilson_interval(sum(p == y for p, y in zip(arms[a]["preds"], labels, strict=True)), len(labels))
               for a in ARMS}
        diff = paired_bootstrap(labels, arms["random"]["preds"], arms["grouped"]["preds"], "f1")
        pad = row["padded_tokens_grouped"] / row["padded_tokens_random"]
        cells = [
            key, f"{row['train']:,} / {row['test']:,}",
            f"{row['padded_tokens_random']:,} → {row['padded_tokens_grouped']:,} ({pad:.3f})",
            f"{row['time_ratio']:.3f}",
            f"{arms['random']['finetune_seconds'] / 60:.1f} → {arms['grouped']['finetune_seconds'] / 60:.1f} min",
            *(f"{arms[a]['metrics']['f1']:.4f} [{f1[a][0]:.3f}, {f1[a][1]:.3f}]" for a in ARMS),
            f"{diff['difference']:+.4f} [{diff['ci_low']:+.4f}, {diff['ci_high']:+.4f}]",
            " → ".join(f"{arms[a]['metrics']['accuracy']:.4f} [{acc[a][0]:.3f}, {acc[a][1]:.3f}]" for a in ARMS),
        ]
        lines.append("| " + " | ".join(cells) + " |")
        holds = diff["ci_low"] <= 0 <= diff["ci_high"]
        verdicts.append(
            f"- {key}: grouped batches take {row['time_ratio']:.2f}× the training time of random ones; F1 "
            + ("shows no difference beyond the paired CI" if holds else
               ("is higher beyond the paired CI" if diff["ci_low"] > 0 else "is lower beyond the paired CI"))
            + f" (Δ {diff['difference']:+.4f} [{diff['ci_low']:+.4f}, {diff['ci_high']:+.4f}]).")
    return "\n".join([*lines, "", "## Verdict (computed from the rows)", "", *verdicts, ""])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="minilm")
    ap.add_argument("--task", default="clone")
    ap.add_argument("--size", type=int, default=12000, help="embedded size (clone: 9,600 / 1,200 / 1,200 pairs)")
    ap.add_argument("--train-limit", type=int, default=1000)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--epochs", type=float, default=1.0)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--markdown-only", action="store_true", help="re-render the results file from the saved rows")
    args = ap.parse_args(argv)
    command = shlex.join(["python", "benchmarks/group_by_length.py", *(sys.argv[1:] if argv is None else argv)])
    rows_file = args.out / "group-by-length.rows.json"
    rows: dict[str, Any] = json.loads(rows_file.read_text()) if rows_file.is_file() else {}

    def save() -> None:
        args.out.mkdir(parents=True, exist_ok=True)
        atomic_write_text(rows_file, json.dumps(rows, indent=1))

    if not args.markdown_only:
        row = rows.setdefault(config_key(args), {"command": command})
        measure(args, row, save)
    atomic_write_text(args.out / "group-by-length.md", render(rows))
    print(f"wrote {args.out / 'group-by-length.md'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
