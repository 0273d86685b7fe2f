"""``rl-reason synthesize``: new problems with verified answers, from a teacher and a seed pool."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from rl_reason.cli.app import Overrides, app, fail, quiet_datasets
from rl_reason.config import ConfigError


@app.command()
def synthesize(
    config: Annotated[Path, typer.Argument(help="YAML recipe: output_dir, seed, model and the synthesize section")],
    overrides: Overrides = None,
    progress: Annotated[bool, typer.Option(help="a progress bar on a terminal")] = True,
):
    """Self-Instruct / GLAN / Orca synthesis: new problems, verified answers, a dataset `train` reads as data.source.

    Run the same command again to continue a killed run: finished rounds are kept and the teacher
    is asked only what it had not answered.
    """
    from rl_reason.config import load_synthesize_recipe
    from rl_reason.sampling.openai_api import TeacherUnavailable
    from rl_reason.synthesize.pipeline import RECIPE, TEACHER_LOG, synthesize as run

    quiet_datasets()
    try:
        recipe = load_synthesize_recipe(config, overrides or [])
        result = run(recipe, progress=progress)
    except ConfigError as exc:
        fail(str(exc))
    except TeacherUnavailable as exc:
        out = Path(recipe.output_dir)
        again = f"; answers so far are kept in {out / TEACHER_LOG}: run the same command to continue" \
            if (out / RECIPE).exists() else ""
        fail(f"{exc}{again}")
    removed = ", ".join(f"{k} {v}" for k, v in sorted(result.removed.items(), key=lambda kv: -kv[1])) or "none"
    typer.echo(f"done: {result.kept} problems in {result.rounds} rounds -> {result.dataset}")
    typer.echo(f"removed: {removed}")
    if result.stop_reason:
        typer.echo(f"stopped: {result.stop_reason}")
    typer.echo(f"next: rl-reason train RECIPE data.source={result.dataset}")
