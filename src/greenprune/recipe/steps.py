"""The built-in step kinds: each is a function from the pipeline state to a new state plus a record, registered
once (`register_step` below) with its options model, how it restores on resume, and its stack label.

Steps call the other areas' public APIs (tasks, tokens, weights, structure, quantize, recover, measure).
Each kind also says how a resumed run gets its model back without redoing the work: from the checkpoint the step
wrote (`checkpoint`), by re-applying a cheap deterministic transform (`replay`), or not at all (`none`).
"""

from __future__ import annotations

import copy
import dataclasses
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from torch import nn

from greenprune.errors import GreenpruneError
from greenprune.measure import compare, measure_cost
from greenprune.measure.records import Comparison, ResultRecord
from greenprune.quantize import quantize
from greenprune.recipe.options import (
    EvaluateStep,
    FinetuneStep,
    MeasureStep,
    PruneStep,
    QuantizeStep,
    RecoverStep,
    TruncationStep,
)
from greenprune.recipe.registry import REGISTRY, StepKind, dump_options, register_step
from greenprune.structure.pipeline import TASK_CORPUS, StructureConfig
from greenprune.tasks import Splits, Task, TrainConfig, get_task
from greenprune.tokens import detach
from greenprune.tokens.config import AlpineConfig
from greenprune.weights import WeightPruningConfig, make_permanent, prune

if TYPE_CHECKING:
    from greenprune.recipe.grid import Unit
    from greenprune.recipe.schema import StepSpec


class StepError(GreenpruneError, RuntimeError):
    """A step cannot run on this model / task; the message names the step and why."""


# extra task sources tried before greenprune.tasks (custom tasks of a user, toy tasks of tests)
TASK_PROVIDERS: list[Callable[[str], Any]] = []


def register_task_provider(provider: Callable[[str], Any]) -> None:
    """Let recipes name tasks greenprune does not ship: `provider(name)` returns a Task or None."""
    if provider not in TASK_PROVIDERS:
        TASK_PROVIDERS.append(provider)


def resolve_task(name: str) -> Any:
    for provider in TASK_PROVIDERS:
        task = provider(name)
        if task is not None:
            return task
    return get_task(name)


@dataclass
class State:
    """What flows between steps of one pipeline."""

    unit: Unit
    model: nn.Module
    tokenizer: Any
    task: Task
    splits: Splits
    label: str = "baseline"
    baseline: nn.Module | None = None  # the model before the first modifying step
    baseline_tokenizer: Any = None  # its tokenizer (vocabulary pruning gives the stack a new one)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)  # stack label → quality metrics
    # stack label → the pipeline task's evaluation details (per-example predictions: paired tests between stacks)
    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    plugins: list[AlpineConfig] = field(default_factory=list)  # attached, not baked into weights (ALPINE)
    quantized: bool = False

    @property
    def model_name(self) -> str:
        return self.unit.spec.model


@dataclass
class StepContext:
    index: int
    label: str  # stack label after this step
    out_dir: Path  # the step's (temporary) folder; renamed into place when the step succeeds
    run_dir: Path
    command: str = ""


@dataclass
class StepOutput:
    record: ResultRecord | Comparison
    checkpoint: str | None = None  # folder (relative to the step folder) of a plain HF checkpoint


# ---------------------------------------------------------------- helpers


def _record(state: State, kind: str, opts: Any, ctx: StepContext, **kwargs: Any) -> ResultRecord:
    return ResultRecord(
        model=state.model_name, method=kind, config={"label": ctx.label, **dump_options(opts)},
        task=state.unit.spec.task, command=ctx.command, **kwargs,
    )


def _eval_examples(state: State, limit: int | None) -> list[Any]:
    examples = state.splits.test or state.splits.valid
    if not examples:
        raise StepError(f"task {state.unit.spec.task!r}: the data has no test or valid examples to evaluate on")
    return list(examples[:limit] if limit else examples)


def _with_plugins_detached(state: State, action: Callable[[], Any]) -> Any:
    """Run `action` with ALPINE switched off (checkpoints and structural surgery want the plain HF model)."""
    if not state.plugins:
        return action()
    detach(state.model)
    try:
        return action()
    finally:
        for plugin in state.plugins:
            _attach_alpine(state, plugin)


