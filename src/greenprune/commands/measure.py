"""`greenprune measure MODEL`: what running a model costs, as a table and (optionally) JSON records."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from greenprune.commands._common import check_lengths, command_line, console, quiet_libraries, user_errors


def measure_models(
    specs: list[str],
    *,
    task: str | None,
    batch_size: int,
    seq_len: int,
    batches: int,
    passes: int,
    country: str,
    energy: bool,
):
    """Load each model, measure it on the same stdlib-code batches, return one record per model."""
    from greenprune.measure import ResultRecord, measure_cost
    from greenprune.measure.inputs import code_batches
    from greenprune.models import load_model

    records = []
    for spec in specs:
        console.print(f"[dim]loading {spec} ...[/]")
        loaded = load_model(spec, task=task)
        check_lengths(loaded, seq_len=seq_len)
        data = list(code_batches(loaded.tokenizer, batch_size=batch_size, seq_len=seq_len, n_batches=batches))
        console.print(f"[dim]measuring {spec} on {batches}×{batch_size} samples of {seq_len} tokens ...[/]")
        cost = measure_cost(loaded.model, data, passes=passes, energy=energy, country=country)
        records.append(
            ResultRecord(
                model=spec,
                method="baseline",
                config={"head": loaded.head, "batch_size": batch_size, "seq_len": seq_len, "batches": batches,
                        "passes": passes, "inputs": "stdlib code snippets (seed 0)"},
                cost=cost,
                command=command_line(),
            )
        )
        del loaded
    return records


def measure(
    models: Annotated[list[str], typer.Argument(help="embedded alias, local HF folder, .gguf file or hub id")],
    task: Annotated[str | None, typer.Option(help="task or head: classification, causal-lm, base, defect, ...")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    seq_len: Annotated[int, typer.Option(min=8)] = 128,
    batches: Annotated[int, typer.Option(min=1, help="number of batches measured")] = 4,
    passes: Annotated[int, typer.Option(min=1, help="timed passes over the batches")] = 3,
    country: Annotated[str, typer.Option(help="ISO-3 country code for CO2 intensity")] = "USA",
    energy: Annotated[bool, typer.Option(help="track energy/CO2 with codecarbon")] = True,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the records here")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an existing --json file")] = False,
) -> None:
    """Measure parameters, checkpoint bytes, FLOPs, peak memory, latency, throughput and energy of MODELS."""
    quiet_libraries()
    from greenprune.measure import save_json
    from greenprune.measure.display import cost_table

    with user_errors():
        from greenprune.measure.energy import check_country

        country = check_country(country, "--country")  # before any model loads
        if json_out is not None:
            from greenprune.checkpoint import check_record_target

            check_record_target(json_out, overwrite=overwrite)
        records = measure_models(
            models, task=task, batch_size=batch_size, seq_len=seq_len, batches=batches, passes=passes,
            country=country, energy=energy,
        )
    console.print(cost_table(records, title=f"cost per sample — {command_line()}"))
    for rec in records:
        if rec.cost and rec.cost.energy_method:
            console.print(f"[dim]energy: {rec.cost.energy_method}; memory: {rec.cost.peak_memory_method}[/]")
            break
    if json_out is not None:
        with user_errors():
            save_json(records, json_out, overwrite=overwrite)
        console.print(f"records written to {json_out}")


def register(app: typer.Typer) -> None:
    app.command("measure")(measure)
