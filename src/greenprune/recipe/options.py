"""Options of the recipe's step kinds that have no library config of their own.

ALPINE's options are `AlpineConfig` and structural pruning's are `StructureConfig`, validated as they are; LoRA
recovery's are `RecoveryConfig` plus where the pairs come from, weight pruning's `WeightPruningConfig` plus whether
the masks are made permanent. The other kinds below are recipe-level knobs (which task split, how many batches) for
functions that take plain arguments.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.dataclasses import dataclass as pydantic_dataclass

from greenprune.recover import RecoveryConfig
from greenprune.weights import WeightPruningConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class FinetuneStep(_Strict):
    epochs: float = Field(default=1.0, gt=0)
    lr: float = Field(default=5e-5, gt=0)
    batch_size: int = Field(default=16, gt=0)
    max_length: int = Field(default=256, gt=0)
    limit: int | None = Field(default=None, gt=0)
    group_by_length: bool = False  # batches of similar length: TrainConfig.group_by_length


@pydantic_dataclass(config=ConfigDict(extra="forbid"))
class PruneStep(WeightPruningConfig):
    """Weight pruning: `WeightPruningConfig` itself (random / L1 / Wanda, global / per-tensor / per-row,
    unstructured or N:M), made permanent unless `permanent: false`. The step runs with the recipe's `seed`."""

    permanent: bool = True

    @field_validator("sparsity")
    @classmethod
    def _fraction(cls, value: float | None) -> float | None:
        if value is not None and not value > 0:
            raise ValueError("Input should be greater than 0")
        if value is not None and not value < 1:
            raise ValueError("Input should be less than 1")
        return value


class QuantizeStep(_Strict):
    dtype: Literal["fp16", "bf16", "int8"] = "int8"


@pydantic_dataclass(frozen=True, config=ConfigDict(extra="forbid"))
class RecoverStep(RecoveryConfig):
    """LoRA post-training on code-instruction pairs, merged back into plain weights: `RecoveryConfig` itself, plus
    where the pairs come from. `max_length` (this step's name for `max_len` before the two were one config) is still
    accepted. The step runs with the recipe's `seed` (it replaces `seed` here), like every other step."""

    method: Literal["lora"] = "lora"
    data: str = "stdlib"  # "stdlib" (pairs from the standard library) or a JSONL/CSV of prompt/completion pairs
    pairs: int = 200

    @model_validator(mode="before")
    @classmethod
    def _older_name(cls, data: Any) -> Any:
        if isinstance(data, dict) and "max_length" in data:
            if "max_len" in data:
                raise ValueError("give max_len or its older name max_length, not both")
            data = {("max_len" if k == "max_length" else k): v for k, v in data.items()}
        return data

    @field_validator("r", "alpha", "steps", "lr", "batch_size", "max_len", "pairs")
    @classmethod
    def _positive(cls, value: float) -> float:
        if not value > 0:
            raise ValueError("Input should be greater than 0")
        return value


class EvaluateStep(_Strict):
    task: str | None = None  # evaluate on another task than the pipeline's (e.g. perplexity for a generator)
    size: int | None = Field(default=None, gt=0)  # corpus size for that other task
    limit: int | None = Field(default=None, gt=0)  # examples evaluated
    batch_size: int | None = Field(default=None, gt=0)
    max_length: int | None = Field(default=None, gt=0)
    max_new_tokens: int | None = Field(default=None, gt=0)  # generation tasks only
    sandbox: Literal["auto", "namespaces", "unsafe-limits-only"] = "auto"  # generate: how generated code is contained
    label: str | None = None  # stack name; default: the methods applied so far


class MeasureStep(_Strict):
    batches: int = Field(default=4, gt=0)
    batch_size: int = Field(default=8, gt=0)
    max_length: int = Field(default=256, gt=0)
    rounds: int = Field(default=3, gt=0)  # interleaved baseline/candidate rounds
    energy: bool = True
    label: str | None = None


class TruncationStep(_Strict):
    """What a user tries before token pruning: the baseline with its inputs cut short (`max_length`) until its
    counted FLOPs per sample equal the current stack's, evaluated and measured beside the baseline. A side branch:
    the model flowing on is unchanged. FLOPs are matched on the first `batches` × `batch_size` evaluation examples
    encoded at `max_length` (the length the stack itself is measured at); the cut is searched in
    [`min_length`, `max_length`]."""

    batches: int = Field(default=4, gt=0)
    batch_size: int = Field(default=16, gt=0)
    max_length: int = Field(default=256, gt=0)
    min_length: int = Field(default=8, gt=0)
    limit: int | None = Field(default=None, gt=0)  # examples evaluated (default: the data's limit_eval)
    rounds: int = Field(default=3, gt=0)
    energy: bool = True

    @model_validator(mode="after")
    def _bounds(self) -> TruncationStep:
        if self.min_length > self.max_length:
            raise ValueError(f"min_length ({self.min_length}) must not exceed max_length ({self.max_length})")
        return self


__all__ = ["EvaluateStep", "FinetuneStep", "MeasureStep", "PruneStep", "QuantizeStep", "RecoverStep",
           "TruncationStep"]
