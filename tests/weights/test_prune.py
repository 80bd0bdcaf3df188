"""Criteria, scopes and granularities of weight pruning, on tiny random models."""

from __future__ import annotations

import pytest
import torch

from greenprune.errors import GreenpruneError
from greenprune.models import load_model
from greenprune.weights import (
    WeightPruningConfig,
    default_target_names,
    dense_state_dict,
    get_masks,
    make_permanent,
    prune,
    resolve_targets,
    sparsity_report,
)


@pytest.fixture
def bert():
    return load_model("tiny-bert").model


@pytest.fixture
def llama():
    return load_model("tiny-llama").model


def _targeted_weights(model) -> dict[str, torch.Tensor]:
    return {name: m.weight.detach().clone() for name, m in resolve_targets(model).items()}


@pytest.mark.parametrize("sparsity", [0.1, 0.5, 0.83])
def test_global_l1_zeroes_exactly_the_smallest_fraction(bert, sparsity):
    before = _targeted_weights(bert)
    report = prune(bert, WeightPruningConfig(method="l1", scope="global", sparsity=sparsity))
    flat_before = torch.cat([w.flatten() for w in before.values()])
    after = torch.cat([m.weight.detach().flatten() for m in resolve_targets(bert).values()])
    pruned = after == 0
    assert int(pruned.sum()) == round(sparsity * flat_before.numel())
    assert report.sparsity == pytest.approx(sparsity, abs=1 / flat_before.numel())
    # every pruned weight is no larger in magnitude than every surviving one
    assert flat_before[pruned].abs().max() <= flat_before[~pruned].abs().min()
    # survivors keep their values
    assert torch.equal(after[~pruned], flat_before[~pruned])
    # one ranking over all tensors: tensors with different weight scales end at different sparsities
    per_tensor = {t.name: t.sparsity for t in report.tensors}
    assert len(set(round(v, 6) for v in per_tensor.values())) > 1


def test_per_tensor_zeroes_the_fraction_of_each_tensor(llama):
    report = prune(llama, WeightPruningConfig(method="l1", scope="per-tensor", sparsity=0.3))
    for t in report.tensors:
        assert t.zeros == round(0.3 * t.numel), t.name
    for name, module in resolve_targets(llama).items():
        w = module.weight.detach()
        pruned = w == 0
        orig = module.weight_orig.detach()
        assert orig[pruned].abs().max() <= orig[~pruned].abs().min(), name


def test_untargeted_parameters_are_bit_identical(llama):
    before = {k: v.clone() for k, v in llama.state_dict().items()}
    targets = {f"{n}.weight" for n in default_target_names(llama)}
    prune(llama, WeightPruningConfig(method="random", scope="global", sparsity=0.6, seed=3))
    after = dense_state_dict(llama)
    assert set(after) == set(before)
    for key, value in before.items():
        if key not in targets:
            assert torch.equal(after[key], value), key
    assert any(key.startswith("model.embed_tokens") for key in before)  # embeddings exist and were untouched


def test_masks_survive_optimizer_steps(bert):
    prune(bert, WeightPruningConfig(method="l1", sparsity=0.5))
    masks = get_masks(bert)
    bert.train()
    opt = torch.optim.AdamW(bert.parameters(), lr=1e-2, weight_decay=0.1)
    batch = {"input_ids": torch.randint(1000, 2000, (4, 12)), "labels": torch.tensor([0, 1, 0, 1])}
    for _ in range(3):
        opt.zero_grad()
        bert(**batch).loss.backward()
        opt.step()
    bert(**batch)  # the forward hook recomputes the effective weight
    modules = dict(bert.named_modules())
    for name, keep in masks.items():
        assert torch.all(modules[name].weight.detach()[~keep] == 0), name
        assert not torch.equal(modules[name].weight_orig.detach()[keep], torch.zeros(int(keep.sum()))), name
    folded = dense_state_dict(bert)
    assert make_permanent(bert) == len(masks)
    assert get_masks(bert) == {}
    for name, keep in masks.items():
        w = modules[name].weight.detach()
        assert isinstance(modules[name].weight, torch.nn.Parameter)
        assert torch.all(w[~keep] == 0)
        assert torch.equal(folded[f"{name}.weight"], w)
    assert not any(k.endswith(("_orig", "_mask")) for k in bert.state_dict())


