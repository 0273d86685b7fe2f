"""CLI commands for trace datasets: ``export``, ``compact``, ``sample``, ``star`` and ``eval``.

Registered onto the ``rl-reason`` app by ``rl_reason.cli``. Heavy imports happen inside the
commands so ``--help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rl_reason.config import ConfigError


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def parse_rewards(spec: str) -> list[tuple[str, float, dict]]:
    """``"math:1.0,format:0.1"`` → ``[("math", 1.0, {}), ("format", 0.1, {})]`` (weight defaults to 1)."""
    out = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        # A dotted-path reward ("pkg.mod:func") has a colon too: only a numeric tail is a weight.
        name, weight = part, 1.0
        head, sep, tail = part.rpartition(":")
        if sep:
            try:
                name, weight = head, float(tail)
            except ValueError:
                pass
        out.append((name, weight, {}))
    if not out:
        raise ConfigError("--rewards: give at least one reward, e.g. math:1.0,format:0.1")
    from rewards.registry import get_reward

    for name, _, _ in out:
        try:
            get_reward(name)
        except (KeyError, ImportError, AttributeError) as exc:
            raise ConfigError(f"--rewards: {exc.args[0] if exc.args else exc}") from None
    return out


def _problems(data: str, question_column: str, answer_column: str, num_problems: int, seed: int, limit: Optional[int],
              split: str, where: str) -> list[dict]:
    """Problems from the procedural task (``split`` train or heldout) or a JSONL/Parquet/dataset path."""
    from rl_reason.config import DataSection
    from rl_reason.data.load import PROCEDURAL, heldout_problems, procedural_splits

    if data in PROCEDURAL:
        section = DataSection(source=data, num_train=num_problems if split == "train" else 1,
                              num_eval=num_problems if split == "heldout" else 1, seed=seed)
        train, heldout = procedural_splits(section)
        return train if split == "train" else heldout
    section = DataSection(source=data, question_column=question_column, answer_column=answer_column, seed=seed, limit=limit)
    return heldout_problems(section, where=where)


def _quiet_datasets() -> None:
    # The export's own loading (eval sets, the mix, dataset/) would otherwise print progress bars
    # around the one-line summary or error.
    import datasets

    datasets.disable_progress_bars()


def register(app: typer.Typer) -> None:
    @app.command()
    def export(
        traces: Annotated[Path, typer.Argument(help="a run's traces/ directory (or one shard)")],
        output: Annotated[Path, typer.Option("--output", "-o", help="export directory (replaced atomically)")],
        min_reward: Annotated[Optional[float], typer.Option(help="keep completions whose weighted reward is at least this (--no-min-reward: any)")] = 1.0,
        no_min_reward: Annotated[bool, typer.Option("--no-min-reward", help="no reward threshold")] = False,
        correct_only: Annotated[bool, typer.Option("--correct-only", help="require the math/code verifier to say correct")] = False,
        select: Annotated[str, typer.Option(help="per prompt: all | best | shortest | first | diverse")] = "all",
        k: Annotated[int, typer.Option("--k", help="traces per prompt for best/shortest/first/diverse")] = 1,
        include_eval: Annotated[bool, typer.Option("--include-eval", help="also export completions sampled during evaluation")] = False,
        keep_truncated: Annotated[bool, typer.Option("--keep-truncated", help="keep completions cut at the token limit")] = False,
        check_format: Annotated[bool, typer.Option("--format-check/--no-format-check", help="require well-formed <think>…</think> and one final answer")] = True,
        prefilled_think: Annotated[bool, typer.Option("--prefilled-think", help="the chat template prefills <think> (R1-Distill, Qwen3)")] = False,
        min_tokens: Annotated[int, typer.Option(help="drop completions shorter than this (tokens)")] = 0,
        max_tokens: Annotated[Optional[int], typer.Option(help="drop completions longer than this (tokens)")] = None,
        min_pass_rate: Annotated[float, typer.Option(help="keep prompts whose pass rate over their samples is at least this")] = 0.0,
        max_pass_rate: Annotated[float, typer.Option(help="... and at most this (e.g. 0.9 drops prompts that are too easy)")] = 1.0,
        dedup: Annotated[bool, typer.Option("--dedup/--no-dedup", help="drop exact duplicate completions of a prompt")] = True,
        near_dup: Annotated[Optional[float], typer.Option(help="drop completions with rapidfuzz ratio >= this (0-100, e.g. 95) to a kept one of the same prompt")] = None,
        decontaminate: Annotated[Optional[list[Path]], typer.Option(help="evaluation set (JSONL/Parquet/dataset dir); repeatable")] = None,
        decontam_column: Annotated[Optional[str], typer.Option(help="problem column of the evaluation sets (default: problem/question/prompt)")] = None,
        ngram: Annotated[int, typer.Option(help="word n-gram size for decontamination")] = 8,
        mix: Annotated[Optional[Path], typer.Option(help="human-written dataset (JSONL/Parquet/dataset dir) to mix in")] = None,
        mix_ratio: Annotated[float, typer.Option(help="fraction of the messages view taken from --mix")] = 0.1,
        mix_question_column: Annotated[str, typer.Option()] = "question",
        mix_answer_column: Annotated[str, typer.Option()] = "answer",
        fmt: Annotated[str, typer.Option("--format", help="jsonl or parquet")] = "jsonl",
        save_to_disk: Annotated[bool, typer.Option("--save-to-disk/--no-save-to-disk", help="also write dataset/ (what distill loads)")] = True,
        push_to_hub: Annotated[Optional[str], typer.Option(help="also upload to this Hub dataset repo (owner/name)")] = None,
        public: Annotated[bool, typer.Option("--public", help="with --push-to-hub: a public repo (default private)")] = False,
        seed: Annotated[int, typer.Option(help="seed for sampling the mixed-in rows")] = 0,
        log_wandb: Annotated[bool, typer.Option("--wandb", help="also log the export as a W&B artifact (type dataset); offline without a W&B account")] = False,
        wandb_project: Annotated[Optional[str], typer.Option(help="with --wandb: W&B project (default: the training run's, from OUTPUT_DIR/wandb_run.json)")] = None,
        wandb_lineage: Annotated[bool, typer.Option("--wandb-lineage/--no-wandb-lineage", help="with --wandb: log the artifact onto the training run itself (resumed by id), else a job_type=export run beside it")] = True,
    ):
        """Traces into a distillation dataset: filters, per-prompt selection, messages + problems views, card."""
        from rl_reason.export.pipeline import ExportError, ExportOptions
        from rl_reason.export.pipeline import export as run_export
        from rl_reason.export.pipeline import push_to_hub as run_push

        _quiet_datasets()

        opts = ExportOptions(
            min_reward=None if no_min_reward else min_reward, correct_only=correct_only, select=select, k=k,
            include_eval=include_eval, keep_truncated=keep_truncated, check_format=check_format,
            prefilled_think=prefilled_think, min_tokens=min_tokens, max_tokens=max_tokens, min_pass_rate=min_pass_rate,
            max_pass_rate=max_pass_rate, dedup=dedup, near_dup_threshold=near_dup,
            decontaminate=[str(p) for p in decontaminate or []], decontam_column=decontam_column, ngram=ngram,
        )
        try:
            stats = run_export(traces, output, options=opts, fmt=fmt, mix=str(mix) if mix else None, mix_ratio=mix_ratio,
                               mix_question_column=mix_question_column, mix_answer_column=mix_answer_column, seed=seed,
                               save_to_disk=save_to_disk)
        except (FileNotFoundError, ExportError) as exc:
            _fail(str(exc))
        typer.echo(f"read {stats.read} traces, kept {stats.kept} from {stats.prompts} prompts"
                   + (f", mixed in {stats.mixed} human-written rows" if stats.mixed else "") + f" -> {output}")
        typer.echo(f"removed: {stats.as_dict()['removed']}")
        # The files are written; the Hub and W&B come after, each failure one `error:` line (exit 2).
        errors = []
        if push_to_hub:
            try:
                typer.echo(f"pushed: {run_push(output, push_to_hub, private=not public)}")
            except ExportError as exc:
                errors.append(str(exc))
        if log_wandb:
            from dataclasses import asdict

            from rl_reason.export.publish import log_export

            args = {**asdict(opts), "traces": str(traces), "output": str(output), "format": fmt, "mix": str(mix) if mix else None,
                    "mix_ratio": mix_ratio if mix else None, "seed": seed, "save_to_disk": save_to_disk}
            try:
                logged = log_export(output, traces, stats.as_dict(), args, project=wandb_project, lineage=wandb_lineage)
            except ExportError as exc:
                errors.append(str(exc))
            else:
                where = "training run" if logged.lineage else "export run"
                typer.echo(f"W&B: artifact {logged.artifact}:latest (dataset) logged by {where} {logged.project}/{logged.run_id}"
                           + (" (offline)" if logged.offline else ""))
                if logged.sync_dirs:
                    typer.echo(f"W&B: upload later with: wandb sync {' '.join(logged.sync_dirs)}")
        for message in errors:
            typer.echo(f"error: {message}", err=True)
        if errors:
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
            _fail(str(exc))
        for name, n in done.items():
            typer.echo(f"{name}: {n} traces")

    @app.command()
    def sample(
        model: Annotated[Path, typer.Argument(help="teacher model directory (save_pretrained format) or Hub id")],
        output: Annotated[Path, typer.Option("--output", "-o", help="traces directory to append a shard to")],
        data: Annotated[str, typer.Option(help="'addition' (procedural training problems) or a JSONL/Parquet/dataset path")] = "addition",
        question_column: Annotated[str, typer.Option()] = "question",
        answer_column: Annotated[str, typer.Option()] = "answer",
        num_problems: Annotated[int, typer.Option(help="problems for procedural data")] = 200,
        limit: Annotated[Optional[int], typer.Option(help="only the first N rows of a file")] = None,
        num_samples: Annotated[int, typer.Option("--num-samples", "-n", help="samples per problem")] = 4,
        temperature: Annotated[float, typer.Option()] = 0.6,
        top_p: Annotated[float, typer.Option()] = 1.0,
        max_new_tokens: Annotated[int, typer.Option()] = 256,
        rewards: Annotated[str, typer.Option(help="NAME[:WEIGHT],... from the reward registry")] = "math:1.0,format:0.1",
        backend: Annotated[str, typer.Option(help="transformers | vllm | auto")] = "transformers",
        batch_size: Annotated[int, typer.Option(help="sequences per generate call (transformers)")] = 64,
        system_prompt: Annotated[Optional[str], typer.Option(help="default: the task's <think>/\\boxed prompt")] = None,
        run_id: Annotated[Optional[str], typer.Option(help="run id recorded in the traces")] = None,
        seed: Annotated[int, typer.Option()] = 0,
    ):
        """Rejection sampling: N samples per problem from a teacher, scored by the rewards, written as traces."""
        from rl_reason.preflight import check_model_path
        from rl_reason.sampling.sample import resolve_backend, sample_traces

        try:
            check_model_path(str(model), "sample")
            specs = parse_rewards(rewards)
            resolve_backend(backend)
            if num_samples < 1:
                raise ConfigError("--num-samples must be at least 1")
            problems = _problems(data, question_column, answer_column, num_problems, seed, limit, "train", "sample")
        except (ConfigError, ValueError) as exc:
            _fail(str(exc))
        result = sample_traces(model, problems, output, reward_specs=specs, num_samples=num_samples, temperature=temperature,
                               top_p=top_p, max_new_tokens=max_new_tokens, batch_size=batch_size, seed=seed, run_id=run_id,
                               system_prompt=system_prompt, backend=backend)
        typer.echo(f"{result['correct']} of {result['samples']} samples correct, {result['solved']} of {result['prompts']} problems solved -> {result['shard']}")

    @app.command()
    def star(
        model: Annotated[Path, typer.Argument(help="the model to start from (round 0)")],
        output: Annotated[Path, typer.Option("--output", "-o", help="directory for each round's traces, export and model")],
        rounds: Annotated[int, typer.Option(help="sample → export → distill → eval rounds")] = 2,
        base_model: Annotated[Optional[Path], typer.Option(help="model each round fine-tunes (default: MODEL, as in STaR)")] = None,
        data: Annotated[str, typer.Option(help="'addition' or a JSONL/Parquet/dataset path of training problems")] = "addition",
        eval_data: Annotated[Optional[str], typer.Option(help="held-out problems (default: the procedural held-out set)")] = None,
        num_problems: Annotated[int, typer.Option(help="training problems per round (procedural)")] = 200,
        num_eval: Annotated[int, typer.Option(help="held-out problems (procedural)")] = 100,
        num_samples: Annotated[int, typer.Option("--num-samples", "-n")] = 4,
        temperature: Annotated[float, typer.Option()] = 1.0,
        max_new_tokens: Annotated[int, typer.Option()] = 64,
        max_steps: Annotated[int, typer.Option(help="SFT steps per round")] = 100,
        learning_rate: Annotated[float, typer.Option()] = 1e-3,
        batch_size: Annotated[int, typer.Option(help="SFT per-device batch size")] = 16,
        select: Annotated[str, typer.Option(help="export selection per prompt")] = "all",
        seed: Annotated[int, typer.Option()] = 0,
    ):
        """STaR: iterate sample → export (correct only) → distill → eval, reporting held-out accuracy per round."""
        from rl_reason.export.pipeline import ExportError, ExportOptions
        from rl_reason.preflight import check_model_path
        from rl_reason.sampling.star import star as run_star

        try:
            check_model_path(str(model), "star")
            if rounds < 1:
                raise ConfigError("--rounds must be at least 1")
            opts = ExportOptions(min_reward=None, correct_only=True, select=select)
            opts.check()
            train = _problems(data, "question", "answer", num_problems, seed, None, "train", "star")
            heldout = _problems(eval_data or "addition", "question", "answer", num_eval, seed, None, "heldout", "star")
            if data == "addition" and eval_data is None:
                seen = {p["question"] for p in heldout}
                train = [p for p in train if p["question"] not in seen]
        except (ConfigError, ExportError) as exc:
            _fail(str(exc))
        report = run_star(model, train, heldout, output, rounds=rounds, base_model=base_model, num_samples=num_samples,
                          temperature=temperature, max_new_tokens=max_new_tokens, export_options=opts, seed=seed,
                          sft={"max_steps": max_steps, "learning_rate": learning_rate, "per_device_train_batch_size": batch_size},
                          log=typer.echo)
        typer.echo("round  exported  accuracy")
        for entry in report:
            typer.echo(f"{entry['round']:>5}  {entry.get('exported', ''):>8}  {entry['accuracy']:>8.1%}")

    @app.command("eval")
    def eval_(
        model: Annotated[Path, typer.Argument(help="a model directory (save_pretrained format)")],
        data: Annotated[str, typer.Option(help="'addition' (held-out procedural problems) or a JSONL/dataset path")] = "addition",
        question_column: Annotated[str, typer.Option()] = "question",
        answer_column: Annotated[str, typer.Option()] = "answer",
        num_problems: Annotated[int, typer.Option(help="held-out problems for procedural data")] = 200,
        limit: Annotated[Optional[int], typer.Option(help="evaluate only the first N rows of a file")] = None,
        k: Annotated[int, typer.Option(help="report pass@k (unbiased) from n samples when k > 1")] = 1,
        n: Annotated[Optional[int], typer.Option(help="samples per problem for pass@k (default k)")] = None,
        temperature: Annotated[float, typer.Option()] = 1.0,
        max_new_tokens: Annotated[int, typer.Option()] = 64,
        backend: Annotated[str, typer.Option(help="transformers | vllm | auto")] = "transformers",
        seed: Annotated[int, typer.Option(help="data seed: the same seed gives the same held-out set")] = 0,
        output: Annotated[Optional[Path], typer.Option("--output", "-o", help="write the JSON report here")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="print the JSON report instead of the table")] = False,
    ):
        """pass@1 (greedy) and pass@k of a model on held-out problems, per source and answer type."""
        from rl_reason.config import DataSection
        from rl_reason.data.load import heldout_problems
        from rl_reason.sampling.evaluate import evaluate
        from rl_reason.preflight import check_model_path
        from rl_reason.sampling.sample import resolve_backend

        try:
            check_model_path(str(model), "eval")
            resolve_backend(backend)
            if k < 1:
                raise ConfigError(f"eval: --k must be at least 1, got {k}")
            if n is not None and n < k:
                raise ConfigError(f"eval: --n {n} is smaller than --k {k}")
            section = DataSection(source=data, question_column=question_column, answer_column=answer_column, num_eval=num_problems, seed=seed, limit=limit)
            problems = heldout_problems(section, where="eval")
        except (ConfigError, ValueError) as exc:
            _fail(str(exc))
        report = evaluate(model, problems, k=k, n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed, backend=backend)
        text = report.to_json()
        if output:
            output.parent.mkdir(parents=True, exist_ok=True)
            tmp = output.with_suffix(output.suffix + ".tmp")
            tmp.write_text(text)
            tmp.replace(output)
        typer.echo(text if as_json else report.table())
