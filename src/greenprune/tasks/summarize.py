"""Code-to-text: function (without docstring) → one-line description, with a causal LM.

Official data: CodeSearchNet / CodeXGLUE code-to-text JSONL. Embedded: stdlib functions with docstrings, the
docstring removed from the input and its first sentence as the target. Scored with CodeXGLUE's smoothed BLEU-4
plus sacreBLEU and exact match, from greedy generation after a fixed prompt.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from greenprune.tasks.base import Example, Scores, Splits, TaskDataError, limited
from greenprune.tasks.bundled import cached, split_sizes
from greenprune.tasks.corpus import CodeFunction, stdlib_functions
from greenprune.tasks.formats import code_to_text_rows, first_sentence, hub_folder, load_code_to_text, looks_like_hub_id
from greenprune.tasks.generation import generate_texts
from greenprune.tasks.metrics import exact_match, sacrebleu, sentence_bleu4_smoothed, smoothed_bleu4
from greenprune.tasks.train import CausalLMTask

PROMPT_SUFFIX = "\n# Summary of the function above, in one line:\n#"


def without_docstring(fn: CodeFunction) -> str:
    body = fn.body if fn.body.strip() else "pass"
    return f"{fn.signature}\n{textwrap.indent(body, '    ')}"


def build_summarize_split(functions: list[CodeFunction], n: int, split: str) -> list[Example]:
    if n > len(functions):
        raise TaskDataError(f"summarize: the stdlib {split} split has only {len(functions)} usable functions, "
                            f"asked for {n} examples; use a smaller size")
    out = []
    for fn in functions:
        if len(out) >= n:
            break
        if not fn.docstring or not fn.body.strip():
            continue
        target = first_sentence(fn.docstring)
        if not 3 <= len(target.split()) <= 30:
            continue
        out.append(Example(text=without_docstring(fn), target=target, id=f"{fn.file}::{fn.qualname}",
                           meta={"file": fn.file, "split": split}))
    if len(out) < n:
        raise TaskDataError(f"summarize: the stdlib {split} split yields only {len(out)} examples, asked for {n}")
    return out


class SummarizeTask(CausalLMTask):
    name = "summarize"
    metrics = ("bleu4_smoothed", "sacrebleu", "exact_match")
    description = "function → one-line description (CodeSearchNet; embedded: stdlib docstrings)"

    def prompt_and_target(self, example: Example) -> tuple[str, str]:
        return example.text + PROMPT_SUFFIX, " " + (example.target or "")

    def embedded(self, size: int = 400, seed: int = 0, *, refresh: bool = False) -> Splits:
        def build() -> Splits:
            corpus = stdlib_functions(seed, min_lines=3, max_lines=40, require_docstring=True)
            parts = [build_summarize_split(corpus[s], n, s) for s, n in zip(("train", "valid", "test"),
                                                                             split_sizes(size), strict=False)]
            return Splits(*parts, source=f"embedded:stdlib summarize size={size} seed={seed}")

        return cached(self.name, size, seed, build, refresh)

    def load(self, source: str | Path, **kwargs: Any) -> Splits:
        if looks_like_hub_id(str(source)):  # e.g. google/code_x_glue_ct_code_to_text (with name="python")
            return load_code_to_text(hub_folder(str(source), **kwargs))
        path = Path(source)
        if path.is_file():
            return Splits([], [], code_to_text_rows(path), source=str(path))
        if not path.exists():
            raise TaskDataError(f"{path}: no such folder (expected code-to-text train/valid/test.jsonl)")
        return load_code_to_text(path)

    def evaluate(self, model: nn.Module, tokenizer: Any, examples: Sequence[Example], batch_size: int = 8,
                 max_length: int = 256, limit: int | None = None, max_new_tokens: int = 32, **kwargs: Any
                 ) -> dict[str, float]:
        examples = limited(examples, limit, batch_size=batch_size, max_length=max_length,
                           max_new_tokens=max_new_tokens)
        if not examples:
            raise TaskDataError("summarize: no examples to evaluate")
        # keep the function's head when truncating: the prompt suffix must survive
        prompts = []
        for e in examples:
            ids = tokenizer(e.text, add_special_tokens=False)["input_ids"][: max(8, max_length - 24)]
            prompts.append(tokenizer.decode(ids) + PROMPT_SUFFIX)
        hyps = [h.strip() for h in generate_texts(model, tokenizer, prompts, max_new_tokens=max_new_tokens,
                                                  stops=("\n",), batch_size=batch_size, desc="summarize")]
        refs = [e.target or "" for e in examples]
        metrics = {"bleu4_smoothed": smoothed_bleu4(refs, hyps), "sacrebleu": sacrebleu(refs, hyps),
                   "exact_match": exact_match(refs, hyps), "examples": float(len(examples))}
        # per-example sentence BLEU (×100, their mean is bleu4_smoothed): what bootstrap intervals resample
        per_example = [{"id": e.id, "bleu4_smoothed": 100.0 * sentence_bleu4_smoothed(r, h), "hypothesis": h}
                       for e, r, h in zip(examples, refs, hyps, strict=True)]
        return Scores(metrics, {"per_example": per_example})