def write_step_checkpoint(state: State, folder: Path) -> None:
    """A plain HF checkpoint (safetensors + tokenizer) that `from_pretrained` reloads without greenprune."""
    if state.quantized:
        raise StepError("a dynamically quantised model has no plain HF checkpoint; quantize should be a late step")

    from greenprune.checkpoint import save_hf

    _with_plugins_detached(state, lambda: save_hf(state.model, state.tokenizer, folder, kind="recipe-step"))


def load_checkpoint(state: State, folder: Path) -> None:
    from greenprune.models import load_model

    loaded = load_model(folder, task=getattr(state.task, "head", None) or state.unit.spec.task)
    state.model, state.tokenizer = loaded.model, loaded.tokenizer
    for plugin in state.plugins:
        _attach_alpine(state, plugin)


def snapshot_baseline(state: State) -> None:
    """Keep a copy of the model before it is first changed: every later stack is measured against it."""
    if state.baseline is None:
        state.baseline = copy.deepcopy(state.model)
        state.baseline.eval()
        state.baseline_tokenizer = state.tokenizer


# ---------------------------------------------------------------- finetune / recover


def run_finetune(state: State, opts: FinetuneStep, ctx: StepContext) -> StepOutput:
    splits = state.splits
    if opts.limit or state.unit.spec.data.limit_train:
        limit = opts.limit or state.unit.spec.data.limit_train
        splits = copy.copy(splits)
        splits.train = list(splits.train[:limit])
    if not splits.train:
        raise StepError(f"finetune: task {state.unit.spec.task!r} has no training examples in this data")
    config = TrainConfig(
        epochs=opts.epochs, lr=opts.lr, batch_size=opts.batch_size, max_length=opts.max_length,
        seed=state.unit.seed, eval_limit=state.unit.spec.data.limit_eval, group_by_length=opts.group_by_length,
    )
    start = time.perf_counter()
    result = state.task.finetune(state.model, state.tokenizer, splits, config)
    state.model = result.model
    state.model.eval()
    write_step_checkpoint(state, ctx.out_dir / "model")
    metrics = {f"valid.{k}": float(v) for k, v in result.best_metrics.items()}
    metrics["train_seconds"] = time.perf_counter() - start
    record = _record(state, "finetune", opts, ctx, metrics=metrics, artifacts={"checkpoint": "model"},
                     notes=[f"best step {result.best_step}; {len(splits.train)} training examples"])
    return StepOutput(record, checkpoint="model")


def run_recover(state: State, opts: RecoverStep, ctx: StepContext) -> StepOutput:
    from greenprune.recover import load_pairs, recover, stdlib_pairs

    if state.quantized:
        raise StepError("recover: LoRA recovery needs float weights; put quantize after recover")
    pairs = (stdlib_pairs(limit=opts.pairs, seed=state.unit.seed) if opts.data == "stdlib"
             else load_pairs(opts.data, limit=opts.pairs))
    config = dataclasses.replace(opts, seed=state.unit.seed)
    start = time.perf_counter()
    result = _with_plugins_detached(
        state, lambda: recover(state.model, state.tokenizer, pairs, config, data_name=opts.data))
    state.model = result.model
    state.model.eval()
    write_step_checkpoint(state, ctx.out_dir / "model")
    summary = result.summary()
    metrics = {"train_seconds": time.perf_counter() - start}
    for key in ("loss_first", "loss_last"):
        if isinstance(summary.get(key), int | float):
            metrics[key] = float(summary[key])
    return StepOutput(
        _record(state, "recover", config, ctx, metrics=metrics, artifacts={"checkpoint": "model"},
                notes=[f"LoRA on {result.pairs} pairs, {result.steps} steps"]),
        checkpoint="model",
    )


# ---------------------------------------------------------------- ALPINE


def _attach_alpine(state: State, opts: AlpineConfig) -> None:
    from greenprune.tokens import attach

    attach(state.model, opts, tokenizer=state.tokenizer)


