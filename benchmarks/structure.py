"""Flab-Pruner-style structural pruning of SmolLM2-135M: what each step removes and what it costs in quality.

Rows: vocabulary (stdlib train corpus plus the model's chat frame), layers n = 2/4/6 (kl vs bi, greedy with
re-scoring), FFN 10/20/30%, the combination, and each after LoRA recovery, plus an unpruned LoRA control. Per row:
parameters, checkpoint bytes, held-out code perplexity, HumanEval canonical-solution NLL (first --he-nll problems: a
smooth per-token quality signal), HumanEval greedy pass@1 (all 164 by default; see --gen-rows / --gen-problems), and
tokens/s measured against the original in the same process with interleaved rounds.

Quality numbers are normalised by the ORIGINAL tokenizer's token count, so vocabulary pruning (which splits unseen
code into more tokens) is not rewarded for producing more, easier tokens.

    python benchmarks/structure.py            # full run, resumes from benchmarks/results/structure.rows.json
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shlex
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS = Path(__file__).resolve().parent / "results"


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default="smollm2-135m")
    ap.add_argument("--eval-texts", type=int, default=32, help="held-out stdlib functions (test split) for perplexity")
    ap.add_argument("--he-nll", type=int, default=40, help="HumanEval problems scored by canonical-solution NLL")
    ap.add_argument("--gen-problems", type=int, default=164, help="HumanEval problems generated for pass@1")
    ap.add_argument("--gen-rows", default="all",
                    help="rows that get generated pass@1 (comma list, 'all' or 'none')")
    ap.add_argument("--gen-batch", type=int, default=82, help="prompts decoded together (finished ones leave)")
    ap.add_argument("--max-new-tokens", type=int, default=192)
    ap.add_argument("--calib-batches", type=int, default=2)
    ap.add_argument("--calib-seq-len", type=int, default=128)
    ap.add_argument("--recover-steps", type=int, default=60)
    ap.add_argument("--recover-rows", default="all",
                    help="rows that also get a '+lora' recovered variant (comma list or 'all'; baseline+lora is the "
                    "control: what recovery training alone does to the unpruned model)")
    ap.add_argument("--combo", default="vocab,bi4,ffn20", help="steps of the combination row")
    ap.add_argument("--rows", default="all", help="subset of rows to run (comma list)")
    ap.add_argument("--reverse", action="store_true",
                    help="work through the rows from the end (a second process on another core meets the first)")
    ap.add_argument("--fresh", action="store_true", help="ignore saved rows")
    ap.add_argument("--rows-file", default="structure.rows.json", help="where this run saves its rows")
    ap.add_argument("--markdown-only", action="store_true", help="re-render structure.md from the saved rows")
    ap.add_argument("--produced-by", default=None, help="with --markdown-only: the command that measured the rows")
    return ap.parse_args()


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        from greenprune.models import load_model
        from greenprune.structure.calibration import calibration_batches, stdlib_code
        from greenprune.tasks.generate import GenerateTask

        self.args = args
        loaded = load_model(args.model, task="causal-lm")
        self.base, self.tok = loaded.model.eval(), loaded.tokenizer
        self.eval_texts = stdlib_code(limit=args.eval_texts, split="test")
        self.vocab_texts = stdlib_code(limit=100_000, split="train")
        self.calib_texts = stdlib_code(limit=64, split="valid")
        self.task = GenerateTask()
        self.problems = self.task.embedded().test
        self.calib = calibration_batches(self.tok, self.calib_texts, seq_len=args.calib_seq_len, batch_size=4,
                                         max_batches=args.calib_batches)
        # cost batches: corpus text, so vocab-pruned rows can be fed the same token strings through an id remap
        self.cost_batches = calibration_batches(self.tok, self.vocab_texts[:200], seq_len=256, batch_size=4,
                                                max_batches=1)
        self._ref: dict[str, int] = {}
        self._layer_orders: dict[str, list[int]] = {}
        self._vocab: tuple[Any, list[int], dict[str, Any]] | None = None

    # ---- building candidates -------------------------------------------------------------------------------
    def vocab_step(self, model: Any) -> tuple[Any, Any, list[int], dict[str, Any]]:
        from greenprune.structure.vocab import VocabPruningConfig, needed_token_ids, prune_vocab, shrink_embeddings

        if self._vocab is not None:  # same corpus, same result: reuse the tokenizer and shrink this copy
            tok, kept, extra = self._vocab
            return shrink_embeddings(model, kept), tok, kept, dict(extra)
        t = time.time()
        res = prune_vocab(model, self.tok, self.vocab_texts)
        code_only, _ = needed_token_ids(self.tok, self.vocab_texts, VocabPruningConfig(keep_chat_frame=False))
        extra = {"vocab": f"{res.vocab_before}→{res.vocab_after}", "vocab_s": round(time.time() - t, 1),
                 "prompt_tokens_outside_vocab": self.prompt_tokens_outside(res.kept_ids),
                 "prompt_tokens_outside_code_only_vocab": self.prompt_tokens_outside(code_only)}
        self._vocab = (res.tokenizer, res.kept_ids, extra)
        return res.model, res.tokenizer, res.kept_ids, dict(extra)

    def prompt_tokens_outside(self, kept_ids: list[int]) -> float:
        """Share of the HumanEval chat-prompt tokens (original tokenizer) that a kept vocabulary lacks."""
        from greenprune.tasks.generate import chat_prompt

        kept = set(kept_ids)
        ids = [i for e in self.problems for i in self.tok.encode(chat_prompt(self.tok, e), add_special_tokens=False)]
        return round(sum(i not in kept for i in ids) / len(ids), 4)

    def layer_order(self, metric: str, n: int) -> list[int]:
        """Greedy removal order (original indices) computed once up to the largest n; prefixes are the smaller n."""
        from greenprune.structure.layers import LayerPruningConfig, prune_layers

        if metric not in self._layer_orders or len(self._layer_orders[metric]) < n:
            work = copy.deepcopy(self.base)
            t = time.time()
            depth = work.config.num_hidden_layers
            res = prune_layers(work, self.calib, LayerPruningConfig(n=min(max(n, 6), depth - 1), metric=metric))
            self._layer_orders[metric] = res.removed
            print(f"[layers {metric}] greedy order {res.removed} in {time.time() - t:.0f}s", flush=True)
            del work
        return self._layer_orders[metric][:n]

    def build(self, row: str) -> tuple[Any, Any, list[int] | None, dict[str, Any]]:
        from greenprune.structure.calibration import calibration_batches
        from greenprune.structure.ffn import FFNPruningConfig, prune_ffn
        from greenprune.structure.layers import remove_layers

        steps = self.args.combo.split(",") if row.startswith("combo") else [row]
        model, tok, kept, info = copy.deepcopy(self.base), self.tok, None, {}
        if row == "baseline":
            return model, tok, None, info
        removed: list[int] = []
        for step in steps:
            if step == "vocab":
                model, tok, kept, extra = self.vocab_step(model)
                info.update(extra)
            elif step[:2] in ("kl", "bi"):
                order = self.layer_order(step[:2], int(step[2:]))
                removed = order
                remove_layers(model, sorted(order))
                info["layers_removed"] = sorted(order)
            elif step.startswith("ffn"):
                calib = self.calib if kept is None else calibration_batches(
                    tok, self.calib_texts, seq_len=self.args.calib_seq_len, batch_size=4,
                    max_batches=self.args.calib_batches)
                res = prune_ffn(model, calib, FFNPruningConfig(fraction=int(step[3:]) / 100))
                info["ffn"] = f"{res.size_before}→{res.size_after}"
            else:
                raise SystemExit(f"unknown step {step!r} in row {row!r}")
        del removed
        return model, tok, kept, info

    def recover(self, model: Any, tok: Any) -> tuple[Any, dict[str, Any]]:
        from greenprune.recover import RecoveryConfig, recover, stdlib_pairs

        t = time.time()
        res = recover(model, tok, stdlib_pairs(limit=2000),
                      RecoveryConfig(steps=self.args.recover_steps, batch_size=4, max_len=256), data_name="stdlib")
        s = res.summary()
        return res.model, {"lora": f"{s['steps']} steps, loss {s['loss_first']}→{s['loss_last']}",
                           "lora_s": round(time.time() - t, 1)}

    # ---- measuring ---------------------------------------------------------------------------------------
    def ref_tokens(self, key: str, compute: Any) -> int:
        if key not in self._ref:
            self._ref[key] = compute()
        return self._ref[key]

    def quality(self, model: Any, tok: Any, generate: bool) -> dict[str, float]:
        from greenprune.structure.evaluate import code_nll

        out: dict[str, float] = {}
        from greenprune.tasks import get_task
        from greenprune.tasks.base import Example

        nll, _ = code_nll(model, tok, self.eval_texts, batch_size=8, max_length=1024)
        texts = [Example(text=t, id=str(i)) for i, t in enumerate(self.eval_texts)]
        ref = self.ref_tokens("ppl", lambda: scored_tokens(get_task("perplexity"), self.tok, texts))
        out["ppl"] = math.exp(nll / ref)
        he = self.problems[: self.args.he_nll]
        he_nll, _ = self.task.token_nll(model, tok, he, 8, 1024)
        he_ref = self.ref_tokens("he", lambda: scored_tokens(self.task, self.tok, he))
        out["he_nll"] = he_nll / he_ref
        if generate:
            t = time.time()
            m = self.task.evaluate(model, tok, self.problems[: self.args.gen_problems], batch_size=self.args.gen_batch,
                                   max_new_tokens=self.args.max_new_tokens)
            out["pass@1"] = m["pass@1"]
            out["gen_problems"] = m["problems"]
            out["gen_s"] = round(time.time() - t, 1)
        return out

    def speed(self, model: Any, kept: list[int] | None) -> dict[str, float]:
        from greenprune.measure import compare
        from greenprune.structure.pipeline import IdRemap

        cand = IdRemap(model, kept, len(self.tok)) if kept is not None else model
        comp = compare(self.base, cand, self.cost_batches, names=("original", "pruned"), rounds=3, energy=False,
                       count_memory=False)
        return {"tok_s_ratio": comp.candidate.cost.throughput_tokens_s / comp.baseline.cost.throughput_tokens_s,
                "flops_ratio": comp.candidate.cost.flops_per_sample / comp.baseline.cost.flops_per_sample,
                "speed_verdict": comp.verdict}


def scored_tokens(task: Any, tokenizer: Any, examples: Any) -> int:
    """How many tokens `token_nll` scores for these examples under `tokenizer` (no model forward needed)."""
    return sum(int((b["labels"][:, 1:] != -100).sum()) for b in task.train_batches(tokenizer, examples, 8, 1024))


def load_rows(path: Path, fresh: bool) -> dict[str, dict[str, Any]]:
    if fresh or not path.is_file():
        return {}
    return {r["row"]: r for r in json.loads(path.read_text())}


def all_saved_rows(own: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rows of every rows file (parallel runs write separate files), this run's own rows taking precedence."""
    merged: dict[str, dict[str, Any]] = {}
    for path in sorted(RESULTS.glob("structure.rows*.json")):
        merged.update(load_rows(path, False))
    merged.update(own)
    return merged


