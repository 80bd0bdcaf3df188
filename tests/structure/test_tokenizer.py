"""Tokenizer surgery of vocabulary pruning: BPE replay, why intermediates matter, the chat frame."""

from __future__ import annotations

from greenprune.models import load_model
from greenprune.structure.tokenizer import (
    VocabPruningConfig,
    bpe_trace,
    chat_frame_texts,
    needed_token_ids,
    prune_tokenizer,
)


def test_bpe_trace_records_intermediate_merges() -> None:
    ranks = {("a", "b"): 0, ("ab", "c"): 1, ("c", "d"): 2}
    final, seen = bpe_trace("abcd", ranks)
    assert final == ["abc", "d"]
    assert seen == {"a", "b", "c", "d", "ab", "abc"}


def test_final_tokens_alone_break_tokenisation(code_corpus: list[str]) -> None:
    """Why intermediates matter: keeping only the final tokens (Flab-Pruner's scripts) changes tokenisation."""
    lm = load_model("tiny-llama")
    tok = lm.tokenizer
    full_ids, _ = needed_token_ids(tok, code_corpus)
    final_only = {i for text in code_corpus for i in tok.encode(text, add_special_tokens=False)}
    final_only |= {i for i in full_ids if len(tok.convert_ids_to_tokens(i)) == 1 or i in tok.added_tokens_decoder}
    assert len(final_only) < len(full_ids)
    naive, _ = prune_tokenizer(tok, sorted(final_only))
    assert any(naive.tokenize(t) != tok.tokenize(t) for t in code_corpus)


def test_chat_frame_of_an_instruction_model_survives(smollm2, code_corpus: list[str]) -> None:
    """An instruct model's prompt frame (roles, system prompt, ``` fences) tokenises as before; a code corpus alone
    would lose it, which is what cost SmolLM2 its HumanEval pass@1 after vocabulary pruning."""
    from greenprune.tasks.base import Example
    from greenprune.tasks.generate import chat_prompt

    tok = smollm2.tokenizer
    corpus = code_corpus[:6]
    example = Example(id="x", text=corpus[0][:600], target="")
    prompt_and_reply = chat_prompt(tok, example) + corpus[1][:300] + "\n```\n"
    with_frame, stats = needed_token_ids(tok, corpus)
    assert stats["chat_frame_texts"] == 2 and stats["texts"] == len(corpus)
    pruned, _ = prune_tokenizer(tok, with_frame)
    assert pruned.tokenize(prompt_and_reply) == tok.tokenize(prompt_and_reply)
    without, _ = needed_token_ids(tok, corpus, VocabPruningConfig(keep_chat_frame=False))
    naive, _ = prune_tokenizer(tok, without)
    assert naive.tokenize(prompt_and_reply) != tok.tokenize(prompt_and_reply)
    assert "```" in tok.convert_ids_to_tokens(with_frame) and "```" not in tok.convert_ids_to_tokens(without)


def test_tokenizer_without_chat_template_has_no_frame() -> None:
    tok = load_model("tiny-bert").tokenizer
    assert not getattr(tok, "chat_template", None)
    assert chat_frame_texts(tok) == []