def run_alpine(state: State, opts: AlpineConfig, ctx: StepContext) -> StepOutput:
    _attach_alpine(state, opts)
    state.plugins.append(opts)
    return StepOutput(_record(state, "alpine", opts, ctx, notes=["attached in memory; replayed on resume"]))


def _alpine_label(opts: AlpineConfig) -> str:
    return f"alpine({opts.layers if isinstance(opts.layers, str) else 'custom'})"


# ---------------------------------------------------------------- weights


def run_prune(state: State, opts: PruneStep, ctx: StepContext) -> StepOutput:
    if state.quantized:
        raise StepError("prune: the model is already quantised; put quantize after prune")
    options = {f.name: getattr(opts, f.name) for f in dataclasses.fields(WeightPruningConfig)}
    config = WeightPruningConfig(**{**options, "seed": state.unit.seed})
    # a criterion that needs activations (wanda) calibrates on `config.calibration` through the tokenizer
    report = prune(state.model, config, tokenizer=state.tokenizer)
    if opts.permanent:
        make_permanent(state.model)
    write_step_checkpoint(state, ctx.out_dir / "model")
    metrics = {"sparsity_targeted": float(report.sparsity), "sparsity_model": float(report.model_sparsity)}
    return StepOutput(
        _record(state, "prune", opts, ctx, metrics=metrics, artifacts={"checkpoint": "model"}), checkpoint="model"
    )


# ---------------------------------------------------------------- structure


def _task_calibration(state: State, opts: StructureConfig) -> Callable[[Any], list[dict[str, Any]]]:
    """An encoder calibrates on the task's own training examples (a decoder on stdlib code, the pipeline's default)."""
    pool = list(state.splits.train) or list(state.splits.valid) or list(state.splits.test)
    if not pool:
        raise StepError("structure: no examples to calibrate on")
    examples = pool[: opts.calib_texts]

    def batches(tokenizer: Any) -> list[dict[str, Any]]:
        out = state.task.batches(tokenizer, examples, batch_size=min(opts.calib_batch_size, len(examples)),
                                 max_length=opts.calib_seq_len)
        return [{k: v for k, v in b.items() if k != "labels"} for b in out][: opts.calib_batches]

    return batches


def _corpus_texts(state: State) -> list[str]:
    texts = []
    for example in [*state.splits.train, *state.splits.valid, *state.splits.test]:
        texts += [t for t in (example.text, getattr(example, "text_pair", None), getattr(example, "target", None)) if t]
    return texts


def run_structure(state: State, opts: StructureConfig, ctx: StepContext) -> StepOutput:
    """The structural pipeline of `greenprune structure` (vocabulary → layers → FFN → KV groups) on this state."""
    from greenprune.models.families import family_of
    from greenprune.structure.pipeline import run_structure as structural_pipeline

    if state.quantized:
        raise StepError("structure: the model is already quantised; put quantize after structural pruning")
    before = sum(p.numel() for p in state.model.parameters())
    encoder = family_of(state.model).kind != "decoder"

    def prune_structure() -> Any:
        return structural_pipeline(
            state.model, state.tokenizer, opts,
            vocab_texts=_corpus_texts(state) if opts.vocab_corpus == TASK_CORPUS else None,
            calibration=_task_calibration(state, opts) if encoder else None,
            calibration_name=f"{state.unit.spec.task} examples" if encoder else "",
        )

    state.model, state.tokenizer, report = _with_plugins_detached(state, prune_structure)
    state.model.eval()
    notes: list[str] = []
    metrics: dict[str, float] = {}
    for step in report.steps:
        if step["step"] == "vocab":
            where = "the task data" if opts.vocab_corpus == TASK_CORPUS else opts.vocab_corpus
            notes.append(f"vocabulary {step['vocab_before']} → {step['vocab_after']} tokens (exact on {where})")
            metrics["vocab_after"] = float(step["vocab_after"])
        elif step["step"] == "layers":
            notes.append(f"removed layers {list(step.get('removed', []))} by {opts.metric}")
        elif step["step"] == "ffn":
            notes.append(f"FFN {step['intermediate_before']} → {step['intermediate_after']} neurons per layer")
        elif step["step"] == "kv_groups":
            notes.append(f"KV heads {step['kv_heads'][0]} → {step['kv_heads'][1]} per layer")
    metrics["params_ratio"] = sum(p.numel() for p in state.model.parameters()) / before
    write_step_checkpoint(state, ctx.out_dir / "model")
    return StepOutput(
        _record(state, "structure", opts, ctx, metrics=metrics, notes=notes, artifacts={"checkpoint": "model"}),
        checkpoint="model",
    )


