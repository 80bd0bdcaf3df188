"""One training loop for every fine-tune greenprune runs: task fine-tuning, LoRA recovery, lottery rounds.

Each of those used to have its own loop, and they drifted apart (one checked for a non-finite loss, one had a
hand-written schedule, each padded batches its own way). This loop owns the optimizer mechanics: AdamW, gradient
accumulation and clipping, the learning-rate schedule, a step budget spread over as many epochs as it takes,
periodic evaluation with early stopping, and restoring the best evaluated state. Callers state only what differs,
through hooks: which parameters train, how a batch becomes a loss, which weight entries must stay zero, and what
to refresh once a saved state is loaded back.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import torch
from torch import nn

from greenprune._utils import progress
from greenprune.errors import GreenpruneError, OptionError, require_positive

IGNORE_INDEX = -100  # label of positions that carry no loss (prompt and padding), as transformers' losses expect
SCHEDULES = ("constant", "linear", "cosine")
KEEPS = ("best", "last")
MAX_SEED = 2**32 - 1  # numpy's seed range, which transformers.set_seed passes the seed to

Batch = dict[str, torch.Tensor]
Evaluate = Callable[[nn.Module, int, float], "float | None"]


class TrainingError(GreenpruneError, ValueError):
    """Training input the loop cannot use: no batches, an epoch shorter than one accumulation, an unknown mask."""


@dataclass(frozen=True)
class LoopConfig:
    """How the loop optimises; callers translate their own options (epochs, stop policies) into these.

    `eval_every=0` evaluates only after the last step. With `patience`, training stops once a score is worse than
    each of the previous `patience` scores. `keep="best"` leaves the best-scoring evaluated state in the model,
    `keep="last"` the weights where training stopped. `decay_vectors=False` exempts biases and norm weights
    (parameters with at most one dimension) from weight decay, as the usual fine-tuning scripts do.
    """

    steps: int
    lr: float
    weight_decay: float = 0.0
    decay_vectors: bool = True
    max_grad_norm: float | None = 1.0  # None or 0: no clipping (transformers' Trainer convention)
    grad_accum: int = 1
    schedule: str = "constant"
    warmup_steps: int = 0
    eval_every: int = 0
    patience: int | None = None
    keep: str = "best"
    higher_is_better: bool = True
    seed: int | None = None  # transformers.set_seed(seed) before the first batch; None leaves the RNGs alone
    desc: str = "train"

    def __post_init__(self) -> None:
        require_positive(steps=self.steps, grad_accum=self.grad_accum)
        if self.schedule not in SCHEDULES:
            raise OptionError(f"unknown schedule {self.schedule!r}; expected one of: {', '.join(SCHEDULES)}")
        if self.keep not in KEEPS:
            raise OptionError(f"unknown keep {self.keep!r}; expected one of: {', '.join(KEEPS)}")
        if self.patience is not None:
            require_positive(patience=self.patience)
        for name, value in (("eval_every", self.eval_every), ("warmup_steps", self.warmup_steps)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise OptionError(f"{name} must be a non-negative integer, got {value!r}")
        if self.seed is not None:
            check_seed(self.seed)


@dataclass
class TrainingRun:
    """What the loop did: steps run, the loss of each step, every score, and which step's weights the model holds."""

    steps: int
    losses: list[float] = field(default_factory=list)  # per optimizer step: mean over its micro-batches
    evals: list[tuple[int, float]] = field(default_factory=list)  # (step, score) of every scored evaluation
    selected_step: int = 0
    score: float | None = None  # the selected step's score (None when nothing was scored)
    stopped_early: bool = False


def check_seed(seed: int, option: str = "seed") -> None:
    """Refuse a seed numpy cannot take, naming the option, before any work rather than deep inside set_seed."""
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED:
        raise OptionError(f"{option} must be an integer from 0 to {MAX_SEED}, got {seed!r}")


