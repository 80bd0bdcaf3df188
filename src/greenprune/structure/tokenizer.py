"""Tokenizer surgery for vocabulary pruning: which tokens a corpus needs, and a smaller tokenizer over them.

`structure.vocab` shrinks the model's embeddings to the ids chosen here. Keeping only the tokens that
appear in the *final* tokenisation (as Flab-Pruner's scripts do) silently breaks byte-level BPE: the merges that
build a kept token pass through intermediate tokens, and once those are gone the tokenizer can no longer reach
the kept token, so text tokenises differently. Here we replay the BPE merges on every corpus word, keep every
token the merges pass through, every special/added token and the byte alphabet, and keep a merge only when its
two inputs and its output all survive. Because the kept merges are a subset of the original ones that contains
every merge applied on the corpus, the lowest-ranked applicable merge at each step is unchanged, so every corpus
text tokenises to the same token strings. Held-out text still tokenises (the byte alphabet is complete), never
to an unknown token, and decodes to the exact text.

WordPiece (BERT family) is greedy longest-match: keeping every corpus piece and the single-character alphabet
(with and without the `##` continuation prefix) keeps corpus tokenisation identical and means the pruned
tokenizer emits `[UNK]` exactly where the original does.

An instruction-tuned model also needs its prompt frame: the chat template's role markers and system prompt and the
``` fences of fenced replies, which code corpora rarely contain. By default the template rendered on a sample code
conversation joins the corpus (`keep_chat_frame`).
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenprune._utils import progress
from greenprune.errors import GreenpruneError


class VocabPruningError(GreenpruneError, ValueError):
    """The tokenizer or corpus cannot be vocabulary-pruned as asked; the message says which and why."""


@dataclass(frozen=True)
class VocabPruningConfig:
    """What to keep besides the tokens the corpus needs.

    `keep_alphabet` keeps the byte alphabet (byte-level BPE) or the single characters (WordPiece) so unseen text
    never falls back to unknown tokens; `extra_tokens` are token strings to keep regardless of the corpus.
    """

    keep_alphabet: bool = True
    extra_tokens: tuple[str, ...] = ()
    # An instruction model is prompted through its chat template and replies in fenced code blocks; code corpora
    # rarely contain "assistant" or "```", and without them the prompt frame tokenises into pieces the model never
    # saw and the closing fence cannot be emitted as trained (benchmarks/results/structure-smollm2.md measures the
    # effect).
    keep_chat_frame: bool = True
    # The corpus decides everything else, and text outside it (a benchmark prompt's "palindrome", a blank line that
    # keeps its indentation) then tokenises into pieces the model rarely saw in that place. Two cheap insurances:
    # every whitespace-only token (indentation and blank-line runs: a few hundred rows on Qwen2), and the products
    # of the tokenizer's first `keep_frequent` BPE merges -- BPE learns merges most-frequent first, so this is the
    # tokenizer's own frequency order. Both are off by default (the corpus-only vocabulary of Flab-Pruner);
    # benchmarks/results/vocab-keep.md measures what they buy.
    keep_whitespace: bool = False
    keep_frequent: int = 0
    verify: bool = True  # re-tokenise the corpus with the pruned tokenizer and fail loudly on any difference

    def __post_init__(self) -> None:
        if self.keep_frequent < 0:
            raise VocabPruningError(f"keep_frequent={self.keep_frequent}: expected a merge count >= 0")


# ---------------------------------------------------------------------------------------------------------------
# which tokens the corpus needs


def tokenizer_json(tokenizer: Any) -> dict[str, Any]:
    """The fast tokenizer's `tokenizer.json` as a dict (vocabulary pruning edits it)."""
    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise VocabPruningError(
            f"{type(tokenizer).__name__} has no `tokenizers` backend; vocabulary pruning needs a fast tokenizer "
            "(tokenizer.json with a BPE or WordPiece model)"
        )
    return json.loads(backend.to_str())


