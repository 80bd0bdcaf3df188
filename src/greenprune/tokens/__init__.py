"""ALPINE: adaptive, language-agnostic token pruning inside Transformer encoders of code.

`attach(model, AlpineConfig(...))` makes chosen encoder layers drop (or merge) tokens between attention and FFN,
so every later layer runs on a shorter sequence; `detach(model)` restores the original model exactly.
"""

from greenprune.tokens.attach import AlpineHandle, attach, detach, handle_of
from greenprune.tokens.config import AlpineConfig, AlpineError
from greenprune.tokens.repack import TokenState, additive_mask, repack
from greenprune.tokens.rules import adaptive_keep, keep_mask, static_keep
from greenprune.tokens.scoring import token_importance
from greenprune.tokens.trace import LengthTrace, plot_trace

__all__ = [
    "AlpineConfig", "AlpineError", "AlpineHandle", "LengthTrace", "TokenState", "adaptive_keep", "additive_mask",
    "attach", "detach", "handle_of", "keep_mask", "plot_trace", "repack", "static_keep", "token_importance",
]
