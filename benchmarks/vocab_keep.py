"""What a corpus-only vocabulary costs on text outside the corpus, and what keeping a little more buys back.

Flab-Pruner keeps the tokens its corpus uses. On qwen2.5-coder-0.5b with the stdlib train split that removes 23% of
the parameters but costs 16% of held-out perplexity and 19 of 88 HumanEval problems (`results/structure.md`, row
`vocab`): HumanEval's words ("palindrome", "planet") and blank lines that keep their indentation are not in the
stdlib, so prompt and reply tokenise into pieces the model rarely saw. This benchmark measures two insurances of
`VocabPruningConfig` beside the corpus-only vocabulary, all on the same corpus:

- `ws`: also keep every whitespace-only token;
- `fN`: also keep the products of the tokenizer's first N BPE merges (BPE learns merges most-frequent first).

Per row: vocabulary size, parameters removed (tied embeddings counted once), the share of original tokens outside
the kept vocabulary (HumanEval chat prompts, HumanEval prompt + canonical solution, held-out stdlib), and
teacher-forced NLL per ORIGINAL token on HumanEval's canonical solutions (all 164) and on held-out stdlib
functions, with a paired bootstrap interval of the difference to the unpruned model. Nothing here generates, so
`--generate ROWS` adds greedy pass@1 on all 164 problems (about 40 minutes per row at one thread) with the paired
McNemar test against the unpruned model's outcomes, generated in this run.

    OMP_NUM_THREADS=1 python benchmarks/vocab_keep.py                      # resumes from results/vocab-keep.rows.json
    OMP_NUM_THREADS=1 python benchmarks/vocab_keep.py --generate baseline,corpus+ws+f32000
    OMP_NUM_THREADS=1 python benchmarks/vocab_keep.py --generate corpus+ws+f32000 \\
        --baseline-outcomes benchmarks/results/structure.rows.json    # reuse structure.py's unpruned outcomes
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
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

RESULTS = Path(__file__).resolve().parent / "results"
DEFAULT_MODEL = "qwen2.5-coder-0.5b"
# run order (a shared CPU may not finish them all: the comparison that matters first); the table sorts by size
ROWS = ["baseline", "corpus", "corpus+ws+f32000", "corpus+ws", "corpus+ws+f16000", "corpus+ws+f64000"]


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=DEFAULT_MODEL, help="other models write results/vocab-keep-<model>.md")
    ap.add_argument("--rows", default=",".join(ROWS), help="rows to measure, e.g. corpus+ws+f24000 (comma list)")
    ap.add_argument("--problems", type=int, default=164, help="HumanEval problems (NLL and generation)")
    ap.add_argument("--stdlib-texts", type=int, default=64, help="held-out stdlib functions (test split)")
    ap.add_argument("--max-length", type=int, default=512)
    ap.add_argument("--generate", default="", help="rows that also get greedy HumanEval pass@1 (comma list)")
    ap.add_argument("--baseline-outcomes", type=Path, default=None,
                    help="take the unpruned model's pass@1 outcomes from this structure.py rows file (its `baseline` "
                    "row, same prompts and decoding) instead of generating them again")
    ap.add_argument("--gen-batch", type=int, default=32)
    ap.add_argument("--max-new-tokens", type=int, default=384)
    ap.add_argument("--fresh", action="store_true", help="ignore saved rows")
    ap.add_argument("--markdown-only", action="store_true", help="re-render the results file from the saved rows")
    ap.add_argument("--produced-by", default=None, help="with --markdown-only: the command that measured the rows")
    return ap.parse_args()


def vocab_config(spec: str, head: str = "corpus", sep: str = "+", what: str = "row") -> Any:
    """`corpus`, `corpus+ws`, `corpus+fN`, `corpus+ws+fN` as a VocabPruningConfig (structure.py spells its steps
    `vocab-ws-fN`: `head` and `sep`; `what` names the spec in the error)."""
    from greenprune.structure.tokenizer import VocabPruningConfig

    parts = spec.split(sep)
    if parts[0] != head or any(p != "ws" and not (p[:1] == "f" and p[1:].isdigit()) for p in parts[1:]):
        raise SystemExit(f"{what} {spec!r}: expected {head}[{sep}ws][{sep}fN]")
    frequent = next((int(p[1:]) for p in parts[1:] if p.startswith("f")), 0)
    return VocabPruningConfig(keep_whitespace="ws" in parts, keep_frequent=frequent)


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        from greenprune.models import load_model
        from greenprune.structure.calibration import stdlib_code
        from greenprune.tasks import get_task
        from greenprune.tasks.base import Example
        from greenprune.tasks.generate import GenerateTask, chat_prompt

        self.args = args
        loaded = load_model(args.model, task="causal-lm")
        self.base, self.tok = loaded.model.eval(), loaded.tokenizer
        self.vocab_texts = stdlib_code(limit=100_000, split="train")  # the corpus structure.py's vocab row uses
        self.gen = GenerateTask()
        self.problems = self.gen.embedded().test[: args.problems]
        self.ppl = get_task("perplexity")
        self.stdlib = [Example(text=t, id=str(i))
                       for i, t in enumerate(stdlib_code(limit=args.stdlib_texts, split="test"))]
        texts = {"he_prompts": [chat_prompt(self.tok, e) for e in self.problems],
                 "he_solutions": [e.text + e.target for e in self.problems],
                 "stdlib": [e.text for e in self.stdlib]}
        # original-tokenizer ids, encoded once: every row's out-of-vocabulary share is read against them
        encoded = {key: [self.tok.encode(t, add_special_tokens=False) for t in group] for key, group in texts.items()}
        self.prompt_ids = encoded["he_prompts"]  # per problem: where a pruned model's decoding can first differ
        self.original_ids = {key: [i for ids in group for i in ids] for key, group in encoded.items()}
        # per-example reference token counts under the ORIGINAL tokenizer (what every row's NLL is divided by)
        self.ref = {"he": self.gen.scored_tokens(self.tok, self.problems, args.max_length),
                    "stdlib": self.ppl.scored_tokens(self.tok, self.stdlib, args.max_length)}

    def greedy_choices(self) -> list[list[int]]:
        """Per HumanEval problem, the unpruned model's top-1 token at every canonical-solution position (teacher
        forced, original tokenizer). Logits of kept tokens do not change when a vocabulary is pruned, so a pruned
        model decodes exactly like the unpruned one until the unpruned model's choice is a token it lacks."""
        import torch

        from greenprune._utils import progress
        from greenprune.training import IGNORE_INDEX

        out = []
        with torch.no_grad():
            for e in progress(self.problems, desc="greedy choices"):
                batch = next(iter(self.gen.train_batches(self.tok, [e], 1, self.args.max_length)))
                labels = batch.pop("labels")[0, 1:]
                logits = self.base(**batch).logits[0, :-1]
                out.append(logits[labels != IGNORE_INDEX].argmax(-1).tolist())
        return out

    def path_oov(self, kept: set[int], greedy: list[list[int]]) -> dict[str, Any]:
        """How often the unpruned model's own choices leave a kept vocabulary, and which problems' prompt or
        teacher-forced greedy choices do (where a pruned model's decoding can first differ)."""
        choices = [t for path in greedy for t in path]
        off = [e.id for e, prompt, path in zip(self.problems, self.prompt_ids, greedy, strict=True)
               if any(t not in kept for t in (*prompt, *path))]
        outside = Counter(t for t in choices if t not in kept)
        return {"choices": outside.total() / len(choices), "problems": off,
                "top_outside": [[self.tok.decode([t]), n] for t, n in outside.most_common(12)]}

    def kept_ids(self, row: str) -> set[int]:
        from greenprune.structure.tokenizer import needed_token_ids

        return set(needed_token_ids(self.tok, self.vocab_texts, vocab_config(row))[0])

    def per_example_nll(self, model: Any, tok: Any) -> dict[str, list[float]]:
        from greenprune._utils import progress

        out = {}
        for key, task, examples in (("he", self.gen, self.problems), ("stdlib", self.ppl, self.stdlib)):
            out[key] = [task.token_nll(model, tok, [e], 1, self.args.max_length)[0]
                        for e in progress(examples, desc=f"NLL {key}")]
        return out

    def oov(self, kept: set[int]) -> dict[str, float]:
        return {key: sum(i not in kept for i in ids) / len(ids) for key, ids in self.original_ids.items()}

    def run(self, row: str, generate: bool, greedy: list[list[int]]) -> dict[str, Any]:
        from greenprune.measure.size import total_parameters
        from greenprune.structure.vocab import prune_vocab

        t = time.time()
        model, tok = copy.deepcopy(self.base), self.tok
        rec: dict[str, Any] = {"row": row}
        if row != "baseline":
            res = prune_vocab(model, self.tok, self.vocab_texts, vocab_config(row))
            model, tok = res.model, res.tokenizer
            rec.update(vocab=res.vocab_after, kept=res.kept_breakdown, oov=self.oov(set(res.kept_ids)),
                       path_oov=self.path_oov(set(res.kept_ids), greedy))
        else:
            rec.update(vocab=len(self.tok), oov=dict.fromkeys(self.original_ids, 0.0))
        rec["params"] = total_parameters(model)
        rec["nll"] = self.per_example_nll(model, tok)
        if generate:
            m = self.gen.evaluate(model, tok, self.problems, batch_size=self.args.gen_batch,
                                  max_new_tokens=self.args.max_new_tokens)
            rec.update({"pass@1": m["pass@1"], "gen_problems": m["problems"],
                        "solved_ids": [p["id"] for p in m.details["per_problem"] if p["passed"]]})
        rec["seconds"] = round(time.time() - t, 1)
        return rec


