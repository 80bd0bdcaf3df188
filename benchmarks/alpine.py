"""ALPINE judged where quality can be read (issue 16): per task, baseline vs ALPINE and what a user would do instead.

Rows per task (clone, defect, defect-long): baseline; ALPINE attached at inference (layers all/odd/even × α);
ALPINE fine-tuned with pruning attached (the paper's protocol) for the best settings; static top-k and random
dropping at the best setting's matched kept ratio; head truncation at matched counted FLOPs (`max_length` cut);
ONNX Runtime fp32 and dynamic int8; ALPINE composed with torch dynamic int8 (ALPINE's data-dependent shapes and
custom attention kernel do not export to ONNX, so the composition uses greenprune's `quantize`).

Each row: F1/accuracy with a paired bootstrap 95% CI of the difference vs baseline (same test examples); counted
FLOPs ×; throughput × (wall, 2 threads) and CPU-time × (1 thread), baseline and row interleaved in one process;
peak memory ×; mean tokens in → out; fine-tuning wall time × and energy × for fine-tuned rows. Rows are written
one by one to a JSON rows file, so an interrupted run resumes where it stopped (the fine-tuned baseline is kept as
a safetensors checkpoint next to it, not committed; on a machine without it the baseline is fine-tuned again and the
saved rows are kept only if it predicts exactly what the saved baseline did).

    python benchmarks/alpine.py                                     # full run (hours on 2 cores)
    python benchmarks/alpine.py --tasks clone --alphas 1 --layers all --sizes clone=60 --out /tmp/a  # smoke
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import os
import shlex
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

os.environ.setdefault("GREENPRUNE_NO_PROGRESS", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np
import torch

from greenprune._utils import atomic_write_text
from greenprune.tasks import Splits, TrainConfig, get_task
from greenprune.tasks.corpus import length_distribution
from greenprune.tasks.metrics import (
    bootstrap_metric_interval,
    classification_metrics,
    paired_bootstrap,
    wilson_interval,
)
from greenprune.tokens import AlpineConfig, attach
from greenprune.tokens.baselines import flops_per_sample, match_truncation, matched_configs

RESULTS = Path(__file__).parent / "results"
SIZES = {"clone": 12000, "defect": 5600, "defect-long": 1000}  # clone: 1,200 test pairs; defect: 560 test functions
MAX_LENGTH = {"clone": 512, "defect": 256, "defect-long": 512}
PRIMARY = {"clone": "f1", "defect": "accuracy", "defect-long": "accuracy"}
QUALITY_KEPT = 0.99  # the aim: ≥ 99% of baseline F1 at ≤ 0.5× FLOPs
FT_FLOPS = 0.55  # settings this lean at inference are the ones fine-tuned with ALPINE attached


# --- data and models ---------------------------------------------------------------------------------------------

def task_data(name: str, size: int, seed: int, train_limit: int | None, test_limit: int | None) -> Splits:
    base = get_task("defect" if name == "defect-long" else name)
    splits = base.embedded_long(size=size, seed=seed) if name == "defect-long" else base.embedded(size=size, seed=seed)
    return Splits(splits.train[:train_limit] if train_limit else splits.train, splits.valid,
                  splits.test[:test_limit] if test_limit else splits.test, source=splits.source)


def timed_finetune(task: Any, model: torch.nn.Module, tokenizer: Any, splits: Splits, config: TrainConfig,
                   energy: bool) -> dict[str, Any]:
    """Fine-tune in place; wall seconds and (when codecarbon runs) energy and CO2 of the whole fine-tune."""
    from greenprune.measure.energy import EnergyTracker

    torch.set_num_threads(2)
    with EnergyTracker(enabled=energy) as tracker:
        start = time.perf_counter()
        with tracker.task("finetune"):
            task.finetune(model, tokenizer, splits, config)
        seconds = time.perf_counter() - start
    reading = tracker.get("finetune")
    return {"seconds": seconds, "energy_kwh": reading.energy_kwh if reading else None,
            "co2_kg": reading.co2_kg if reading else None, "energy_method": tracker.method}


# --- runners: one pass over the cost batches, at a given thread count -------------------------------------------

class TorchRunner:
    def __init__(self, model: torch.nn.Module, batches: Sequence[dict[str, Any]]) -> None:
        from greenprune.measure.cost import model_inputs

        self.model = model.eval()
        self.inputs = [model_inputs(b) for b in batches]

    def __call__(self, threads: int) -> None:
        torch.set_num_threads(threads)
        with torch.inference_mode():
            for inputs in self.inputs:
                self.model(**inputs)


class OrtRunner:
    """An ONNX Runtime session per thread count (intra-op threads are fixed when a session is created)."""

    def __init__(self, path: Path, batches: Sequence[dict[str, Any]]) -> None:
        import onnxruntime as ort

        self.sessions = {}
        for threads in (1, 2):
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads
            options.inter_op_num_threads = 1
            self.sessions[threads] = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        names = {i.name for i in self.sessions[1].get_inputs()}
        self.inputs = [{k: v.numpy() for k, v in b.items() if k in names} for b in batches]

    def __call__(self, threads: int) -> None:
        for inputs in self.inputs:
            self.sessions[threads].run(None, inputs)

    def logits(self, inputs: dict[str, Any]) -> np.ndarray:
        names = {i.name for i in self.sessions[2].get_inputs()}
        return self.sessions[2].run(None, {k: v.numpy() for k, v in inputs.items() if k in names})[0]


def interleaved(baseline: Callable[[int], None], candidate: Callable[[int], None], rounds: int) -> dict[str, float]:
    """Speed-ups (baseline time / candidate time): wall at 2 threads and CPU time at 1 thread, geometric means of
    per-round ratios, order alternating every round so drift hits both alike."""
    baseline(2), candidate(2)  # warm-up
    ratios: dict[str, list[float]] = {"throughput_wall_2t": [], "cpu_time_speedup_1t": []}
    for r in range(rounds):
        for key, threads, clock in (("throughput_wall_2t", 2, time.perf_counter),
                                    ("cpu_time_speedup_1t", 1, time.process_time)):
            spent = [0.0, 0.0]
            for i in ((0, 1) if r % 2 == 0 else (1, 0)):
                start = clock()
                (baseline, candidate)[i](threads)
                spent[i] = clock() - start
            ratios[key].append(spent[0] / max(spent[1], 1e-9))
    torch.set_num_threads(2)
    return {k: math.exp(statistics.fmean(math.log(x) for x in v)) for k, v in ratios.items()}


def train_step_ratio(baseline: torch.nn.Module, candidate: torch.nn.Module, batches: Sequence[dict[str, Any]],
                     rounds: int, lr: float) -> float:
    """Fine-tuning speed-up (baseline time / candidate time per training step: forward, backward, AdamW step) at 2
    threads, the two interleaved in one process with the order alternating every round; geometric mean of the
    per-round ratios. Steps run on copies, so the models given are untouched. The whole fine-tunes were timed in
    separate runs; this is the like-for-like ratio."""
    torch.set_num_threads(2)
    models = [copy.deepcopy(m).train() for m in (baseline, candidate)]
    optimizers = [torch.optim.AdamW(m.parameters(), lr=lr) for m in models]

    def steps(i: int) -> float:
        start = time.perf_counter()
        for batch in batches:
            loss = models[i](**batch).loss
            loss.backward()
            optimizers[i].step()
            optimizers[i].zero_grad(set_to_none=True)
        return time.perf_counter() - start

    steps(0), steps(1)  # warm-up
    ratios = []
    for r in range(rounds):
        spent = [0.0, 0.0]
        for i in ((0, 1) if r % 2 == 0 else (1, 0)):
            spent[i] = steps(i)
        ratios.append(spent[0] / max(spent[1], 1e-9))
    return math.exp(statistics.fmean(math.log(x) for x in ratios))


def peak_memory(model: torch.nn.Module, batches: Sequence[dict[str, Any]]) -> int:
    from greenprune.measure.cost import model_inputs
    from greenprune.measure.memory import TensorMemoryTracker, static_bytes

    peak = 0
    for batch in batches:
        tracker = TensorMemoryTracker()
        with torch.inference_mode(), tracker:
            model(**model_inputs(batch))
        peak = max(peak, tracker.peak)
    return peak + static_bytes(model)


# --- the benchmark -----------------------------------------------------------------------------------------------

class TaskBench:
    def __init__(self, args: argparse.Namespace, name: str, rows: dict[str, Any], save: Callable[[], None]) -> None:
        from greenprune.checkpoint import save_hf
        from greenprune.models import load_model

        self.args, self.name, self.rows, self.save = args, name, rows, save
        self.task = get_task("defect" if name == "defect-long" else name)
        self.metric = PRIMARY[name]
        self.max_length = args.max_length or MAX_LENGTH[name]
        size = dict(kv.split("=") for kv in args.sizes.split(",") if kv).get(name, SIZES[name])
        self.splits = task_data(name, int(size), args.seed, args.train_limit, args.test_limit)
        self.test = self.splits.test
        self.labels = [int(e.label) for e in self.test]  # type: ignore[arg-type]
        self.lengths = length_distribution(self.test)
        ckpt = args.out / f"alpine-{name}-baseline"
        pretrained = load_model(args.model, task=self.task.name)
        self.tokenizer = pretrained.tokenizer
        self.pretrained = copy.deepcopy(pretrained.model)
        if (ckpt / "config.json").is_file() and f"{name}/baseline" in rows:
            self.model = load_model(str(ckpt), task=self.task.name).model  # resume: the same fine-tuned weights
        else:
            self.model = pretrained.model
            self.finetune_cost = timed_finetune(self.task, self.model, self.tokenizer, self.splits,
                                                self.train_config(), not args.no_energy)
            save_hf(self.model, self.tokenizer, ckpt, kind="finetune", overwrite=True)
            self._check_refit()
        self.model.eval()
        self.batches = self.batches_at(self.max_length)

    def _check_refit(self) -> None:
        """Rows saved on another machine, whose fine-tuned checkpoint (too big to commit) is gone: the baseline was
        fine-tuned again with the same seed and recipe. Keep the saved rows only if it predicts exactly what the saved
        baseline predicted on every test example; otherwise they were measured against a different model, so drop
        this task's rows (they are measured again)."""
        saved = self.rows.get(f"{self.name}/baseline")
        if saved is None:
            return
        if self.predictions(self.model) == saved["preds"]:
            print(f"[{self.name}] re-fitted baseline predicts exactly the saved baseline: saved rows kept", flush=True)
            return
        stale = [k for k in self.rows if k.startswith(f"{self.name}/")]
        print(f"[{self.name}] re-fitted baseline differs from the saved one: {len(stale)} saved rows measured again",
              flush=True)
        for key in stale:
            del self.rows[key]
        self.save()

    def train_config(self) -> TrainConfig:
        a = self.args
        return TrainConfig(epochs=a.epochs, lr=a.lr, batch_size=a.batch_size, max_length=self.max_length,
                           seed=a.seed, device="cpu", max_steps=a.max_steps, group_by_length=a.group_by_length)

    def batches_at(self, max_length: int) -> list[dict[str, Any]]:
        out = []
        for batch in self.task.batches(self.tokenizer, self.test[: self.args.batch_size * self.args.cost_batches],
                                       self.args.batch_size, max_length):
            batch.pop("labels")
            out.append(batch)
        return out

    def train_batches(self) -> list[dict[str, Any]]:
        """Training batches (labels kept) for the interleaved step timing: the first of the training split."""
        first = self.splits.train[: self.args.batch_size * self.args.cost_batches]
        return list(self.task.batches(self.tokenizer, first, self.args.batch_size, self.max_length))

    def predictions(self, model: torch.nn.Module, max_length: int | None = None) -> list[int]:
        torch.set_num_threads(2)
        return self.task.predict(model, self.tokenizer, self.test, self.args.batch_size, max_length or self.max_length)

    def quality(self, preds: list[int], against: list[int] | None = None) -> dict[str, Any]:
        metrics = classification_metrics(preds, self.labels)
        base = against if against is not None else self.rows[f"{self.name}/baseline"]["preds"]
        boot = {m: paired_bootstrap(self.labels, base, preds, m, resamples=self.args.resamples, seed=0)
                for m in ("f1", "accuracy")}
        return {"metrics": metrics, "bootstrap": boot}

    def record(self, row: str, **values: Any) -> dict[str, Any]:
        values.setdefault("command", self.args.command)
        self.rows[f"{self.name}/{row}"] = values
        self.save()
        print(f"[{self.name}] {row}: " + ", ".join(f"{k}={v:.3f}" for k, v in values.get("metrics", {}).items()
                                                  if k in ("f1", "accuracy")), flush=True)
        return values

    def done(self, row: str) -> dict[str, Any] | None:
        return self.rows.get(f"{self.name}/{row}")

    def cost_row(self, candidate: Callable[[int], None], *, flops: float | None, memory: int | None,
                 tokens: tuple[float, float]) -> dict[str, Any]:
        base = self.rows[f"{self.name}/baseline"]
        speed = interleaved(TorchRunner(self.model, self.batches), candidate, self.args.rounds)
        return {"flops_per_sample": flops, "flops_x": flops / base["flops_per_sample"] if flops else None,
                "peak_memory_bytes": memory, "memory_x": memory / base["peak_memory_bytes"] if memory else None,
                "tokens_in": tokens[0], "tokens_out": tokens[1], **speed}

    # rows ----------------------------------------------------------------------------------------------------
    def baseline(self) -> None:
        if self.done("baseline"):
            return
        preds = self.predictions(self.model)
        real = [int(n) for b in self.task.batches(self.tokenizer, self.test, self.args.batch_size, self.max_length)
                for n in b["attention_mask"].sum(1)]
        mean_in = float(np.mean(real))  # over the whole test split, as the ALPINE rows' traces
        self.record("baseline", preds=preds, metrics=classification_metrics(preds, self.labels),
                    flops_per_sample=flops_per_sample(self.model, self.batches),
                    peak_memory_bytes=peak_memory(self.model, self.batches), tokens_in=mean_in, tokens_out=mean_in,
                    flops_x=1.0, memory_x=1.0, throughput_wall_2t=1.0, cpu_time_speedup_1t=1.0,
                    finetune=getattr(self, "finetune_cost", None), max_length=self.max_length,
                    lengths=self.lengths, sizes=self.splits.sizes())

    def alpine_row(self, row: str, config: AlpineConfig, model: torch.nn.Module | None = None,
                   **extra: Any) -> dict[str, Any]:
        if self.done(row):
            return self.done(row)  # type: ignore[return-value]
        candidate = copy.deepcopy(self.model) if model is None else model
        handle = attach(candidate, config, tokenizer=self.tokenizer)
        assert handle.trace is not None
        handle.trace.reset()
        preds = self.predictions(candidate)
        means = handle.trace.mean_lengths()
        trace = copy.deepcopy(handle.trace)
        flops = flops_per_sample(candidate, self.batches)
        memory = peak_memory(candidate, self.batches)
        handle.trace.reset()
        cost = self.cost_row(TorchRunner(candidate, self.batches), flops=flops, memory=memory,
                             tokens=(means[0], means[-1]))
        ratio = _static_ratio(trace)
        return self.record(row, preds=preds, config=config.describe(), matched_ratio=ratio, **self.quality(preds),
                           **cost, **extra)

    def truncation_row(self, row: str, target: float) -> None:
        if self.done(row):
            return
        match = match_truncation(self.model, self.batches_at, target, low=8, high=self.max_length)
        preds = self.predictions(self.model, match.max_length)
        short = self.batches_at(match.max_length)
        cut = self.task.batches(self.tokenizer, self.test, self.args.batch_size, match.max_length)
        mean = float(np.mean([int(n) for b in cut for n in b["attention_mask"].sum(1)]))
        cost = self.cost_row(TorchRunner(self.model, short), flops=match.flops_per_sample,
                             memory=peak_memory(self.model, short), tokens=(mean, mean))
        self.record(row, preds=preds, truncation=match.describe(), **self.quality(preds), **cost)

    def onnx_rows(self) -> None:
        if self.done("onnxruntime-fp32") and self.done("onnxruntime-int8"):
            return
        from onnxruntime.quantization import QuantType, quantize_dynamic

        folder = self.args.out / f"alpine-{self.name}-onnx"
        folder.mkdir(parents=True, exist_ok=True)
        fp32, int8 = folder / "model.onnx", folder / "model-int8.onnx"
        sample = self.batches[0]
        names = [k for k in ("input_ids", "attention_mask", "token_type_ids") if k in sample]
        eager = copy.deepcopy(self.model).float().eval()
        torch.onnx.export(eager, tuple(sample[k] for k in names), str(fp32), input_names=names,
                          output_names=["logits"], dynamic_axes={k: {0: "batch", 1: "seq"} for k in names},
                          dynamo=False, opset_version=17)
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8)
        base = self.rows[f"{self.name}/baseline"]
        for row, path in (("onnxruntime-fp32", fp32), ("onnxruntime-int8", int8)):
            if self.done(row):
                continue
            runner = OrtRunner(path, self.batches)
            preds: list[int] = []
            for batch in self.task.batches(self.tokenizer, self.test, self.args.batch_size, self.max_length):
                batch.pop("labels")
                preds.extend(runner.logits(batch).argmax(-1).tolist())
            cost = self.cost_row(runner, flops=base["flops_per_sample"], memory=None,
                                 tokens=(base["tokens_in"], base["tokens_in"]))
            self.record(row, preds=preds, onnx=str(path), **self.quality(preds), **cost,
                        note="same graph as fp32 PyTorch: FLOPs counted as the baseline's; peak memory is not "
                             "visible to the torch tensor tracker")

    def run(self) -> None:
        from greenprune.quantize import quantize

        a = self.args
        self.baseline()
        base = self.rows[f"{self.name}/baseline"]
        settings = []
        for layers in a.layers.split(","):
            for alpha in (float(x) for x in a.alphas.split(",")):
                row = f"alpine-{layers}-a{alpha:g}"
                self.alpine_row(row, AlpineConfig(layers=layers, alpha=alpha))
                settings.append((row, AlpineConfig(layers=layers, alpha=alpha)))
        ranked = rank_settings([(r, self.rows[f"{self.name}/{r}"]) for r, _ in settings], base, self.metric)
        best_row, best = next((r, c) for r, c in settings if r == ranked[0])
        # the alternatives at the best setting first (minutes each), the fine-tuned rows last (a fine-tune each)
        trace_ratio = self.rows[f"{self.name}/{best_row}"]["matched_ratio"]
        for kind, config in matched_configs(best, _ratio_trace(trace_ratio), seed=a.seed).items():
            self.alpine_row(f"{kind}-{best.layers}-matched", config, matched_to=best_row)
        self.truncation_row("truncation-matched-flops", self.rows[f"{self.name}/{best_row}"]["flops_per_sample"])
        self.onnx_rows()
        if not self.done("alpine+int8"):
            self.alpine_row("alpine+int8", best, model=quantize(self.model, "int8"), composed_with=best_row)
        chosen = a.finetune_rows.split(",") if a.finetune_rows else finetune_settings(
            [(r, self.rows[f"{self.name}/{r}"]) for r, _ in settings], base, self.metric, a.finetune_best)
        unknown = sorted(set(chosen) - set(dict(settings)))
        if unknown:
            raise SystemExit(f"--finetune-rows: no setting {', '.join(unknown)}; the settings of this run are "
                             f"{', '.join(r for r, _ in settings)}")
        for row in chosen:
            config = dict(settings)[row]
            if not self.done(f"{row}-ft"):
                model = copy.deepcopy(self.pretrained)
                handle = attach(model, config, tokenizer=self.tokenizer)
                train = self.train_batches()
                start_x = train_step_ratio(self.pretrained, model, train, a.rounds, a.lr)  # pretrained weights
                cost = timed_finetune(self.task, model, self.tokenizer, self.splits, self.train_config(),
                                      not a.no_energy)
                handle.detach()
                end_model = copy.deepcopy(model)
                attach(end_model, config, tokenizer=self.tokenizer)
                end_x = train_step_ratio(self.model, end_model, train, a.rounds, a.lr)  # fine-tuned weights
                self.alpine_row(f"{row}-ft", config, model=model, finetune=cost,
                                finetune_x=_finetune_ratios(cost, base.get("finetune")),
                                train_step_speedup={"start": start_x, "end": end_x})
            # the naive alternative at the fine-tuned row's FLOPs: the baseline on inputs cut that short
            self.truncation_row(f"truncation-matched-{row}-ft", self.rows[f"{self.name}/{row}-ft"]["flops_per_sample"])


