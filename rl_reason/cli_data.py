"""CLI commands for trace datasets: ``export``, ``eval`` (and the data commands that grow here).

Registered onto the ``rl-reason`` app by ``rl_reason.cli``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rl_reason.config import ConfigError


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    @app.command()
    def export(
        traces: Annotated[Path, typer.Argument(help="a run's traces/ directory (or one shard)")],
        output: Annotated[Path, typer.Option("--output", "-o", help="where to write dataset/ and train.jsonl")],
        min_reward: Annotated[float, typer.Option(help="keep completions whose weighted reward is at least this")] = 1.0,
        correct_only: Annotated[bool, typer.Option("--correct-only", help="also require the math/code verifier to say correct")] = False,
        select: Annotated[str, typer.Option(help="all: every passing completion; best: one per prompt")] = "all",
        include_eval: Annotated[bool, typer.Option("--include-eval", help="also export completions sampled during evaluation")] = False,
    ):
        """Successful traces into a distillation dataset in chat `messages` form (HF dataset + JSONL)."""
        from rl_reason.export import export as run_export

        if select not in ("all", "best"):
            _fail(f"--select: expected 'all' or 'best', got {select!r}")
        try:
            stats = run_export(traces, output, min_reward=min_reward, correct_only=correct_only, select=select, include_eval=include_eval)
        except FileNotFoundError as exc:
            _fail(str(exc))
        typer.echo(f"read {stats.read} traces, kept {stats.kept} from {stats.prompts} prompts -> {output}")
        typer.echo(f"removed: {dict(stats.removed)}")


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
        seed: Annotated[int, typer.Option(help="data seed: the same seed gives the same held-out set")] = 0,
        output: Annotated[Optional[Path], typer.Option("--output", "-o", help="write the JSON report here")] = None,
    ):
        """Accuracy of a model on held-out problems, scored by the same reward code as training."""
        from rl_reason.config import DataSection
        from rl_reason.data import heldout_problems
        from rl_reason.evaluate import evaluate
        from rl_reason.preflight import check_model_path

        try:
            check_model_path(str(model), "eval")
            section = DataSection(source=data, question_column=question_column, answer_column=answer_column, num_eval=num_problems, seed=seed, limit=limit)
            problems = heldout_problems(section, where="eval")
            if n is not None and n < k:
                raise ConfigError(f"eval: --n {n} is smaller than --k {k}")
        except ConfigError as exc:
            _fail(str(exc))
        report = evaluate(model, problems, k=k, n=n, temperature=temperature, max_new_tokens=max_new_tokens, seed=seed)
        text = report.to_json()
        if output:
            output.parent.mkdir(parents=True, exist_ok=True)
            output.write_text(text)
        typer.echo(text)


