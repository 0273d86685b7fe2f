"""After an export is written: its uploads to the Hugging Face Hub and to W&B.

``publish`` is what ``rl-reason export --push-to-hub/--wandb`` runs once ``rl_reason.export.pipeline.export``
has written (and atomically renamed) the export, so no upload failure ever costs the dataset: each one
becomes a message, and the other upload still runs.

Hub (``push_to_hub``): the card, ``data/`` and ``export_stats.json`` as a dataset repo.

W&B (``log_export``): the export as an artifact of type ``dataset``, linked to the run that made it.
The training run leaves ``OUTPUT_DIR/wandb_run.json`` (``{"id", "project", "entity", "group", "mode"}``)
when it reports to W&B; it is looked up in the traces directory and its parent (``OUTPUT_DIR``).

Lineage (the default when that file is found): the training run itself is resumed by its id and
logs the artifact, so W&B shows the dataset as an output of the training run. This is the one
kind of lineage that works offline: ``use_artifact`` raises "Cannot use artifact when in offline
mode" in wandb 0.31, while a resumed offline run is an ordinary offline run directory (same run
id, ``resume`` set) that ``wandb sync`` uploads after the training run's own directory, in order
of start time. Nothing is added to the training run's config or summary; everything about the
export is in the artifact's metadata.

``lineage=False`` (CLI ``--no-wandb-lineage``), no ``wandb_run.json``, or a ``--wandb-project``
other than the training run's: a new run with ``job_type="export"`` (in the training run's
project and group when known) logs the artifact; its config carries ``source_run_id`` and the
export's arguments, its summary the counts.

Mode: offline when no account is configured (``rl_reason.wandb_env.default_mode``, the rule
training uses too). Online, the training run is resumed
with ``resume="must"``: a training run never synced is an error, not a new empty run that would
later block the sync of the real one.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rl_reason.export.pipeline import ExportError
from rl_reason.traces.schema import WANDB_RUN, find_wandb_run, read_run_info
from rl_reason.wandb_env import default_mode

RUN_FILE = WANDB_RUN
DEFAULT_PROJECT = "rl-reason"


@dataclass
class WandbExport:
    """What was logged, for the CLI's summary line."""

    artifact: str  # name, as logged (version ``latest``)
    run_id: str
    project: str
    lineage: bool  # logged onto the training run itself
    offline: bool
    sync_dirs: list[str] = field(default_factory=list)  # offline: what to pass to ``wandb sync``, in order


def find_training_run(traces: str | Path) -> tuple[dict, Path] | None:
    """``wandb_run.json`` of the run that wrote ``traces`` (a traces directory or one shard), if any."""
    try:
        return find_wandb_run(traces)
    except ValueError as exc:
        raise ExportError(f"--wandb: {exc}") from None


def artifact_name(output_dir: str | Path, source_run_id: str | None) -> str:
    """``<output dir name>-<source run id>``, in the characters W&B allows in an artifact name."""
    name = Path(output_dir).resolve().name + (f"-{source_run_id}" if source_run_id else "")
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", name).strip("-.") or "export"


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def export_metadata(traces: str | Path, stats: dict, args: dict, source: dict) -> dict:
    """The artifact's metadata: source run and traces, counts kept/removed per filter, the arguments."""
    traces = Path(traces)
    return _jsonable({
        "source_run_id": source.get("id"),
        "source_project": source.get("project"),
        "source_group": source.get("group"),
        "source_traces": str(traces.resolve()),
        "trace_run_ids": stats.get("run_ids", {}),  # run ids recorded in the traces, with their counts
        "trace_run_metadata": read_run_info(traces),  # traces/run.json: git SHA, model, sampling
        **{k: stats[k] for k in ("read", "kept", "prompts", "prompts_seen", "mixed", "removed", "skipped_lines")
           if k in stats},
        "export_args": args,
    })


def _dataset_files(output_dir: Path) -> list[tuple[Path, str]]:
    files = [output_dir / "README.md", output_dir / "export_stats.json", *sorted((output_dir / "data").glob("*"))]
    return [(p, p.relative_to(output_dir).as_posix()) for p in files if p.is_file()]


def _offline_dirs(wandb_dir: Path, run_id: str) -> list[str]:
    return sorted(str(p) for p in (wandb_dir / "wandb").glob(f"offline-run-*-{run_id}") if p.is_dir())


