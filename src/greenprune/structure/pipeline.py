"""One structural-pruning run: vocabulary → layers → FFN → KV groups → optional LoRA recovery, with a record.

The order matters: the vocabulary step changes token ids, so calibration batches for the later steps are built
with the pruned tokenizer; recovery comes last so it repairs the combined damage once.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import torch
from pydantic import AliasChoices, BeforeValidator, ConfigDict, Field, with_config
from torch import nn

from greenprune._utils import read_code_jsonl
from greenprune.errors import GreenpruneError
from greenprune.measure.size import total_parameters
from greenprune.structure.calibration import calibration_batches, stdlib_code
from greenprune.structure.ffn import FFNPruningConfig, prune_ffn
from greenprune.structure.heads import KVGroupPruningConfig, prune_kv_groups
from greenprune.structure.layers import LayerPruningConfig, prune_layers
from greenprune.structure.tokenizer import VocabPruningConfig
from greenprune.structure.vocab import prune_vocab

CODE_SUFFIXES = (".py", ".js", ".ts", ".java", ".c", ".h", ".cpp", ".cc", ".go", ".rs", ".rb", ".php", ".cs",
                 ".kt", ".scala", ".swift", ".sh", ".sql", ".txt", ".md")


class CorpusError(GreenpruneError, ValueError):
    """A vocabulary corpus that cannot be read."""


class NothingToPruneError(GreenpruneError, ValueError):
    """A structural-pruning run with every step off: it would write the model out unchanged."""


TASK_CORPUS = "task"  # vocab_corpus value: the caller's own texts (a recipe passes its task's examples)


def _vocab_flag(value: Any) -> Any:
    """A recipe's `vocab: true` means "the vocabulary of the task's own data"; `false` means no vocabulary step."""
    if value is True:
        return TASK_CORPUS
    return None if value is False else value


def _also(*names: str) -> Any:
    """Pydantic metadata: the field may also be written under these names (the recipe's names before the recipe
    step and this config were one)."""
    return Field(validation_alias=AliasChoices(*names))


@with_config(ConfigDict(extra="forbid"))  # a recipe's `structure:` step is validated as this config
@dataclass(frozen=True)
class StructureConfig:
    """Which structural steps to run, and on what calibration. `None`/0 skips a step.

    The `Annotated` bounds and alternative names apply when a recipe's `structure:` step is validated as this
    config (`vocab: true`, `layer_metric`, `layer_rescore`, `calibration`, `seq_len` are the recipe's spellings).
    """

    # "stdlib", a folder, a text/code file, a JSONL with code/content/text, or "task" (texts the caller passes)
    vocab_corpus: Annotated[str | None, _also("vocab_corpus", "vocab"), BeforeValidator(_vocab_flag)] = None
    vocab_chat_frame: bool = True  # also keep the tokens of the model's chat template and ``` fences
    vocab_whitespace: bool = False  # also keep every whitespace-only token (indentation, blank lines)
    vocab_frequent: Annotated[int, Field(ge=0)] = 0  # also keep the products of the first N BPE merges
    layers: Annotated[int, Field(ge=0)] = 0
    metric: Annotated[Literal["kl", "bi"], _also("metric", "layer_metric")] = "kl"
    rescore: Annotated[bool, _also("rescore", "layer_rescore")] = True  # greedy re-scoring after each removal
    ffn: Annotated[float, Field(ge=0, lt=1)] = 0.0
    ffn_multiple_of: Annotated[int, Field(gt=0)] = 1
    kv_groups: Annotated[int, Field(ge=0)] = 0
    calib_texts: Annotated[int, Field(gt=0), _also("calib_texts", "calibration")] = 64
    calib_seq_len: Annotated[int, Field(gt=1), _also("calib_seq_len", "seq_len")] = 256
    calib_batches: Annotated[int, Field(gt=0)] = 8
    calib_batch_size: Annotated[int, Field(gt=0)] = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if not (self.vocab_corpus or self.layers or self.ffn or self.kv_groups):
            raise NothingToPruneError(
                "StructureConfig: nothing to prune; set vocab_corpus, layers, ffn or kv_groups (all are off or 0)")

    def label(self) -> str:
        """What this run removes, for stack labels: `vocab/-4L/ffn20%/-1kv`."""
        parts = (["vocab"] if self.vocab_corpus else []) + ([f"-{self.layers}L"] if self.layers else [])
        parts += [f"ffn{round(self.ffn * 100)}%"] if self.ffn else []
        parts += [f"-{self.kv_groups}kv"] if self.kv_groups else []
        return "/".join(parts)


@dataclass
class StructureReport:
    """What was removed, on which data, with the per-step summaries (the model card is written from this)."""

    config: dict[str, Any]
    steps: list[dict[str, Any]] = field(default_factory=list)
    params_before: int = 0
    params_after: int = 0
    measurements: dict[str, Any] = field(default_factory=dict)
    kept_ids: list[int] | None = None

    def to_json(self) -> str:
        data = asdict(self)
        data.pop("kept_ids")
        return json.dumps(data, indent=2, default=str)