def test_random_is_seeded(bert):
    other = load_model("tiny-bert").model
    third = load_model("tiny-bert").model
    prune(bert, WeightPruningConfig(method="random", sparsity=0.4, seed=7))
    prune(other, WeightPruningConfig(method="random", sparsity=0.4, seed=7))
    prune(third, WeightPruningConfig(method="random", sparsity=0.4, seed=8))
    a, b, c = get_masks(bert), get_masks(other), get_masks(third)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_pruning_again_keeps_earlier_zeros(bert):
    prune(bert, WeightPruningConfig(method="random", sparsity=0.3, seed=1))
    first = get_masks(bert)
    report = prune(bert, WeightPruningConfig(method="l1", sparsity=0.5))
    second = get_masks(bert)
    assert report.sparsity == pytest.approx(0.5, abs=1e-6)
    for name in first:
        assert not torch.any(second[name] & ~first[name]), name  # nothing revived


def test_rows_prune_whole_output_rows(llama):
    report = prune(llama, WeightPruningConfig(method="l1", scope="per-tensor", granularity="rows", sparsity=0.25))
    for name, module in resolve_targets(llama).items():
        w = module.weight.detach()
        dead = (w == 0).all(dim=1)
        assert torch.equal((w == 0).any(dim=1), dead), name  # zeros come in whole rows
        assert int(dead.sum()) == round(0.25 * w.shape[0]), name
    assert report.sparsity == pytest.approx(0.25, abs=0.01)


def test_heads_prune_q_rows_and_output_columns_together(bert):
    prune(bert, WeightPruningConfig(method="l1", scope="per-tensor", granularity="heads", sparsity=0.5))
    head_dim = bert.config.hidden_size // bert.config.num_attention_heads
    for layer in bert.bert.encoder.layer:
        q = layer.attention.self.query.weight.detach()
        k = layer.attention.self.key.weight.detach()
        o = layer.attention.output.dense.weight.detach()
        dead = [h for h in range(bert.config.num_attention_heads) if (q[h * head_dim:(h + 1) * head_dim] == 0).all()]
        assert len(dead) == 2
        for h in dead:
            sl = slice(h * head_dim, (h + 1) * head_dim)
            assert (k[sl] == 0).all() and (o[:, sl] == 0).all()
        assert (layer.intermediate.dense.weight != 0).all()  # FFN is not part of any head


def test_heads_with_grouped_query_attention_keep_kv(llama):
    prune(llama, WeightPruningConfig(method="random", scope="global", granularity="heads", sparsity=0.5))
    for layer in llama.model.layers:
        assert (layer.self_attn.k_proj.weight != 0).all()
    q_dead = sum(int((layer.self_attn.q_proj.weight == 0).all(dim=1).sum()) for layer in llama.model.layers)
    assert q_dead > 0


def test_custom_targets_and_errors(bert):
    report = prune(bert, WeightPruningConfig(sparsity=0.5, targets=["*.intermediate.dense"]))
    assert [t.name for t in report.tensors] == [f"bert.encoder.layer.{i}.intermediate.dense" for i in range(4)]
    assert (bert.bert.encoder.layer[0].attention.self.query.weight != 0).all()
    with pytest.raises(GreenpruneError, match="no_such"):
        prune(bert, WeightPruningConfig(targets=["*.no_such"]))
    with pytest.raises(GreenpruneError, match="method"):
        WeightPruningConfig(method="l2")
    with pytest.raises(GreenpruneError, match="sparsity"):
        WeightPruningConfig(sparsity=1.5)


def test_sparsity_report_is_the_same_after_make_permanent(llama):
    prune(llama, WeightPruningConfig(method="l1", sparsity=0.4))
    before = sparsity_report(llama)
    make_permanent(llama)
    after = sparsity_report(llama)
    assert [(t.name, t.zeros) for t in before.tensors] == [(t.name, t.zeros) for t in after.tensors]
    assert 0 < after.model_sparsity < after.sparsity  # embeddings count in the model total
    assert "targeted total" in after.to_markdown(max_rows=3)


def test_bad_target_regex_is_refused_before_any_model(bert):
    from greenprune.weights import TargetError

    with pytest.raises(TargetError, match=r"target pattern 're:\(' is not a valid regular expression: missing \)"):
        WeightPruningConfig(targets=["*.dense", "re:("])
    with pytest.raises(TargetError, match="non-empty"):
        WeightPruningConfig(targets=[""])
    # one pattern given as a string is that pattern, not one pattern per character
    config = WeightPruningConfig(targets=r"re:.*\.intermediate\.dense")
    assert config.targets == (r"re:.*\.intermediate\.dense",)
    assert len(prune(bert, config).tensors) == 4


def test_cli_bad_target_regex_is_one_line():
    from typer.testing import CliRunner

    from greenprune.cli import app

    result = CliRunner().invoke(app, ["prune", "tiny-bert", "--target", "re:[a-"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert "target pattern 're:[a-' is not a valid regular expression" in " ".join(result.output.split())