def log_export(
    output_dir: str | Path,
    traces: str | Path,
    stats: dict,
    args: dict,
    *,
    project: str | None = None,
    lineage: bool = True,
) -> WandbExport:
    """Log the export in ``output_dir`` as a W&B artifact of type ``dataset``.

    Any W&B failure (no network, no permission, no such run) is an ``ExportError`` that says the
    export itself is intact.
    """
    output_dir = Path(output_dir)
    try:
        import wandb
    except ImportError:
        raise ExportError("--wandb: the wandb package is not installed (pip install wandb)") from None

    if os.environ.get("WANDB_MODE") == "disabled":
        raise ExportError("--wandb: WANDB_MODE=disabled, nothing logged; the export is intact in " + str(output_dir))
    found = find_training_run(traces)
    source, run_file = found if found else ({}, None)
    source_run_id = source.get("id")
    project = project or source.get("project") or os.environ.get("WANDB_PROJECT") or DEFAULT_PROJECT
    resume = bool(lineage and source_run_id and project == source.get("project"))
    mode = default_mode()
    offline = (mode or os.environ.get("WANDB_MODE", "")) in ("offline", "dryrun")
    # Offline runs go beside the training run's (train.py's WANDB_DIR default is OUTPUT_DIR), so
    # one `wandb sync OUTPUT_DIR/wandb/offline-run-*` uploads both, in order.
    wandb_dir = os.environ.get("WANDB_DIR") or (str(run_file.parent) if run_file else None)
    name = artifact_name(output_dir, source_run_id)
    metadata = export_metadata(traces, stats, args, source)

    init = {"project": project, "entity": source.get("entity") or None, "group": source.get("group") or None,
            "mode": mode, "dir": wandb_dir, "reinit": "create_new",
            "settings": wandb.Settings(silent=True, console="off")}
    if resume:
        init.update(id=source_run_id, resume="allow" if offline else "must")
    else:
        init.update(job_type="export", config={"source_run_id": source_run_id,
                                               "source_traces": metadata["source_traces"],
                                               "export_args": metadata["export_args"]})

    # wandb reads its environment once per process: start from a clean slate unless a run is live.
    owns_session = wandb.run is None
    if owns_session:
        wandb.teardown()
        wandb.setup(wandb.Settings(silent=True))  # our own summary lines, not wandb's banner and hints
    run = None
    try:
        run = wandb.init(**init)
        artifact = wandb.Artifact(name, type="dataset", metadata=metadata,
                                  description=f"rl-reason export of {metadata['source_traces']}: "
                                              f"{stats.get('kept', 0)} of {stats.get('read', 0)} traces kept")
        for path, rel in _dataset_files(output_dir):
            artifact.add_file(str(path), name=rel)
        if (output_dir / "dataset").is_dir():
            artifact.add_dir(str(output_dir / "dataset"), name="dataset")
        run.log_artifact(artifact)
        if not resume:
            run.summary.update({k: metadata[k] for k in ("read", "kept", "prompts", "mixed") if k in metadata})
        run_id, run_project = run.id, run.project
        run.finish()
        run = None
    except Exception as exc:  # network, auth, resume refused: one clear line, the export stays
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        hint = ""
        if resume and not offline:
            hint = " (lineage resumes the training run: sync it first, or use --no-wandb-lineage)"
        raise ExportError(f"W&B logging failed ({type(exc).__name__}: {reason}){hint}; "
                          f"the export is intact in {output_dir}; rerun with --wandb when W&B is reachable, "
                          "or with WANDB_MODE=offline and `wandb sync` later") from None
    finally:
        if run is not None:
            try:
                run.finish(exit_code=1)
            except Exception:
                pass
        if owns_session:
            wandb.teardown()

    sync_dirs: list[str] = []
    if offline:
        base = Path(wandb_dir) if wandb_dir else Path.cwd()
        sync_dirs = _offline_dirs(base, run_id)
    return WandbExport(artifact=name, run_id=run_id, project=run_project, lineage=resume, offline=offline,
                       sync_dirs=sync_dirs)


def push_to_hub(output_dir: str | Path, repo_id: str, private: bool = True, token: str | None = None) -> str:
    """Upload an export (card + data files; not the ``dataset/`` copy) as a Hub dataset repo.

    Any failure (offline, no token, no permission) is an ``ExportError`` naming the local copy,
    which stays as it was.
    """
    from huggingface_hub import HfApi

    output_dir = Path(output_dir)
    try:
        api = HfApi(token=token)
        api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
        info = api.upload_folder(folder_path=str(output_dir), repo_id=repo_id, repo_type="dataset",
                                 allow_patterns=["README.md", "data/*", "export_stats.json"])
    except Exception as exc:  # offline, auth, HTTP: one clear line, nothing lost
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise ExportError(
            f"push to the Hub failed ({type(exc).__name__}: {reason}); the dataset is intact in {output_dir}; "
            f"retry later with: hf upload {repo_id} {output_dir} --repo-type dataset"
        ) from None
    return str(getattr(info, "commit_url", "") or f"https://huggingface.co/datasets/{repo_id}")


@dataclass
class Published:
    """Where an export went, for the CLI's lines; ``errors`` holds one message per failed upload."""

    hub_url: str | None = None
    wandb: WandbExport | None = None
    errors: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [f"pushed: {self.hub_url}"] if self.hub_url else []
        if self.wandb:
            logged = self.wandb
            where = "training run" if logged.lineage else "export run"
            out.append(f"W&B: artifact {logged.artifact}:latest (dataset) logged by {where} "
                       f"{logged.project}/{logged.run_id}" + (" (offline)" if logged.offline else ""))
            if logged.sync_dirs:
                out.append(f"W&B: upload later with: wandb sync {' '.join(logged.sync_dirs)}")
        return out


def export_args(options, *, traces, output, fmt: str, mix: str | None, mix_ratio: float, seed: int,
                save_to_disk: bool) -> dict:
    """An export's arguments as the W&B artifact records them (``export_args``)."""
    return {**asdict(options), "traces": str(traces), "output": str(output), "format": fmt, "mix": mix,
            "mix_ratio": mix_ratio if mix else None, "seed": seed, "save_to_disk": save_to_disk}


def publish(output_dir: str | Path, traces: str | Path, stats: dict, args: dict, *, hub_repo: str | None = None,
            private: bool = True, wandb: bool = False, wandb_project: str | None = None,
            wandb_lineage: bool = True) -> Published:
    """Upload a written export to the Hub (``hub_repo``) and/or W&B (``wandb``), in that order."""
    done = Published()
    if hub_repo:
        try:
            done.hub_url = push_to_hub(output_dir, hub_repo, private=private)
        except ExportError as exc:
            done.errors.append(str(exc))
    if wandb:
        try:
            done.wandb = log_export(output_dir, traces, stats, args, project=wandb_project, lineage=wandb_lineage)
        except ExportError as exc:
            done.errors.append(str(exc))
    return done


__all__ = ["RUN_FILE", "Published", "WandbExport", "artifact_name", "export_args", "export_metadata",
           "find_training_run", "log_export", "publish", "push_to_hub"]
