"""Vocabulary pruning keeps tokenisation exact on the corpus and lossless on held-out code."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from greenprune.models import load_model
from greenprune.structure.tokenizer import VocabPruningConfig, VocabPruningError, needed_token_ids
from greenprune.structure.vocab import prune_vocab


def test_bpe_corpus_tokens_identical_and_logits_restricted(code_corpus: list[str], held_out_code: list[str]) -> None:
    lm = load_model("tiny-llama")
    original_tok = lm.tokenizer
    sample = code_corpus[0][:1500]
    old_ids = original_tok(sample, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        old_logits = lm.model(input_ids=old_ids).logits

    result = prune_vocab(lm.model, original_tok, code_corpus)
    tok = result.tokenizer
    assert result.vocab_after < result.vocab_before / 2
    assert result.merges_after is not None and result.merges_after < result.merges_before
    for text in code_corpus:
        assert tok.tokenize(text) == original_tok.tokenize(text)
    for text in held_out_code:
        ids = tok.encode(text, add_special_tokens=False)
        assert tok.decode(ids) == text
        assert all(0 <= i < len(tok) for i in ids)
    new_ids = tok(sample, return_tensors="pt")["input_ids"]
    kept = torch.tensor(result.kept_ids)
    assert torch.equal(kept[new_ids], old_ids)
    with torch.no_grad():
        new_logits = result.model(input_ids=new_ids).logits
    assert new_logits.shape[-1] == result.vocab_after
    torch.testing.assert_close(new_logits, old_logits[..., kept], rtol=1e-5, atol=1e-5)
    # tied embeddings stay tied and the special ids follow the remap
    assert result.model.lm_head.weight is result.model.get_input_embeddings().weight
    assert tok.convert_ids_to_tokens(result.model.config.eos_token_id) == original_tok.eos_token


def test_wordpiece_identical_and_unk_only_where_original(code_corpus: list[str], held_out_code: list[str]) -> None:
    lm = load_model("tiny-bert")
    result = prune_vocab(lm.model, lm.tokenizer, code_corpus[:6])
    assert result.algorithm == "WordPiece"
    assert result.model.get_input_embeddings().num_embeddings == result.vocab_after
    for text in code_corpus[:6]:
        assert result.tokenizer.tokenize(text) == lm.tokenizer.tokenize(text)
    unk = lm.tokenizer.unk_token
    for text in [*held_out_code, "naïve café → ∑ 変数"]:
        old, new = lm.tokenizer.tokenize(text), result.tokenizer.tokenize(text)
        assert new.count(unk) == old.count(unk)


def test_saved_folder_reloads_without_greenprune(tmp_path, code_corpus: list[str], held_out_code: list[str]) -> None:
    lm = load_model("tiny-llama")
    result = prune_vocab(lm.model, lm.tokenizer, code_corpus[:4])
    result.model.save_pretrained(tmp_path)
    result.tokenizer.save_pretrained(tmp_path)
    text = held_out_code[0][:800]
    ids = result.tokenizer(text, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        expected = result.model(input_ids=ids).logits[0, -1, :5].tolist()
    script = (
        "import json, sys, torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"d = {str(tmp_path)!r}\n"
        "tok = AutoTokenizer.from_pretrained(d); m = AutoModelForCausalLM.from_pretrained(d).eval()\n"
        "text = sys.stdin.read()\n"
        "ids = tok(text, return_tensors='pt')['input_ids']\n"
        "with torch.no_grad(): out = m(input_ids=ids).logits[0, -1, :5].tolist()\n"
        "assert 'greenprune' not in sys.modules\n"
        "print(json.dumps({'ids': ids[0].tolist(), 'logits': out, 'vocab': m.config.vocab_size, 'len': len(tok),"
        " 'decoded': tok.decode(ids[0])}))\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], input=text, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-2000:]
    got = json.loads(proc.stdout.strip().splitlines()[-1])
    assert got["ids"] == ids[0].tolist()
    assert got["vocab"] == got["len"] == result.vocab_after
    assert got["decoded"] == text
    assert got["logits"] == pytest.approx(expected, abs=1e-5)


def test_bad_inputs_name_the_problem() -> None:
    lm = load_model("tiny-llama")
    with pytest.raises(VocabPruningError, match="empty"):
        prune_vocab(lm.model, lm.tokenizer, [])
    with pytest.raises(VocabPruningError, match="extra_tokens"):
        needed_token_ids(lm.tokenizer, ["x = 1"], VocabPruningConfig(extra_tokens=("no-such-token-xyz",)))