def _static_ratio(trace: Any) -> float:
    from greenprune.tokens.experiment import static_ratio_matching

    return static_ratio_matching(trace)


def _ratio_trace(pruned: float) -> Any:
    """A one-layer trace whose matched ratio is `pruned` (rows store the ratio, not the trace)."""
    from greenprune.tokens import LengthTrace

    trace = LengthTrace(pruning_layers=[0], num_layers=1)
    trace.record([torch.tensor([10000]), torch.tensor([round(10000 * (1 - pruned))])], [10000, 10000])
    return trace


def _finetune_ratios(cost: dict[str, Any], base: dict[str, Any] | None) -> dict[str, float | None]:
    if not base:
        return {}
    out: dict[str, float | None] = {}
    for key in ("seconds", "energy_kwh", "co2_kg"):
        a, b = base.get(key), cost.get(key)
        out[key] = b / a if a and b is not None else None
    return out


def finetune_settings(rows: list[tuple[str, dict[str, Any]]], base: dict[str, Any], metric: str, n: int
                      ) -> list[str]:
    """The settings fine-tuned with ALPINE attached: the best `metric` among those attached at inference within the
    aim's FLOPs budget (≤ FT_FLOPS, the aim's 0.5× plus the slack no α lands exactly on), where fine-tuning has
    quality to win back and a fine-tune to make cheaper; then the overall ranking, if fewer settings are that lean."""
    lean = sorted((r for r in rows if r[1]["flops_x"] <= FT_FLOPS), key=lambda r: -r[1]["metrics"][metric])
    chosen = [r for r, _ in lean][:n]
    return chosen + [r for r in rank_settings(rows, base, metric) if r not in chosen][: n - len(chosen)]


