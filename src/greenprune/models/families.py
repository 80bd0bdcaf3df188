"""Architecture knowledge in one table.

Every other module asks this table where an architecture keeps its layers, attention projections, FFN and
embeddings, so that supporting a new family means adding one entry here and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from greenprune.errors import GreenpruneError


class UnsupportedModelError(GreenpruneError, ValueError):
    """The model's architecture is not in the family table."""


@dataclass(frozen=True)
class Family:
    """Where one architecture family keeps its parts (module paths relative to the stated anchor)."""

    name: str
    kind: str  # "encoder" or "decoder"
    model_types: tuple[str, ...]
    backbone_attrs: tuple[str, ...]  # attribute of a task model holding the backbone (tried in order)
    layers_path: str  # relative to the backbone
    # relative to one layer
    query: str
    key: str
    value: str
    attn_out: str
    ffn_in: tuple[str, ...]  # projections into the FFN (up, and gate for gated FFNs)
    ffn_out: str
    attention: str  # the attention block of a layer
    word_embeddings: str  # relative to the backbone
    num_layers_attr: str = "num_hidden_layers"
    # encoders: method of a layer running FFN + residual/LayerNorm on the attention output (ALPINE prunes between them)
    ffn_block: str | None = None

    @property
    def attention_projections(self) -> tuple[str, ...]:
        return (self.query, self.key, self.value, self.attn_out)

    @property
    def self_attention(self) -> str:
        """The module (relative to a layer) that owns the q/k/v projections and picks the attention kernel."""
        return self.query.rsplit(".", 1)[0]

    @property
    def ffn_projections(self) -> tuple[str, ...]:
        return (*self.ffn_in, self.ffn_out)

    def backbone(self, model: nn.Module) -> nn.Module:
        """The bare transformer under a task head (BertModel, LlamaModel, ...)."""
        for attr in self.backbone_attrs:
            sub = getattr(model, attr, None)
            if isinstance(sub, nn.Module):
                return sub
        return model

    def layers(self, model: nn.Module) -> nn.ModuleList:
        return _get(self.backbone(model), self.layers_path)

    def embeddings(self, model: nn.Module) -> nn.Embedding:
        return _get(self.backbone(model), self.word_embeddings)

    def layer_linear_names(self) -> tuple[str, ...]:
        """Per-layer Linear modules that weight pruning targets by default."""
        return (*self.attention_projections, *self.ffn_projections)


def _get(root: nn.Module, path: str) -> nn.Module:
    obj: nn.Module = root
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


BERT = Family(
    name="bert",
    kind="encoder",
    model_types=("bert",),
    backbone_attrs=("bert",),
    layers_path="encoder.layer",
    query="attention.self.query",
    key="attention.self.key",
    value="attention.self.value",
    attn_out="attention.output.dense",
    ffn_in=("intermediate.dense",),
    ffn_out="output.dense",
    attention="attention",
    word_embeddings="embeddings.word_embeddings",
    ffn_block="feed_forward_chunk",
)

ROBERTA = Family(
    name="roberta",
    kind="encoder",
    model_types=("roberta", "xlm-roberta", "camembert"),
    backbone_attrs=("roberta",),
    layers_path="encoder.layer",
    query="attention.self.query",
    key="attention.self.key",
    value="attention.self.value",
    attn_out="attention.output.dense",
    ffn_in=("intermediate.dense",),
    ffn_out="output.dense",
    attention="attention",
    word_embeddings="embeddings.word_embeddings",
    ffn_block="feed_forward_chunk",
)

LLAMA = Family(
    name="llama",
    kind="decoder",
    model_types=("llama", "qwen2", "mistral", "qwen3"),
    backbone_attrs=("model",),
    layers_path="layers",
    query="self_attn.q_proj",
    key="self_attn.k_proj",
    value="self_attn.v_proj",
    attn_out="self_attn.o_proj",
    ffn_in=("mlp.gate_proj", "mlp.up_proj"),
    ffn_out="mlp.down_proj",
    attention="self_attn",
    word_embeddings="embed_tokens",
)

FAMILIES: tuple[Family, ...] = (BERT, ROBERTA, LLAMA)


def supported_model_types() -> list[str]:
    return sorted(t for f in FAMILIES for t in f.model_types)


def family_of(model_or_type: nn.Module | str) -> Family:
    """The family of a model (or of a `config.model_type` string); one clear error when unknown."""
    if isinstance(model_or_type, str):
        model_type = model_or_type
    else:
        config = getattr(model_or_type, "config", None)
        model_type = getattr(config, "model_type", None)
        if model_type is None:
            raise UnsupportedModelError(
                f"{type(model_or_type).__name__} has no `config.model_type`; greenprune works on Hugging Face "
                f"transformers models of these types: {', '.join(supported_model_types())}"
            )
    for fam in FAMILIES:
        if model_type in fam.model_types:
            return fam
    raise UnsupportedModelError(
        f"model type {model_type!r} is not supported; supported types: {', '.join(supported_model_types())} "
        f"(families: {', '.join(f.name for f in FAMILIES)})"
    )