def _words(tokenizer: Any, texts: Iterable[str]) -> tuple[dict[str, int], int]:
    """Unique pre-tokenised words of the corpus (normaliser and pre-tokeniser of the tokenizer applied)."""
    backend = tokenizer.backend_tokenizer
    counts: dict[str, int] = {}
    n_texts = 0
    for text in progress(texts, desc="pre-tokenising corpus"):
        if not isinstance(text, str):
            raise VocabPruningError(f"corpus item {n_texts} is {type(text).__name__}, expected str")
        n_texts += 1
        normalized = backend.normalizer.normalize_str(text) if backend.normalizer is not None else text
        pieces = (
            backend.pre_tokenizer.pre_tokenize_str(normalized) if backend.pre_tokenizer is not None
            else [(normalized, (0, len(normalized)))]
        )
        for word, _ in pieces:
            counts[word] = counts.get(word, 0) + 1
    if n_texts == 0:
        raise VocabPruningError("the vocabulary corpus is empty: pass at least one text")
    return counts, n_texts


def _merge_pair(merge: Any) -> tuple[str, str]:
    """A tokenizer.json merge as its two inputs (older files write "a b", newer ones ["a", "b"])."""
    a, b = merge.split(" ", 1) if isinstance(merge, str) else merge
    return a, b


def _merge_ranks(merges: Sequence[Any]) -> dict[tuple[str, str], int]:
    ranks: dict[tuple[str, str], int] = {}
    for rank, merge in enumerate(merges):
        a, b = _merge_pair(merge)
        ranks.setdefault((a, b), rank)
    return ranks


def bpe_trace(word: str, ranks: dict[tuple[str, str], int]) -> tuple[list[str], set[str]]:
    """Replay BPE on one word: the final symbols and every symbol that existed along the way.

    Each step merges the leftmost occurrence of the lowest-ranked adjacent pair, as `tokenizers` does.
    """
    symbols = list(word)
    seen = set(symbols)
    while len(symbols) > 1:
        best_rank, best_pos = None, -1
        for i in range(len(symbols) - 1):
            rank = ranks.get((symbols[i], symbols[i + 1]))
            if rank is not None and (best_rank is None or rank < best_rank):
                best_rank, best_pos = rank, i
        if best_rank is None:
            break
        merged = symbols[best_pos] + symbols[best_pos + 1]
        symbols[best_pos : best_pos + 2] = [merged]
        seen.add(merged)
    return symbols, seen


def _needed_bpe(tokenizer: Any, spec: dict[str, Any], words: Iterable[str]) -> set[str]:
    model = spec["model"]
    for key in ("continuing_subword_prefix", "end_of_word_suffix"):
        if model.get(key):
            raise VocabPruningError(
                f"BPE with {key}={model[key]!r} is not supported by vocabulary pruning (byte-level BPE without "
                "affixes is: GPT-2, Llama-3, Qwen2, SmolLM, StarCoder)"
            )
    if model.get("dropout"):
        raise VocabPruningError("BPE dropout makes tokenisation random; disable it before vocabulary pruning")
    ranks = _merge_ranks(model["merges"])
    backend_model = tokenizer.backend_tokenizer.model
    vocab = model["vocab"]
    needed: set[str] = set()
    for word in progress(list(words), desc="replaying BPE merges"):
        final, seen = bpe_trace(word, ranks)
        # `ignore_merges` tokenizers take a whole word straight from the vocab when it is there
        if model.get("ignore_merges") and word in vocab:
            final, seen = [word], {word}
        expected = [t.value for t in backend_model.tokenize(word)]
        if final != expected:
            raise VocabPruningError(
                f"BPE replay disagrees with the tokenizer on word {word!r}: {final} vs {expected}; this tokenizer "
                "uses a BPE variant vocabulary pruning does not model"
            )
        needed |= {s for s in seen if s in vocab}
    return needed