# ---- reading the rows ----------------------------------------------------------------------------------------
def per_token(nll: list[float], ref: list[int]) -> float:
    return sum(nll) / sum(ref)


def paired_delta(cand: list[float], base: list[float], ref: list[int], resamples: int = 2000, seed: int = 0
                 ) -> tuple[float, float, float]:
    """Δ NLL per original token (candidate − baseline) with a paired percentile bootstrap over examples."""
    c, b, r = (np.asarray(x, dtype=np.float64) for x in (cand, base, ref))
    idx = np.random.default_rng(seed).integers(0, len(c), size=(resamples, len(c)))
    deltas = (c[idx].sum(axis=1) - b[idx].sum(axis=1)) / r[idx].sum(axis=1)
    return float((c.sum() - b.sum()) / r.sum()), float(np.quantile(deltas, 0.025)), float(np.quantile(deltas, 0.975))


def render(model: str, rows: dict[str, dict[str, Any]], ref: dict[str, list[int]], commands: list[str]) -> str:
    from greenprune.tasks.metrics import paired_outcomes, wilson_interval

    base = rows.get("baseline")
    lines = [
        f"# Vocabulary pruning of {model}: corpus-only vs keeping whitespace and the most frequent merges",
        "",
        "Commands (in order; each resumes the saved rows): " + "; ".join(f"`{c}`" for c in commands),
        "",
        "Corpus: the stdlib train split (as `structure.py`'s `vocab` row, chat frame kept). `ws` also keeps every "
        "whitespace-only token; `fN` the products of the tokenizer's first N BPE merges. Out-of-vocabulary (OOV): "
        "share of the ORIGINAL tokenizer's tokens a kept vocabulary lacks (such text is spelled in smaller pieces). "
        "NLL: teacher-forced, summed and divided by the ORIGINAL tokenizer's token count, so perplexity is comparable "
        f"across vocabularies; HumanEval = chat prompt → canonical solution, all {len(ref['he'])} problems; stdlib = "
        f"{len(ref['stdlib'])} held-out functions (test split, files never in the corpus). Δ = candidate − unpruned "
        "per token, 95% paired bootstrap over problems / functions; retention = exp(−Δ).",
        "",
        "Greedy path: the unpruned model's top-1 token at each canonical-solution position (teacher forced) is "
        "outside the vocabulary in `top-1 outside` of the positions; `problems off-path` counts the problems whose "
        "prompt or such a choice leaves it. A pruned vocabulary leaves the kept tokens' logits unchanged, so greedy "
        "decoding can only diverge where the unpruned model's own choice (or its prompt token) is gone.",
        "",
        "| row | vocab | params | removed | OOV prompts | OOV prompt+solution | OOV stdlib | top-1 outside | problems "
        "off-path | HE NLL Δ [95% CI] | HE ppl kept | stdlib NLL Δ [95% CI] | stdlib ppl kept | pass@1 [95% CI] | "
        "paired −/+ (p) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name in sorted(rows, key=lambda n: (n != "baseline", -rows[n]["params"])):
        r = rows[name]
        cells = [name, f"{r['vocab']:,}", f"{r['params'] / 1e6:.1f}M",
                 f"{100 * (1 - r['params'] / base['params']):.1f}%" if base else "—",
                 *(f"{100 * r['oov'][k]:.2f}%" for k in ("he_prompts", "he_solutions", "stdlib"))]
        path = r.get("path_oov")
        cells += ([f"{100 * path['choices']:.2f}%", f"{len(path['problems'])}/{len(ref['he'])}"] if path
                  else ["0.00%", f"0/{len(ref['he'])}"] if name == "baseline" else ["—", "—"])
        for key in ("he", "stdlib"):
            if base is None or name == "baseline":
                cells += [f"{per_token(r['nll'][key], ref[key]):.4f} (per token)", "100.0%"]
                continue
            d, lo, hi = paired_delta(r["nll"][key], base["nll"][key], ref[key])
            cells += [f"{d:+.4f} [{lo:+.4f}, {hi:+.4f}]", f"{100 * math.exp(-d):.1f}%"]
        if "pass@1" in r:
            k, n = round(r["pass@1"] * r["gen_problems"]), int(r["gen_problems"])
            low, high = wilson_interval(k, n)
            cells.append(f"{k}/{n} [{low:.2f}, {high:.2f}]")
            if base and "solved_ids" in base and name != "baseline":
                ids = [f"HumanEval/{i}" for i in range(n)]
                p = paired_outcomes({i: i in base["solved_ids"] for i in ids}, {i: i in r["solved_ids"] for i in ids})
                cells.append(f"−{p['only_baseline']:.0f}/+{p['only_candidate']:.0f} ({p['mcnemar_p']:.2g})")
            else:
                cells.append("—")
        else:
            cells += ["not generated", "—"]
        lines.append("| " + " | ".join(cells) + " |")
    if base and "pass@1_from" in base:
        lines += ["", f"The unpruned model's pass@1 outcomes come from `{base['pass@1_from']}`: the same prompts, "
                  "greedy decoding and batch, not generated again in this run."]
    lines += ["", *reading(rows, ref), ""]
    missing = [r for r in ROWS if r not in rows]
    if missing:
        lines += [f"Rows not measured yet (the script resumes with them): {', '.join(missing)}.", ""]
    return "\n".join(lines)


def reading(rows: dict[str, dict[str, Any]], ref: dict[str, list[int]]) -> list[str]:
    """What the rows say, computed: how much of the corpus-only row's NLL loss each insurance buys back, per removed
    parameter."""
    base, corpus = rows.get("baseline"), rows.get("corpus")
    if not base or not corpus:
        return []
    out = ["## Reading (computed from the rows above)", ""]
    for name, r in rows.items():
        if name == "baseline" or "solved_ids" not in r or "solved_ids" not in base or "path_oov" not in r:
            continue
        solved, off = set(base["solved_ids"]), set(r["path_oov"]["problems"])
        lost, gained = solved - set(r["solved_ids"]), set(r["solved_ids"]) - solved
        out.append(f"- {name}: of the {len(solved)} problems the unpruned model solves, {len(solved & off)} are "
                   f"off-path and {len(lost)} are lost; {len(lost & off)} of the lost are off-path, {len(lost - off)} "
                   "stay on the canonical path (their own greedy reply leaves the vocabulary elsewhere, or the smaller "
                   "output layer's rounding flips a near-tie); "
                   f"{len(gained)} gained, {len(gained & off)} of them off-path.")
    for name, r in rows.items():
        if r.get("path_oov", {}).get("top_outside"):
            words = ", ".join(f"`{w!r}` ×{n}" for w, n in r["path_oov"]["top_outside"])
            out.append(f"- {name}: the unpruned model's most frequent top-1 choices outside the vocabulary: {words}.")
    loss0 = {k: per_token(corpus["nll"][k], ref[k]) - per_token(base["nll"][k], ref[k]) for k in ("he", "stdlib")}
    for name, r in rows.items():
        if name in ("baseline", "corpus"):
            continue
        removed_lost = (r["params"] - corpus["params"]) / base["params"]
        back = {}
        for k, label in (("he", "HumanEval"), ("stdlib", "stdlib")):
            if loss0[k] <= 0:
                back[k] = f"nothing on {label} (the corpus-only row loses no NLL there)"
            else:
                regained = 1 - (per_token(r["nll"][k], ref[k]) - per_token(base["nll"][k], ref[k])) / loss0[k]
                back[k] = f"{100 * regained:.0f}% of the corpus-only row's {label} NLL loss"
        out.append(f"- {name}: gives up {100 * removed_lost:.1f} points of the parameters removed and wins back "
                   f"{back['he']}, {back['stdlib']}.")
    return out


def saved_outcomes(path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The unpruned model's greedy HumanEval outcomes from a structure.py run: greedy decoding on this CPU is
    reproducible (structure.py's baseline and weights.py's dense row, separate runs, solved the same problems)."""
    rows = {r["row"]: r for r in json.loads(path.read_text())}
    base = rows.get("baseline", {})
    if "solved_ids" not in base or base.get("gen_problems") != args.problems:
        raise SystemExit(f"{path}: no baseline row with pass@1 outcomes on {args.problems} problems")
    return {"pass@1": base["pass@1"], "gen_problems": base["gen_problems"], "solved_ids": base["solved_ids"],
            "pass@1_from": f"{path.name} (row baseline)"}


def main() -> None:
    from greenprune._utils import atomic_write_text

    args = parse()
    stem = "vocab-keep" if args.model == DEFAULT_MODEL else f"vocab-keep-{args.model.replace('/', '_')}"
    rows_file = RESULTS / f"{stem}.rows.json"
    saved: dict[str, Any] = {} if args.fresh or not rows_file.is_file() else json.loads(rows_file.read_text())
    rows: dict[str, dict[str, Any]] = saved.get("rows", {})
    commands: list[str] = saved.get("commands", [])
    if args.markdown_only:
        if not rows:
            raise SystemExit(f"{rows_file}: no saved rows to render")
        if args.produced_by:
            commands = [args.produced_by]
        atomic_write_text(RESULTS / f"{stem}.md", render(args.model, rows, saved["ref"], commands))
        return
    bench = Bench(args)
    ref = bench.ref
    if saved.get("ref") not in (None, ref):
        raise SystemExit(f"{rows_file}: saved rows were scored on other texts; rerun with --fresh")
    generate = {r for r in args.generate.split(",") if r}
    if args.baseline_outcomes and "baseline" in rows and "pass@1" not in rows["baseline"]:
        rows["baseline"].update(saved_outcomes(args.baseline_outcomes, args))
    command = "python " + " ".join(shlex.quote(a) for a in sys.argv)
    commands = [*commands, command] if command not in commands else commands
    greedy: list[list[int]] = saved.get("greedy") or bench.greedy_choices()

    def save() -> None:
        atomic_write_text(rows_file, json.dumps({"commands": commands, "ref": ref, "greedy": greedy, "rows": rows})
                          + "\n")
        atomic_write_text(RESULTS / f"{stem}.md", render(args.model, rows, ref, commands))

    for row, rec in rows.items():  # rows saved before the greedy-path column: their vocabulary only, no forward
        if row != "baseline" and "path_oov" not in rec:
            print(f"[{time.strftime('%H:%M:%S')}] {row}: greedy-path column", flush=True)
            rec["path_oov"] = bench.path_oov(bench.kept_ids(row), greedy)
            save()
    for row in [r for r in args.rows.split(",") if r]:
        if row in rows and (row not in generate or "pass@1" in rows[row]):
            continue
        print(f"[{time.strftime('%H:%M:%S')}] {row}", flush=True)
        rows[row] = bench.run(row, row in generate, greedy)
        save()
        print(f"[{time.strftime('%H:%M:%S')}] {row} done in {rows[row]['seconds']} s", flush=True)


if __name__ == "__main__":
    main()
