"""Typed result records and their JSON form.

Every number greenprune reports lives in one of these records, so reports can be rebuilt from records alone and
a record written today reloads unchanged tomorrow.
"""

from __future__ import annotations

import json
import os
import platform
import sys
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from greenprune.checkpoint import write_text_output


def library_versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("torch", "transformers", "greenprune", "codecarbon", "peft"):
        module = sys.modules.get(name)
        if module is None:
            try:
                from importlib.metadata import version

                versions[name] = version(name)
            except Exception:
                continue
        else:
            versions[name] = str(getattr(module, "__version__", "?"))
    return versions


def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class CostRecord(BaseModel):
    """What running a model costs on given inputs (one model, one batch iterator)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    # size
    params_total: int
    params_embedding: int
    params_non_embedding: int
    checkpoint_bytes: int  # safetensors bytes of the state dict (shared tensors counted once)
    # compute, counted on the real inputs (so shrinking sequences count)
    samples: int
    tokens: int  # non-padding input tokens
    flops_per_sample: float
    flops_analytic_per_sample: float | None = None  # closed-form cross-check, None when no formula applies
    # memory: peak bytes of live tensors during a forward (parameters included); see measure.memory
    peak_memory_bytes: int | None = None
    peak_memory_method: str = ""
    # time, after warm-up
    latency_p50_s: float
    latency_p95_s: float
    throughput_samples_s: float
    throughput_tokens_s: float
    timed_batches: int
    # energy of one pass over the measured samples (timed passes averaged)
    energy_kwh: float | None = None
    co2_kg: float | None = None
    energy_method: str = ""
    # context
    batch_size: int
    device: str
    dtype: str


class ResultRecord(BaseModel):
    """One model under one method: its configuration, task metrics and cost, with the command that made it."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str
    method: str = "baseline"
    config: dict[str, Any] = Field(default_factory=dict)
    task: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict)
    details: dict[str, Any] = Field(default_factory=dict)  # per-example outcomes, how metrics were obtained
    cost: CostRecord | None = None
    artifacts: dict[str, str] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    command: str = Field(default_factory=lambda: " ".join(sys.argv))
    versions: dict[str, str] = Field(default_factory=library_versions)
    created: str = Field(default_factory=now_iso)
    host: str = Field(default_factory=lambda: f"{platform.machine()} {os.cpu_count()} cores")


class Comparison(BaseModel):
    """A baseline and a candidate measured in one process, interleaved, with candidate/baseline ratios."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    baseline: ResultRecord
    candidate: ResultRecord
    ratios: dict[str, float]  # candidate / baseline for every cost field (and metric) both have
    latency_ratio_ci95: tuple[float, float] | None = None  # bootstrap over interleaved rounds
    within_noise: bool | None = None  # latency ratio CI contains 1.0
    verdict: str = ""
    rounds: int = 0


def save_json(
    obj: BaseModel | list[BaseModel], path: str | os.PathLike[str], *, overwrite: bool = True, fresh: bool = False,
    option: str = "--json",
) -> Path:
    """Write one record or a list of records atomically as JSON; returns the file written.

    `overwrite=False` refuses to replace an existing file (`OutputError`); `fresh=True` picks a new name beside
    it instead (`NAME-2.json`, ...), so a default record name never loses an earlier run.
    """
    if isinstance(obj, list):
        text = json.dumps([o.model_dump(mode="json") for o in obj], indent=2)
    else:
        text = obj.model_dump_json(indent=2)
    return write_text_output(path, text + "\n", overwrite=overwrite and not fresh, fresh=fresh, option=option)


def load_json(path: str | os.PathLike[str]) -> ResultRecord | Comparison | list[ResultRecord | Comparison]:
    """Load what `save_json` wrote, recognising result records and comparisons."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))

    def one(item: dict[str, Any]) -> ResultRecord | Comparison:
        if "baseline" in item and "candidate" in item:
            return Comparison.model_validate(item)
        return ResultRecord.model_validate(item)

    if isinstance(data, list):
        return [one(item) for item in data]
    return one(data)
