"""Shared fixtures: the embedded models are loaded once per test session and reused by every area's tests."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GREENPRUNE_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def minilm():
    """all-MiniLM-L6-v2 with a (fresh) classification head. Treat as read-only; deep-copy before mutating."""
    from greenprune.models import load_model

    return load_model("minilm", task="classification")


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct as a causal LM. Treat as read-only; deep-copy before mutating."""
    from greenprune.models import load_model

    return load_model("smollm2-135m", task="causal-lm")


@pytest.fixture(scope="session")
def qwen():
    """Qwen2.5-Coder-0.5B-Instruct (tied, from the bundled GGUF) as a causal LM. Read-only: deep-copy to mutate."""
    from greenprune.models import load_model

    return load_model("qwen2.5-coder-0.5b", task="causal-lm")