def rank_settings(rows: list[tuple[str, dict[str, Any]]], base: dict[str, Any], metric: str) -> list[str]:
    """Settings keeping ≥ 99% of the baseline metric, fewest FLOPs first; then the rest, best metric first."""
    floor = QUALITY_KEPT * base["metrics"][metric]
    good = sorted((r for r in rows if r[1]["metrics"][metric] >= floor), key=lambda r: r[1]["flops_x"])
    rest = sorted((r for r in rows if r[1]["metrics"][metric] < floor), key=lambda r: -r[1]["metrics"][metric])
    return [r for r, _ in good + rest]


# --- rendering ---------------------------------------------------------------------------------------------------

def _step_time(row: dict[str, Any]) -> str:
    """" [a → b]": training-step time × interleaved in one process, at the start and the end of fine-tuning."""
    x = row.get("train_step_speedup")
    return f" [{1 / x['start']:.3f} → {1 / x['end']:.3f}]" if x else ""


def _f(value: Any, digits: int = 3) -> str:
    return "-" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def render(name: str, rows: dict[str, Any], command: str, minutes: float) -> str:
    mine = {k.split("/", 1)[1]: v for k, v in rows.items() if k.startswith(f"{name}/")}
    base = mine.get("baseline")
    if base is None:
        return ""
    metric = PRIMARY[name]
    lines = ["| row | F1 [95% CI] | accuracy [95% CI] | Δ" + metric + " vs baseline [95% CI] | FLOPs × | "
             "throughput × (wall, 2t) | CPU-time speed-up (1t) | peak mem × | tokens in → out | fine-tune time × "
             "| fine-tune energy × |",
             "|" + "---|" * 11]
    labels = base.get("_labels")
    for row, v in mine.items():
        boot = v.get("bootstrap", {}).get(metric)
        delta = f"{boot['difference']:+.4f} [{boot['ci_low']:+.4f}, {boot['ci_high']:+.4f}]" if boot else "-"
        ft = v.get("finetune_x") or {}
        f1, acc = _f(v["metrics"]["f1"], 4), _f(v["metrics"]["accuracy"], 4)
        if labels and v.get("preds") and len(v["preds"]) == len(labels):
            # the row's own 95% intervals: percentile bootstrap for F1, Wilson for accuracy (a rate of n trials)
            low, high = bootstrap_metric_interval(labels, v["preds"], "f1", resamples=rows.get("_resamples", 2000))
            right = sum(int(y == p) for y, p in zip(labels, v["preds"], strict=True))
            a_low, a_high = wilson_interval(right, len(labels))
            f1, acc = f"{f1} [{low:.3f}, {high:.3f}]", f"{acc} [{a_low:.3f}, {a_high:.3f}]"
        lines.append(f"| {row} | {f1} | {acc} | {delta} "
                     f"| {_f(v.get('flops_x'))} | {_f(v.get('throughput_wall_2t'))} "
                     f"| {_f(v.get('cpu_time_speedup_1t'))} "
                     f"| {_f(v.get('memory_x'))} | {_f(v.get('tokens_in'), 1)} → {_f(v.get('tokens_out'), 1)} "
                     f"| {_f(ft.get('seconds'))}{_step_time(v)} | {_f(ft.get('energy_kwh'))} |")
    return f"""# ALPINE on {name}

Command: `{command}` ({minutes:.1f} min of alpine.py runs so far on this machine, all tasks and resumed runs added
up; every row also stores its command in the rows file)

Data: {base['sizes']} examples; test input length (code tokens, both sides of a pair): median
{base['lengths']['median']:.0f}, p90 {base['lengths']['p90']:.0f}; max_length {base['max_length']}.
Δ is candidate − baseline on the same test examples, paired bootstrap ({rows.get('_resamples', '?')} joint
resamples, seed 0). Speed columns are baseline time / row time on the first cost batches, interleaved in one
process; FLOPs counted with FlopCounterMode on the same batches. ALPINE rows are attached at inference to the
fine-tuned baseline unless their name ends in `-ft` (fine-tuned with ALPINE attached, same recipe). ONNX rows run
the exported fp32 graph (FLOPs = baseline's; their peak memory is not visible to the torch tracker). ALPINE cannot
be exported to ONNX (data-dependent sequence lengths and a custom attention kernel), so `alpine+int8` composes
it with torch dynamic int8. `-ft` rows fine-tune with ALPINE attached the best settings at ≤ {FT_FLOPS}× FLOPs
attached at inference; their fine-tune time × is the whole fine-tune against the baseline's (separate runs, 2
threads), then in brackets the training-step time × timed interleaved in one process (forward, backward, AdamW;
with the pretrained weights → with the fine-tuned ones). Energy: codecarbon's estimate over the whole fine-tune.

{chr(10).join(lines)}

## Aim check

{chr(10).join(aim_check(mine, metric))}
"""