def model_device(model: nn.Module) -> torch.device:
    """The device of the model's first parameter (cpu for a model without parameters)."""
    try:
        return next(model.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def pad_batch(rows: Sequence[tuple[Sequence[int], Sequence[int]]], pad_id: int) -> Batch:
    """Right-padded input_ids / attention_mask / labels from (token ids, labels) rows.

    Labels are `IGNORE_INDEX` wherever a row gives no label (its prompt) and on padding, so the loss covers the
    target tokens only, whatever the batch width.
    """
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(rows), width), dtype=torch.long)
    labels_t = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
    for i, (ids, labels) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids, dtype=torch.long)
        attention[i, : len(ids)] = 1
        labels_t[i, : len(labels)] = torch.tensor(labels, dtype=torch.long)
    return {"input_ids": input_ids, "attention_mask": attention, "labels": labels_t}


def steps_for(batches_per_epoch: int, epochs: float, grad_accum: int = 1) -> tuple[int, int]:
    """(optimizer steps per epoch, total steps) for a budget given in epochs; at least one of each."""
    per_epoch = max(1, batches_per_epoch // grad_accum)
    return per_epoch, max(1, math.ceil(per_epoch * epochs))


def _mask_targets(model: nn.Module, masks: Mapping[str, torch.Tensor]) -> list[tuple[nn.Parameter, torch.Tensor]]:
    out = []
    for name, keep in masks.items():
        try:
            param = model.get_parameter(name)
        except AttributeError as exc:
            raise TrainingError(f"mask for {name!r}: {type(model).__name__} has no such parameter") from exc
        if tuple(keep.shape) != tuple(param.shape):
            raise TrainingError(f"mask for {name!r} has shape {tuple(keep.shape)}, the parameter {tuple(param.shape)}")
        out.append((param, keep.to(device=param.device, dtype=param.dtype)))
    return out


def _optimizer(params: list[nn.Parameter], config: LoopConfig) -> torch.optim.Optimizer:
    if config.decay_vectors:
        return torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    return torch.optim.AdamW(
        [{"params": [p for p in params if p.ndim > 1], "weight_decay": config.weight_decay},
         {"params": [p for p in params if p.ndim <= 1], "weight_decay": 0.0}],
        lr=config.lr,
    )


def _scheduler(optimizer: torch.optim.Optimizer, config: LoopConfig) -> torch.optim.lr_scheduler.LRScheduler | None:
    if config.schedule == "constant":
        return None
    from transformers import get_cosine_schedule_with_warmup, get_linear_schedule_with_warmup

    build = get_linear_schedule_with_warmup if config.schedule == "linear" else get_cosine_schedule_with_warmup
    return build(optimizer, config.warmup_steps, config.steps)


def _default_loss(model: nn.Module, batch: Batch) -> torch.Tensor:
    return model(**batch).loss


def train(
    model: nn.Module,
    batches: Callable[[], Iterable[Batch]],
    config: LoopConfig,
    *,
    evaluate: Evaluate | None = None,
    parameters: Callable[[nn.Module], Iterable[nn.Parameter]] | None = None,
    loss: Callable[[nn.Module, Batch], torch.Tensor] = _default_loss,
    masks: Mapping[str, torch.Tensor] | None = None,
    on_restore: Callable[[nn.Module], None] | None = None,
) -> TrainingRun:
    """Run `config.steps` optimizer steps on `model` in place; the model is left in eval mode.

    `batches()` gives one epoch of batches (model inputs with labels); it is called again whenever an epoch ends
    before the budget does, so a shuffling source reshuffles and an endless iterator is simply read on.
    `evaluate(model, step, train_loss)` runs every `eval_every` steps and after the last one, in eval mode, with
    the mean training loss since the previous evaluation; it returns the score (None: record nothing).
    `parameters(model)`: what trains (default: every parameter that requires grad). `loss(model, batch)`: the
    loss to minimise (default: the model's own). `masks`: parameter name → keep-mask; entries outside it are set
    to zero before training and after every optimizer step. `on_restore(model)` runs after the best state is
    loaded back, for state derived from it (e.g. the masked weight of a pruning reparametrisation).
    """
    if config.seed is not None:
        from transformers import set_seed

        set_seed(config.seed)
    params = list(parameters(model) if parameters else (p for p in model.parameters() if p.requires_grad))
    if not params:
        raise TrainingError(f"{config.desc}: no parameter of {type(model).__name__} is trainable")
    kept = _mask_targets(model, masks or {})

    @torch.no_grad()
    def apply_masks() -> None:
        for param, keep in kept:
            param.mul_(keep)

    optimizer = _optimizer(params, config)
    scheduler = _scheduler(optimizer, config)
    device = model_device(model)
    run = TrainingRun(steps=0)
    best_state: dict[str, torch.Tensor] | None = None
    running, seen = 0.0, 0  # training loss since the last evaluation
    bar = progress(range(config.steps), config.desc, config.steps)
    ticks = iter(bar)

    def better(score: float, than: float | None) -> bool:
        if than is None:
            return True
        return score > than if config.higher_is_better else score < than

    def scored(score: float) -> None:
        nonlocal best_state
        if config.keep == "best" and better(score, run.score):
            run.selected_step, run.score = run.steps, score
            best_state = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        run.evals.append((run.steps, score))
        previous = [s for _, s in run.evals[-1 - config.patience : -1]] if config.patience else []
        if config.patience and len(previous) == config.patience and all(better(p, score) for p in previous):
            run.stopped_early = True

    apply_masks()
    model.train()
    try:
        while run.steps < config.steps and not run.stopped_early:
            optimizer.zero_grad(set_to_none=True)  # a partial accumulation does not carry over into a new epoch
            micro, step_loss, stepped = 0, 0.0, False
            for micro, batch in enumerate(batches(), start=1):
                value = loss(model, {k: v.to(device) for k, v in batch.items()})
                number = float(value.detach())
                if not math.isfinite(number):
                    raise FloatingPointError(
                        f"{config.desc}: training loss became {number} at step {run.steps}; lower lr")
                (value / config.grad_accum if config.grad_accum > 1 else value).backward()
                running += number
                seen += 1
                step_loss += number
                if micro % config.grad_accum:
                    continue
                if config.max_grad_norm:
                    torch.nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                optimizer.step()
                if scheduler is not None:
                    scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                apply_masks()
                run.steps += 1
                stepped = True
                run.losses.append(step_loss / config.grad_accum)
                step_loss = 0.0
                next(ticks, None)
                last = run.steps == config.steps
                if evaluate is not None and (last or (config.eval_every and run.steps % config.eval_every == 0)):
                    model.eval()
                    score = evaluate(model, run.steps, running / max(seen, 1))
                    model.train()
                    running, seen = 0.0, 0
                    if score is not None:
                        scored(float(score))
                if last or run.stopped_early:
                    break
            if micro == 0:
                raise TrainingError(f"{config.desc}: the training batches ran out after {run.steps} optimizer steps"
                                    if run.steps else f"{config.desc}: the training batches are empty")
            if not stepped:
                raise TrainingError(f"{config.desc}: an epoch has {micro} batches, fewer than grad_accum="
                                    f"{config.grad_accum}, so no optimizer step would ever run")
    finally:
        if hasattr(bar, "close"):
            bar.close()
    if config.keep == "last" or best_state is None:
        run.selected_step = run.steps
        if config.keep == "last":
            run.score = run.evals[-1][1] if run.evals else None
    else:
        model.load_state_dict(best_state)
        if on_restore is not None:
            on_restore(model)
    model.eval()
    return run


__all__ = [
    "IGNORE_INDEX", "LoopConfig", "TrainingError", "TrainingRun", "check_seed", "model_device", "pad_batch",
    "steps_for", "train",
]
