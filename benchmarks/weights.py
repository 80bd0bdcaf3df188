"""Weight pruning and quantisation of smollm2-135m on embedded code-to-text (the CodeBERT study, pushed further).

Rows: BLEU vs sparsity for random/L1 × global/per-tensor (one shot, no recovery); L1-global 50% after a short
masked recovery fine-tune, beside the dense model fine-tuned the same way (the fair reference); fp16 and
int8-dynamic; compact checkpoint bytes; and measured forward speed against dense fp32 in the same process
(interleaved): unstructured 50% (no speed-up expected on dense kernels), FFN rows removed physically (structured:
expected faster), fp16, int8.

    python benchmarks/weights.py [--examples 30] [--max-new-tokens 20] [--recover-steps 60]
"""

from __future__ import annotations

import argparse
import copy
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

import torch

os.environ.setdefault("GREENPRUNE_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from greenprune._utils import atomic_write_text, seed_everything
from greenprune.measure import compare
from greenprune.measure.inputs import code_batches
from greenprune.models import load_model
from greenprune.quantize import quantize
from greenprune.tasks import get_task
from greenprune.weights import WeightPruningConfig, make_permanent, prune
from greenprune.weights.lottery import LotteryConfig, train_round
from greenprune.weights.shrink import shrink_gated_ffn
from greenprune.weights.sparse_io import folder_bytes, save_sparse

RESULTS = Path(__file__).parent / "results" / "weights.md"


def aim_lines(zero_shot: float, recovered: float, reference: float, sparsity: float, steps: int) -> list[str]:
    """The issue's aim (50% unstructured at >= 99% of dense BLEU after recovery), judged against both dense rows.

    The recovered model is fine-tuned on the task, so only the dense model fine-tuned the same way is a fair
    reference; the zero-shot ratio is quoted beside it because that is the column the table shows.
    """
    fair = recovered / reference if reference > 0 else float("nan")
    of_zero_shot = recovered / zero_shot if zero_shot > 0 else float("nan")
    verdict = "met" if fair >= 0.99 else "not met"
    return [
        f"**Aim check (computed).** L1 global at {100 * sparsity:.1f}% sparsity after {steps} masked fine-tune "
        f"steps scores BLEU {recovered:.2f}: {100 * of_zero_shot:.1f}% of the zero-shot dense model and "
        f"{100 * fair:.1f}% of the dense model fine-tuned the same way for the same {steps} steps "
        f"(BLEU {reference:.2f}). Against that fair reference the aim (50% at >= 99% of dense BLEU after "
        f"recovery) is **{verdict}**. The \"% of dense\" column divides by the zero-shot dense row. BLEU on this "
        "few functions with this few new tokens is a small, noisy sample.",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--examples", type=int, default=30, help="test functions summarised per row")
    parser.add_argument("--max-new-tokens", type=int, default=20)
    parser.add_argument("--sparsities", default="0.2,0.5")
    parser.add_argument("--recover-steps", type=int, default=60)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    command = shlex.join(["python", "benchmarks/weights.py", *sys.argv[1:]])
    seed_everything(0)
    started = time.time()
    task = get_task("summarize")
    splits = task.embedded(size=400, seed=0)
    test = splits.test[: args.examples]
    loaded = load_model(args.model, task="summarize")
    dense, tok = loaded.model, loaded.tokenizer

    def bleu(model: torch.nn.Module) -> float:
        metrics = task.evaluate(model, tok, test, batch_size=8, max_new_tokens=args.max_new_tokens)
        return metrics["bleu4_smoothed"]  # already ×100, as CodeXGLUE reports it

    lines: list[str] = []

    def log(text: str) -> None:
        print(text, flush=True)
        lines.append(text)

    base = bleu(dense)
    log(f"dense fp32 BLEU-4 {base:.2f} on {len(test)} functions ({time.time() - started:.0f}s)")
    tmp = Path(tempfile.mkdtemp(prefix="gp_weights_"))
    dense.save_pretrained(tmp / "dense")
    dense_bytes = folder_bytes(tmp / "dense")
    quality = [("dense", "-", "-", 0.0, base, dense_bytes)]
    sparsities = [float(s) for s in args.sparsities.split(",")]
    for method in ("random", "l1"):
        for scope in ("global", "per-tensor"):
            for s in sparsities:
                cand = copy.deepcopy(dense)
                report = prune(cand, WeightPruningConfig(method=method, scope=scope, sparsity=s))
                save_sparse(cand, tmp / "s", overwrite=True)
                make_permanent(cand)
                score = bleu(cand)
                quality.append((method, scope, "one-shot", report.sparsity, score, folder_bytes(tmp / "s")))
                log(f"{method} {scope} {s}: BLEU {score:.2f} ({time.time() - started:.0f}s)")
                del cand
    # recovery: masked fine-tune of L1-global 50% on the train split (LM loss on the summary tokens)
    cand = copy.deepcopy(dense)
    report = prune(cand, WeightPruningConfig(method="l1", scope="global", sparsity=0.5))
    train = list(task.train_batches(tok, splits.train, 4, 256))
    valid = splits.valid[:10]
    config = LotteryConfig(stop="best-no-stop", eval_every=max(1, args.recover_steps // 3),
                           steps_per_round=args.recover_steps, lr=5e-5)
    train_round(
        cand, iter(train * (1 + args.recover_steps // max(1, len(train)))),
        lambda m: task.evaluate(m, tok, valid, batch_size=8, max_new_tokens=args.max_new_tokens)["bleu4_smoothed"],
        config, desc="recovery")
    save_sparse(cand, tmp / "s", overwrite=True)
    make_permanent(cand)
    recovered = bleu(cand)
    quality.append(("l1", "global", f"+{args.recover_steps} masked fine-tune steps", report.sparsity, recovered,
                    folder_bytes(tmp / "s")))
    log(f"l1 global 0.5 recovered: BLEU {recovered:.2f} ({time.time() - started:.0f}s)")
    unstructured = cand
    # the fair reference for the recovered row: the dense model fine-tuned the same way for the same steps
    reference = copy.deepcopy(dense)
    train_round(
        reference, iter(train * (1 + args.recover_steps // max(1, len(train)))),
        lambda m: task.evaluate(m, tok, valid, batch_size=8, max_new_tokens=args.max_new_tokens)["bleu4_smoothed"],
        config, desc="dense reference")
    reference_bleu = bleu(reference)
    quality.append(("dense", "-", f"+{args.recover_steps} fine-tune steps (reference)", 0.0, reference_bleu,
                    dense_bytes))
    log(f"dense +{args.recover_steps} steps reference: BLEU {reference_bleu:.2f} ({time.time() - started:.0f}s)")
    del reference
    # fp16 / int8 quality
    fp16 = quantize(dense, "fp16")
    int8 = quantize(dense, "int8")
    q_scores = {"fp16": bleu(fp16), "int8": bleu(int8)}
    log(f"fp16 BLEU {q_scores['fp16']:.2f}, int8 BLEU {q_scores['int8']:.2f} ({time.time() - started:.0f}s)")
    # speed, interleaved against dense fp32 on the same batches
    rows_model = copy.deepcopy(dense)
    prune(rows_model, WeightPruningConfig(method="l1", scope="per-tensor", granularity="rows", sparsity=0.5,
                                          targets=["*.mlp.up_proj"]))
    rows_bleu = bleu(rows_model)
    shrink_gated_ffn(rows_model)
    rows_bleu_after = bleu(rows_model)
    assert abs(rows_bleu - rows_bleu_after) < 1e-9, "shrinking dead FFN neurons must not change outputs"
    log(f"FFN rows 50% (physically removed): BLEU {rows_bleu_after:.2f} ({time.time() - started:.0f}s)")
    data = list(code_batches(tok, batch_size=8, seq_len=128, n_batches=2))
    speed = []
    for name, model in (("unstructured L1 50% (recovered)", unstructured), ("FFN rows 50%, removed", rows_model),
                        ("fp16", fp16), ("int8 dynamic", int8)):
        comp = compare(dense, model, data, names=("dense fp32", name), rounds=args.rounds, energy=False,
                       count_memory=False)
        speed.append((name, comp))
        log(f"speed {name}: latency ×{comp.ratios['latency_interleaved']:.3f} — {comp.verdict}")
    minutes = (time.time() - started) / 60
    out = [
        "# Weight pruning and quantisation — smollm2-135m, embedded code-to-text",
        "",
        f"Command: `{command}`  ",
        f"Model: {args.model}; task: embedded `summarize` (stdlib functions → first docstring sentence), "
        f"{len(test)} test functions, prompted greedy decoding, ≤{args.max_new_tokens} new tokens; metric: "
        "CodeXGLUE smoothed BLEU-4 (×100). Targets: attention Q/K/V/O + FFN gate/up/down of all 30 layers "
        "(embeddings / tied LM head, norms untouched). Runtime {:.1f} min on {} shared CPU cores; torch {}.".format(
            minutes, os.cpu_count(), torch.__version__),
        "",
        "## Quality vs sparsity (and compact checkpoint bytes)",
        "",
        "| method | scope | recovery | targeted sparsity | BLEU-4 | % of dense | checkpoint bytes | × dense bytes |",
        "|---|---|---|---:|---:|---:|---:|---:|",
    ]
    for method, scope, rec, s, score, nbytes in quality:
        out.append(f"| {method} | {scope} | {rec} | {s:.3f} | {score:.2f} | {100 * score / base:.1f}% | "
                   f"{nbytes:,} | {nbytes / dense_bytes:.3f} |")
    for name, score in q_scores.items():
        out.append(f"| {name} | - | - | 0 | {score:.2f} | {100 * score / base:.1f}% | | |")
    out.append(f"| FFN rows L1 (up_proj rows) | per-tensor | none | 0.5 of up_proj | {rows_bleu_after:.2f} | "
               f"{100 * rows_bleu_after / base:.1f}% | | |")
    out += ["", *aim_lines(base, recovered, reference_bleu, report.sparsity, args.recover_steps)]
    out += [
        "",
        "Checkpoint bytes: the compact format (bitmask + non-zero values, safetensors) vs the dense safetensors. "
        "Embeddings (28% of SmolLM2's weights) stay dense, so a 50%-sparse target set shrinks the file less than 2×.",
        "",
        "## Measured forward speed vs dense fp32 (same process, interleaved; 2 batches × 8 × 128 tokens)",
        "",
        "| candidate | latency ratio | 95% CI | FLOPs ratio | checkpoint-bytes ratio | verdict |",
        "|---|---:|---|---:|---:|---|",
    ]
    for name, comp in speed:
        ci = comp.latency_ratio_ci95
        interval = f"{ci[0]:.3f}–{ci[1]:.3f}" if ci else "-"
        out.append(f"| {name} | {comp.ratios['latency_interleaved']:.3f} | {interval} | "
                   f"{comp.ratios.get('flops_per_sample', float('nan')):.3f} | "
                   f"{comp.ratios.get('checkpoint_bytes', float('nan')):.3f} | {comp.verdict} |")
    out += [
        "",
        "Unstructured zeros do not speed up dense kernels (the matmuls multiply the zeros at full cost); removing "
        "whole FFN neurons does, because the matrices themselves shrink. fp16 on CPU has no fast kernels on most "
        "x86 parts; int8 dynamic uses fbgemm int8 GEMMs.",
        "",
        "## Log",
        "",
        *[f"    {line}" for line in lines],
        "",
    ]
    atomic_write_text(args.out, "\n".join(out))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