def removed_share(r: dict[str, Any], base: dict[str, Any]) -> float:
    return 1 - r["params"] / base["params"]


def retentions(r: dict[str, Any], base: dict[str, Any]) -> dict[str, float]:
    """Quality kept vs the baseline: perplexity and HE NLL always, pass@1 when both rows generated."""
    rets = {"perplexity": base["ppl"] / r["ppl"], "HE NLL": math.exp(-(r["he_nll"] - base["he_nll"]))}
    if "pass@1" in r and base.get("pass@1"):
        rets["pass@1"] = r["pass@1"] / base["pass@1"]
    return rets


def solved(r: dict[str, Any]) -> str:
    """pass@1 as problems solved, e.g. "9/164"."""
    return f"{round(r['pass@1'] * r['gen_problems'])}/{int(r['gen_problems'])}"


AIM_NEED = {"without recovery": 0.97, "after recovery": 1.00}


def aim_lines(rows: dict[str, dict[str, Any]], order: list[str]) -> list[str]:
    """The issue's aim checked against the measured rows (computed, so a re-render can never go stale)."""
    base = rows.get("baseline")
    missing = [name for name in order if name not in rows]
    no_gen = [name for name in order if name in rows and "pass@1" not in rows[name]]
    out = ["## Aim check (computed from the rows above)", ""]
    if base is None:
        return [*out, "No baseline row yet.", ""]
    out.append("Aim: ≥ 30% of parameters removed at ≥ 97% retention of perplexity-based quality and pass@1, and "
               "≥ 100% after recovery.")
    out.append("")
    pruned = [n for n in order if n in rows and n != "baseline" and removed_share(rows[n], base) > 0]
    removed = {n: removed_share(rows[n], base) for n in pruned}
    rets = {n: retentions(rows[n], base) for n in pruned}
    worst = {n: min(rets[n].values()) for n in pruned}
    kind = {n: "after recovery" if n.endswith("+lora") else "without recovery" for n in pruned}

    def detail(name: str) -> str:
        return ", ".join(f"{k} {100 * v:.0f}%" for k, v in rets[name].items())

    big = [n for n in pruned if removed[n] >= 0.30]
    for name in big:
        need = AIM_NEED[kind[name]]
        verdict = "met" if worst[name] >= need else "missed"
        out.append(f"- {name}: {100 * removed[name]:.1f}% removed, retention {detail(name)} "
                   f"(needs ≥ {100 * need:.0f}%): **{verdict}**.")
    if not big:
        out.append("- No measured row removes ≥ 30% of the parameters yet.")
    # what the model allows at all: per threshold, the row removing the most while every retention holds
    out += ["", "What this model allows (any row, any removal, every retention above its threshold):", ""]
    for k, need in AIM_NEED.items():
        candidates = [n for n in pruned if kind[n] == k]
        holding = [n for n in candidates if worst[n] >= need]
        if holding:
            name = max(holding, key=removed.__getitem__)
            out.append(f"- {k} (≥ {100 * need:.0f}%): at most {100 * removed[name]:.1f}% removed ({name}).")
        elif candidates:
            name = max(candidates, key=worst.__getitem__)
            out.append(f"- {k} (≥ {100 * need:.0f}%): no pruned row holds it; closest is {name} "
                       f"({100 * removed[name]:.1f}% removed, retention {detail(name)}).")
    if base.get("pass@1") and base.get("gen_problems"):
        n_solved = round(base["pass@1"] * base["gen_problems"])
        if n_solved:
            out.append(f"- The baseline solves {solved(base)} problems, so one problem more or "
                       f"less moves pass@1 retention by {100 / n_solved:.0f} points.")
    if missing:
        out += ["", f"Rows not measured yet (the script resumes with them): {', '.join(missing)}."]
    if no_gen:
        out += ["", f"Rows measured without pass@1: {', '.join(no_gen)}."]
    return [*out, ""]


