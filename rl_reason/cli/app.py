"""The ``rl-reason`` Typer app, and the one way a command reports a user error."""

from __future__ import annotations

from typing import Annotated, NoReturn, Optional

import typer

app = typer.Typer(
    help="R1-style GRPO reasoning trainer: train, export traces, distill a student, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Overrides = Annotated[
    Optional[list[str]],
    typer.Argument(help="KEY=VALUE overrides, e.g. learning_rate=1e-5 model.name_or_path=out/sft"),
]


def fail(message: str) -> NoReturn:
    """A user error: one ``error:`` line on stderr, exit code 2."""
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def quiet_datasets() -> None:
    """No ``datasets`` progress bars: a command's own file loading (eval sets, seeds, the mix) would
    otherwise print them around its one-line summary or error."""
    import datasets

    datasets.disable_progress_bars()