# ---------------------------------------------------------------- quantize


def _quantize(state: State, opts: QuantizeStep) -> None:
    state.model = quantize(state.model, opts.dtype, inplace=True)
    state.model.eval()
    state.quantized = opts.dtype == "int8"


def run_quantize(state: State, opts: QuantizeStep, ctx: StepContext) -> StepOutput:
    _quantize(state, opts)
    return StepOutput(_record(state, "quantize", opts, ctx, notes=["applied in memory; replayed on resume"]))


# ---------------------------------------------------------------- evaluate / measure


def _task_for_evaluation(state: State, opts: EvaluateStep) -> tuple[Any, list[Any], str]:
    if opts.task is None or opts.task == state.unit.spec.task:
        limit = opts.limit or state.unit.spec.data.limit_eval
        return state.task, _eval_examples(state, limit), state.unit.spec.task
    task = resolve_task(opts.task)
    data = state.unit.spec.data
    splits = task.embedded(size=opts.size or data.size, seed=data.seed if data.seed is not None else state.unit.seed)
    examples = splits.test or splits.valid
    limit = opts.limit or state.unit.spec.data.limit_eval
    return task, list(examples[:limit] if limit else examples), opts.task


def run_evaluate(state: State, opts: EvaluateStep, ctx: StepContext) -> StepOutput:
    task, examples, task_name = _task_for_evaluation(state, opts)
    label = opts.label or ctx.label
    start = time.perf_counter()
    kwargs: dict[str, Any] = {k: v for k in ("batch_size", "max_length", "max_new_tokens")
                              if (v := getattr(opts, k)) is not None}
    if task.name == "generate":
        from greenprune.tasks.sandbox import SandboxConfig

        kwargs["sandbox"] = SandboxConfig(isolation=opts.sandbox)
    scores = task.evaluate(state.model, state.tokenizer, examples, **kwargs)
    metrics = {f"{task_name}.{k}" if task_name != state.unit.spec.task else k: float(v) for k, v in scores.items()
               if isinstance(v, int | float)}
    state.metrics.setdefault(label, {}).update(metrics)
    record = _record(state, "evaluate", opts, ctx, metrics=metrics,
                     notes=[f"{len(examples)} examples of {task_name}; {time.perf_counter() - start:.1f}s"])
    record.config["label"] = label
    record.task = task_name
    record.details = getattr(scores, "details", {})
    if task_name == state.unit.spec.task:
        state.details[label] = record.details
    return StepOutput(record)


def restore_evaluate(state: State, record: ResultRecord | Comparison) -> None:
    assert isinstance(record, ResultRecord)
    label = str(record.config.get("label", "baseline"))
    state.metrics.setdefault(label, {}).update(record.metrics)
    if record.task == state.unit.spec.task:
        state.details[label] = record.details


def _measure_batches(state: State, opts: MeasureStep, tokenizer: Any = None) -> list[dict[str, Any]]:
    examples = _eval_examples(state, opts.batches * opts.batch_size)
    batches = list(state.task.batches(tokenizer or state.tokenizer, examples, batch_size=opts.batch_size,
                                      max_length=opts.max_length))
    return [{k: v for k, v in b.items() if k != "labels"} for b in batches[: opts.batches]]


def _baseline_tokenizer(state: State) -> Any:
    return state.baseline_tokenizer if state.baseline_tokenizer is not None else state.tokenizer


