"""Commands on a run's traces: ``export`` (traces → dataset, then the Hub and W&B) and ``compact``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rl_reason.cli.app import app, fail, quiet_datasets


@app.command()
def export(
    traces: Annotated[Path, typer.Argument(help="a run's traces/ directory (or one shard)")],
    output: Annotated[Path, typer.Option("--output", "-o", help="export directory (replaced atomically)")],
    min_reward: Annotated[Optional[float], typer.Option(
        help="keep completions whose weighted reward is at least this (--no-min-reward: any)")] = 1.0,
    no_min_reward: Annotated[bool, typer.Option("--no-min-reward", help="no reward threshold")] = False,
    correct_only: Annotated[bool, typer.Option(
        "--correct-only", help="require the verifier rewards (math, code or the run's own) to say correct")] = False,
    select: Annotated[str, typer.Option(help="per prompt: all | best | shortest | first | diverse")] = "all",
    k: Annotated[int, typer.Option("--k", help="traces per prompt for best/shortest/first/diverse")] = 1,
    include_eval: Annotated[bool, typer.Option(
        "--include-eval", help="also export completions sampled during evaluation")] = False,
    keep_truncated: Annotated[bool, typer.Option(
        "--keep-truncated", help="keep completions cut at the token limit")] = False,
    check_format: Annotated[bool, typer.Option(
        "--format-check/--no-format-check", help="require well-formed <think>…</think> and one final answer")] = True,
    prefilled_think: Annotated[bool, typer.Option(
        "--prefilled-think", help="the chat template prefills <think> (R1-Distill, Qwen3)")] = False,
    min_tokens: Annotated[int, typer.Option(help="drop completions shorter than this (tokens)")] = 0,
    max_tokens: Annotated[Optional[int], typer.Option(help="drop completions longer than this (tokens)")] = None,
    min_pass_rate: Annotated[float, typer.Option(
        help="keep prompts whose pass rate over their samples is at least this")] = 0.0,
    max_pass_rate: Annotated[float, typer.Option(
        help="... and at most this (e.g. 0.9 drops prompts that are too easy)")] = 1.0,
    dedup: Annotated[bool, typer.Option(
        "--dedup/--no-dedup", help="drop exact duplicate completions of a prompt")] = True,
    near_dup: Annotated[Optional[float], typer.Option(
        help="drop completions with rapidfuzz ratio >= this (0-100, e.g. 95) to a kept one of the same prompt")] = None,
    decontaminate: Annotated[Optional[list[Path]], typer.Option(
        help="evaluation set (JSONL/Parquet/dataset dir); repeatable")] = None,
    decontam_column: Annotated[Optional[str], typer.Option(
        help="problem column of the evaluation sets (default: problem/question/prompt)")] = None,
    ngram: Annotated[int, typer.Option(help="word n-gram size for decontamination")] = 8,
    mix: Annotated[Optional[Path], typer.Option(
        help="human-written dataset (JSONL/Parquet/dataset dir) to mix in")] = None,
    mix_ratio: Annotated[float, typer.Option(help="fraction of the messages view taken from --mix")] = 0.1,
    mix_question_column: Annotated[str, typer.Option()] = "question",
    mix_answer_column: Annotated[str, typer.Option()] = "answer",
    fmt: Annotated[str, typer.Option("--format", help="jsonl or parquet")] = "jsonl",
    save_to_disk: Annotated[bool, typer.Option(
        "--save-to-disk/--no-save-to-disk", help="also write dataset/ (what distill loads)")] = True,
    push_to_hub: Annotated[Optional[str], typer.Option(
        help="also upload to this Hub dataset repo (owner/name)")] = None,
    public: Annotated[bool, typer.Option(
        "--public", help="with --push-to-hub: a public repo (default private)")] = False,
    seed: Annotated[int, typer.Option(help="seed for sampling the mixed-in rows")] = 0,
    log_wandb: Annotated[bool, typer.Option(
        "--wandb", help="also log the export as a W&B artifact (type dataset); offline without a W&B account")] = False,
    wandb_project: Annotated[Optional[str], typer.Option(
        help="with --wandb: W&B project (default: the training run's, from OUTPUT_DIR/wandb_run.json)")] = None,
    wandb_lineage: Annotated[bool, typer.Option(
        "--wandb-lineage/--no-wandb-lineage",
        help="with --wandb: log the artifact onto the training run itself (resumed by id), else a job_type=export "
             "run beside it")] = True,
):
    """Traces into a distillation dataset: filters, per-prompt selection, messages + problems views, card."""
    from rl_reason.export.pipeline import ExportError, ExportOptions
    from rl_reason.export.pipeline import export as run_export
    from rl_reason.export.publish import export_args, publish

    quiet_datasets()
    opts = ExportOptions(
        min_reward=None if no_min_reward else min_reward, correct_only=correct_only, select=select, k=k,
        include_eval=include_eval, keep_truncated=keep_truncated, check_format=check_format,
        prefilled_think=prefilled_think, min_tokens=min_tokens, max_tokens=max_tokens, min_pass_rate=min_pass_rate,
        max_pass_rate=max_pass_rate, dedup=dedup, near_dup_threshold=near_dup,
        decontaminate=[str(p) for p in decontaminate or []], decontam_column=decontam_column, ngram=ngram,
    )
    mix_path = str(mix) if mix else None
    try:
        stats = run_export(traces, output, options=opts, fmt=fmt, mix=mix_path, mix_ratio=mix_ratio,
                           mix_question_column=mix_question_column, mix_answer_column=mix_answer_column, seed=seed,
                           save_to_disk=save_to_disk)
    except (FileNotFoundError, ExportError) as exc:
        fail(str(exc))
    typer.echo(f"read {stats.read} traces, kept {stats.kept} from {stats.prompts} prompts"
               + (f", mixed in {stats.mixed} human-written rows" if stats.mixed else "") + f" -> {output}")
    typer.echo(f"removed: {stats.as_dict()['removed']}")
    # The files are written; the Hub and W&B come after, each failure one `error:` line (exit 2).
    args = export_args(opts, traces=traces, output=output, fmt=fmt, mix=mix_path, mix_ratio=mix_ratio, seed=seed,
                       save_to_disk=save_to_disk)
    published = publish(output, traces, stats.as_dict(), args, hub_repo=push_to_hub, private=not public,
                        wandb=log_wandb, wandb_project=wandb_project, wandb_lineage=wandb_lineage)
    for line in published.lines():
        typer.echo(line)
    for message in published.errors:
        typer.echo(f"error: {message}", err=True)
    if published.errors:
        raise typer.Exit(2)


@app.command()
def compact(
    traces: Annotated[Path, typer.Argument(help="a finished run's traces/ directory")],
    keep_jsonl: Annotated[bool, typer.Option("--keep-jsonl", help="keep the JSONL shards beside the Parquet")] = False,
):
    """Compact a finished run's JSONL trace shards into Parquet (lossless; export reads either)."""
    from rl_reason.traces.compact import compact as run_compact

    try:
        done = run_compact(traces, keep_jsonl=keep_jsonl)
    except FileNotFoundError as exc:
        fail(str(exc))
    for name, n in done.items():
        typer.echo(f"{name}: {n} traces")