CODE_ONLY_VOCAB = RESULTS / "structure-vocab-code-only-rows.json"


def code_only_vocab_lines(rows: dict[str, dict[str, Any]]) -> list[str]:
    """Side by side: vocabulary rows pruned on the code corpus alone (kept as history) against the current ones."""
    if not CODE_ONLY_VOCAB.is_file() or "baseline" not in rows:
        return []
    old, base = load_rows(CODE_ONLY_VOCAB, False), rows["baseline"]

    def cells(r: dict[str, Any] | None) -> tuple[str, str, str, str]:
        if r is None:
            return ("—", "—", "—", "—")
        return (str(r.get("vocab", "—")), f"{100 * removed_share(r, base):.1f}%",
                f"{100 * retentions(r, base)['HE NLL']:.1f}%", solved(r) if "pass@1" in r else "—")

    share = next((r for r in rows.values() if "prompt_tokens_outside_vocab" in r), None)
    shares = ("" if share is None else
              f" Of the 164 HumanEval chat prompts' tokens, {100 * share['prompt_tokens_outside_code_only_vocab']:.1f}%"
              f" lie outside the code-only vocabulary and {100 * share['prompt_tokens_outside_vocab']:.1f}% outside "
              "the vocabulary with the chat frame (the rest are docstring words such as ` planet`, ` vowels`).")
    out = [
        "## Vocabulary corpus: code alone vs code + chat frame",
        "",
        "The first vocabulary rows kept only what the stdlib code corpus needs. SmolLM2-Instruct is prompted through "
        "its chat template and answers in ``` fences; neither `assistant` nor ``` occurs in that corpus, so the "
        "prompt frame tokenised into pieces the model never saw and it could not close its code block with the token "
        "it was trained on. `prune_vocab` now also keeps the tokens of the chat template rendered on a sample code "
        "conversation (`VocabPruningConfig.keep_chat_frame`, on by default; `--no-chat-frame` on the CLI)." + shares
        + " Same baseline and settings otherwise; the code-only rows are in `structure-vocab-code-only-rows.json`.",
        "",
        "| row | vocabulary (code only / + chat frame) | removed | HE retention | pass@1 code only "
        "| pass@1 + chat frame |",
        "|---|---|---|---|---|---|",
    ]
    for name, r_old in old.items():
        o, n = cells(r_old), cells(rows.get(name))
        out.append(f"| {name} | {o[0]} / {n[0]} | {o[1]} / {n[1]} | {o[2]} / {n[2]} | {o[3]} | {n[3]} |")
    return [*out, ""]


