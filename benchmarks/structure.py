"""Flab-Pruner-style structural pruning of a code LLM: what each step removes and what it costs in quality.

Default model: `qwen2.5-coder-0.5b` (results in `results/structure.md`; other models write
`results/structure-<model>.md`). Rows: vocabulary (stdlib train corpus plus the model's chat frame), layers n = 2/4/6
by KL and by block influence (`bi`, ShortGPT's metric: 1 - cos(layer input, layer output)), FFN 10/20/30/40%, two
combinations aimed at ≥ 35% of parameters removed, a peer row from Torch-Pruning (its dependency graph and
group-magnitude importance removing the same share of FFN neurons per layer), each with and without LoRA recovery,
plus an unpruned LoRA control. Per row: parameters (tied counted once), checkpoint bytes, held-out code perplexity,
HumanEval canonical-solution NLL, HumanEval greedy pass@1 on all 164 problems with the per-problem outcomes (paired
breakdown and exact McNemar p-value against the baseline), and FLOPs / tokens/s / peak memory against the original,
interleaved in one process.

Quality numbers are normalised by the ORIGINAL tokenizer's token count, so vocabulary pruning (which splits unseen
code into more tokens) is not rewarded for producing more, easier tokens. Neither the vocabulary corpus, the
calibration data nor the recovery data contain HumanEval text: all three come from the stdlib's train/valid splits.

    OMP_NUM_THREADS=1 python benchmarks/structure.py       # resumes from results/structure.rows.json
    OMP_NUM_THREADS=1 python benchmarks/structure.py --reverse --rows-file structure.rows.b.json   # 2nd core
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import functools
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
DEFAULT_MODEL = "qwen2.5-coder-0.5b"
# per model: the combination rows (name=steps) aimed at >= 35% of the parameters removed
COMBOS = {
    "qwen2.5-coder-0.5b": "combo=vocab,bi2,ffn20;combo2=vocab,ffn30;combo3=vocab-ws-f32000,ffn25",
    "smollm2-135m": "combo=vocab,bi4,ffn20",
}
AIM_REMOVED = 0.35
AIM_NEED = {"without recovery": 0.97, "after recovery": 1.00}


def stem_for(model: str) -> str:
    return "structure" if model == DEFAULT_MODEL else f"structure-{model.replace('/', '_')}"


def vocab_config(step: str) -> Any:
    """`vocab[-ws][-fN]` as a VocabPruningConfig: vocab_keep.py's `corpus[+ws][+fN]` rows under step names."""
    from vocab_keep import vocab_config as keep_config  # benchmarks/ is on sys.path when run as a script

    return keep_config(step, head="vocab", sep="-", what="step")


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL)
    ap.add_argument("--eval-texts", type=int, default=32, help="held-out stdlib functions (test split) for perplexity")
    ap.add_argument("--he-nll", type=int, default=40, help="HumanEval problems scored by canonical-solution NLL")
    ap.add_argument("--gen-problems", type=int, default=164, help="HumanEval problems generated for pass@1")
    ap.add_argument("--gen-rows", default="all", help="rows that get generated pass@1 (comma list, 'all' or 'none')")
    ap.add_argument("--gen-batch", type=int, default=32,
                    help="places in the continuously refilled decoding batch (finished rows leave, new prompts join)")
    ap.add_argument("--max-new-tokens", type=int, default=384)
    ap.add_argument("--calib-batches", type=int, default=2)
    ap.add_argument("--calib-seq-len", type=int, default=128)
    ap.add_argument("--recover-steps", type=int, default=60)
    ap.add_argument("--recover-rows", default="all",
                    help="rows that also get a '+lora' recovered variant (comma list or 'all'; baseline+lora is the "
                    "control: what recovery training alone does to the unpruned model)")
    ap.add_argument("--combos", default=None, help="combination rows, 'name=step,step;name=...' (default per model)")
    ap.add_argument("--rows", default="all", help="subset of rows to run (comma list)")
    ap.add_argument("--reverse", action="store_true",
                    help="work through the rows from the end (a second process on another core meets the first)")
    ap.add_argument("--fresh", action="store_true", help="ignore saved rows")
    ap.add_argument("--rows-file", default=None, help="where this run saves its rows (default <stem>.rows.json)")
    ap.add_argument("--markdown-only", action="store_true", help="re-render the results file from the saved rows")
    ap.add_argument("--produced-by", default=None, help="with --markdown-only: the command that measured the rows")
    args = ap.parse_args()
    args.stem = stem_for(args.model)
    args.rows_file = args.rows_file or f"{args.stem}.rows.json"
    spec = args.combos or COMBOS.get(args.model, "combo=vocab,bi4,ffn20")
    args.combo_steps = dict(part.split("=", 1) for part in spec.split(";") if part)
    for name, steps in list(args.combo_steps.items()):
        args.combo_steps[name] = steps.split(",")
    return args


