"""Weight pruning of a code LLM (default qwen2.5-coder-0.5b): criteria × scopes × sparsities, N:M, dtypes.

Rows: the dense model; random / L1 / Wanda × global / per-tensor / per-row at each sparsity, and each criterion
with each N:M pattern (2:4 by default), one-shot; the rows at `--recover-sparsities` (and the N:M rows) again
after a short masked recovery fine-tune, beside the dense model fine-tuned the same way (the fair reference for
every recovered row); fp16 / bf16 / int8 of the dense model. Each row measures code-to-text smoothed BLEU-4 on
held-out stdlib functions (test split, by file; Wanda calibrates on the training split) with a bootstrap
interval, HumanEval pass@1 (greedy, sandboxed), perplexity on held-out stdlib code, forward latency against the
dense model in this process (interleaved rounds), and the compact-checkpoint bytes.

Rows are saved one by one to a JSON rows file, and a rerun skips the rows already there, so an interrupted sweep
resumes; the results file (with the exact command and the computed aim check) is re-rendered after every row.

    OMP_NUM_THREADS=2 python benchmarks/weights.py                       # the full sweep (hours on a CPU)
    python benchmarks/weights.py --model smollm2-135m --examples 8 --humaneval 2 --limit 2 \\
        --rows-file /tmp/w.rows.json --out /tmp/w.md                      # a smoke run
    python benchmarks/weights.py --markdown-only                         # re-render from the saved rows
"""

from __future__ import annotations

import argparse
import copy
import fnmatch
import itertools
import json
import os
import shlex
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

