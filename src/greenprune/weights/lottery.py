"""Lottery-ticket rounds: fine-tune, pick a model by a stop policy, prune, rewind the survivors.

The seed study's recipe, generalised to any HF model: each round fine-tunes the (masked) model, selects a
checkpoint by the stop policy, prunes `prune_per_round` more of the targeted weights by the pruning criterion on
that checkpoint, then rewinds every weight to a snapshot — the pre-trained weights (snapshotted before any
training) or the weights after the first round's fine-tune — keeping the new mask. Each round's quality at its
sparsity is recorded, giving the quality-vs-sparsity curve.

Stop policies (scores are "higher is better"; evaluation every `eval_every` steps and at the end):
- `last`: stop when a score is worse than each of the previous `patience` scores; keep the model at that point.
- `best`: the same stopping rule; keep the best-scoring checkpoint seen.
- `best-no-stop`: train all `steps_per_round` steps; keep the best-scoring checkpoint.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from greenprune.errors import GreenpruneError
from greenprune.training import LoopConfig, train
from greenprune.weights.masks import dense_state_dict, masked_modules, set_mask
from greenprune.weights.prune import PruningReport, WeightPruningConfig, prune, sparsity_report

REWINDS = ("pretrained", "finetuned")
STOPS = ("last", "best", "best-no-stop")
SCHEDULES = ("linear", "geometric")

Batch = dict[str, torch.Tensor]
Evaluate = Callable[[nn.Module], float]


class LotteryConfigError(GreenpruneError, ValueError):
    """An invalid lottery option."""


@dataclass
class LotteryConfig:
    """Lottery-ticket rounds (see module docstring).

    schedule "linear": after round r the targets are r × prune_per_round sparse (the seed study's 10%, 20%, ...);
    "geometric": each round prunes prune_per_round of the surviving weights (1 − (1 − p)^r).
    """

    rounds: int = 5
    prune_per_round: float = 0.1
    rewind: str = "pretrained"
    stop: str = "best-no-stop"
    eval_every: int = 100
    steps_per_round: int = 3000
    patience: int = 2
    schedule: str = "linear"
    pruning: WeightPruningConfig = field(default_factory=lambda: WeightPruningConfig(method="l1", scope="global"))
    lr: float = 5e-5
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    final_finetune: bool = False  # train (and record) once more at the final sparsity instead of ending rewound

    def __post_init__(self) -> None:
        for option, value, allowed in (("rewind", self.rewind, REWINDS), ("stop", self.stop, STOPS),
                                       ("schedule", self.schedule, SCHEDULES)):
            if value not in allowed:
                raise LotteryConfigError(f"unknown lottery {option} {value!r}; expected one of: {', '.join(allowed)}")
        if self.rounds < 1 or self.eval_every < 1 or self.steps_per_round < 1 or self.patience < 1:
            raise LotteryConfigError("lottery rounds, eval_every, steps_per_round and patience must be ≥ 1")
        if not 0.0 < self.prune_per_round < 1.0:
            raise LotteryConfigError(f"prune_per_round must be within (0, 1), got {self.prune_per_round}")
        if self.schedule == "linear" and self.rounds * self.prune_per_round > 1.0 + 1e-9:
            raise LotteryConfigError(
                f"{self.rounds} linear rounds of {self.prune_per_round} exceed 100% sparsity; lower one of them"
            )

    def sparsity_after(self, round_index: int) -> float:
        """Target sparsity after `round_index` prune steps."""
        if self.schedule == "linear":
            return min(1.0, round_index * self.prune_per_round)
        return 1.0 - (1.0 - self.prune_per_round) ** round_index

    def as_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["pruning"] = self.pruning.as_dict()
        return data


@dataclass
class RoundRecord:
    """One round: the sparsity it trained at, the selected model's score, and where training stopped."""

    round: int
    sparsity: float
    score: float
    selected_step: int
    steps_run: int
    stopped_early: bool
    evals: list[tuple[int, float]]
    pruned_to: float | None  # sparsity after this round's prune (None for a final fine-tune)


@dataclass
class LotteryResult:
    config: LotteryConfig
    rounds: list[RoundRecord]
    final_report: PruningReport

    @property
    def curve(self) -> list[tuple[float, float]]:
        """(sparsity, score) per round."""
        return [(r.sparsity, r.score) for r in self.rounds]

    def to_markdown(self) -> str:
        lines = ["| round | sparsity | score | selected step | steps | early stop |", "|---:|---:|---:|---:|---:|---|"]
        lines += [f"| {r.round} | {r.sparsity:.3f} | {r.score:.4f} | {r.selected_step} | {r.steps_run} | "
                  f"{'yes' if r.stopped_early else 'no'} |" for r in self.rounds]
        return "\n".join(lines)


def _cycle(batches: Iterable[Batch] | Callable[[], Iterable[Batch]]) -> Iterator[Batch]:
    source = batches if callable(batches) else (lambda: batches)
    while True:
        empty = True
        for batch in source():
            empty = False
            yield batch
        if empty:
            raise LotteryConfigError("the training batches are empty")


def _refresh_masked(model: nn.Module) -> None:
    """Recompute the derived `weight` of masked modules so it matches `weight_orig` right away."""
    for module in masked_modules(model).values():
        set_mask(module, module.weight_mask.detach().clone())


@torch.no_grad()
def rewind(model: nn.Module, snapshot: dict[str, torch.Tensor]) -> None:
    """Set every weight to its snapshot value (a dense state dict), keeping the current masks."""
    state = model.state_dict()
    new_state = {}
    for key in state:
        if key.endswith("_mask"):
            new_state[key] = state[key]
        elif key.endswith("_orig"):
            new_state[key] = snapshot[key[: -len("_orig")]]
        else:
            new_state[key] = snapshot[key]
    model.load_state_dict(new_state)
    _refresh_masked(model)


def train_round(
    model: nn.Module,
    batches: Iterator[Batch],
    evaluate: Evaluate,
    config: LotteryConfig,
    desc: str = "fine-tune",
) -> tuple[float, int, int, bool, list[tuple[int, float]]]:
    """Fine-tune under the stop policy through the shared loop; leaves the selected model in place.

    Returns (score, selected step, steps run, stopped early, evaluations).
    """
    loop = LoopConfig(
        steps=config.steps_per_round, lr=config.lr, weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm, eval_every=config.eval_every,
        patience=None if config.stop == "best-no-stop" else config.patience,
        keep="last" if config.stop == "last" else "best", desc=desc,
    )
    run = train(model, lambda: batches, loop, evaluate=lambda m, _step, _loss: evaluate(m),
                on_restore=_refresh_masked)
    return run.score, run.selected_step, run.steps, run.stopped_early, run.evals  # type: ignore[return-value]


def run_lottery(
    model: nn.Module,
    train_batches: Iterable[Batch] | Callable[[], Iterable[Batch]],
    evaluate: Evaluate,
    config: LotteryConfig,
) -> LotteryResult:
    """Run `config.rounds` lottery rounds on `model` in place.

    `train_batches`: model inputs with `labels` (a list, or a callable returning a fresh iterable per epoch),
    cycled as needed. `evaluate(model) -> float`: the quality score, higher is better (e.g. BLEU-4 on a
    validation set). Without `final_finetune` the model ends pruned to the last sparsity and rewound.
    """
    batches = _cycle(train_batches)
    snapshot = dense_state_dict(model)
    snapshot = {k: v.detach().clone() for k, v in snapshot.items()}  # pre-trained weights, before any training
    records: list[RoundRecord] = []
    sparsity = sparsity_report(model).sparsity if masked_modules(model) else 0.0
    for r in range(1, config.rounds + 1):
        score, selected, steps, stopped, evals = train_round(model, batches, evaluate, config, f"lottery round {r}")
        if r == 1 and config.rewind == "finetuned":
            snapshot = {k: v.detach().clone() for k, v in dense_state_dict(model).items()}
        target = config.sparsity_after(r)
        prune(model, dataclasses.replace(config.pruning, sparsity=target, seed=config.pruning.seed + r))
        records.append(RoundRecord(r, sparsity, score, selected, steps, stopped, evals, target))
        rewind(model, snapshot)
        sparsity = target
    if config.final_finetune:
        score, selected, steps, stopped, evals = train_round(model, batches, evaluate, config, desc="final fine-tune")
        records.append(RoundRecord(config.rounds + 1, sparsity, score, selected, steps, stopped, evals, None))
    return LotteryResult(config, records, sparsity_report(model))