def _needed_wordpiece(tokenizer: Any, words: Iterable[str]) -> set[str]:
    backend_model = tokenizer.backend_tokenizer.model
    needed: set[str] = set()
    for word in progress(list(words), desc="wordpiece corpus"):
        needed.update(t.value for t in backend_model.tokenize(word))
    return needed


def _alphabet(algorithm: str, spec: dict[str, Any]) -> set[str]:
    vocab = spec["model"]["vocab"]
    if algorithm == "BPE":
        from tokenizers.pre_tokenizers import ByteLevel

        return {c for c in ByteLevel.alphabet() if c in vocab} | {t for t in vocab if len(t) == 1}
    prefix = spec["model"].get("continuing_subword_prefix", "##")
    return {t for t in vocab if len(t) == 1 or (t.startswith(prefix) and len(t) == len(prefix) + 1)}


def _whitespace_tokens(algorithm: str, spec: dict[str, Any]) -> set[str]:
    """Tokens that decode to whitespace only. Byte-level BPE spells each byte as one printable character, so a
    token is whitespace when each of its characters decodes to a whitespace byte. WordPiece splits on whitespace
    before it tokenises, so it has none."""
    if algorithm != "BPE":
        return set()
    from tokenizers.decoders import ByteLevel as ByteLevelDecoder
    from tokenizers.pre_tokenizers import ByteLevel

    decoder = ByteLevelDecoder()
    spaces = {c for c in ByteLevel.alphabet() if decoder.decode([c]) in {" ", "\t", "\n", "\r", "\x0b", "\x0c"}}
    return {t for t in spec["model"]["vocab"] if t and set(t) <= spaces}


def _frequent_bpe(spec: dict[str, Any], n_merges: int) -> set[str]:
    """The products of the first `n_merges` merges, with their inputs (kept merges need all three tokens)."""
    vocab = spec["model"]["vocab"]
    keep: set[str] = set()
    for merge in spec["model"]["merges"][:n_merges]:
        a, b = _merge_pair(merge)
        keep.update(t for t in (a, b, a + b) if t in vocab)
    return keep


CHAT_FRAME_CODE = "def add(a: int, b: int) -> int:\n    \"\"\"Return the sum of a and b.\"\"\"\n    return a + b\n"


def chat_frame_texts(tokenizer: Any) -> list[str]:
    """The tokenizer's chat template rendered on a sample code conversation ([] when it has no template).

    The sample asks for a function in a fenced block, as greenprune's generation task does, and answers with one,
    so role markers, the default system prompt, the task wording and the ``` fences tokenise as before pruning.
    """
    if not getattr(tokenizer, "chat_template", None):
        return []
    from greenprune.tasks.base import Example
    from greenprune.tasks.generate import chat_prompt

    reply = f"```python\n{CHAT_FRAME_CODE}```\n"
    example = Example(id="chat-frame", text=CHAT_FRAME_CODE, target="")
    try:
        prompt = chat_prompt(tokenizer, example)
        turn = tokenizer.apply_chat_template(
            [{"role": "user", "content": "Write a Python function."}, {"role": "assistant", "content": reply}],
            tokenize=False,
        )
    except Exception as err:  # a template that rejects this conversation shape (jinja raise_exception)
        raise VocabPruningError(
            f"cannot render the chat template of {type(tokenizer).__name__} on a sample conversation ({err}); "
            "pass keep_chat_frame=False and put your prompt frame in the corpus"
        ) from err
    return [prompt + reply, turn]