def run_measure(state: State, opts: MeasureStep, ctx: StepContext) -> StepOutput:
    from greenprune.measure.profile import profile_metrics

    label = opts.label or ctx.label
    batches = _measure_batches(state, opts)
    quality = dict(state.metrics.get(label, {}))
    country = state.unit.country
    if state.baseline is None:  # nothing changed yet: this is the baseline's own cost
        cost = measure_cost(state.model, batches, passes=opts.rounds, energy=opts.energy, country=country)
        metrics = {**quality, **profile_metrics(state.model, batches)}
        record = _record(state, "baseline", opts, ctx, metrics=metrics, cost=cost)
        record.config["label"] = label
        return StepOutput(record)
    base_quality = dict(state.metrics.get("baseline", {}))
    shared = sorted(set(base_quality) & set(quality))
    # the same examples, each model encoded by its own tokenizer (a pruned vocabulary has other ids)
    base_tokenizer = _baseline_tokenizer(state)
    base_batches = batches if base_tokenizer is state.tokenizer else _measure_batches(state, opts, base_tokenizer)
    comparison = compare(
        state.baseline, state.model, base_batches, candidate_batches=batches,
        names=(state.model_name, state.model_name), methods=("baseline", label),
        configs=({"label": "baseline"}, {**dump_options(opts), "label": label}),
        metrics=({k: base_quality[k] for k in shared}, {k: quality[k] for k in shared}) if shared else None,
        task=state.unit.spec.task, rounds=opts.rounds, energy=opts.energy, country=country,
    )
    # quality not shared by both sides is still worth keeping in the records
    comparison.baseline.metrics.update(base_quality)
    comparison.candidate.metrics.update(quality)
    comparison.baseline.metrics.update(profile_metrics(state.baseline, base_batches))
    comparison.candidate.metrics.update(profile_metrics(state.model, batches))
    comparison.candidate.command = comparison.baseline.command = ctx.command
    return StepOutput(comparison)


def run_truncation(state: State, opts: TruncationStep, ctx: StepContext) -> StepOutput:
    """The baseline on inputs cut to the current stack's counted FLOPs: evaluated, measured against the baseline
    (interleaved, each on its own encoding of the same examples), and paired with the stack on the same examples."""
    from greenprune.tasks.metrics import Prediction, paired_bootstrap, paired_predictions
    from greenprune.tokens.baselines import flops_per_sample, match_truncation

    task_name = state.unit.spec.task
    if state.baseline is None:
        raise StepError("truncation: no stack to match yet; put it after a step that changes the model (alpine, "
                        "structure, prune)")
    if getattr(state.task, "head", "") != "classification":
        raise StepError(f"truncation: task {task_name!r} is not a classification task; cutting inputs short is the "
                        "alternative to token pruning in encoders (clone, defect)")
    cost_examples = _eval_examples(state, opts.batches * opts.batch_size)
    tokenizer = _baseline_tokenizer(state)  # the stack may carry a pruned vocabulary; the baseline keeps its own

    def encoded(tok: Any, length: int) -> list[dict[str, Any]]:
        batches = state.task.batches(tok, cost_examples, batch_size=opts.batch_size, max_length=length)
        return [{k: v for k, v in b.items() if k != "labels"} for b in batches]

    def batches_at(length: int) -> list[dict[str, Any]]:
        return encoded(tokenizer, length)

    try:
        target = flops_per_sample(state.model, encoded(state.tokenizer, opts.max_length))
        match = match_truncation(state.baseline, batches_at, target, low=opts.min_length, high=opts.max_length)
    except GreenpruneError as exc:
        raise StepError(f"truncation: {exc}") from exc
    if match.max_length == opts.max_length and match.flops_per_sample <= target:
        raise StepError(f"truncation: {ctx.label} executes no fewer counted FLOPs than the baseline at max_length "
                        f"{opts.max_length} ({target:.4g} vs {match.flops_per_sample:.4g} per sample), so there is no "
                        "shorter input to match; truncation is the alternative to token or structural pruning")
    label = f"truncation@{match.max_length}"
    examples = _eval_examples(state, opts.limit or state.unit.spec.data.limit_eval)
    scores = state.task.evaluate(state.baseline, tokenizer, examples, batch_size=opts.batch_size,
                                 max_length=match.max_length)
    quality = {k: float(v) for k, v in scores.items() if isinstance(v, int | float)}
    state.metrics[label] = quality
    details: dict[str, Any] = {**getattr(scores, "details", {}), "truncation": match.describe(),
                               "matched_stack": ctx.label}
    notes = [f"max_length {match.max_length}: {match.flops_per_sample:.4g} FLOPs/sample vs {ctx.label}'s "
             f"{target:.4g} (off by {match.relative_error:.1%}); {len(examples)} examples evaluated"]

    def scored(records: list[dict[str, Any]] | None) -> list[Prediction]:
        return [(str(e["id"]), int(e["label"]), int(e["pred"])) for e in records or []]

    metric = state.task.primary_metric
    # stack − truncation, the same examples resampled jointly: does token pruning beat cutting the input?
    paired = paired_predictions(scored(details.get("per_example")),
                                scored(state.details.get(ctx.label, {}).get("per_example")))
    if paired is not None:
        details["versus_stack"] = {"stack": ctx.label, "metric": metric, **paired_bootstrap(*paired, metric)}
    else:
        notes.append(f"not paired with {ctx.label}: it was not evaluated on these {len(examples)} examples before "
                     "this step (an evaluate step with the same limit pairs them)")
    base_quality = dict(state.metrics.get("baseline", {}))
    shared = sorted(set(base_quality) & set(quality))
    comparison = compare(
        state.baseline, state.baseline, batches_at(opts.max_length), candidate_batches=batches_at(match.max_length),
        names=(state.model_name, state.model_name), methods=("baseline", "truncation"),
        configs=({"label": "baseline"}, {**dump_options(opts), "label": label}),
        metrics=({k: base_quality[k] for k in shared}, {k: quality[k] for k in shared}) if shared else None,
        task=task_name, rounds=opts.rounds, energy=opts.energy, country=state.unit.country,
    )
    comparison.candidate.metrics.update(quality)
    comparison.candidate.details = details
    comparison.candidate.notes = notes
    comparison.candidate.command = comparison.baseline.command = ctx.command
    return StepOutput(comparison)


