"""The shared training loop: hooks (trainable parameters, masks, loss), step budget, selection, clear errors."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn

from greenprune.errors import GreenpruneError, OptionError
from greenprune.training import IGNORE_INDEX, LoopConfig, TrainingError, check_seed, pad_batch, steps_for, train


class Toy(nn.Module):
    """A linear regressor whose forward takes a batch dict and returns `.loss`, like a transformers model."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.a = nn.Linear(4, 4)
        self.b = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> SimpleNamespace:
        return SimpleNamespace(loss=((self.b(torch.relu(self.a(x))).squeeze(-1) - y) ** 2).mean())


def _data(n: int = 4, seed: int = 0) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for _ in range(n):
        x = torch.randn(8, 4, generator=g)
        out.append({"x": x, "y": x.sum(-1)})
    return out


def test_masked_entries_stay_zero_through_training_with_weight_decay():
    model = Toy()
    keep = torch.rand(4, 4, generator=torch.Generator().manual_seed(1)) > 0.5
    before = model.b.weight.detach().clone()
    run = train(model, lambda: _data(), LoopConfig(steps=6, lr=0.1, weight_decay=0.1),
                masks={"a.weight": keep})
    assert run.steps == 6 and len(run.losses) == 6
    assert torch.all(model.a.weight[~keep] == 0) and torch.all(model.a.weight[keep] != 0)
    assert not torch.equal(model.b.weight, before)  # the rest trains as usual


def test_unknown_mask_names_the_parameter():
    with pytest.raises(TrainingError, match=r"'a\.nope'.*no such parameter"):
        train(Toy(), lambda: _data(), LoopConfig(steps=1, lr=0.1), masks={"a.nope": torch.ones(4, 4)})
    with pytest.raises(TrainingError, match=r"shape \(2, 2\)"):
        train(Toy(), lambda: _data(), LoopConfig(steps=1, lr=0.1), masks={"a.weight": torch.ones(2, 2)})


def test_only_the_chosen_parameters_train():
    model = Toy()
    frozen = {k: v.detach().clone() for k, v in model.a.named_parameters()}
    before_b = model.b.weight.detach().clone()
    train(model, lambda: _data(), LoopConfig(steps=3, lr=0.1), parameters=lambda m: m.b.parameters())
    assert all(torch.equal(v, frozen[k]) for k, v in model.a.named_parameters())
    assert not torch.equal(model.b.weight, before_b)


def test_the_budget_spans_epochs_and_a_custom_loss_is_used():
    calls = []

    def epoch():
        calls.append(1)
        return _data(3)

    seen = []

    def loss(model, batch):
        seen.append(batch["x"].shape[0])
        return model(**batch).loss

    run = train(Toy(), epoch, LoopConfig(steps=7, lr=0.01), loss=loss)
    assert run.steps == 7 and len(calls) == 3 and len(seen) == 7  # 3 + 3 + 1 batches


def test_lower_is_better_selection_restores_the_best_state_and_stops_with_patience():
    model = Toy()
    scores = iter([3.0, 1.0, 2.0, 4.0, 0.5])
    weights: dict[int, torch.Tensor] = {}
    restored = []

    def evaluate(m, step, train_loss):
        assert not m.training and train_loss > 0
        weights[step] = m.b.weight.detach().clone()
        return next(scores)

    config = LoopConfig(steps=5, lr=0.1, eval_every=1, patience=2, higher_is_better=False)
    run = train(model, lambda: _data(), config, evaluate=evaluate, on_restore=restored.append)
    assert run.stopped_early and run.steps == 4  # 4.0 is worse than both 1.0 and 2.0
    assert (run.selected_step, run.score) == (2, 1.0)
    assert run.evals == [(1, 3.0), (2, 1.0), (3, 2.0), (4, 4.0)]
    assert torch.equal(model.b.weight, weights[2]) and restored == [model]
    assert not model.training


def test_keep_last_leaves_the_final_weights():
    model = Toy()
    run = train(model, lambda: _data(), LoopConfig(steps=3, lr=0.1, eval_every=1, keep="last"),
                evaluate=lambda m, step, loss: [5.0, 1.0, 0.0][step - 1])
    assert (run.selected_step, run.score) == (3, 0.0)


def test_an_epoch_shorter_than_one_accumulation_is_an_error_not_a_hang():
    calls = []

    def epoch():
        calls.append(1)
        if len(calls) > 2:
            raise AssertionError("the loop kept asking for epochs that never reach an optimizer step")
        return _data(1)

    with pytest.raises(TrainingError, match="fewer than grad_accum=2"):
        train(Toy(), epoch, LoopConfig(steps=2, lr=0.1, grad_accum=2))


def test_empty_or_exhausted_batches_are_errors():
    with pytest.raises(TrainingError, match="batches are empty"):
        train(Toy(), lambda: [], LoopConfig(steps=1, lr=0.1))
    once = iter(_data(2))
    with pytest.raises(TrainingError, match="ran out after 2 optimizer steps"):
        train(Toy(), lambda: once, LoopConfig(steps=3, lr=0.1))


def test_a_non_finite_loss_stops_training():
    data = _data(2)
    data[1]["y"] = torch.full((8,), float("nan"))
    with pytest.raises(FloatingPointError, match="toy: training loss became nan at step 1"):
        train(Toy(), lambda: data, LoopConfig(steps=3, lr=0.1, desc="toy"))


def test_the_seed_fixes_the_global_rng_for_the_run():
    def losses(seed: int) -> list[float]:
        noisy = lambda m, b: m(**b).loss * (1 + torch.rand(()))  # noqa: E731 - dropout-like global-RNG noise
        return train(Toy(), lambda: _data(), LoopConfig(steps=4, lr=0.1, seed=seed), loss=noisy).losses

    assert losses(3) == losses(3) != losses(4)


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"steps": 0}, "steps must be a positive integer"),
    ({"schedule": "step"}, "unknown schedule 'step'"),
    ({"keep": "first"}, "unknown keep"),
    ({"eval_every": -1}, "eval_every must be a non-negative integer"),
    ({"patience": 0}, "patience must be a positive integer"),
    ({"seed": -1}, "seed must be an integer from 0"),
])
def test_bad_loop_options(kwargs, match):
    with pytest.raises(OptionError, match=match):
        LoopConfig(**{"steps": 1, "lr": 0.1, **kwargs})


def test_check_seed_names_the_option():
    check_seed(0)
    with pytest.raises(GreenpruneError, match=r"--seed must be an integer from 0 to 4294967295, got 4294967296"):
        check_seed(2**32, "--seed")


def test_pad_batch_ignores_prompt_and_padding():
    batch = pad_batch([([5, 6, 7], [IGNORE_INDEX, 6, 7]), ([8], [8])], pad_id=0)
    assert batch["input_ids"].tolist() == [[5, 6, 7], [8, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 0, 0]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7], [8, IGNORE_INDEX, IGNORE_INDEX]]


def test_steps_for_epochs():
    assert steps_for(10, 1.5) == (10, 15)
    assert steps_for(10, 1.0, grad_accum=4) == (2, 2)
    assert steps_for(1, 0.1, grad_accum=4) == (1, 1)