def needed_token_ids(
    tokenizer: Any, texts: Iterable[str], config: VocabPruningConfig | None = None
) -> tuple[list[int], dict[str, Any]]:
    """Old ids (ascending) the pruned vocabulary keeps, and counts of why they are kept."""
    config = config or VocabPruningConfig()
    spec = tokenizer_json(tokenizer)
    algorithm = spec["model"]["type"]
    if algorithm not in ("BPE", "WordPiece"):
        raise VocabPruningError(
            f"tokenizer model {algorithm!r} is not supported by vocabulary pruning (supported: BPE, WordPiece)"
        )
    if algorithm == "BPE" and (spec.get("pre_tokenizer") or {}).get("type") != "ByteLevel" and not _has_bytelevel(
        spec.get("pre_tokenizer")
    ):
        raise VocabPruningError("only byte-level BPE is supported (its pre-tokenizer must be ByteLevel)")
    word_counts, n_texts = _words(tokenizer, texts)
    frame = chat_frame_texts(tokenizer) if config.keep_chat_frame else []
    if frame:
        for word, count in _words(tokenizer, frame)[0].items():
            word_counts[word] = word_counts.get(word, 0) + count
    vocab: dict[str, int] = spec["model"]["vocab"]
    corpus = _needed_bpe(tokenizer, spec, word_counts) if algorithm == "BPE" else _needed_wordpiece(tokenizer,
                                                                                                      word_counts)
    specials = {t["content"] for t in spec.get("added_tokens", [])}
    for name in ("unk_token", "bos_token", "eos_token", "pad_token", "sep_token", "cls_token", "mask_token"):
        value = getattr(tokenizer, name, None)
        if isinstance(value, str):
            specials.add(value)
    if spec["model"].get("unk_token"):
        specials.add(spec["model"]["unk_token"])
    alphabet = _alphabet(algorithm, spec) if config.keep_alphabet else set()
    missing = [t for t in config.extra_tokens if t not in vocab]
    if missing:
        raise VocabPruningError(f"extra_tokens not in the vocabulary: {missing[:10]}")
    if config.keep_frequent and algorithm != "BPE":
        raise VocabPruningError(
            f"keep_frequent={config.keep_frequent} needs a BPE tokenizer (its merges are ranked by frequency); "
            f"this tokenizer is {algorithm}")
    whitespace = _whitespace_tokens(algorithm, spec) if config.keep_whitespace else set()
    frequent = _frequent_bpe(spec, config.keep_frequent) if config.keep_frequent else set()
    base = corpus | alphabet | {t for t in specials if t in vocab} | set(config.extra_tokens)
    keep = base | whitespace | frequent
    ids = sorted({vocab[t] for t in keep} | {t["id"] for t in spec.get("added_tokens", [])})
    stats = {
        "algorithm": algorithm,
        "texts": n_texts,
        "words": len(word_counts),
        "corpus_tokens": len(corpus),
        "alphabet": len(alphabet),
        "special": len(specials),
        "chat_frame_texts": len(frame),
        "whitespace": len(whitespace - base),  # kept only because of keep_whitespace / keep_frequent
        "frequent": len(frequent - base - whitespace),
        "total": len(ids),
    }
    return ids, stats


def _has_bytelevel(pre: dict[str, Any] | None) -> bool:
    if not pre:
        return False
    if pre.get("type") == "ByteLevel":
        return True
    return any(_has_bytelevel(p) for p in pre.get("pretokenizers", []))


# ---------------------------------------------------------------------------------------------------------------
# rebuilding the tokenizer


