"""`greenprune alpine`: ALPINE token pruning on an encoder, quality and cost against the unpruned model."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer

from greenprune.commands._common import command_line, console, quiet_libraries, user_errors

if TYPE_CHECKING:
    from greenprune.tokens.config import AlpineConfig


def _layers(value: str) -> str | list[int]:
    if value in ("none", "all", "odd", "even"):
        return value
    try:
        return [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"--layers {value!r}: use none|all|odd|even or indices like 0,2,4") from None


def _check_layers(config: AlpineConfig, layers: str, model: str) -> None:
    """Layer indices the model does not have, found from its config alone (no weights, no fine-tune)."""
    from greenprune.models.config import model_config, num_layers
    from greenprune.tokens.config import AlpineError

    if isinstance(config.layers, str):
        return
    n = num_layers(model_config(model))
    bad = config.out_of_range(n)
    if bad:
        raise AlpineError(f"--layers {layers}: layer {', '.join(map(str, bad))} is out of range for {model} "
                          f"({n} layers: 0..{n - 1}, or -1..-{n} from the end)")


def alpine(
    model: str = typer.Argument(..., help="encoder: embedded alias (minilm, tiny-bert), local HF folder or hub id"),
    task: str = typer.Option("defect", "--task", "-t", help="defect | clone"),
    layers: str = typer.Option("even", help="pruning layers: none|all|odd|even or 0-based indices (0,2,4)"),
    alpha: float = typer.Option(1.0, help="adaptive rule: keep scores within mean ± alpha·std"),
    rule: str = typer.Option("adaptive", help="adaptive | static"),
    ratio: float = typer.Option(0.5, help="static rule: fraction of ordinary tokens pruned per layer"),
    merge: bool = typer.Option(True, help="average pruned tokens into one fused token"),
    static_match: bool = typer.Option(False, "--static-match",
                                      help="also run static top-k at the adaptive run's mean kept ratio"),
    finetune: bool = typer.Option(False, "--finetune", help="fine-tune the baseline on the task first"),
    finetune_alpine: bool = typer.Option(False, "--finetune-alpine",
                                         help="also fine-tune a copy with ALPINE on (needs --finetune)"),
    data: str | None = typer.Option(None, help="official-format data folder/file (default: embedded corpus)"),
    size: int = typer.Option(600, help="embedded corpus size (train+valid+test)"),
    seed: int = typer.Option(0),
    epochs: float = typer.Option(2.0),
    lr: float = typer.Option(5e-5),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    max_length: int = typer.Option(256, "--max-length", min=1),
    group_by_length: bool = typer.Option(False, "--group-by-length",
                                         help="fine-tune on batches of similar length "
                                         "(clone, 256 tokens: 0.62x the training time)"),
    limit: int | None = typer.Option(None, help="test on at most this many examples"),
    rounds: int = typer.Option(5, min=1, help="interleaved timing rounds"),
    cost_batches: int = typer.Option(4, "--cost-batches", min=1, help="test batches used for cost measurement"),
    energy: bool = typer.Option(True, help="measure energy/CO2 with codecarbon"),
    output: Path = typer.Option(Path("greenprune-results"), "--output", "-o", help="folder for records and plot"),
) -> None:
    """Attach ALPINE to MODEL, evaluate it on TASK and compare quality and cost with the unpruned model."""
    quiet_libraries()
    with user_errors():
        from greenprune.tokens.config import AlpineConfig
        from greenprune.tokens.experiment import (
            AlpineExperiment,
            ExperimentPlan,
            save_experiment,
            static_ratio_matching,
        )

        config = AlpineConfig(layers=_layers(layers), alpha=alpha, rule=rule, ratio=ratio, merge=merge)  # type: ignore[arg-type]
        _check_layers(config, layers, model)  # before the baseline is loaded and fine-tuned
        if finetune_alpine and not finetune:
            raise typer.BadParameter("--finetune-alpine needs --finetune")
        plan = ExperimentPlan(task=task, data=data, size=size, seed=seed, finetune=finetune, epochs=epochs, lr=lr,
                            batch_size=batch_size, max_length=max_length, limit=limit, cost_batches=cost_batches,
                            rounds=rounds, energy=energy, group_by_length=group_by_length)
        exp = AlpineExperiment(model, plan, log=lambda m: console.print(f"[dim]{m}[/]"))
        name = f"{config.rule}-{layers}"
        results = [exp.run(name, config)]
        if static_match and config.rule == "adaptive":
            r = static_ratio_matching(results[0].trace)
            static = AlpineConfig(layers=config.layers, rule="static", ratio=r, merge=merge)
            results.append(exp.run(f"static-{layers}-r{r:.2f}", static))
        if finetune_alpine:
            results.append(exp.run(f"{name}-ft", config, finetune_with_alpine=True))
        cmd = command_line()
        for res in results:
            res.comparison.baseline.command = res.comparison.candidate.command = cmd
        stem = f"alpine-{model.replace('/', '_')}-{task}"
        paths = save_experiment(results, output, stem)
        _print(results)
        console.print(f"records: [bold]{paths['records']}[/]  plot: [bold]{paths['plot']}[/]")


def _print(results: list) -> None:
    from rich.table import Table

    table = Table(title="ALPINE vs unpruned (same process, interleaved)")
    for col in ("setting", "f1", "f1 base", "FLOPs/sample ×", "throughput ×", "peak mem ×", "CO2 ×", "tokens in→out",
                "verdict"):
        table.add_column(col)
    for r in results:
        c = r.comparison
        means = r.trace.mean_lengths()
        table.add_row(
            r.name,
            f"{c.candidate.metrics.get('f1', float('nan')):.4f}",
            f"{c.baseline.metrics.get('f1', float('nan')):.4f}",
            f"{c.ratios.get('flops_per_sample', float('nan')):.3f}",
            f"{c.ratios.get('throughput_samples_s', float('nan')):.3f}",
            f"{c.ratios.get('peak_memory_bytes', float('nan')):.3f}",
            f"{c.ratios.get('co2_kg', float('nan')):.3f}",
            f"{means[0]:.0f}→{means[-1]:.0f}" if means else "-",
            c.verdict,
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.command("alpine")(alpine)
