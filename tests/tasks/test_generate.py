"""pass@k on HumanEval: canonical solutions all pass, empty bodies all fail; every run goes through the sandbox."""

from __future__ import annotations

from pathlib import Path

import pytest

from greenprune.tasks import get_task
from greenprune.tasks.generate import program_for
from greenprune.tasks.sandbox import SandboxConfig, isolation_layers

FIX = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def humaneval():
    return get_task("generate").embedded().test


def test_canonical_solutions_pass_at_1_is_one(humaneval):
    task = get_task("generate")
    metrics = task.score_completions(humaneval, [[e.target] for e in humaneval], workers=2)
    assert metrics["problems"] == 164
    assert metrics["pass@1"] == 1.0


def test_empty_bodies_pass_at_1_is_zero(humaneval):
    task = get_task("generate")
    sample = humaneval[::4]  # every 4th problem keeps the default run short; all 164 pass the canonical test above
    metrics = task.score_completions(sample, [["    pass\n"] for _ in sample], workers=2)
    assert metrics["pass@1"] == 0.0


def test_pass_at_k_mixes_samples():
    task = get_task("generate")
    problems = task.load(FIX / "humaneval.jsonl").test
    good, bad = [e.target for e in problems], ["    return None\n"] * len(problems)
    # problem 0: 1 of 3 samples right; problem 1: 3 of 3 right
    completions = [[good[0], bad[0], bad[0]], [good[1], good[1], good[1]]]
    m = task.score_completions(problems, completions, ks=(1, 2))
    assert m["pass@1"] == pytest.approx((1 / 3 + 1) / 2)
    assert m["pass@2"] == pytest.approx(((1 - 1 / 3) + 1) / 2)
    # per-problem outcomes (for paired tests) and the sandbox layers travel with the scores
    assert [(p["id"], p["samples"], p["passed"]) for p in m.details["per_problem"]] == [
        (problems[0].id, 3, 1), (problems[1].id, 3, 3)]
    assert m.details["sandbox"]["layers"] == isolation_layers(SandboxConfig())


def test_generation_is_refused_before_it_starts_without_isolation(monkeypatch):
    from greenprune.tasks import sandbox as sb
    from greenprune.tasks.sandbox import SandboxUnavailableError

    monkeypatch.setattr(sb, "namespace_problem", lambda: "no namespaces (test)")
    calls = []
    monkeypatch.setattr("greenprune.tasks.generate.generate_texts", lambda *a, **k: calls.append(1) or [])
    task = get_task("generate")
    problems = task.load(FIX / "humaneval.jsonl").test
    with pytest.raises(SandboxUnavailableError, match="unsafe-limits-only"):
        task.evaluate(object(), object(), problems)
    assert calls == []


def test_mbpp_programs_run_the_tests():
    task = get_task("generate")
    problems = task.load(FIX / "mbpp.jsonl").test
    assert task.score_completions(problems, [[e.target] for e in problems])["pass@1"] == 1.0
    wrong = [["def rev(s):\n    return s\n"], ["def biggest(xs):\n    return min(xs)\n"]]
    assert task.score_completions(problems, wrong)["pass@1"] == 0.0
    assert "assert rev('ab') == 'ba'" in program_for(problems[0], problems[0].target or "")


def test_generation_with_tiny_llama_is_scored(monkeypatch):
    from greenprune.models import load_model
    from greenprune.tasks import generate as generate_module
    from greenprune.tasks.generate import CHAT_STOPS, chat_prompt
    from greenprune.tasks.generation import generate_texts

    task = get_task("generate")
    problems = task.load(FIX / "humaneval.jsonl").test
    model, tokenizer = load_model("tiny-llama", task="generate")
    ran: list[tuple[list[str], list]] = []
    real_run_many = generate_module.run_many

    def spy(programs, *args, **kwargs):
        results = real_run_many(programs, *args, **kwargs)
        ran.append((list(programs), list(results)))
        return results

    monkeypatch.setattr(generate_module, "run_many", spy)
    m = task.evaluate(model, tokenizer, problems, max_new_tokens=4, batch_size=2)
    assert m["pass@1"] == 0.0 and m["problems"] == 2  # a random model writes no correct code
    # something was generated and run: the programs hold transformers' own greedy continuation of each chat
    # prompt, and each one ran in the sandbox to a failed test
    reference = generate_texts(model, tokenizer, [chat_prompt(tokenizer, e) for e in problems], max_new_tokens=4,
                               stops=CHAT_STOPS, drop_finished=False)
    assert all(text for text in reference)  # (a random tiny model writes newlines; still its own tokens)
    ((programs, results),) = ran
    assert programs == [program_for(e, "\n" + text) for e, text in zip(problems, reference, strict=True)]
    assert [r.status for r in results] == ["failed", "failed"]
    assert all(r.returncode not in (None, 0) and r.layers and "AssertionError" in r.stderr for r in results)


def test_chat_style_runs_the_whole_function_after_the_prompt():
    from greenprune.models import load_model
    from greenprune.tasks.generate import chat_prompt, resolve_style

    task = get_task("generate")
    problems = task.load(FIX / "humaneval.jsonl").test
    # a chat reply is a whole function; it is run after the prompt, which it redefines
    whole = [["\n" + e.text + e.target] for e in problems]
    assert task.score_completions(problems, whole)["pass@1"] == 1.0
    model, tokenizer = load_model("tiny-llama", task="generate")
    assert resolve_style(tokenizer, "auto") == "chat"  # SmolLM2's tokenizer ships a chat template
    text = chat_prompt(tokenizer, problems[0])
    assert problems[0].text in text and text.endswith("```python\n")
    m = task.evaluate(model, tokenizer, problems, max_new_tokens=4, batch_size=2, prompt_style="chat")
    assert m["chat_prompt"] == 1.0 and m["pass@1"] == 0.0