def _prune_label(opts: PruneStep) -> str:
    if opts.pattern != "unstructured":
        return f"{opts.method}-{opts.pattern}"
    return f"{opts.method}-{round(float(opts.sparsity or 0) * 100)}%"


register_step("finetune", run_finetune, "checkpoint", modifies=False, options=FinetuneStep)
register_step("alpine", run_alpine, "replay", modifies=True, options=AlpineConfig,
              label=_alpine_label)
register_step("prune", run_prune, "checkpoint", modifies=True, options=PruneStep,
              label=_prune_label)
register_step("structure", run_structure, "checkpoint", modifies=True,
              options=StructureConfig, label=StructureConfig.label)
register_step("quantize", run_quantize, "replay", modifies=True, options=QuantizeStep,
              label=lambda opts: opts.dtype)
register_step("recover", run_recover, "checkpoint", modifies=True, options=RecoverStep,
              label=lambda opts: opts.method)
register_step("evaluate", run_evaluate, "none", modifies=False, options=EvaluateStep,
              on_restore=restore_evaluate)
register_step("measure", run_measure, "none", modifies=False, options=MeasureStep)
register_step("truncation", run_truncation, "none", modifies=False, options=TruncationStep)


def replay(state: State, step: StepSpec, ctx: StepContext, record: ResultRecord | Comparison) -> None:
    """Bring `state` to where it was after a finished step, without redoing its expensive work.

    `ctx.out_dir` is the finished step's folder (checkpoints are read from it, never written).
    """
    kind = REGISTRY[step.kind]
    if kind.modifies:
        snapshot_baseline(state)
    if kind.restore == "checkpoint":
        load_checkpoint(state, ctx.out_dir / "model")
    elif kind.restore == "replay":
        kind.run(state, step.options, ctx)  # cheap and deterministic; its record is the one on disk
    if kind.on_restore is not None:
        kind.on_restore(state, record)


__all__ = [
    "REGISTRY",
    "State",
    "StepContext",
    "StepError",
    "StepKind",
    "StepOutput",
    "register_step",
    "register_task_provider",
    "replay",
    "resolve_task",
    "snapshot_baseline",
    "write_step_checkpoint",
]
