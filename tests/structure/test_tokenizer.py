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


def _kept_tokens(tok, ids: list[int]) -> set[str]:
    return set(tok.convert_ids_to_tokens(ids))


def test_keep_whitespace_keeps_every_whitespace_only_token(smollm2, code_corpus: list[str]) -> None:
    """A corpus without blank lines that hold indentation loses those tokens; `keep_whitespace` keeps all of them
    (checked against the tokenizer's own decoding, not the byte table the code uses), and a reply with such a
    line tokenises as before."""
    tok = smollm2.tokenizer
    reply = "def f(x):\n    y = x + 1   \n        \n    return y\n"  # trailing spaces, an indented blank line
    corpus = ["\n".join(line.rstrip() for line in text.splitlines()) for text in [*code_corpus[:4], reply]]
    blank = " \t\n\r\x0b\x0c"
    decoded_blank = {t for t in tok.get_vocab() if t and not tok.convert_tokens_to_string([t]).strip(blank)}
    plain, plain_stats = needed_token_ids(tok, corpus)
    kept, stats = needed_token_ids(tok, corpus, VocabPruningConfig(keep_whitespace=True))
    assert decoded_blank <= _kept_tokens(tok, kept)
    assert not decoded_blank <= _kept_tokens(tok, plain)
    assert set(plain) < set(kept)
    assert stats["whitespace"] == len(set(kept) - set(plain)) and plain_stats["whitespace"] == 0
    original = tok.tokenize(reply)
    missing = [p for p in original if p not in _kept_tokens(tok, plain)]
    assert missing and all(p in decoded_blank for p in missing)  # only whitespace pieces fall outside the corpus
    with_ws, _ = prune_tokenizer(tok, kept)
    without, _ = prune_tokenizer(tok, plain)
    assert with_ws.tokenize(reply) == original
    assert without.tokenize(reply) != original


def test_keep_frequent_adds_the_first_merges_and_keeps_corpus_exact(smollm2, code_corpus: list[str],
                                                                    held_out_code: list[str]) -> None:
    """The first N merges' products join the vocabulary (nested in N); corpus text still tokenises exactly, and
    keeping every merge reproduces the original tokenisation of held-out text too."""
    from greenprune.structure.tokenizer import tokenizer_json

    tok = smollm2.tokenizer
    corpus = code_corpus[:3]
    merges = tokenizer_json(tok)["model"]["merges"]
    kept_by_n = {}
    for n in (0, 2000, 8000, len(merges)):
        kept, _ = needed_token_ids(tok, corpus, VocabPruningConfig(keep_frequent=n))
        kept_by_n[n] = set(kept)
        pruned, _ = prune_tokenizer(tok, kept)
        assert all(pruned.tokenize(t) == tok.tokenize(t) for t in corpus)
    assert kept_by_n[0] < kept_by_n[2000] < kept_by_n[8000] <= kept_by_n[len(merges)]
    first = merges[:2000]
    products = {"".join(m.split(" ", 1)) if isinstance(m, str) else "".join(m) for m in first}
    assert products <= _kept_tokens(tok, sorted(kept_by_n[2000]))
    everything, _ = prune_tokenizer(tok, sorted(kept_by_n[len(merges)]))
    held = [t[:3000] for t in held_out_code]
    assert all(everything.tokenize(t) == tok.tokenize(t) for t in held)
    small, _ = prune_tokenizer(tok, sorted(kept_by_n[0]))
    more, _ = prune_tokenizer(tok, sorted(kept_by_n[8000]))
    assert sum(len(more.tokenize(t)) for t in held) < sum(len(small.tokenize(t)) for t in held)


def test_keep_frequent_refuses_wordpiece_and_negative_counts() -> None:
    import pytest

    from greenprune.structure.tokenizer import VocabPruningError

    bert = load_model("tiny-bert").tokenizer
    with pytest.raises(VocabPruningError, match="keep_frequent=10 needs a BPE tokenizer"):
        needed_token_ids(bert, ["def f(): pass"], VocabPruningConfig(keep_frequent=10))
    with pytest.raises(VocabPruningError, match="keep_frequent=-1"):
        VocabPruningConfig(keep_frequent=-1)
