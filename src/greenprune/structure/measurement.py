"""Before/after measurement of a structurally pruned model: held-out code perplexity and an interleaved cost A/B.

Kept apart from the command so the library (and benchmarks) can produce the same model-card numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from torch import nn

from greenprune.measure import checkpoint_bytes, compare
from greenprune.structure.calibration import calibration_batches, stdlib_code
from greenprune.structure.evaluate import code_nll, code_perplexity
from greenprune.structure.pipeline import IdRemap


def measure_before_after(
    baseline: nn.Module, base_tok: Any, candidate: nn.Module, cand_tok: Any, kept_ids: Sequence[int] | None,
    corpus_texts: Sequence[str] | None, *, eval_texts: int = 40, energy: bool = True,
) -> dict[str, Any]:
    """Before/after in one process: held-out perplexity (per original token) and an interleaved cost A/B.

    Returns `{"table": {row: (before, after)}, "notes": [...]}`, what the model card of `greenprune structure`
    shows. With a pruned vocabulary (`kept_ids`), the cost A/B feeds both models the same original-tokenizer ids of
    `corpus_texts`, the pruned one through an id remap, so both process identical token strings.
    """
    texts = stdlib_code(limit=eval_texts, split="test")
    nll_b, tok_b = code_nll(baseline, base_tok, texts)
    ppl_c = code_perplexity(candidate, cand_tok, texts, reference_tokens=tok_b)
    # cost A/B on identical token strings: with a pruned vocabulary, on corpus text fed through an id remap
    cost_texts = corpus_texts if kept_ids is not None and corpus_texts else texts
    batches = calibration_batches(base_tok, cost_texts, seq_len=256, batch_size=4, max_batches=2)
    cand_model = IdRemap(candidate, kept_ids, len(base_tok)) if kept_ids is not None else candidate
    comp = compare(baseline, cand_model, batches, names=("original", "pruned"), rounds=3, energy=energy)
    b, c = comp.baseline.cost, comp.candidate.cost
    table: dict[str, tuple[float, float]] = {
        "parameters": (b.params_total, c.params_total),
        "checkpoint bytes": (checkpoint_bytes(baseline), checkpoint_bytes(candidate)),
        "FLOPs / sample": (b.flops_per_sample, c.flops_per_sample),
        "tokens / s": (b.throughput_tokens_s, c.throughput_tokens_s),
        "latency p50 (s)": (b.latency_p50_s, c.latency_p50_s),
        "held-out perplexity": (math.exp(nll_b / tok_b), ppl_c["perplexity"]),
    }
    if b.energy_kwh and c.energy_kwh:
        table["energy kWh"] = (b.energy_kwh, c.energy_kwh)
    where = ("original-tokenizer ids of corpus text, remapped to the pruned vocabulary" if kept_ids is not None
             else "held-out code")
    notes = [
        f"Perplexity: {len(texts)} held-out stdlib functions (test split, files never used for calibration, "
        f"vocabulary or recovery), NLL divided by the original tokenizer's {tok_b} tokens.",
        f"Cost: interleaved A/B, {comp.rounds} rounds, {len(batches)} batches of 4×256 tokens "
        f"({where}); "
        f"{comp.verdict}",
    ]
    return {"table": table, "notes": notes}


__all__ = ["measure_before_after"]
