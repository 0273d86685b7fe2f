"""Monitoring a run: ``rl-reason report``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from rl_reason.cli.app import app, fail


@app.command()
def report(
    run_dir: Annotated[Path, typer.Argument(help="the output_dir of an `rl-reason train` run")],
    output: Annotated[Optional[Path], typer.Option(
        "--output", "-o", help="HTML file (default RUN_DIR/report.html)")] = None,
):
    """One self-contained HTML page of a run's reward curves, pass rate, lengths and failed checks."""
    from rl_reason.report import write_report

    try:
        path = write_report(run_dir, output)
    except FileNotFoundError as exc:
        fail(str(exc))
    typer.echo(f"report: {path}")