def torch_pruning_ffn(model: Any, calib: list[dict[str, Any]], fraction: float) -> dict[str, Any]:
    """The peer: Torch-Pruning's dependency graph finds what an FFN neuron couples (gate/up rows, down column) and
    its GroupMagnitudeImportance (L2 over the group) picks which go; the same share per layer as greenprune's FFN
    step, so `intermediate_size` stays one number and `from_pretrained` rebuilds the model."""
    import torch
    import torch_pruning as tp

    from greenprune.models.families import family_of
    from greenprune.structure.ffn import FFNPruningConfig, kept_size

    example = calib[0]["input_ids"][:1, :16]
    graph = tp.DependencyGraph().build_dependency(model, example_inputs=example,
                                                  output_transform=lambda out: out.logits.sum())
    importance = tp.importance.GroupMagnitudeImportance(p=2, group_reduction="mean")
    layers = family_of(model).layers(model)
    before = layers[0].mlp.gate_proj.out_features
    n_drop = before - kept_size(before, FFNPruningConfig(fraction=fraction))  # the count greenprune's step keeps
    for layer in layers:
        gate = layer.mlp.gate_proj
        group = graph.get_pruning_group(gate, tp.prune_linear_out_channels, idxs=list(range(gate.out_features)))
        drop = torch.argsort(importance(group))[:n_drop].tolist()
        graph.get_pruning_group(gate, tp.prune_linear_out_channels, idxs=drop).prune()
    after = layers[0].mlp.gate_proj.out_features
    model.config.intermediate_size = after
    return {"ffn": f"{before}→{after} (Torch-Pruning)"}


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
        self._vocab: dict[str, tuple[Any, list[int], dict[str, Any]]] = {}

    # ---- building candidates -------------------------------------------------------------------------------
    def vocab_step(self, model: Any, step: str = "vocab") -> tuple[Any, Any, list[int], dict[str, Any]]:
        """`vocab`: the tokens the stdlib corpus uses (plus the chat frame); `vocab-ws`, `vocab-ws-fN`, `vocab-fN`:
        also every whitespace-only token / the products of the first N BPE merges (see benchmarks/vocab_keep.py)."""
        from greenprune.structure.tokenizer import needed_token_ids
        from greenprune.structure.vocab import prune_vocab, shrink_embeddings

        if step in self._vocab:  # same corpus, same result: reuse the tokenizer and shrink this copy
            tok, kept, extra = self._vocab[step]
            return shrink_embeddings(model, kept), tok, kept, dict(extra)
        t = time.time()
        config = vocab_config(step)
        res = prune_vocab(model, self.tok, self.vocab_texts, config)
        code_only, _ = needed_token_ids(self.tok, self.vocab_texts,
                                        dataclasses.replace(config, keep_chat_frame=False))
        extra = {"vocab": f"{res.vocab_before}→{res.vocab_after}", "vocab_step": step,
                 "vocab_s": round(time.time() - t, 1),
                 "prompt_tokens_outside_vocab": self.prompt_tokens_outside(res.kept_ids),
                 "prompt_tokens_outside_code_only_vocab": self.prompt_tokens_outside(code_only)}
        self._vocab[step] = (res.tokenizer, res.kept_ids, extra)
        return res.model, res.tokenizer, res.kept_ids, dict(extra)

    def prompt_tokens_outside(self, kept_ids: list[int]) -> float:
        """Share of the HumanEval chat-prompt tokens (original tokenizer) that a kept vocabulary lacks."""
        from greenprune.tasks.generate import chat_prompt

        kept = set(kept_ids)
        ids = [i for e in self.problems for i in self.tok.encode(chat_prompt(self.tok, e), add_special_tokens=False)]
        return round(sum(i not in kept for i in ids) / len(ids), 4)

    def layer_order(self, metric: str, n: int) -> list[int]:
        """Greedy removal order (original indices) computed once up to the largest n; prefixes are the smaller n.

        Kept in `results/<stem>.layer-orders.json` keyed by metric with a fingerprint of the model and the
        calibration tokens: the KL order alone costs ~45 minutes at one thread, and it depends on nothing else."""
        from greenprune._utils import atomic_write_text
        from greenprune.structure.layers import LayerPruningConfig, prune_layers

        cache_path = RESULTS / f"{self.args.stem}.layer-orders.json"
        cache = json.loads(cache_path.read_text()) if cache_path.is_file() else {}
        saved = cache.get(metric, {})
        if saved.get("fingerprint") != self.calib_fingerprint or len(saved.get("order", [])) < n:
            work = copy.deepcopy(self.base)
            t = time.time()
            depth = work.config.num_hidden_layers
            res = prune_layers(work, self.calib, LayerPruningConfig(remove=min(max(n, 6), depth - 1), metric=metric))
            print(f"[layers {metric}] greedy order {res.removed} in {time.time() - t:.0f}s", flush=True)
            saved = cache[metric] = {"order": res.removed, "fingerprint": self.calib_fingerprint,
                                     "seconds": round(time.time() - t), "source": "benchmarks/structure.py"}
            atomic_write_text(cache_path, json.dumps(cache, indent=1) + "\n")
            del work
        return saved["order"][:n]

    @functools.cached_property
    def calib_fingerprint(self) -> str:
        """What a greedy order depends on: the model (name, depth, parameter count) and the calibration token ids."""
        import hashlib

        from greenprune.measure.size import total_parameters

        digest = hashlib.sha256(f"{self.args.model}|{self.base.config.num_hidden_layers}|"
                                f"{total_parameters(self.base)}".encode())
        for batch in self.calib:
            digest.update(batch["input_ids"].numpy().tobytes())
        return digest.hexdigest()[:16]

    def build(self, row: str) -> tuple[Any, Any, list[int] | None, dict[str, Any]]:
        from greenprune.structure.calibration import calibration_batches
        from greenprune.structure.ffn import FFNPruningConfig, prune_ffn
        from greenprune.structure.layers import remove_layers

        steps = self.args.combo_steps.get(row, [row])
        model, tok, kept, info = copy.deepcopy(self.base), self.tok, None, {}
        if row == "baseline":
            return model, tok, None, info
        for step in steps:
            if step.startswith("vocab"):
                model, tok, kept, extra = self.vocab_step(model, step)
                info.update(extra)
            elif step[:2] in ("kl", "bi"):
                order = self.layer_order(step[:2], int(step[2:]))
                remove_layers(model, sorted(order))
                info["layers_removed"] = sorted(order)
            elif step.startswith("tp-ffn"):
                info.update(torch_pruning_ffn(model, self.calib, int(step[6:]) / 100))
            elif step.startswith("ffn"):
                calib = self.calib if kept is None else calibration_batches(
                    tok, self.calib_texts, seq_len=self.args.calib_seq_len, batch_size=4,
                    max_batches=self.args.calib_batches)
                res = prune_ffn(model, calib, FFNPruningConfig(fraction=int(step[3:]) / 100))
                info["ffn"] = f"{res.size_before}→{res.size_after}"
            else:
                raise SystemExit(f"unknown step {step!r} in row {row!r}")
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

    def quality(self, model: Any, tok: Any, generate: bool) -> dict[str, Any]:
        from greenprune.structure.evaluate import code_nll
        from greenprune.tasks import get_task
        from greenprune.tasks.base import Example

        out: dict[str, Any] = {}
        nll, _ = code_nll(model, tok, self.eval_texts, batch_size=8, max_length=1024)
        texts = [Example(text=t, id=str(i)) for i, t in enumerate(self.eval_texts)]
        ref = self.ref_tokens("ppl", lambda: sum(get_task("perplexity").scored_tokens(self.tok, texts, 1024)))
        out["ppl"] = math.exp(nll / ref)
        he = self.problems[: self.args.he_nll]
        he_nll, _ = self.task.token_nll(model, tok, he, 8, 1024)
        he_ref = self.ref_tokens("he", lambda: sum(self.task.scored_tokens(self.tok, he, 1024)))
        out["he_nll"] = he_nll / he_ref
        if generate:
            t = time.time()
            m = self.task.evaluate(model, tok, self.problems[: self.args.gen_problems], batch_size=self.args.gen_batch,
                                   max_new_tokens=self.args.max_new_tokens)
            out["pass@1"] = m["pass@1"]
            out["gen_problems"] = m["problems"]
            out["solved_ids"] = [p["id"] for p in m.details["per_problem"] if p["passed"]]
            out["sandbox"] = m.details["sandbox"]["layers"]
            out["gen_s"] = round(time.time() - t, 1)
        return out

    def speed(self, model: Any, kept: list[int] | None) -> dict[str, Any]:
        from greenprune.measure import compare
        from greenprune.structure.pipeline import IdRemap

        cand = IdRemap(model, kept, len(self.tok)) if kept is not None else model
        comp = compare(self.base, cand, self.cost_batches, names=("original", "pruned"), rounds=3, energy=False,
                       count_memory=True)
        b, c = comp.baseline.cost, comp.candidate.cost
        out = {"tok_s_ratio": c.throughput_tokens_s / b.throughput_tokens_s,
               "flops_ratio": c.flops_per_sample / b.flops_per_sample, "speed_verdict": comp.verdict}
        if b.peak_memory_bytes and c.peak_memory_bytes:
            out["peak_mem_ratio"] = c.peak_memory_bytes / b.peak_memory_bytes
        return out