def read_corpus(spec: str, limit: int | None = None) -> list[str]:
    """Texts of a vocabulary corpus: `stdlib`, a folder of code files, one file, or JSONL (code/content/text)."""
    if spec == "stdlib":
        return stdlib_code(limit=limit or 100_000, split="train")
    path = Path(spec).expanduser()
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in CODE_SUFFIXES)
        if not files:
            raise CorpusError(f"{path}: no code files ({', '.join(CODE_SUFFIXES)}) in the corpus folder")
        texts = [p.read_text(encoding="utf-8", errors="replace") for p in files]
    elif path.is_file() and path.suffix.lower() == ".jsonl":
        texts = [text for _, text in read_code_jsonl(path, CorpusError)]
    elif path.is_file():
        texts = [path.read_text(encoding="utf-8", errors="replace")]
    else:
        raise CorpusError(f"{spec}: not 'stdlib', a folder, a file or a .jsonl")
    if not texts:
        raise CorpusError(f"{spec}: the corpus is empty")
    return texts[:limit] if limit else texts


Calibration = Callable[[Any], Sequence[Mapping[str, Any]]]  # tokenizer -> calibration batches


def run_structure(
    model: nn.Module, tokenizer: Any, config: StructureConfig, calib_texts: Sequence[str] | None = None, *,
    vocab_texts: Sequence[str] | None = None, calibration: Calibration | None = None, calibration_name: str = "",
) -> tuple[nn.Module, Any, StructureReport]:
    """Apply the configured steps in place; returns the model, the (possibly new) tokenizer and a report.

    The vocabulary comes from `config.vocab_corpus` (`vocab_texts` when it is "task"). Layers, FFN and KV groups
    are scored on `calibration(tokenizer)` when given (a recipe calibrates an encoder on its task's examples),
    else on `calib_texts` or stdlib code packed into `calib_batches` × `calib_batch_size` × `calib_seq_len` tokens;
    either way the batches are built after the vocabulary step, with the tokenizer it returns.
    """
    report = StructureReport(config=asdict(config), params_before=total_parameters(model))
    if config.vocab_corpus:
        if config.vocab_corpus == TASK_CORPUS:
            if vocab_texts is None:
                raise CorpusError(f"vocab_corpus={TASK_CORPUS!r} means the caller's own texts, and none were given")
            texts = list(vocab_texts)
        else:
            texts = read_corpus(config.vocab_corpus)
        result = prune_vocab(model, tokenizer, texts, VocabPruningConfig(
            keep_chat_frame=config.vocab_chat_frame, keep_whitespace=config.vocab_whitespace,
            keep_frequent=config.vocab_frequent))
        model, tokenizer = result.model, result.tokenizer
        report.kept_ids = result.kept_ids
        report.steps.append({"step": "vocab", "corpus": config.vocab_corpus, **result.summary()})
    if config.layers or config.ffn or config.kv_groups:
        if calibration is not None:
            batches = [dict(b) for b in calibration(tokenizer)]
            source = calibration_name or "given batches"
        else:
            texts = (list(calib_texts) if calib_texts is not None
                     else stdlib_code(limit=config.calib_texts, split="valid"))
            batches = calibration_batches(tokenizer, texts, seq_len=config.calib_seq_len,
                                          batch_size=config.calib_batch_size, max_batches=config.calib_batches)
            source = "given texts" if calib_texts is not None else "stdlib (valid split)"
        if not batches:
            raise CorpusError("structural pruning: no calibration batches (no calibration texts or examples)")
        calib_desc = {"calibration": f"{len(batches)} batches × {tuple(batches[0]['input_ids'].shape)} tokens "
                                     f"of {source}"}
        if config.layers:
            layers = LayerPruningConfig(remove=config.layers, metric=config.metric, rescore=config.rescore)
            res = prune_layers(model, batches, layers)
            model = res.model
            report.steps.append({"step": "layers", **calib_desc, **res.summary()})
        if config.ffn:
            ffn_res = prune_ffn(model, batches, FFNPruningConfig(fraction=config.ffn,
                                                                  multiple_of=config.ffn_multiple_of))
            model = ffn_res.model
            report.steps.append({"step": "ffn", "fraction": config.ffn, **calib_desc, **ffn_res.summary()})
        if config.kv_groups:
            head_res = prune_kv_groups(model, batches, KVGroupPruningConfig(groups=config.kv_groups))
            model = head_res.model
            report.steps.append({"step": "kv_groups", **calib_desc, **head_res.summary()})
    report.params_after = total_parameters(model)
    return model, tokenizer, report


class IdRemap(nn.Module):
    """Feed a vocabulary-pruned model with ids of the original tokenizer (for interleaved A/B on the same batches).

    The lookup is one gather per batch; ids outside the kept vocabulary raise instead of silently mapping.
    """

    def __init__(self, model: nn.Module, kept_ids: Sequence[int], old_vocab: int) -> None:
        super().__init__()
        self.inner = model
        self.config = model.config
        table = torch.full((old_vocab,), -1, dtype=torch.long)
        table[torch.as_tensor(list(kept_ids))] = torch.arange(len(kept_ids))
        self.register_buffer("table", table, persistent=False)

    def forward(self, input_ids: torch.Tensor, **kwargs: Any) -> Any:
        ids = self.table[input_ids]
        if bool((ids < 0).any()):
            raise GreenpruneError("input contains token ids the pruned vocabulary dropped")
        return self.inner(input_ids=ids, **kwargs)


__all__ = ["TASK_CORPUS", "Calibration", "CorpusError", "IdRemap", "NothingToPruneError", "StructureConfig",
           "StructureReport", "read_corpus", "run_structure"]
