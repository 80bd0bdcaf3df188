"""Architecture knowledge in one table.

Every other module asks this table where an architecture keeps its layers, attention projections, FFN and
embeddings, how its config names the layer count, the head geometry and the FFN width, and where an
encoder-decoder keeps the encoder that weight pruning targets, so that supporting a new family means adding one
entry here and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import nn

from greenprune.errors import GreenpruneError


class UnsupportedModelError(GreenpruneError, ValueError):
    """The model's architecture is not in the family table."""


# `config.model_type` of transformers' EncoderDecoderModel: two models of a family, not a family of its own
ENCODER_DECODER = "encoder-decoder"


@dataclass(frozen=True)
class HeadGeometry:
    """Attention heads of one layer: query heads, key/value heads (fewer under grouped-query attention), width."""

    heads: int
    kv_heads: int
    head_dim: int

    @property
    def query_width(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_width(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def heads_per_group(self) -> int:
        """Query heads reading one key/value head."""
        return self.heads // self.kv_heads


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
    num_layers_attr: str = "num_hidden_layers"  # config attribute holding the number of layers
    intermediate_size_attr: str = "intermediate_size"  # config attribute holding the FFN width
    num_heads_attr: str = "num_attention_heads"  # config attribute holding the query heads per layer
    num_kv_heads_attr: str = "num_key_value_heads"  # ... the key/value heads (absent: one per query head)
    # encoders: method of a layer running FFN + residual/LayerNorm on the attention output (ALPINE prunes between them)
    ffn_block: str | None = None
    # the bare backbone (task "base") ends in a pooler (dense on the first token): BERT's does, RoBERTa's is not
    # counted (the FLOP formula's convention, checked against the counted FLOPs)
    base_pooler: bool = False

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

    @property
    def gated(self) -> bool:
        """A gated FFN, down(act(gate(x)) * up(x)), rather than down(act(in(x)))."""
        return len(self.ffn_in) == 2

    def backbone(self, model: nn.Module) -> nn.Module:
        """The bare transformer under a task head (BertModel, LlamaModel, ...)."""
        for attr in self.backbone_attrs:
            sub = getattr(model, attr, None)
            if isinstance(sub, nn.Module):
                return sub
        return model

    def layers(self, model: nn.Module) -> nn.ModuleList:
        return self.backbone(model).get_submodule(self.layers_path)

    def layers_parent(self, model: nn.Module) -> nn.Module:
        """The module holding the layer list (BERT's encoder, Llama's backbone): what runs the layers in order."""
        parent, _, _ = self.layers_path.rpartition(".")
        return self.backbone(model).get_submodule(parent)

    def set_layers(self, model: nn.Module, layers: nn.ModuleList) -> None:
        """Install `layers` as the model's layer stack (the config's layer count is the caller's to update)."""
        self.backbone(model).set_submodule(self.layers_path, layers)

    def embeddings(self, model: nn.Module) -> nn.Embedding:
        return self.backbone(model).get_submodule(self.word_embeddings)

    def layer_linear_names(self) -> tuple[str, ...]:
        """Per-layer Linear modules that weight pruning targets by default."""
        return (*self.attention_projections, *self.ffn_projections)

    def num_layers(self, config: Any) -> int:
        """How many layers a model of this family with `config` has."""
        value = getattr(config, self.num_layers_attr, None)
        if not isinstance(value, int):
            raise UnsupportedModelError(f"{getattr(config, 'model_type', self.name)!r} config has no integer "
                                        f"`{self.num_layers_attr}`")
        return value

    def set_num_layers(self, config: Any, n: int) -> None:
        setattr(config, self.num_layers_attr, n)

    def intermediate_size(self, config: Any) -> int:
        """The FFN width (one for every layer: HF configs of these families hold one value)."""
        value = getattr(config, self.intermediate_size_attr, None)
        if not isinstance(value, int):
            raise UnsupportedModelError(f"{getattr(config, 'model_type', self.name)!r} config has no integer "
                                        f"`{self.intermediate_size_attr}`")
        return value

    def set_intermediate_size(self, model: nn.Module, size: int) -> None:
        """Record a new FFN width in the config and in the FFN modules that cache it (Llama's MLP does)."""
        setattr(model.config, self.intermediate_size_attr, size)
        parents = {p.rpartition(".")[0] for p in self.ffn_projections}
        for layer in self.layers(model):
            for parent in filter(None, parents):
                module = layer.get_submodule(parent)
                if hasattr(module, self.intermediate_size_attr):
                    setattr(module, self.intermediate_size_attr, size)

    def head_geometry(self, config: Any) -> HeadGeometry:
        """Query heads, key/value heads and head width from `config` (head_dim and KV heads default as HF does)."""
        heads = int(getattr(config, self.num_heads_attr))
        kv_heads = int(getattr(config, self.num_kv_heads_attr, None) or heads)
        head_dim = int(getattr(config, "head_dim", None) or config.hidden_size // heads)
        return HeadGeometry(heads, kv_heads, head_dim)

    def set_head_geometry(self, config: Any, geometry: HeadGeometry) -> None:
        """Write `geometry` to `config`; head_dim explicitly, since hidden_size // heads no longer holds."""
        config.head_dim = geometry.head_dim
        setattr(config, self.num_heads_attr, geometry.heads)
        setattr(config, self.num_kv_heads_attr, geometry.kv_heads)


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
    base_pooler=True,
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


def is_encoder_decoder(model: nn.Module) -> bool:
    """An HF `EncoderDecoderModel` (two models of table families joined by cross-attention)."""
    return getattr(getattr(model, "config", None), "model_type", None) == ENCODER_DECODER


def pruned_stack(model: nn.Module) -> nn.Module:
    """The model whose layers weight pruning targets by default: an encoder-decoder's encoder, else `model`."""
    return model.encoder if is_encoder_decoder(model) else model  # type: ignore[return-value]
