"""`greenprune structure` (vocabulary / layers / FFN / KV groups, optional LoRA recovery) and `greenprune recover`."""

from __future__ import annotations

from pathlib import Path

import typer

from greenprune.commands._common import command_line, console, quiet_libraries, user_errors


def structure(
    model: str = typer.Argument(..., help="alias, HF folder, .gguf file or hub id (Llama/Qwen2/Mistral)"),
    vocab: str | None = typer.Option(None, "--vocab", help="vocabulary corpus: 'stdlib', a folder, a file, a .jsonl"),
    chat_frame: bool = typer.Option(
        True, "--chat-frame/--no-chat-frame",
        help="with --vocab: also keep the chat template's and ``` fences' tokens (instruction models)",
    ),
    whitespace: bool = typer.Option(
        False, "--vocab-whitespace/--no-vocab-whitespace",
        help="with --vocab: also keep every whitespace-only token (indentation, blank lines)",
    ),
    frequent: int = typer.Option(
        0, "--vocab-frequent", min=0,
        help="with --vocab: also keep the tokens of the tokenizer's first N BPE merges (its most frequent tokens)",
    ),
    layers: int = typer.Option(0, "--layers", help="decoder layers to remove (greedy, re-scored)"),
    metric: str = typer.Option("kl", "--metric", help="layer importance: kl | bi"),
    ffn: float = typer.Option(0.0, "--ffn", help="fraction of FFN neurons to remove per layer (0..1)"),
    kv_groups: int = typer.Option(0, "--kv-groups", help="KV groups (GQA) to remove per layer"),
    do_recover: bool = typer.Option(False, "--recover", help="LoRA post-training, merged back"),
    recover_data: str = typer.Option("stdlib", "--recover-data", help="'stdlib' or a JSONL/CSV of pairs"),
    recover_steps: int = typer.Option(100, "--recover-steps"),
    out: Path | None = typer.Option(None, "--out", "-o", help="output folder (default: ./<model>-structured)"),
    measure: bool = typer.Option(True, "--measure/--no-measure", help="measure before/after for the model card"),
    eval_texts: int = typer.Option(40, "--eval-texts", help="held-out functions for perplexity"),
    energy: bool = typer.Option(True, "--energy/--no-energy"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an earlier greenprune output at --out"),
) -> None:
    """Remove whole structures (vocabulary rows, layers, FFN neurons, KV groups) and write a plain HF folder."""
    quiet_libraries()
    with user_errors():
        import copy

        from greenprune.checkpoint import check_output_target, save_hf
        from greenprune.models import load_model
        from greenprune.recover import RecoveryConfig, load_pairs, recover, stdlib_pairs
        from greenprune.structure.card import model_card
        from greenprune.structure.layers import METRICS, LayerPruningError
        from greenprune.structure.measurement import measure_before_after
        from greenprune.structure.pipeline import (
            NothingToPruneError,
            StructureConfig,
            read_corpus,
            run_structure,
        )

        if metric not in METRICS:
            raise LayerPruningError(f"--metric {metric!r}: expected one of {', '.join(METRICS)}")
        if not (vocab or layers or ffn or kv_groups):  # before the model loads: it would be written out unchanged
            raise NothingToPruneError(
                f"greenprune structure {model}: nothing to prune; give --vocab CORPUS, --layers N, "
                "--ffn FRACTION or --kv-groups N (all are off or 0)")
        target = out or Path(f"{Path(model).name}-structured")
        check_output_target(target, overwrite=overwrite)  # before the work, not after it
        loaded = load_model(model, task="causal-lm")
        baseline = copy.deepcopy(loaded.model) if measure else None
        base_tok = loaded.tokenizer
        config = StructureConfig(vocab_corpus=vocab, vocab_chat_frame=chat_frame, vocab_whitespace=whitespace,
                                 vocab_frequent=frequent, layers=layers, metric=metric,
                                 ffn=ffn, kv_groups=kv_groups)
        pruned, tokenizer, report = run_structure(loaded.model, loaded.tokenizer, config)
        if do_recover:
            pairs = stdlib_pairs() if recover_data == "stdlib" else load_pairs(recover_data)
            rec = recover(pruned, tokenizer, pairs, RecoveryConfig(steps=recover_steps), data_name=recover_data)
            pruned = rec.model
            report.steps.append({"step": "recover (LoRA, merged)", **rec.summary()})
        if baseline is not None:
            corpus = read_corpus(vocab, limit=200) if vocab else None
            report.measurements = measure_before_after(baseline, base_tok, pruned, tokenizer, report.kept_ids,
                                                       corpus, eval_texts=eval_texts, energy=energy)
        card = model_card(model, report, command_line())
        save_hf(pruned, tokenizer, target, kind="structure", overwrite=overwrite,
                files={"README.md": card, "structure.json": report.to_json() + "\n"})
    console.print(f"[green]wrote[/] {target}: {report.params_before:,} → {report.params_after:,} parameters")
    for step in report.steps:
        console.print(f"  {step['step']}")
    if report.measurements:
        for key, (before, after) in report.measurements["table"].items():
            console.print(f"  {key}: {before:.4g} → {after:.4g}")


def recover_cmd(
    model: str = typer.Argument(..., help="model to post-train (alias, folder, hub id)"),
    data: str = typer.Option("stdlib", "--data", help="'stdlib' or a JSONL/CSV with prompt/completion or src/tgt"),
    steps: int = typer.Option(100, "--steps"),
    rank: int = typer.Option(16, "--r"),
    lr: float = typer.Option(3e-4, "--lr"),
    out: Path = typer.Option(..., "--out", "-o", help="output folder (plain HF checkpoint, adapters merged)"),
    overwrite: bool = typer.Option(False, "--overwrite", help="replace an earlier greenprune output at --out"),
) -> None:
    """LoRA post-training on code-instruction pairs, merged into a plain checkpoint."""
    quiet_libraries()
    with user_errors():
        from greenprune.checkpoint import check_output_target, save_hf
        from greenprune.models import load_model
        from greenprune.recover import RecoveryConfig, load_pairs, recover, stdlib_pairs

        check_output_target(out, overwrite=overwrite)
        loaded = load_model(model, task="causal-lm")
        pairs = stdlib_pairs() if data == "stdlib" else load_pairs(data)
        result = recover(loaded.model, loaded.tokenizer, pairs, RecoveryConfig(steps=steps, r=rank, lr=lr),
                         data_name=data)
        save_hf(result.model, loaded.tokenizer, out, kind="recover", overwrite=overwrite)
    s = result.summary()
    console.print(f"[green]wrote[/] {out}: {s['steps']} steps on {s['pairs']} pairs, loss {s['loss_first']} → "
                  f"{s['loss_last']}")


def register(app: typer.Typer) -> None:
    app.command("structure")(structure)
    app.command("recover")(recover_cmd)
