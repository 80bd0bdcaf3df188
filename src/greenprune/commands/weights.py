"""`greenprune prune` (weight pruning, optionally lottery rounds) and `greenprune quantize`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from greenprune.commands._common import command_line, console, quiet_libraries, user_errors


def prune_cmd(
    model: Annotated[str, typer.Argument(help="embedded alias, local HF folder, .gguf file or hub id")],
    method: Annotated[str, typer.Option(
        help="random | l1 | wanda (|W|·||X||₂ with activation norms from a calibration forward)")] = "l1",
    scope: Annotated[str | None, typer.Option(
        help="global | per-tensor | per-row; default per-row for wanda, global otherwise")] = None,
    granularity: Annotated[str, typer.Option(help="unstructured | rows | heads")] = "unstructured",
    pattern: Annotated[str, typer.Option(
        help="unstructured | N:M (exactly N zeros in every M consecutive input weights: 2:4, 4:8)")] = "unstructured",
    sparsity: Annotated[float | None, typer.Option(
        help="fraction of targeted weights to zero (one shot); default 0.5, or N/M for an N:M pattern")] = None,
    calibration: Annotated[str, typer.Option(
        help="calibration text for wanda: stdlib (training split of the stdlib corpus) or a .py/text file or "
             "folder of .py files")] = "stdlib",
    calibration_windows: Annotated[int, typer.Option(min=1, help="calibration windows (sequences)")] = 32,
    calibration_seq_len: Annotated[int, typer.Option(min=2, help="tokens per calibration window")] = 256,
    target: Annotated[list[str] | None, typer.Option(
        help="module-name glob (or re:REGEX), repeatable; default: attention Q/K/V/O + FFN of every layer")] = None,
    seed: Annotated[int, typer.Option(help="seed of random pruning")] = 0,
    task: Annotated[str | None, typer.Option(
        help="task whose head to load (and to fine-tune/evaluate in lottery rounds); default summarize for "
             "decoders, defect for encoders")] = None,
    lottery: Annotated[int, typer.Option(help="lottery-ticket rounds instead of one-shot pruning (0 = off)")] = 0,
    per_round: Annotated[float, typer.Option(help="sparsity added per lottery round")] = 0.1,
    rewind: Annotated[str, typer.Option(help="pretrained | finetuned")] = "pretrained",
    stop: Annotated[str, typer.Option(help="last | best | best-no-stop")] = "best-no-stop",
    eval_every: Annotated[int, typer.Option(min=1)] = 50,
    steps_per_round: Annotated[int, typer.Option(min=1)] = 200,
    final_finetune: Annotated[bool, typer.Option(help="fine-tune once more at the final sparsity")] = True,
    lr: Annotated[float, typer.Option()] = 5e-5,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    data_size: Annotated[int, typer.Option(help="embedded task size (examples over train/valid/test)")] = 400,
    eval_limit: Annotated[int, typer.Option(min=1, help="validation examples per lottery evaluation")] = 30,
    data: Annotated[Path | None, typer.Option(help="official-format task data instead of the embedded set")] = None,
    out: Annotated[Path | None, typer.Option(help="write the pruned model here")] = None,
    compact: Annotated[bool, typer.Option(
        "--compact/--dense",
        help="--compact: bitmask + values file, smaller, but only greenprune reads it back; default --dense: a plain "
             "HF folder that from_pretrained reloads without greenprune")] = False,
    overwrite: Annotated[bool, typer.Option(help="replace an earlier greenprune output at --out")] = False,
) -> None:
    """Prune MODEL's weights (random / L1 / Wanda; global / per-tensor / per-row; unstructured / rows / heads;
    or an N:M pattern such as 2:4) and save it.

    With --lottery N, runs N lottery-ticket rounds (fine-tune on TASK, pick by --stop, prune --per-round more,
    rewind) and prints the quality-vs-sparsity curve.
    """
    quiet_libraries()
    import json

    from greenprune.checkpoint import check_output_target, save_hf
    from greenprune.measure import ResultRecord
    from greenprune.models import load_model
    from greenprune.weights import WeightPruningConfig, make_permanent, prune
    from greenprune.weights.sparse_io import folder_bytes, save_sparse

    with user_errors():
        config = WeightPruningConfig(method=method, scope=scope, granularity=granularity, sparsity=sparsity,
                                     targets=target, seed=seed, pattern=pattern, calibration=calibration,
                                     calibration_windows=calibration_windows,
                                     calibration_seq_len=calibration_seq_len)
        if lottery and config.needs_calibration:
            from greenprune.weights import CriterionError

            raise CriterionError(f"--lottery with --method {method}: lottery rounds re-score without calibration "
                                 "data; use --method l1 or random")
        if out is not None:
            check_output_target(out, overwrite=overwrite)  # before the work, not after it
        console.print(f"[dim]loading {model} ...[/]")
        loaded = load_model(model, task=task)
        record_config: dict = {"pruning": config.as_dict()}
        metrics: dict[str, float] = {}
        if lottery:
            from greenprune.tasks import get_task
            from greenprune.weights.code_to_text import lottery_io
            from greenprune.weights.lottery import LotteryConfig, run_lottery

            task_name = task or ("summarize" if loaded.family.kind == "decoder" else "defect")
            the_task = get_task(task_name)
            splits = the_task.load(data) if data else the_task.embedded(size=data_size, seed=0)
            lconf = LotteryConfig(rounds=lottery, prune_per_round=per_round, rewind=rewind, stop=stop,
                                  eval_every=eval_every, steps_per_round=steps_per_round, pruning=config, lr=lr,
                                  final_finetune=final_finetune)
            batches, evaluate, metric = lottery_io(the_task, loaded.model, loaded.tokenizer, splits,
                                                   batch_size=batch_size, eval_limit=eval_limit)
            result = run_lottery(loaded.model, batches, evaluate, lconf)
            console.print(f"lottery on {task_name} ({metric}, {eval_limit} validation examples):")
            console.print(result.to_markdown())
            report = result.final_report
            record_config["lottery"] = lconf.as_dict()
            record_config["curve"] = result.curve
            metrics[metric] = result.rounds[-1].score
        else:
            report = prune(loaded.model, config, tokenizer=loaded.tokenizer)
        console.print(report.to_markdown(max_rows=12))
        console.print(f"targeted sparsity {report.sparsity:.4f}; whole-model sparsity {report.model_sparsity:.4f}")
        for note in report.notes:
            console.print(f"[yellow]note:[/] {note}")
        if out is not None:
            shape = granularity if pattern == "unstructured" else pattern
            record = ResultRecord(model=model, method=f"weights:{method}-{config.scope}-{shape}",
                                  config=record_config, metrics=metrics, command=command_line(),
                                  artifacts={"checkpoint": str(out)},
                                  notes=[f"targeted sparsity {report.sparsity:.4f}"])
            files = {"greenprune_record.json": record.model_dump_json(indent=2) + "\n",
                     "sparsity_report.json": json.dumps(report.as_dict(), indent=2)}
            if compact:
                save_sparse(loaded.model, out, loaded.tokenizer, overwrite=overwrite, files=files)
            else:
                make_permanent(loaded.model)
                save_hf(loaded.model, loaded.tokenizer, out, kind="dense", overwrite=overwrite, files=files)
            console.print(f"wrote {'compact sparse' if compact else 'dense'} checkpoint to {out} "
                          f"({folder_bytes(out):,} weight bytes)")


def quantize_cmd(
    model: Annotated[str, typer.Argument(help="alias, HF folder (also a compact sparse one) or hub id")],
    dtype: Annotated[list[str], typer.Option(help="fp16 | bf16 | int8, repeatable")] = ["int8"],  # noqa: B006
    task: Annotated[str | None, typer.Option(help="task to score quality on (e.g. summarize, defect)")] = None,
    limit: Annotated[int, typer.Option(min=1, help="test examples scored")] = 20,
    data_size: Annotated[int, typer.Option(help="embedded task size")] = 200,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    rounds: Annotated[int, typer.Option(min=1, help="interleaved timing rounds")] = 5,
    energy: Annotated[bool, typer.Option(help="track energy/CO2 with codecarbon")] = True,
    out: Annotated[Path | None, typer.Option(help="save the fp16/bf16 model here (int8 is not savable)")] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="write the comparisons here")] = None,
    overwrite: Annotated[bool, typer.Option(help="replace an earlier --json file or greenprune --out")] = False,
) -> None:
    """Quantise MODEL and measure each dtype against fp32 in this process: speed, size and (with --task) quality."""
    quiet_libraries()
    from greenprune.checkpoint import check_output_target, check_record_target, save_hf
    from greenprune.measure import save_json
    from greenprune.models import load_model
    from greenprune.quantize import QuantizeError, compare_quantized, quantize

    with user_errors():
        if out is not None and (len(dtype) != 1 or dtype[0] == "int8"):
            raise QuantizeError("--out saves one fp16 or bf16 model; dynamic int8 is applied at load time instead")
        if out is not None:
            check_output_target(out, overwrite=overwrite)
        if json_out is not None:
            check_record_target(json_out, overwrite=overwrite)
        path = Path(model)
        if path.is_dir() and (path / "model.sparse.safetensors").is_file():
            from transformers import AutoTokenizer

            from greenprune.weights.sparse_io import load_sparse

            net, tok = load_sparse(path), AutoTokenizer.from_pretrained(path)
        else:
            loaded = load_model(model, task=task)
            net, tok = loaded.model, loaded.tokenizer
        evaluate = None
        if task is not None:
            from greenprune.tasks import get_task

            the_task = get_task(task)
            examples = the_task.embedded(size=data_size, seed=0).test[:limit]
            data = [{k: v for k, v in b.items() if k != "labels"}
                    for b in the_task.batches(tok, examples, batch_size, 256)]

            def evaluate(m):
                return the_task.evaluate(m, tok, examples, batch_size=batch_size)
        else:
            from greenprune.measure.inputs import code_batches

            data = list(code_batches(tok, batch_size=batch_size, seq_len=128, n_batches=4))
        comparisons = compare_quantized(net, data, dtype, evaluate=evaluate, name=model, task=task, rounds=rounds,
                                        energy=energy)
    for comp in comparisons:
        c = comp.candidate
        ratios = comp.ratios
        line = (f"{c.config['dtype']}: latency ×{ratios.get('latency_interleaved', float('nan')):.3f}, "
                f"checkpoint bytes ×{ratios.get('checkpoint_bytes', float('nan')):.3f}")
        metric_bits = [f"{k[7:]} {comp.baseline.metrics[k[7:]]:.4f}→{c.metrics[k[7:]]:.4f} (×{v:.3f})"
                       for k, v in ratios.items() if k.startswith("metric:")]
        console.print(line + ("; " + ", ".join(metric_bits) if metric_bits else ""))
        console.print(f"[dim]  {comp.verdict}[/]")
    for comp in comparisons:
        comp.baseline.command = comp.candidate.command = command_line()
    with user_errors():
        if json_out is not None:
            save_json(comparisons, json_out, overwrite=overwrite)
            console.print(f"comparisons written to {json_out}")
        if out is not None:
            save_hf(quantize(net, dtype[0], inplace=True), tok, out, kind="quantized", overwrite=overwrite,
                    extra={"dtype": dtype[0]})
            console.print(f"wrote {dtype[0]} model to {out}")


def register(app: typer.Typer) -> None:
    app.command("prune")(prune_cmd)
    app.command("quantize")(quantize_cmd)