def load_rows(path: Path, fresh: bool) -> dict[str, dict[str, Any]]:
    if fresh or not path.is_file():
        return {}
    return {r["row"]: r for r in json.loads(path.read_text())}


def all_saved_rows(stem: str, own: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Rows of every rows file of this model (parallel runs write separate files), this run's own rows first."""
    merged: dict[str, dict[str, Any]] = {}
    for path in sorted(RESULTS.glob(f"{stem}.rows*.json")):
        merged.update(load_rows(path, False))
    merged.update(own)
    return merged


def removed_share(r: dict[str, Any], base: dict[str, Any]) -> float:
    return 1 - r["params"] / base["params"]


def retentions(r: dict[str, Any], base: dict[str, Any]) -> dict[str, float]:
    """Quality kept vs the baseline: perplexity always, pass@1 when both rows generated."""
    rets = {"perplexity": base["ppl"] / r["ppl"]}
    if "pass@1" in r and base.get("pass@1"):
        rets["pass@1"] = r["pass@1"] / base["pass@1"]
    return rets


def solved(r: dict[str, Any]) -> str:
    """pass@1 as problems solved, e.g. "86/164"."""
    return f"{round(r['pass@1'] * r['gen_problems'])}/{int(r['gen_problems'])}"


def wilson(r: dict[str, Any]) -> str:
    from greenprune.tasks.metrics import wilson_interval

    low, high = wilson_interval(round(r["pass@1"] * r["gen_problems"]), int(r["gen_problems"]))
    return f"[{low:.2f}, {high:.2f}]"


def paired(r: dict[str, Any], base: dict[str, Any]) -> dict[str, float] | None:
    """Per-problem comparison with the baseline (both generated on the same problems), or None."""
    from greenprune.tasks.metrics import paired_outcomes

    if "solved_ids" not in r or "solved_ids" not in base or r["gen_problems"] != base["gen_problems"]:
        return None
    ids = [f"HumanEval/{i}" for i in range(int(base["gen_problems"]))]
    known = set(ids)
    if not set(base["solved_ids"]) <= known or not set(r["solved_ids"]) <= known:
        return None
    return paired_outcomes({i: i in base["solved_ids"] for i in ids}, {i: i in r["solved_ids"] for i in ids})


def peer_lines(rows: dict[str, dict[str, Any]]) -> list[str]:
    """greenprune's FFN rows beside Torch-Pruning's at the same share, paired on the same problems (computed)."""
    out = []
    for name, theirs in sorted(rows.items()):
        ours = rows.get(name.removeprefix("tp-"))
        if not name.startswith("tp-") or ours is None:
            continue
        text = (f"- {name.removeprefix('tp-')} vs {name} (the same {theirs['ffn'].split(' ')[0]} neurons per layer, "
                f"the same evaluation): perplexity {ours['ppl']:.2f} vs {theirs['ppl']:.2f}")
        if "pass@1" in ours and "pass@1" in theirs:
            text += f"; pass@1 {solved(ours)} vs {solved(theirs)}"
            pair = paired(theirs, ours)  # "baseline" = greenprune's row, "candidate" = the peer's
            if pair:
                text += (f"; solved only by greenprune's row {pair['only_baseline']:.0f}, only by Torch-Pruning's "
                         f"{pair['only_candidate']:.0f} (McNemar p = {pair['mcnemar_p']:.3g})")
        out.append(text + ".")
    return ["## Beside the peer (Torch-Pruning, computed from the rows above)", "", *out, ""] if out else []


def aim_lines(rows: dict[str, dict[str, Any]], order: list[str]) -> list[str]:
    """The issue's aim checked against the measured rows (computed, so a re-render can never go stale)."""
    base = rows.get("baseline")
    missing = [name for name in order if name not in rows]
    no_gen = [name for name in order if name in rows and "pass@1" not in rows[name]]
    out = ["## Aim check (computed from the rows above)", ""]
    if base is None:
        return [*out, "No baseline row yet.", ""]
    out += [f"Aim: ≥ {100 * AIM_REMOVED:.0f}% of parameters removed with pass@1 ≥ 97% of the baseline's (paired, "
            "same problems) and perplexity retention ≥ 97%, without post-training; ≥ 100% of the baseline's pass@1 "
            "after LoRA recovery. Flab-Pruner reports 22% removed at 97%.", ""]
    pruned = [n for n in order if n in rows and n != "baseline" and removed_share(rows[n], base) > 0]
    removed = {n: removed_share(rows[n], base) for n in pruned}
    rets = {n: retentions(rows[n], base) for n in pruned}
    kind = {n: "after recovery" if n.endswith("+lora") else "without recovery" for n in pruned}

    def holds(name: str) -> bool:
        r = rets[name]
        if "pass@1" not in r:
            return False
        if kind[name] == "after recovery":
            return r["pass@1"] >= AIM_NEED["after recovery"]
        return r["pass@1"] >= AIM_NEED["without recovery"] and r["perplexity"] >= AIM_NEED["without recovery"]

    def detail(name: str) -> str:
        text = ", ".join(f"{k} {100 * v:.0f}%" for k, v in rets[name].items())
        pair = paired(rows[name], base)
        if pair:
            text += (f"; paired: {pair['only_baseline']:.0f} only baseline / {pair['only_candidate']:.0f} only "
                     f"pruned, McNemar p = {pair['mcnemar_p']:.3g}")
        return text

    big = [n for n in pruned if removed[n] >= AIM_REMOVED]
    for name in big:
        out.append(f"- {name}: {100 * removed[name]:.1f}% removed, {detail(name)}: "
                   f"**{'met' if holds(name) else 'missed'}** ({kind[name]}).")
    if not big:
        out.append(f"- No measured row removes ≥ {100 * AIM_REMOVED:.0f}% of the parameters yet.")
    out += ["", "What this model allows (any row, any removal, the thresholds above):", ""]
    for k, need in AIM_NEED.items():
        candidates = [n for n in pruned if kind[n] == k and "pass@1" in rets[n]]
        holding = [n for n in candidates if holds(n)]
        if holding:
            name = max(holding, key=removed.__getitem__)
            out.append(f"- {k} (≥ {100 * need:.0f}%): at most {100 * removed[name]:.1f}% removed ({name}; "
                       f"{detail(name)}).")
        elif candidates:
            name = max(candidates, key=lambda n: min(rets[n].values()))
            out.append(f"- {k} (≥ {100 * need:.0f}%): no pruned row holds it; closest is {name} "
                       f"({100 * removed[name]:.1f}% removed, {detail(name)}).")
    if base.get("pass@1") and base.get("gen_problems"):
        n_solved = round(base["pass@1"] * base["gen_problems"])
        if n_solved:
            out.append(f"- The baseline solves {solved(base)} problems, so one problem more or less moves pass@1 "
                       f"retention by {100 / n_solved:.1f} points.")
    if missing:
        out += ["", f"Rows not measured yet (the script resumes with them): {', '.join(missing)}."]
    if no_gen:
        out += ["", f"Rows measured without pass@1: {', '.join(no_gen)}."]
    return [*out, ""]


def write_markdown(rows: dict[str, dict[str, Any]], order: list[str], command: str, args: argparse.Namespace) -> None:
    from greenprune._utils import atomic_write_text

    base = rows.get("baseline")
    combos = "; ".join(f"{name} = {' + '.join(steps)}" for name, steps in args.combo_steps.items())
    lines = [
        f"# Structural pruning of {args.model} (vocabulary, layers, FFN, LoRA recovery) beside Torch-Pruning",
        "",
        f"Command: `{command}`",
        "",
        f"Held-out perplexity: {args.eval_texts} stdlib functions from the test split (files never used for the "
        "vocabulary corpus, calibration or recovery), normalised by the ORIGINAL tokenizer's token count; retention "
        "= baseline/candidate. pass@1: greedy, chat prompt, up to "
        f"{args.max_new_tokens} new tokens, the first {args.gen_problems} HumanEval problems, 95% Wilson interval; "
        "paired = problems solved only by the baseline / only by the pruned model, with the exact McNemar p-value. "
        "tok/s, FLOPs and peak memory: candidate/baseline, interleaved in one process (3 rounds, 4×256 tokens; peak "
        "= parameters + the largest sum of live tensors in a forward). `bi` is ShortGPT's block-influence metric "
        "(1 − cosine of a layer's input and output); `kl` removes the layer whose removal changes the output "
        f"distribution least. `vocab` keeps the tokens the stdlib corpus uses; `vocab-ws-f32000` also every "
        "whitespace-only token and the products of the tokenizer's first 32,000 BPE merges (its frequency order; "
        f"see `vocab-keep.md`). Combinations: {combos}. `tp-ffn20` is the peer: Torch-Pruning's dependency graph and "
        "GroupMagnitudeImportance removing 20% of each layer's FFN neurons, evaluated the same way. `+lora`: "
        f"{args.recover_steps} LoRA steps on stdlib signature+docstring → body pairs; `baseline+lora` is the "
        "control for what that training does without pruning.",
        "",
        "| row | params | removed | bytes | ppl (ret.) | HE NLL | pass@1 (n) [95% CI] | paired −/+ (p) | tok/s × | "
        "FLOPs × | peak mem × | notes |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in order:
        r = rows.get(name)
        if r is None:
            continue
        removed = removed_share(r, base) if base else float("nan")
        ppl_ret = retentions(r, base)["perplexity"] if base else float("nan")
        p1 = f"{r['pass@1']:.3f} ({solved(r)}) {wilson(r)}" if "pass@1" in r else "—"
        pair = paired(r, base) if base and name != "baseline" else None
        pair_cell = (f"−{pair['only_baseline']:.0f}/+{pair['only_candidate']:.0f} ({pair['mcnemar_p']:.2g})"
                     if pair else "—")
        mem = f"{r['peak_mem_ratio']:.2f}" if "peak_mem_ratio" in r else "—"
        notes = ", ".join(f"{k}={r[k]}" for k in ("vocab", "layers_removed", "ffn", "lora") if k in r)
        lines.append(
            f"| {name} | {r['params'] / 1e6:.1f}M | {100 * removed:.1f}% | {r['bytes'] / 1e6:.0f} MB | "
            f"{r['ppl']:.3f} ({100 * ppl_ret:.1f}%) | {r['he_nll']:.3f} | {p1} | {pair_cell} | "
            f"{r.get('tok_s_ratio', 0):.2f} | {r.get('flops_ratio', 0):.2f} | {mem} | {notes} |"
        )
    vocabularies = {r.get("vocab_step", "vocab"): r for r in rows.values() if "prompt_tokens_outside_vocab" in r}
    lines += [""]
    for step, r in vocabularies.items():
        lines.append(f"Of the 164 HumanEval chat prompts' tokens, {100 * r['prompt_tokens_outside_vocab']:.2f}% "
                     f"lie outside the `{step}` vocabulary ({r['vocab']}, chat frame kept) and "
                     f"{100 * r['prompt_tokens_outside_code_only_vocab']:.2f}% outside its code-only variant.")
    lines += [
        "Layer rows take prefixes of one greedy removal order per metric (greedy with re-scoring makes the n=2 and "
        "n=4 choices prefixes of the n=6 run); the order is computed on the full-vocabulary model on "
        f"{args.calib_batches}×4×{args.calib_seq_len} calibration tokens (stdlib valid split).",
        f"Per-row timings, solved problem ids, sandbox layers and speed verdicts are in `{args.stem}.rows*.json`.",
        "",
        *peer_lines(rows),
        *aim_lines(rows, order),
    ]
    atomic_write_text(RESULTS / f"{args.stem}.md", "\n".join(lines))


def plan_rows(args: argparse.Namespace) -> tuple[list[str], list[str]]:
    """(run order: most informative first, a shared CPU may not finish them all; reading order of the table)."""
    combos = list(args.combo_steps)
    plan = ["baseline", *combos, "vocab", "vocab-ws-f32000", "ffn20", "tp-ffn20", "bi4", "kl4", "ffn10", "ffn30",
            "ffn40", "bi2", "kl2", "bi6", "kl6"]
    reading = ["baseline", "vocab", "vocab-ws-f32000", "kl2", "kl4", "kl6", "bi2", "bi4", "bi6", "ffn10", "ffn20",
               "ffn30", "ffn40", "tp-ffn20", *combos]
    recover_rows = plan if args.recover_rows == "all" else [r for r in args.recover_rows.split(",") if r]
    # every one-shot row first (a recovered row costs a LoRA run on top), then the combinations' recovery with the
    # control (what the aim is judged on), then the other rows' recovery
    order = list(plan)
    lora_first = [*combos, "baseline"]
    order += [f"{r}+lora" for r in lora_first if r in recover_rows]
    order += [f"{r}+lora" for r in plan if r in recover_rows and r not in lora_first]
    table_order: list[str] = []
    for r in reading:
        table_order.append(r)
        if r in recover_rows:
            table_order.append(f"{r}+lora")
    return order, table_order


def main() -> None:
    args = parse()
    command = shlex.join([sys.executable.rsplit("/", 1)[-1], *sys.argv])
    RESULTS.mkdir(parents=True, exist_ok=True)
    rows_path = RESULTS / args.rows_file
    rows = load_rows(rows_path, args.fresh and not args.markdown_only)
    order, table_order = plan_rows(args)
    if args.markdown_only:
        write_markdown(all_saved_rows(args.stem, rows), table_order, args.produced_by or command, args)
        return
    wanted = order if args.rows == "all" else [r for r in order if r in args.rows.split(",")]
    if args.reverse:
        wanted.reverse()
    gen_rows = set(order if args.gen_rows == "all" else [] if args.gen_rows == "none" else args.gen_rows.split(","))
    bench = Bench(args)
    from greenprune.measure import checkpoint_bytes
    from greenprune.measure.size import total_parameters

    for name in wanted:
        if name in all_saved_rows(args.stem, rows):  # a parallel run (other --rows-file) may have saved it
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
        write_markdown(all_saved_rows(args.stem, rows), table_order, command, args)
        print(f"[done] {name}: " + json.dumps({k: v for k, v in row.items()
                                               if k not in ("speed_verdict", "solved_ids")}, default=str), flush=True)
        del model


if __name__ == "__main__":
    main()