def _remap_template(node: Any, old_to_new: dict[int, int]) -> Any:
    """Post-processors store special-token ids; point them at the new ids."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "ids" and isinstance(value, list) and all(isinstance(v, int) for v in value):
                out[key] = [old_to_new[v] for v in value]
            elif key in ("sep", "cls") and isinstance(value, list) and len(value) == 2 and isinstance(value[1], int):
                out[key] = [value[0], old_to_new[value[1]]]
            else:
                out[key] = _remap_template(value, old_to_new)
        return out
    if isinstance(node, list):
        return [_remap_template(v, old_to_new) for v in node]
    return node


def pruned_tokenizer_json(spec: dict[str, Any], kept_ids: Sequence[int]) -> tuple[dict[str, Any], int | None]:
    """A tokenizer.json keeping `kept_ids` (renumbered densely in old order) and the merges among kept tokens."""
    old_to_new = {old: new for new, old in enumerate(kept_ids)}
    dropped = [t["content"] for t in spec.get("added_tokens", []) if t["id"] not in old_to_new]
    if dropped:
        raise VocabPruningError(f"kept ids must include every added/special token; missing: {dropped[:10]}")
    model = dict(spec["model"])
    id_to_token = {i: t for t, i in model["vocab"].items()}
    model["vocab"] = {id_to_token[old]: new for new, old in enumerate(kept_ids) if old in id_to_token}
    merges_after = None
    if model["type"] == "BPE":
        kept = model["vocab"]
        merges = []
        for merge in model["merges"]:
            a, b = _merge_pair(merge)
            if a in kept and b in kept and a + b in kept:
                merges.append(merge)
        model["merges"] = merges
        merges_after = len(merges)
    out = dict(spec)
    out["model"] = model
    added = []
    for tok in spec.get("added_tokens", []):
        tok = dict(tok)
        tok["id"] = old_to_new[tok["id"]]
        added.append(tok)
    out["added_tokens"] = added
    if spec.get("post_processor"):
        out["post_processor"] = _remap_template(spec["post_processor"], old_to_new)
    return out, merges_after


def prune_tokenizer(tokenizer: Any, kept_ids: Sequence[int]) -> tuple[Any, int | None]:
    """A new tokenizer (same class and settings) over the kept ids; reloadable with plain `AutoTokenizer`."""
    from transformers import AutoTokenizer

    spec = tokenizer_json(tokenizer)
    new_spec, merges_after = pruned_tokenizer_json(spec, kept_ids)
    with tempfile.TemporaryDirectory(prefix="greenprune-vocab-") as tmp:
        folder = Path(tmp)
        tokenizer.save_pretrained(folder)
        (folder / "tokenizer.json").write_text(json.dumps(new_spec, ensure_ascii=False), encoding="utf-8")
        vocab_txt = folder / "vocab.txt"
        if vocab_txt.is_file():  # WordPiece classes may rebuild from vocab.txt: keep it consistent
            inv = sorted(new_spec["model"]["vocab"].items(), key=lambda kv: kv[1])
            vocab_txt.write_text("".join(t + "\n" for t, _ in inv), encoding="utf-8")
        for name in ("vocab.json", "merges.txt"):  # slow-tokenizer files would describe the old vocabulary
            path = folder / name
            if path.is_file():
                path.unlink()
        new = AutoTokenizer.from_pretrained(folder)
        # detach from the temporary folder
        new.name_or_path = getattr(tokenizer, "name_or_path", "")
    if len(new) != len(kept_ids):
        raise VocabPruningError(f"rebuilt tokenizer has {len(new)} tokens, expected {len(kept_ids)}")
    return new, merges_after


def verify_same_tokens(original: Any, pruned: Any, texts: Iterable[str]) -> None:
    """Fail with the first differing text when the pruned tokenizer does not reproduce the original's tokens."""
    for i, text in enumerate(progress(list(texts), desc="verifying tokenisation")):
        a = original.convert_ids_to_tokens(original.encode(text, add_special_tokens=False))
        b = pruned.convert_ids_to_tokens(pruned.encode(text, add_special_tokens=False))
        if a != b:
            first = next((j for j, (x, y) in enumerate(zip(a, b, strict=False)) if x != y), min(len(a), len(b)))
            raise VocabPruningError(
                f"corpus text {i}: pruned tokenizer differs at token {first} "
                f"({a[first:first + 3]} vs {b[first:first + 3]})"
            )


__all__ = [
    "CHAT_FRAME_CODE",
    "VocabPruningConfig",
    "VocabPruningError",
    "bpe_trace",
    "chat_frame_texts",
    "needed_token_ids",
    "prune_tokenizer",
    "pruned_tokenizer_json",
    "tokenizer_json",
    "verify_same_tokens",
]
