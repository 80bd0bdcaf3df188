"""Lottery-ticket rounds and stop policies on a tiny classifier."""

from __future__ import annotations

import pytest
import torch

from greenprune.errors import GreenpruneError
from greenprune.models import load_model
from greenprune.weights import WeightPruningConfig, default_target_names, dense_state_dict, get_masks
from greenprune.weights.lottery import LotteryConfig, run_lottery, train_round


def _data(seed: int = 0, n_batches: int = 3) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(1000, 3000, (8, 10), generator=g),
             "labels": torch.randint(0, 2, (8,), generator=g)} for _ in range(n_batches)]


def _neg_loss(val):
    @torch.no_grad()
    def evaluate(model) -> float:
        return -sum(float(model(**b).loss) for b in val) / len(val)

    return evaluate


def test_rewind_to_pretrained_leaves_survivors_at_pretrained_values():
    model = load_model("tiny-bert").model
    pretrained = {k: v.clone() for k, v in model.state_dict().items()}
    config = LotteryConfig(rounds=2, prune_per_round=0.25, rewind="pretrained", stop="best-no-stop",
                           eval_every=2, steps_per_round=4, lr=1e-3,
                           pruning=WeightPruningConfig(method="l1", scope="global"))
    result = run_lottery(model, _data(), _neg_loss(_data(1, 1)), config)
    assert [round(r.sparsity, 6) for r in result.rounds] == [0.0, 0.25]
    assert result.final_report.sparsity == pytest.approx(0.5, abs=1e-6)
    assert all(len(r.evals) == 2 for r in result.rounds)
    final = dense_state_dict(model)
    masks = get_masks(model)
    targets = {f"{n}.weight" for n in default_target_names(model)}
    for key, value in final.items():
        if key in targets:
            keep = masks[key.removesuffix(".weight")]
            assert torch.equal(value[keep], pretrained[key][keep]), key
            assert torch.all(value[~keep] == 0), key
        else:
            assert torch.equal(value, pretrained[key]), key
    assert result.to_markdown().count("\n") == 3  # header, rule, two rounds


def test_rewind_to_finetuned_keeps_trained_values_and_can_finish_with_a_fine_tune():
    model = load_model("tiny-bert").model
    pretrained = {k: v.clone() for k, v in model.state_dict().items()}
    config = LotteryConfig(rounds=1, prune_per_round=0.3, rewind="finetuned", stop="best", eval_every=1,
                           steps_per_round=3, lr=1e-3, final_finetune=True,
                           pruning=WeightPruningConfig(method="random", scope="per-tensor", seed=5))
    result = run_lottery(model, _data(), _neg_loss(_data(1, 1)), config)
    assert [r.pruned_to for r in result.rounds] == [0.3, None]
    assert result.curve[1][0] == pytest.approx(0.3)
    query = "bert.encoder.layer.0.attention.self.query.weight"
    assert not torch.equal(dense_state_dict(model)[query], pretrained[query])
    for t in result.final_report.tensors:
        assert t.sparsity == pytest.approx(0.3, abs=1 / t.numel)


def _scripted(scores: list[float], seen: dict[int, torch.Tensor]):
    calls = iter(scores)

    def evaluate(model) -> float:
        seen[len(seen)] = model.classifier.weight.detach().clone()
        return next(calls)

    return evaluate


@pytest.mark.parametrize(
    ("stop", "steps_run", "selected_step", "stopped"),
    [("last", 4, 4, True), ("best", 4, 2, True), ("best-no-stop", 6, 2, False)],
)
def test_stop_policies(stop, steps_run, selected_step, stopped):
    model = load_model("tiny-bert").model
    seen: dict[int, torch.Tensor] = {}
    config = LotteryConfig(stop=stop, eval_every=1, steps_per_round=6, patience=2, lr=1e-3)
    score, selected, steps, early, evals = train_round(
        model, iter(_data() * 4), _scripted([1.0, 3.0, 2.0, 1.0, 0.5, 0.2], seen), config
    )
    assert (steps, selected, early) == (steps_run, selected_step, stopped)
    assert score == dict(evals)[selected]
    # the model left in place is the selected one
    assert torch.equal(model.classifier.weight.detach(), seen[selected - 1])


def test_bad_lottery_options():
    with pytest.raises(GreenpruneError, match="rewind"):
        LotteryConfig(rewind="random")
    with pytest.raises(GreenpruneError, match="exceed"):
        LotteryConfig(rounds=11, prune_per_round=0.1)
    assert LotteryConfig(schedule="geometric", prune_per_round=0.5).sparsity_after(2) == pytest.approx(0.75)