def write_markdown(rows: dict[str, dict[str, Any]], order: list[str], command: str, args: argparse.Namespace) -> None:
    from greenprune._utils import atomic_write_text

    base = rows.get("baseline")
    lines = [
        "# Structural pruning of SmolLM2-135M-Instruct (vocabulary, layers, FFN, LoRA recovery)",
        "",
        f"Command: `{command}`",
        "",
        "Held-out perplexity: " + f"{args.eval_texts} stdlib functions from the test split (files never used for the "
        "vocabulary corpus, calibration or recovery). HE NLL: mean NLL per token of HumanEval canonical solutions "
        f"given their prompts ({args.he_nll} problems). Both divide by the ORIGINAL tokenizer's token count. "
        "Retention = baseline/candidate for perplexity, exp(-(candidate-baseline)) for HE NLL, candidate/baseline "
        "for pass@1. tok/s and FLOPs: candidate/baseline, interleaved in one process (3 rounds, 4×256 tokens).",
        "",
        "| row | params | removed | bytes | ppl | ppl retention | HE NLL | HE retention | pass@1 (n) | tok/s × | "
        "FLOPs × | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in order:
        r = rows.get(name)
        if r is None:
            continue
        removed = removed_share(r, base) if base else float("nan")
        rets = retentions(r, base) if base else {}
        ppl_ret, he_ret = rets.get("perplexity", float("nan")), rets.get("HE NLL", float("nan"))
        p1 = f"{r['pass@1']:.3f} ({solved(r)})" if "pass@1" in r else "—"
        notes = ", ".join(f"{k}={r[k]}" for k in ("vocab", "layers_removed", "ffn", "lora") if k in r)
        lines.append(
            f"| {name} | {r['params'] / 1e6:.1f}M | {100 * removed:.1f}% | {r['bytes'] / 1e6:.0f} MB | "
            f"{r['ppl']:.3f} | "
            f"{100 * ppl_ret:.1f}% | {r['he_nll']:.3f} | {100 * he_ret:.1f}% | {p1} | {r.get('tok_s_ratio', 0):.2f} | "
            f"{r.get('flops_ratio', 0):.2f} | {notes} |"
        )
    gen = sorted({r for r, v in rows.items() if "pass@1" in v})
    lines += [
        "",
        f"pass@1: greedy, chat prompt (the model is instruction-tuned), up to {args.max_new_tokens} new tokens, "
        f"first {args.gen_problems} HumanEval problems, on rows {', '.join(gen) or 'none'}; every sample ran in "
        "greenprune's sandbox. Rows not measured yet are listed under the aim check.",
        "Layer rows take prefixes of one greedy removal order per metric (greedy with re-scoring makes the n=2 and "
        "n=4 choices prefixes of the n=6 run); the order is computed on the full-vocabulary model on "
        f"{args.calib_batches}×4×{args.calib_seq_len} calibration tokens (stdlib valid split).",
        "Per-row timings and the speed verdicts are in `structure.rows.json`.",
        "",
        *aim_lines(rows, order),
        *code_only_vocab_lines(rows),
    ]
    atomic_write_text(RESULTS / "structure.md", "\n".join(lines))


def main() -> None:
    args = parse()
    command = shlex.join([sys.executable.rsplit("/", 1)[-1], *sys.argv])
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows_path = RESULTS / args.rows_file
    rows = load_rows(rows_path, args.fresh and not args.markdown_only)
    # priority order (a shared CPU may not finish them all); the table is printed in reading order
    plan = ["baseline", "combo", "vocab", "bi4", "kl4", "ffn20", "bi2", "kl2", "ffn10", "bi6", "kl6", "ffn30"]
    reading = ["baseline", "vocab", "kl2", "kl4", "kl6", "bi2", "bi4", "bi6", "ffn10", "ffn20", "ffn30", "combo"]
    recover_rows = plan if args.recover_rows == "all" else [r for r in args.recover_rows.split(",") if r]
    order: list[str] = []
    for r in plan:
        order.append(r)
        if r in recover_rows and r != "baseline":
            order.append(f"{r}+lora")
    if "baseline" in recover_rows:
        order.append("baseline+lora")  # the control comes last: it prunes nothing
    table_order: list[str] = []
    for r in reading:
        table_order.append(r)
        if r in recover_rows:
            table_order.append(f"{r}+lora")
    if args.markdown_only:
        produced = args.produced_by or command
        write_markdown(all_saved_rows(rows), table_order, produced, args)
        return
    wanted = order if args.rows == "all" else [r for r in order if r in args.rows.split(",")]
    if args.reverse:
        wanted.reverse()
    gen_rows = set(order if args.gen_rows == "all" else [] if args.gen_rows == "none" else args.gen_rows.split(","))
    bench = Bench(args)
    from greenprune.measure import checkpoint_bytes
    from greenprune.measure.size import total_parameters

    for name in wanted:
        if name in all_saved_rows(rows):  # a parallel run (other --rows-file) may have saved it
            print(f"[skip] {name} (saved)", flush=True)
            continue
        t0 = time.time()
        base_name = name.removesuffix("+lora")
        model, tok, kept, info = bench.build(base_name)
        if name.endswith("+lora"):
            model, extra = bench.recover(model, tok)
            info.update(extra)
        model.eval()
        row: dict[str, Any] = {"row": name, "params": total_parameters(model), "bytes": checkpoint_bytes(model), **info}
        row.update(bench.quality(model, tok, name in gen_rows))
        row.update(bench.speed(model, kept))
        row["seconds"] = round(time.time() - t0, 1)
        rows[name] = row
        rows_path.write_text(json.dumps(list(rows.values()), indent=1, default=str))
        write_markdown(all_saved_rows(rows), table_order, command, args)
        print(f"[done] {name}: " + json.dumps({k: v for k, v in row.items() if k != "speed_verdict"}, default=str),
              flush=True)
        del model


if __name__ == "__main__":
    main()
