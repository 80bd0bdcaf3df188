"""`greenprune finetune` and `greenprune eval`: task quality of a model, written as result records."""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

import typer

from greenprune.commands._common import check_lengths, command_line, console, quiet_libraries, user_errors

DEFAULT_RESULTS = Path("greenprune-results")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


def _splits(task: Any, data: str | None, size: int, seed: int) -> Any:
    return task.load(data) if data else task.embedded(size=size, seed=seed)


def _print_metrics(title: str, metrics: dict[str, float]) -> None:
    from rich.table import Table

    table = Table(title=title)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in metrics.items():
        table.add_row(key, f"{value:.4f}" if isinstance(value, float) else str(value))
    console.print(table)


def _save(record: Any, json_path: Path | None, verb: str, model: str, task: str, overwrite: bool) -> Path:
    """Write the record; an existing file is replaced only with --overwrite, a default name is never reused."""
    from greenprune.measure.records import save_json

    default = DEFAULT_RESULTS / f"{verb}-{_slug(model)}-{task}.json"
    path = save_json(record, json_path or default, overwrite=overwrite, fresh=json_path is None and not overwrite)
    kept = f" ({default} already existed and was kept)" if json_path is None and path != default else ""
    console.print(f"record written to [bold]{path}[/]{kept}")
    return path


