"""One ALPINE experiment: a (fine-tuned) baseline against ALPINE settings, quality and cost from the same run.

Used by `greenprune alpine` (benchmarks/alpine.py has its own harness for truncation and ONNX rows).
The plan: fine-tune the baseline once (optional),
evaluate it; then, per setting, attach ALPINE to a copy of that model at inference, evaluate, and measure its
cost against the unpruned model with `greenprune.measure.compare` (interleaved, same batches, same process).
Optionally a setting is also fine-tuned with ALPINE on (a copy of the pre-trained model, same recipe).
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from greenprune.tokens.attach import attach
from greenprune.tokens.config import AlpineConfig
from greenprune.tokens.trace import LengthTrace


@dataclass
class ExperimentPlan:
    """Knobs of an experiment; every one is written into the records."""

    task: str = "defect"
    data: str | None = None  # official-format data; None → the embedded corpus
    size: int = 600  # embedded corpus size (train + valid + test)
    seed: int = 0
    finetune: bool = True
    epochs: float = 2.0
    lr: float = 5e-5
    batch_size: int = 16
    max_length: int = 256
    group_by_length: bool = False  # fine-tune on batches of similar length (TrainConfig.group_by_length)
    limit: int | None = None  # test examples (None: all)
    cost_batches: int = 4  # test batches timed by compare()
    rounds: int = 5  # interleaved timing rounds
    energy: bool = True

    def describe(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class SettingResult:
    name: str
    config: AlpineConfig
    comparison: Any  # greenprune.measure.Comparison
    trace: LengthTrace
    finetuned_with_alpine: bool = False


def static_ratio_matching(trace: LengthTrace) -> float:
    """The static pruned fraction per pruning layer that matches an adaptive run's mean per-layer kept ratio."""
    lengths = trace.all_lengths().double()
    if not trace.pruning_layers or lengths.shape[1] == 0:
        return 0.0
    kept = [float((lengths[i + 1] / lengths[i].clamp(min=1)).mean()) for i in trace.pruning_layers]
    return max(0.0, min(0.95, 1.0 - sum(kept) / len(kept)))


class AlpineExperiment:
    """Loads the model and task once, fine-tunes the baseline once, then evaluates as many settings as asked."""

    def __init__(self, model: str, plan: ExperimentPlan, log: Callable[[str], None] = print) -> None:
        from greenprune.models import load_model
        from greenprune.models.positions import check_sequence_length
        from greenprune.tasks import get_task

        self.spec = model
        self.plan = plan
        self.log = log
        self.task = get_task(plan.task)
        if self.task.head != "classification":
            from greenprune.tokens.config import AlpineError

            raise AlpineError(f"--task {plan.task}: ALPINE runs on encoder classification tasks (defect, clone)")
        p = plan
        self.splits = self.task.load(p.data) if p.data else self.task.embedded(size=p.size, seed=p.seed)
        self.splits.nonempty("test")  # before any fine-tuning time is spent
        if p.finetune:
            self.splits.nonempty("train")
        self.loaded = load_model(model, task=plan.task)
        check_sequence_length(self.loaded.model, p.max_length, option="max_length", name=model)
        self.pretrained = copy.deepcopy(self.loaded.model) if p.finetune else None
        self.model = self.loaded.model
        self.tokenizer = self.loaded.tokenizer
        self.test = self.splits.test[: p.limit] if p.limit else self.splits.test
        self.notes: list[str] = []
        if p.finetune:
            log(f"fine-tuning the baseline {model} on {p.task} ({len(self.splits.train)} examples, {p.epochs} epochs)")
            self.task.finetune(self.model, self.tokenizer, self.splits, self._train_config())
        self.model.eval()
        self.baseline_metrics = self.evaluate(self.model)
        log(f"baseline {p.task}: " + ", ".join(f"{k}={v:.4f}" for k, v in self.baseline_metrics.items()))

    def _train_config(self) -> Any:
        from greenprune.tasks import TrainConfig

        p = self.plan
        return TrainConfig(epochs=p.epochs, lr=p.lr, batch_size=p.batch_size, max_length=p.max_length, seed=p.seed,
                           device="cpu", group_by_length=p.group_by_length)

    def evaluate(self, model: Any) -> dict[str, float]:
        p = self.plan
        return self.task.evaluate(model, self.tokenizer, self.test, batch_size=p.batch_size, max_length=p.max_length)

    def cost_batches(self) -> list[dict[str, Any]]:
        p = self.plan
        batches = self.task.batches(self.tokenizer, self.test, batch_size=p.batch_size, max_length=p.max_length)
        return list(itertools.islice(batches, p.cost_batches))

    def run(self, name: str, config: AlpineConfig, *, finetune_with_alpine: bool = False) -> SettingResult:
        """Evaluate one setting (attached at inference, or fine-tuned with ALPINE on) and compare its cost."""
        from greenprune.measure import compare

        p = self.plan
        if finetune_with_alpine:
            if self.pretrained is None:
                raise ValueError("fine-tuning with ALPINE on needs ExperimentPlan(finetune=True)")
            candidate = copy.deepcopy(self.pretrained)
            handle = attach(candidate, config, tokenizer=self.tokenizer)
            self.log(f"{name}: fine-tuning with ALPINE on")
            self.task.finetune(candidate, self.tokenizer, self.splits, self._train_config())
        else:
            candidate = copy.deepcopy(self.model)
            handle = attach(candidate, config, tokenizer=self.tokenizer)
        candidate.eval()
        if handle.trace is None:
            raise ValueError(f"{name}: the experiment needs AlpineConfig(trace=True)")
        handle.trace.reset()
        metrics = self.evaluate(candidate)
        trace = copy.deepcopy(handle.trace)  # the evaluation forwards only, not timing passes
        handle.trace.reset()
        comparison = compare(
            self.model,
            candidate,
            self.cost_batches(),
            names=(self.spec, f"{self.spec}+alpine"),
            methods=("baseline", f"alpine:{name}"),
            configs=(p.describe(), {**p.describe(), "alpine": config.describe(),
                                    "finetuned_with_alpine": finetune_with_alpine}),
            metrics=(self.baseline_metrics, metrics),
            task=p.task,
            rounds=p.rounds,
            energy=p.energy,
        )
        means = trace.mean_lengths()
        comparison.candidate.notes.append(
            f"mean tokens per sequence, input → last layer: {means[0]:.1f} → {means[-1]:.1f} (evaluation split)"
        )
        self.log(
            f"{name}: f1 {metrics.get('f1', float('nan')):.4f} (baseline {self.baseline_metrics.get('f1', 0):.4f}), "
            f"FLOPs ×{comparison.ratios.get('flops_per_sample', float('nan')):.3f}, "
            f"latency ×{comparison.ratios.get('latency_interleaved', float('nan')):.3f}"
        )
        return SettingResult(name, config, comparison, trace, finetune_with_alpine)


def save_experiment(results: list[SettingResult], out_dir: str | Path, stem: str) -> dict[str, Path]:
    """Comparisons (JSON records), traces (JSON) and the length plot, side by side in `out_dir`."""
    from greenprune.measure.records import save_json
    from greenprune.tokens.trace import plot_trace

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"records": save_json([r.comparison for r in results], out / f"{stem}.json")}
    traces = {r.name: r.trace for r in results}
    for r in results:
        r.trace.save_json(out / f"{stem}-trace-{r.name}.json")
    paths["plot"] = plot_trace(traces, out / f"{stem}.png", title=f"ALPINE: mean sequence length per layer ({stem})")
    return paths
