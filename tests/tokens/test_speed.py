"""Realised speed-up against counted FLOPs reduction on the real embedded MiniLM (slow: timing, real model)."""

from __future__ import annotations

import copy
import statistics
import sysconfig
import time
from pathlib import Path

import pytest
import torch

from greenprune.measure import count_flops
from greenprune.tokens import AlpineConfig, attach


def _stdlib_batches(tokenizer, n: int = 32, batch_size: int = 16) -> list[dict[str, torch.Tensor]]:
    files = sorted(Path(sysconfig.get_paths()["stdlib"]).glob("*.py"))[:n]
    texts = ["\n".join(f.read_text(errors="ignore").splitlines()[20:50]) for f in files]
    return [tokenizer(texts[i:i + batch_size], truncation=True, max_length=256, padding=True, return_tensors="pt")
            for i in range(0, len(texts), batch_size)]


@pytest.mark.slow
@pytest.mark.parametrize("layers", ["even", "all"])
def test_speedup_is_at_least_080_of_flops_reduction(minilm, layers):
    """Process CPU time on one thread, interleaved rounds: less sensitive to other jobs than wall-clock."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        base = minilm.model
        cand = copy.deepcopy(base)
        attach(cand, AlpineConfig(layers=layers, alpha=1.0), tokenizer=minilm.tokenizer)
        batches = _stdlib_batches(minilm.tokenizer)
        flops_ratio = sum(count_flops(cand, b) for b in batches) / sum(count_flops(base, b) for b in batches)
        ratios = []
        with torch.no_grad():
            for r in range(6):
                spent = {}
                for name, model in (("b", base), ("c", cand)) if r % 2 == 0 else (("c", cand), ("b", base)):
                    start = time.process_time()
                    for b in batches:
                        model(**b)
                    spent[name] = time.process_time() - start
                ratios.append(spent["c"] / spent["b"])
    finally:
        torch.set_num_threads(threads)
    time_ratio = statistics.median(ratios)
    assert flops_ratio < 0.9
    # speed-up (1 / time_ratio) ≥ 0.8 × FLOPs reduction (1 / flops_ratio)
    assert 1 / time_ratio >= 0.8 / flops_ratio, f"time ×{time_ratio:.3f} vs FLOPs ×{flops_ratio:.3f}"