def finetune(
    model: str = typer.Argument(..., help="embedded alias, local HF folder, .gguf file or hub id"),
    task: str = typer.Option(..., "--task", "-t", help="defect | clone | summarize | generate | perplexity"),
    data: str | None = typer.Option(None, help="official-format folder/file or HF datasets id (default: embedded)"),
    size: int = typer.Option(400, help="embedded dataset size (train+valid+test)"),
    seed: int = typer.Option(0, help="seed of the embedded dataset and of training"),
    epochs: float = typer.Option(1.0),
    lr: float = typer.Option(5e-5),
    batch_size: int = typer.Option(16, "--batch-size", min=1),
    max_length: int = typer.Option(256, "--max-length", min=1),
    eval_every: int = typer.Option(0, "--eval-every", help="optimizer steps between validations (0: per epoch)"),
    eval_limit: int | None = typer.Option(None, "--eval-limit", help="validate on at most this many examples"),
    group_by_length: bool = typer.Option(False, "--group-by-length",
                                         help="batch examples of similar length "
                                         "(clone, 256 tokens: 0.62x the training time)"),
    limit: int | None = typer.Option(None, help="test on at most this many examples"),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N | mps"),
    output: Path | None = typer.Option(None, "--output", "-o", help="folder for the best checkpoint and record"),
    json_path: Path | None = typer.Option(None, "--json", help="where to write the result record"),
    baseline: bool = typer.Option(True, help="also score the model on the test split before fine-tuning"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an earlier record and OUTPUT/best checkpoint"),
) -> None:
    """Fine-tune MODEL on a task, keep the best validation checkpoint, and record its test metrics."""
    quiet_libraries()
    with user_errors():
        from greenprune.checkpoint import check_output_target, check_record_target
        from greenprune.devices import resolve_device
        from greenprune.measure.records import ResultRecord
        from greenprune.models import load_model
        from greenprune.models.config import check_model_for_task
        from greenprune.tasks import TrainConfig, get_task

        resolve_device(device)  # a bad --device fails before data and model are loaded
        check_model_for_task(model, task)
        record_path = json_path or (output / "result.json" if output else None)
        if output is not None:  # before the training, not after it
            check_output_target(output / "best", overwrite=overwrite, option="--output")
        if record_path is not None:
            check_record_target(record_path, overwrite=overwrite, option="--json" if json_path else "--output")
        spec = get_task(task)
        splits = _splits(spec, data, size, seed)
        splits.nonempty("train")
        test = splits.nonempty("test")  # else the record would carry no test metrics at all
        loaded = load_model(model, task=task)
        check_lengths(loaded, max_length=max_length)
        config = TrainConfig(epochs=epochs, lr=lr, batch_size=batch_size, max_length=max_length, seed=seed,
                             eval_every=eval_every, eval_limit=eval_limit, device=device,
                             group_by_length=group_by_length,
                             output_dir=str(output) if output else None, overwrite=overwrite)
        eval_kwargs = {"batch_size": batch_size, "max_length": max_length, "limit": limit}
        metrics: dict[str, float] = {}
        if baseline and test:
            before = spec.evaluate(loaded.model, loaded.tokenizer, test, **eval_kwargs)
            metrics.update({f"before_{k}": v for k, v in before.items()})
        start = time.perf_counter()
        result = spec.finetune(loaded.model, loaded.tokenizer, splits, config)
        train_seconds = time.perf_counter() - start
        if test:
            metrics.update(spec.evaluate(result.model, loaded.tokenizer, test, **eval_kwargs))
        metrics.update({f"valid_{k}" if not k.startswith("valid_") else k: v for k, v in result.best_metrics.items()})
        metrics["train_seconds"] = train_seconds
        record = ResultRecord(
            model=model, method="finetune", task=task, metrics=metrics,
            config={"train": vars(config), "data": splits.source, "splits": splits.sizes(),
                    "best_step": result.best_step, "history": result.history},
            artifacts={"checkpoint": result.checkpoint} if result.checkpoint else {},
            command=command_line(),
        )
        _print_metrics(f"{model} fine-tuned on {task} ({splits.source})", metrics)
        _save(record, record_path, "finetune", model, task, overwrite)


def evaluate(
    model: str = typer.Argument(..., help="embedded alias, local HF folder, .gguf file or hub id"),
    task: str = typer.Option(..., "--task", "-t", help="defect | clone | summarize | generate | perplexity"),
    data: str | None = typer.Option(None, help="official-format folder/file or HF datasets id (default: embedded)"),
    split: str = typer.Option("test", help="train | valid | test"),
    size: int = typer.Option(400, help="embedded dataset size (train+valid+test)"),
    seed: int = typer.Option(0),
    limit: int | None = typer.Option(None, help="evaluate on at most this many examples"),
    batch_size: int = typer.Option(8, "--batch-size", min=1),
    max_length: int = typer.Option(512, "--max-length", min=1),
    max_new_tokens: int = typer.Option(300, "--max-new-tokens", min=1, help="generation budget (generate, summarize)"),
    samples: int = typer.Option(1, min=1, help="samples per problem for pass@k (1: greedy pass@1)"),
    prompt_style: str = typer.Option("auto", "--prompt-style",
                                     help="generate: completion | chat | auto (chat if the tokenizer has a template)"),
    device: str = typer.Option("auto", help="auto | cpu | cuda | cuda:N | mps"),
    sandbox: str = typer.Option("auto", "--sandbox",
                                help="generate: how generated code is contained: auto (namespaces, refused where "
                                     "they do not work) | namespaces | unsafe-limits-only (resource limits only)"),
    json_path: Path | None = typer.Option(None, "--json", help="where to write the result record"),
    cost: bool = typer.Option(False, help="also measure cost (FLOPs, memory, latency, energy) on the same inputs"),
    cost_batches: int = typer.Option(4, "--cost-batches", min=1, help="batches of the split the cost is measured on"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an existing --json file (or default record)"),
) -> None:
    """Score MODEL on a task split and write the metrics (and optionally the cost) as a result record."""
    quiet_libraries()
    with user_errors():
        from greenprune.checkpoint import check_record_target
        from greenprune.devices import resolve_device
        from greenprune.measure.records import ResultRecord
        from greenprune.models import load_model
        from greenprune.models.config import check_model_for_task
        from greenprune.tasks import get_task

        target = resolve_device(device)  # a bad --device fails before data and model are loaded
        check_model_for_task(model, task)
        if json_path is not None:  # before the evaluation, not after it
            check_record_target(json_path, overwrite=overwrite)
        spec = get_task(task)
        splits = _splits(spec, data, size, seed)
        examples = splits.nonempty(split)
        loaded = load_model(model, task=task)
        check_lengths(loaded, max_length=max_length)
        loaded.model.to(target)
        kwargs: dict[str, Any] = {"batch_size": batch_size, "max_length": max_length, "limit": limit}
        if task == "generate":
            from greenprune.tasks.sandbox import SandboxConfig

            ks = tuple(k for k in (1, 10, 100) if k <= samples)
            kwargs.update(max_new_tokens=max_new_tokens, n_samples=samples, ks=ks, prompt_style=prompt_style,
                          sandbox=SandboxConfig(isolation=sandbox))
        elif task == "summarize":
            kwargs.update(max_new_tokens=min(max_new_tokens, 64))
        start = time.perf_counter()
        metrics = spec.evaluate(loaded.model, loaded.tokenizer, examples, **kwargs)
        metrics["eval_seconds"] = time.perf_counter() - start
        cost_record = None
        if cost:
            from greenprune.measure import measure_cost

            batches = spec.batches(loaded.tokenizer, examples[: limit or len(examples)], batch_size, max_length)
            cost_record = measure_cost(loaded.model, batches, max_batches=cost_batches)
        record = ResultRecord(
            model=model, method="baseline", task=task, metrics=metrics, cost=cost_record,
            details=getattr(metrics, "details", {}),
            config={"data": splits.source, "split": split, "limit": limit, "batch_size": batch_size,
                    "max_length": max_length, **({"max_new_tokens": max_new_tokens, "samples": samples,
                                                     "prompt_style": prompt_style}
                                                  if task in ("generate", "summarize") else {})},
            command=command_line(),
        )
        _print_metrics(f"{model} on {task} / {split} ({splits.source})", metrics)
        _save(record, json_path, "eval", model, task, overwrite)


def register(app: typer.Typer) -> None:
    app.command("finetune")(finetune)
    app.command("eval")(evaluate)