os.environ.setdefault("GREENPRUNE_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch

from greenprune._utils import atomic_write_text
from greenprune.tasks.metrics import (
    bootstrap_mean_interval,
    bootstrap_ratio_interval,
    paired_outcomes,
    wilson_interval,
)

RESULTS = Path(__file__).parent / "results"
DEFAULT_MODEL = "qwen2.5-coder-0.5b"


@dataclass(frozen=True)
class Row:
    """One planned row; `key` names it in the rows file."""

    key: str
    kind: str  # "dense" | "prune" | "dtype"
    method: str = "-"
    scope: str = "-"
    sparsity: float | None = None
    pattern: str = "unstructured"
    recover: bool = False
    dtype: str = "fp32"

    @property
    def reference(self) -> str:
        """The row this one is judged against: the dense model given the same recovery (or none)."""
        return "dense+rec" if self.recover else "dense"


RECOVERY_DATA = {  # what `--recover-data` fine-tunes on, as the results file says it
    "code": "code-LM windows of the stdlib training split (loss on every token but the end-of-text separators "
            "between functions)",
    "mixed": "the code-to-text training split (loss on the summary) alternating with code-LM windows of the stdlib "
             "training split (loss on every token)",
    "summaries": "the code-to-text training split alone (loss on the summary)",
}

# the rows the aims are judged on, measured first: a CPU may not finish the whole sweep in one sitting
PRIORITY = ("dense,wanda/per-row/0.50,wanda/2:4,l1/global/0.20,l1/global/0.50,dense+rec,wanda/per-row/0.50+rec,"
            "wanda/2:4+rec,l1/per-row/0.50,random/global/0.50")


def plan(args: argparse.Namespace) -> list[Row]:
    methods, scopes = args.methods.split(","), args.scopes.split(",")
    sparsities = [float(s) for s in args.sparsities.split(",") if s]
    recover_at = {float(s) for s in args.recover_sparsities.split(",") if s}
    patterns = [p for p in args.patterns.split(",") if p]
    rows = [Row("dense", "dense")]
    if args.recover_steps > 0:
        rows.append(Row("dense+rec", "dense", recover=True))
    for method in methods:
        for scope in scopes:
            for s in sparsities:
                key = f"{method}/{scope}/{s:.2f}"
                rows.append(Row(key, "prune", method, scope, s))
                if args.recover_steps > 0 and s in recover_at:
                    rows.append(Row(key + "+rec", "prune", method, scope, s, recover=True))
        for pattern in patterns:
            rows.append(Row(f"{method}/{pattern}", "prune", method, "-", None, pattern))
            if args.recover_steps > 0:
                rows.append(Row(f"{method}/{pattern}+rec", "prune", method, "-", None, pattern, recover=True))
    rows += [Row(f"dtype/{dt}", "dtype", dtype=dt) for dt in args.dtypes.split(",") if dt]
    if args.only:
        globs = args.only.split(",")
        rows = [r for r in rows if r.key in ("dense", "dense+rec") or any(fnmatch.fnmatchcase(r.key, g)
                                                                          for g in globs)]
    return rows


# ------------------------------------------------------------------------------------------------ measuring


class Bench:
    """The model, data and dense references shared by every row of one run."""

    def __init__(self, args: argparse.Namespace) -> None:
        from greenprune.measure.inputs import code_batches
        from greenprune.models import load_model
        from greenprune.tasks import get_task

        self.args = args
        self.summarize = get_task("summarize")
        self.splits = self.summarize.embedded(size=max(400, 10 * args.examples), seed=0)
        self.test = self.splits.test[: args.examples]
        self.generate = get_task("generate")
        self.problems = self.generate.embedded(size=args.humaneval).test if args.humaneval else []
        self.perplexity = get_task("perplexity")
        self.ppl_examples = self.perplexity.embedded(size=max(400, 10 * args.ppl_examples), seed=0).test[
            : args.ppl_examples]
        loaded = load_model(args.model, task="summarize")
        self.dense, self.tok = loaded.model, loaded.tokenizer
        self.dense.eval()
        self.speed_data = list(code_batches(self.tok, batch_size=8, seq_len=128, n_batches=2))
        self.tmp = Path(tempfile.mkdtemp(prefix="gp_weights_"))
        self._calib: list[dict[str, torch.Tensor]] | None = None

    def calibration(self) -> list[dict[str, torch.Tensor]]:
        """Wanda's calibration windows (training split of the stdlib corpus), tokenised once per run."""
        if self._calib is None:
            from greenprune.structure.calibration import calibration_batches
            from greenprune.weights.prune import calibration_texts

            self._calib = calibration_batches(self.tok, calibration_texts("stdlib"), seq_len=self.args.calib_seq_len,
                                              batch_size=4, max_batches=-(-self.args.calib_windows // 4))
        return self._calib

    def quality(self, model: torch.nn.Module) -> dict[str, Any]:
        a = self.args
        out: dict[str, Any] = {}
        scores = self.summarize.evaluate(model, self.tok, self.test, batch_size=a.batch_size,
                                         max_new_tokens=a.max_new_tokens)
        per = [e["bleu4_smoothed"] for e in scores.details["per_example"]]
        out.update(bleu=scores["bleu4_smoothed"], bleu_ci=list(bootstrap_mean_interval(per)), bleu_per_example=per,
                   bleu_examples=len(per))
        if self.problems:
            gen = self.generate.evaluate(model, self.tok, self.problems, batch_size=a.gen_batch_size,
                                         max_new_tokens=a.gen_max_new_tokens, prompt_style=a.prompt_style)
            out.update({"pass@1": gen["pass@1"], "problems": len(self.problems),
                        "passed": [int(p["passed"]) for p in gen.details["per_problem"]]})
        if self.ppl_examples:
            out["perplexity"] = self.perplexity.evaluate(model, self.tok, self.ppl_examples,
                                                         batch_size=a.batch_size)["perplexity"]
        return out

    def speed(self, model: torch.nn.Module, name: str) -> dict[str, Any]:
        from greenprune.measure import compare

        comp = compare(self.dense, model, self.speed_data, names=("dense fp32", name), rounds=self.args.rounds,
                       energy=False, count_memory=False)
        ci = comp.latency_ratio_ci95
        return {"latency_ratio": comp.ratios.get("latency_interleaved"), "latency_ci": list(ci) if ci else None,
                "speed_verdict": comp.verdict, "checkpoint_bytes_ratio": comp.ratios.get("checkpoint_bytes")}

    def recovery_batches(self) -> list[dict[str, torch.Tensor]]:
        """The recovery fine-tune's batches, one per step (`--recover-data`; what each gave is measured).

        `summaries`: the code-to-text training split alone (loss on the summary). On Qwen, 100 such steps lift BLEU
        10.5 -> 15.5 but take HumanEval pass@1 from 88/164 to 0/164. `mixed`: those batches alternating with code-LM
        windows of the stdlib training split: BLEU 16.6 and perplexity 8.67 (below dense's 8.86), yet pass@1 is 0/164
        again — asked in chat to complete a function, the recovered model answers with a one-line summary
        ("Return ...") and no code. So a task fine-tune on summaries teaches the chat model to summarise whatever
        code it is shown. `code` (default): the code-LM windows alone, as Wanda and SparseGPT recover on generic LM
        text, with no loss on the end-of-text separators between functions (so the turn-ending token keeps its
        pre-trained use); both tasks are then downstream of the same recovery.
        """
        from greenprune.structure.calibration import calibration_batches
        from greenprune.training import IGNORE_INDEX
        from greenprune.weights.prune import calibration_texts

        def cycled(batches: list[dict[str, torch.Tensor]], n: int) -> list[dict[str, torch.Tensor]]:
            return list(itertools.islice(itertools.cycle(batches), n))

        steps, data = self.args.recover_steps, self.args.recover_data
        n_code = steps if data == "code" else -(-steps // 2)
        # the texts Wanda calibrates on (stdlib training split), cut into as many windows as the recipe needs
        code = calibration_batches(self.tok, calibration_texts("stdlib"), seq_len=256, batch_size=4,
                                   max_batches=n_code)
        if data == "code":
            eos = self.tok.eos_token_id
            return [{**b, "labels": b["input_ids"].masked_fill(b["input_ids"] == eos, IGNORE_INDEX)}
                    for b in cycled(code, steps)]
        summaries = cycled(list(self.summarize.train_batches(self.tok, self.splits.train, 4, 256)), steps)
        if data == "summaries":
            return summaries
        code = cycled([{**b, "labels": b["input_ids"].clone()} for b in code], steps)
        return [summaries[i // 2] if i % 2 == 0 else code[i // 2] for i in range(steps)]

    def recover(self, model: torch.nn.Module, key: str) -> None:
        """A short masked fine-tune on `recovery_batches` (see there for the data and why).

        The recovered weights (masks included) are kept in `results/weights-<model>-recovered/` (not committed):
        100 steps on Qwen take ~45 minutes at one thread, and a session that ends during the evaluation after them
        should not pay for them again."""
        from safetensors.torch import load_model, save_model

        from greenprune.weights.lottery import LotteryConfig, train_round

        steps = self.args.recover_steps
        a = self.args  # everything the recovered weights depend on besides the model: the name says it
        name = (f"{key.replace('/', '_').replace(':', '-')}-{a.recover_data}-steps{steps}-lr{a.recover_lr:g}-calib"
                f"{a.calib_windows}x{a.calib_seq_len}.safetensors")
        cache = RESULTS / f"weights-{self.args.model}-recovered" / name
        if cache.is_file():
            load_model(model, str(cache))  # the same masks come from the same deterministic pruning
            print(f"[recovered] {key}: weights from {cache}", flush=True)
            model.eval()
            return
        config = LotteryConfig(stop="last", eval_every=steps, steps_per_round=steps, lr=self.args.recover_lr)
        # no model selection: the final step is kept, so the evaluation hook only has to return a number
        train_round(model, iter(self.recovery_batches()), lambda m: 0.0, config, desc="recovery")
        model.eval()
        cache.parent.mkdir(parents=True, exist_ok=True)
        partial = cache.with_suffix(".partial")
        save_model(model, str(partial))
        partial.replace(cache)

    def measure(self, row: Row) -> dict[str, Any]:
        from greenprune.quantize import quantize
        from greenprune.weights import WeightPruningConfig, make_permanent, prune
        from greenprune.weights.sparse_io import folder_bytes, save_sparse

        started = time.time()
        result: dict[str, Any] = {"row": row.key, "kind": row.kind, "method": row.method, "scope": row.scope,
                                  "pattern": row.pattern, "recovery_steps": self.args.recover_steps if row.recover
                                  else 0, "dtype": row.dtype, "reference": row.reference}
        if row.recover:
            result["recovery_data"] = self.args.recover_data
        if row.kind == "dtype":
            model = quantize(self.dense, row.dtype)
            if row.dtype in ("fp16", "bf16"):
                model.save_pretrained(self.tmp / row.dtype, safe_serialization=True)
                result["checkpoint_bytes"] = folder_bytes(self.tmp / row.dtype)
        elif row.kind == "dense" and not row.recover:
            model = self.dense
            self.dense.save_pretrained(self.tmp / "dense", safe_serialization=True)
            result["checkpoint_bytes"] = folder_bytes(self.tmp / "dense")
        else:
            model = copy.deepcopy(self.dense)
            if row.kind == "prune":
                config = WeightPruningConfig(method=row.method, scope=None if row.scope == "-" else row.scope,
                                             sparsity=row.sparsity, pattern=row.pattern, seed=0)
                report = prune(model, config, calib=self.calibration() if config.needs_calibration else None)
                result.update(sparsity=report.sparsity, model_sparsity=report.model_sparsity,
                              scope=config.scope, target_sparsity=config.sparsity)
            if row.recover:
                self.recover(model, row.key)
            save_sparse(model, self.tmp / "s", overwrite=True)
            result["checkpoint_bytes"] = folder_bytes(self.tmp / "s")
            make_permanent(model)
        model.eval()
        result.update(self.quality(model))
        result.update(self.speed(model, row.key))
        result["seconds"] = round(time.time() - started, 1)
        return result


# ------------------------------------------------------------------------------------------------ rendering


def _ratio(row: dict[str, Any], ref: dict[str, Any] | None, metric: str) -> float | None:
    if ref is None or metric not in row or not ref.get(metric):
        return None
    return row[metric] / ref[metric]


def _paired(row: dict[str, Any], ref: dict[str, Any] | None) -> str:
    """" (−a/+b, p=…)": problems only the reference / only this row solves, exact McNemar p (same problems)."""
    if ref is None or row is ref or not row.get("passed") or len(row["passed"]) != len(ref.get("passed", [])):
        return ""
    pair = paired_outcomes({str(i): bool(x) for i, x in enumerate(ref["passed"])},
                           {str(i): bool(x) for i, x in enumerate(row["passed"])})
    return f" (−{pair['only_baseline']}/+{pair['only_candidate']}, p={pair['mcnemar_p']:.2g})"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _aim(name: str, row: dict[str, Any] | None, ref: dict[str, Any] | None, ref_name: str, need: float,
         metrics: tuple[str, ...] = ("bleu", "pass@1")) -> str:
    """One computed aim line: the kept share of each metric against its reference, and the verdict."""
    if row is None or ref is None:
        return f"- {name}: **not run** ({'its row' if row is None else 'the ' + ref_name + ' row'} is missing)."
    parts, verdicts = [], []
    for metric in metrics:
        ratio = _ratio(row, ref, metric)
        if ratio is None:
            why = "not measured" if metric not in row else f"{ref_name} scores 0"
            parts.append(f"{metric} {why}")
            continue
        bit = f"{metric} {100 * ratio:.1f}% of {ref_name}"
        if metric == "bleu" and row.get("bleu_per_example") and ref.get("bleu_per_example") and \
                len(row["bleu_per_example"]) == len(ref["bleu_per_example"]):
            low, high = bootstrap_ratio_interval(row["bleu_per_example"], ref["bleu_per_example"])
            bit += f" (paired bootstrap 95% CI {100 * low:.1f}–{100 * high:.1f}%)"
        parts.append(bit)
        verdicts.append(ratio >= need - 1e-12)
    if not verdicts:
        verdict = "not judged"
    else:
        verdict = "met" if all(verdicts) else "not met"
        if len(verdicts) < len(metrics):
            verdict += " on the metrics measured"
    return f"- {name} (aim ≥ {100 * need:.0f}%): {'; '.join(parts)} — **{verdict}**."


def aim_lines(rows: dict[str, dict[str, Any]]) -> list[str]:
    """The issue's aim, computed from the rows (a re-render can never go stale)."""
    dense, dense_rec = rows.get("dense"), rows.get("dense+rec")
    lines = ["## Aim check (computed from the rows)", ""]
    lines.append(_aim("Wanda 50% unstructured (per-row), one-shot", rows.get("wanda/per-row/0.50"), dense,
                      "dense", 0.95))
    lines.append(_aim("Wanda 50% unstructured (per-row), after recovery", rows.get("wanda/per-row/0.50+rec"),
                      dense_rec, "dense given the same recovery", 0.99))
    lines.append(_aim("Wanda 2:4, one-shot", rows.get("wanda/2:4"), dense, "dense", 0.90))
    lines.append(_aim("L1 global 20%, one-shot, keeps full BLEU", rows.get("l1/global/0.20"), dense, "dense", 1.0,
                      ("bleu",)))
    l1_50 = rows.get("l1/global/0.50")
    if l1_50 is not None and dense is not None:
        lines.append(f"- L1 global 50% one-shot lands at BLEU {l1_50['bleu']:.2f} "
                     f"({_pct(_ratio(l1_50, dense, 'bleu'))} of dense)"
                     + (f", pass@1 {_pct(_ratio(l1_50, dense, 'pass@1'))} of dense." if "pass@1" in l1_50 else "."))
    else:
        lines.append("- L1 global 50% one-shot: **not run**.")
    return lines


def _shown(path: Path) -> str:
    """A path as the reader of the results file finds it: relative to the repository when inside it."""
    try:
        return str(path.resolve().relative_to(RESULTS.resolve().parent.parent))
    except ValueError:
        return str(path)


def render(rows: dict[str, dict[str, Any]], order: list[str], args: argparse.Namespace) -> str:
    commands = sorted({r.get("command", "?") for r in rows.values()})
    dense = rows.get("dense", {})
    lines = [
        f"# Weight pruning of {args.model}: criteria × scopes × sparsities, N:M, dtypes",
        "",
        "Command(s) that measured these rows (resumable; rows file `" + _shown(args.rows_file) + "`):",
        "",
        *[f"    {c}" for c in commands],
        "",
        f"Code-to-text: CodeXGLUE smoothed BLEU-4 (×100, sys.float_info.min epsilons) on "
        f"{dense.get('bleu_examples', '?')} held-out stdlib functions (test split by file), greedy, "
        f"≤{args.max_new_tokens} new tokens, 95% percentile bootstrap over functions. HumanEval pass@1: greedy, "
        f"{dense.get('problems', 0)} problems, sandboxed. Perplexity: {args.ppl_examples} held-out stdlib functions. "
        "Targets: attention Q/K/V/O and FFN projections of every layer (embeddings, tied head, norms untouched). "
        f"Wanda calibrates on {args.calib_windows} windows × {args.calib_seq_len} tokens of the stdlib training "
        "split. `+rec` rows: a masked fine-tune of "
        f"{args.recover_steps} steps (AdamW, lr {args.recover_lr:g}, batches of 4 × ≤256 tokens) on "
        + RECOVERY_DATA[args.recover_data] + "; their % columns divide by the dense model "
        "given the same fine-tune (the fair reference), the other rows' by the dense model. Latency: forward pass "
        "against dense fp32 in the same process, interleaved rounds (ratio < 1 is faster). "
        f"torch {torch.__version__}, {os.cpu_count()} CPU cores.",
        "",
        "| row | targeted sparsity | BLEU-4 [95% CI] | % ref | pass@1 [95% CI] | % ref (paired −/+, McNemar p) | "
        "perplexity | compact bytes | "
        "× dense | latency ratio [95% CI] | s |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    retired = [k for k in rows if k not in order]  # rows of an earlier plan, kept for the record below the plan's
    for key in [*order, *retired]:
        r = rows.get(key)
        if r is None:
            lines.append(f"| {key} | not run | | | | | | | | | |")
            continue
        ref = rows.get(r.get("reference", "dense"))
        ci = r.get("bleu_ci") or [float("nan")] * 2
        pass1 = "-"
        if "pass@1" in r:
            low, high = wilson_interval(sum(r["passed"]), r["problems"])
            pass1 = f"{r['pass@1']:.3f} ({sum(r['passed'])}/{r['problems']}) [{low:.2f}, {high:.2f}]"
        nbytes = r.get("checkpoint_bytes")
        if nbytes is None and r.get("checkpoint_bytes_ratio") and dense.get("checkpoint_bytes"):
            nbytes = r["checkpoint_bytes_ratio"] * dense["checkpoint_bytes"]  # int8: estimated, not savable
        lat, lci = r.get("latency_ratio"), r.get("latency_ci")
        cells = [
            key,
            f"{r.get('sparsity', 0.0):.3f}",
            f"{r['bleu']:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]",
            _pct(_ratio(r, ref, "bleu")),
            pass1,
            _pct(_ratio(r, ref, "pass@1")) + _paired(r, ref),
            f"{r['perplexity']:.3f}" if "perplexity" in r else "-",
            f"{nbytes:,.0f}" if nbytes else "-",
            f"{nbytes / dense['checkpoint_bytes']:.3f}" if nbytes and dense.get("checkpoint_bytes") else "-",
            f"{lat:.3f} [{lci[0]:.3f}, {lci[1]:.3f}]" if lat and lci else "-",
            f"{r.get('seconds', 0):.0f}",
        ]
        lines.append("| " + " | ".join(cells) + " |")
    if retired:
        lines += ["", "Rows below the plan's (" + ", ".join(f"`{k}`" for k in retired) + ") are kept from an earlier "
                  "recovery recipe: " + "; ".join(f"`{k}`: {RECOVERY_DATA.get(rows[k].get('recovery_data', ''), '?')}"
                                                  for k in retired) + "."]
    lines += ["", *aim_lines(rows), "",
              "Unstructured and N:M zeros run at full cost on dense CPU kernels, so their latency ratio stays near "
              "1; the compact format stores a bitmask plus the non-zero values. int8 bytes are estimated from the "
              "in-memory size (a dynamic-int8 model is applied at load time, not saved).", ""]
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------------ main


def load_rows(path: Path) -> dict[str, dict[str, Any]]:
    if not path.is_file():
        return {}
    return {r["row"]: r for r in json.loads(path.read_text())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--examples", type=int, default=200, help="held-out functions for code-to-text BLEU")
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--humaneval", type=int, default=164, help="HumanEval problems (0 = skip pass@1)")
    ap.add_argument("--gen-max-new-tokens", type=int, default=384)
    ap.add_argument("--gen-batch-size", type=int, default=32, help="places in the continuously refilled decoding batch")
    ap.add_argument("--prompt-style", default="auto",
                    help="completion | chat | auto (HumanEval prompts; auto = chat for a model with a chat template)")
    ap.add_argument("--ppl-examples", type=int, default=100, help="held-out functions for perplexity (0 = skip)")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--methods", default="random,l1,wanda")
    ap.add_argument("--scopes", default="global,per-tensor,per-row")
    ap.add_argument("--sparsities", default="0.2,0.3,0.5,0.6")
    ap.add_argument("--patterns", default="2:4", help="N:M patterns, comma list ('' = none)")
    ap.add_argument("--recover-steps", type=int, default=100, help="masked recovery fine-tune steps (0 = none)")
    ap.add_argument("--recover-sparsities", default="0.5", help="sweep sparsities that also get a +rec row")
    ap.add_argument("--recover-lr", type=float, default=5e-5)
    ap.add_argument("--recover-data", choices=tuple(RECOVERY_DATA), default="code",
                    help="recovery batches: stdlib code LM (code), code-to-text alternating with it (mixed), or "
                         "code-to-text alone (summaries)")
    ap.add_argument("--dtypes", default="fp16,bf16,int8")
    ap.add_argument("--calib-windows", type=int, default=64)
    ap.add_argument("--calib-seq-len", type=int, default=256)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds per row")
    ap.add_argument("--first", default=PRIORITY,
                    help="row keys measured before the rest (the aim's rows), comma list; the table keeps plan order")
    ap.add_argument("--only", default="", help="comma globs of row keys to run (dense rows always run)")
    ap.add_argument("--limit", type=int, default=0, help="stop after this many newly measured rows (0 = all)")
    ap.add_argument("--rows-file", type=Path, default=None, help="default results/weights-<model>.rows.json")
    ap.add_argument("--out", type=Path, default=RESULTS / "weights.md")
    ap.add_argument("--markdown-only", action="store_true", help="re-render the results file from the saved rows")
    args = ap.parse_args()
    args.rows_file = args.rows_file or RESULTS / f"weights-{args.model}.rows.json"
    command = shlex.join(["python", "benchmarks/weights.py", *sys.argv[1:]])
    order = [r.key for r in plan(args)]
    rows = load_rows(args.rows_file)
    if args.markdown_only:
        atomic_write_text(args.out, render(rows, order, args))
        print(f"wrote {args.out} from {len(rows)} saved rows")
        return
    from transformers import set_seed

    set_seed(0)
    bench: Bench | None = None  # loaded only when a row is left to measure
    measured = 0
    planned = plan(args)
    first = [k for k in args.first.split(",") if k]
    planned.sort(key=lambda r: first.index(r.key) if r.key in first else len(first))  # stable: plan order after
    for row in planned:
        if row.key in rows:
            print(f"[skip] {row.key}: already in {args.rows_file}", flush=True)
            continue
        if args.limit and measured >= args.limit:
            break
        print(f"[row] {row.key} ...", flush=True)
        bench = bench or Bench(args)
        set_seed(0)  # per row, so a resumed run measures each row as an uninterrupted one would
        result = bench.measure(row)
        result["command"] = command
        rows[row.key] = result
        measured += 1
        atomic_write_text(args.rows_file, json.dumps(list(rows.values()), indent=1) + "\n")
        atomic_write_text(args.out, render(rows, order, args))
        brief = {k: result.get(k) for k in ("bleu", "pass@1", "perplexity", "sparsity", "latency_ratio", "seconds")}
        print(f"[done] {row.key}: {json.dumps(brief)}", flush=True)
    if bench is not None:
        shutil.rmtree(bench.tmp, ignore_errors=True)  # the scratch checkpoints written for byte counts
    atomic_write_text(args.out, render(rows, order, args))
    print(f"wrote {args.out} ({len(rows)} rows in {args.rows_file})")


if __name__ == "__main__":
    main()