def _versus_truncation(name: str, row: dict[str, Any], trunc: dict[str, Any] | None, base: dict[str, Any],
                       metric: str) -> list[str]:
    """One aim line: the row − the baseline on inputs cut to the row's FLOPs, paired bootstrap on the test set."""
    if not trunc or "_labels" not in base:
        return []
    diff = paired_bootstrap(base["_labels"], trunc["preds"], row["preds"], metric, seed=0)
    return [f"- {name} − truncation at FLOPs ×{trunc['flops_x']:.3f} (max_length {trunc['truncation']['max_length']}, "
            f"{metric} {trunc['metrics'][metric]:.4f}): Δ{metric} {diff['difference']:+.4f} [95% CI "
            f"{diff['ci_low']:+.4f}, {diff['ci_high']:+.4f}] (aim: beyond the CI, i.e. low > 0: "
            f"{'met' if diff['ci_low'] > 0 else 'missed'})"]


def aim_check(mine: dict[str, Any], metric: str) -> list[str]:
    base = mine["baseline"]
    alp = {k: v for k, v in mine.items() if k.startswith("alpine-") and not k.endswith("-ft")}
    if not alp:
        return ["- no ALPINE rows yet"]
    ranked = rank_settings(list(alp.items()), base, metric)
    best = alp[ranked[0]]
    keep = best["metrics"][metric] / base["metrics"][metric] if base["metrics"][metric] else float("nan")
    boot = best["bootstrap"][metric]
    out = [f"- best setting `{ranked[0]}`: FLOPs ×{best['flops_x']:.3f} (aim ≤ 0.5: "
           f"{'met' if best['flops_x'] <= 0.5 else 'missed'}), {metric} kept {keep:.3f} (aim ≥ 0.99: "
           f"{'met' if keep >= QUALITY_KEPT else 'missed'}; Δ {boot['difference']:+.4f}, 95% CI "
           f"[{boot['ci_low']:+.4f}, {boot['ci_high']:+.4f}])"]
    out += _versus_truncation("ALPINE", best, mine.get("truncation-matched-flops"), base, metric)
    cpu = best["cpu_time_speedup_1t"]
    out.append(f"- CPU-time speed-up alone ×{cpu:.2f} (aim ≥ 2.0: {'met' if cpu >= 2 else 'missed'}); peak memory "
               f"×{_f(best['memory_x'])} (aim ≤ 0.6: {'met' if (best['memory_x'] or 9) <= 0.6 else 'missed'})")
    comp = mine.get("alpine+int8")
    if comp:
        same = comp["bootstrap"][metric]["ci_high"] >= 0 >= comp["bootstrap"][metric]["ci_low"] or \
            comp["metrics"][metric] >= QUALITY_KEPT * base["metrics"][metric]
        out.append(f"- ALPINE + int8: CPU-time ×{comp['cpu_time_speedup_1t']:.2f} (aim ≥ 3 at the same quality: "
                   f"{'met' if comp['cpu_time_speedup_1t'] >= 3 and same else 'missed'})")
    for row, v in mine.items():
        if row.endswith("-ft") and v.get("finetune_x"):
            t, e = v["finetune_x"].get("seconds"), v["finetune_x"].get("energy_kwh")
            step = v.get("train_step_speedup")
            steps = [1 / step["start"], 1 / step["end"]] if step else []
            ok = t is not None and t <= 0.7 and (e is None or e <= 0.7) and all(x <= 0.7 for x in steps)
            kept = v["metrics"][metric] / base["metrics"][metric] if base["metrics"][metric] else float("nan")
            boot = v["bootstrap"][metric]
            out.append(f"- fine-tuning with ALPINE (`{row}`): time ×{_f(t)}"
                       + (f" (training steps interleaved ×{steps[0]:.3f} → ×{steps[1]:.3f})" if steps else "")
                       + f", energy ×{_f(e)} (aim ≤ 0.7: {'met' if ok else 'missed'}); FLOPs ×{_f(v['flops_x'])}, "
                       f"{metric} kept {kept:.3f} (Δ {boot['difference']:+.4f}, 95% CI [{boot['ci_low']:+.4f}, "
                       f"{boot['ci_high']:+.4f}]; aim ≥ 0.99 at ≤ 0.5× FLOPs: "
                       f"{'met' if kept >= QUALITY_KEPT and v['flops_x'] <= 0.5 else 'missed'})")
            out += _versus_truncation(f"`{row}`", v, mine.get(f"truncation-matched-{row}"), base, metric)
    out.append("- paper: −50% FLOPs, +28% throughput (GPU), 98.1% of the performance")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="minilm")
    parser.add_argument("--tasks", default="clone,defect,defect-long")
    parser.add_argument("--sizes", default="", help="per-task embedded sizes, e.g. clone=12000,defect=5600")
    parser.add_argument("--train-limit", type=int, default=None, help="use the first N training examples")
    parser.add_argument("--test-limit", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=float, default=2.0)
    parser.add_argument("--max-steps", type=int, default=None)
    parser.add_argument("--lr", type=float, default=5e-5)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--group-by-length", action="store_true",
                        help="fine-tune on batches of similar length (TrainConfig.group_by_length; a resumed "
                        "task with a saved baseline checkpoint keeps the batches it was fine-tuned with)")
    parser.add_argument("--max-length", type=int, default=None, help="default per task: clone 512, defect 256")
    parser.add_argument("--layers", default="all,odd,even")
    parser.add_argument("--alphas", default="0.5,1,1.5,2")
    parser.add_argument("--finetune-best", type=int, default=2,
                        help=f"fine-tune with ALPINE the N best settings at ≤ {FT_FLOPS}× FLOPs")
    parser.add_argument("--finetune-rows", default="",
                        help="comma list of settings to fine-tune with ALPINE instead (e.g. alpine-odd-a0.5)")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--cost-batches", type=int, default=4)
    parser.add_argument("--resamples", type=int, default=2000)
    parser.add_argument("--no-energy", action="store_true")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--markdown-only", action="store_true",
                        help="re-render the results files from the saved rows (the command shown is the measuring one)")
    args = parser.parse_args(argv)
    args.command = shlex.join(["python", "benchmarks/alpine.py", *(sys.argv[1:] if argv is None else argv)])
    args.out.mkdir(parents=True, exist_ok=True)
    rows_file = args.out / "alpine-rows.json"
    rows: dict[str, Any] = json.loads(rows_file.read_text()) if rows_file.is_file() else {}
    rows.setdefault("_resamples", args.resamples)
    spent = float(rows.get("_minutes", 0.0))  # over every resumed run
    start = time.perf_counter()

    def write_results(minutes: float) -> None:
        for name in args.tasks.split(","):
            command = rows.get(f"{name}/baseline", {}).get("command", args.command)  # the measuring command
            text = render(name, rows, command, minutes)
            if text:
                atomic_write_text(args.out / f"alpine-{name}.md", text)

    def save() -> None:
        rows["_minutes"] = spent + (time.perf_counter() - start) / 60
        atomic_write_text(rows_file, json.dumps(rows) + "\n")
        write_results(rows["_minutes"])

    if args.markdown_only:
        write_results(spent)
        return 0

    for name in [t for t in args.tasks.split(",") if t]:
        bench = TaskBench(args, name, rows, save)
        if f"{name}/baseline" in rows:
            rows[f"{name}/baseline"]["_labels"] = bench.labels
        bench.baseline()
        rows[f"{name}/baseline"]["_labels"] = bench.labels
        bench.run()
        save()
        print((args.out / f"alpine-{name}.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
