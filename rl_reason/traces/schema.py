"""The trace formats, in one place: record fields, shard names, and the run's metadata files.

A trace shard is ``TRACES/rank-XXXXX.jsonl``: one JSON object per line, one shard per process rank
(``rl-reason compact`` turns it into ``rank-XXXXX.parquet``). ``TRACES`` is ``OUTPUT_DIR/traces``
unless the recipe's ``traces.dir`` puts it elsewhere; ``OUTPUT_DIR/traces_location.json`` says where.
Records are separated by ``\n`` only: a completion can hold U+2028, U+0085 or a form feed, which
``str.splitlines()`` also breaks on, so a reader must split the bytes on ``\n``
(``rl_reason.traces.reader`` does).

Record fields (schema version 1)::

    schema             1
    run_id             the training run
    step               policy step (optimizer updates done) when the completion was sampled
    rank               process rank that scored it
    mode               "train" or "eval"
    group              id shared by the completions of one prompt in one generation batch
    prompt             chat messages (or text) given to the policy
    completion         generated text
    answer             reference answer column, when the dataset has one
    rewards            {reward function name: value or null}
    reward             weighted total, as TRL logs it (a function that could not judge adds 0; null when
                       none judged)
    advantage          GRPO advantage used in the update: TRL's own value
    completion_tokens  number of completion tokens
    completion_ids     the completion's token ids
    truncated          true when generation hit max_completion_length before EOS
    finish_reason      "stop" (EOS) or "length"
    time               unix time when written
    id, source         dataset row id and source, when present
    dropped            null when the completion was trained on; with dynamic sampling, "zero_spread" (its
                       group had no reward spread) or "surplus" (a group with signal the batch did not need).
                       Added with dynamic sampling (absent in earlier runs; null means the same)

    group_mean         mean ``reward`` of the completion's group (TRL's baseline)
    group_std          standard deviation of ``reward`` in the group (Bessel-corrected; null with fewer
                       than two judged). It is what TRL scaled by only under ``scale_rewards=group``.
    advantage_scale    what TRL divided ``reward - group_mean`` by: the group's std + 1e-4
                       (``scale_rewards=group``), the whole batch's std + 1e-4 (``batch``), 1 (``none``);
                       null when that std is undefined. Added after schema 1's first runs (absent there).

    So ``advantage = (reward - group_mean) / advantage_scale``, and 0 when any of them is null: the
    trainer checks this against TRL's advantages every rollout. Runs are trained with TRL's
    ``multi_objective_aggregation=sum_then_normalize``; the other mode is refused, as its advantage
    comes from per-function group statistics these fields do not hold.

Files beside the shards and in OUTPUT_DIR, each written by its owner below:

* ``traces/run.json`` (``write_run_info``): what every record of a run shares: git SHA, model and
  revision, chat template hash, sampling parameters, rewards and each reward function's role
  (``reward_roles``: ``{function name: "verifier" | "format" | "shaping"}``), and ``output_dir``.
* ``OUTPUT_DIR/wandb_run.json`` (``write_wandb_run``): the W&B run the job logged to, so
  ``rl-reason export --wandb`` can put the dataset beside it.
* ``OUTPUT_DIR/traces_location.json`` (``write_traces_location``): ``{"traces_dir": path}``, relative to
  OUTPUT_DIR when inside it; ``traces_location`` reads it (``OUTPUT_DIR/traces`` for older runs).
"""

from __future__ import annotations

import json
from pathlib import Path

SCHEMA_VERSION = 1
RUN_INFO = "run.json"
WANDB_RUN = "wandb_run.json"
TRACES_LOCATION = "traces_location.json"


def shard_path(directory: str | Path, rank: int) -> Path:
    return Path(directory) / f"rank-{rank:05d}.jsonl"


def _traces_dir(traces: str | Path) -> Path:
    """A traces directory, given it or one of its shards."""
    traces = Path(traces)
    return traces.parent if traces.is_file() else traces


def _write_json(path: Path, value: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(value, indent=2, default=str) + "\n")
    tmp.replace(path)


def write_run_info(traces_dir: str | Path, info: dict) -> Path:
    path = Path(traces_dir) / RUN_INFO
    _write_json(path, info)
    return path


def read_run_info(traces: str | Path) -> dict | None:
    """``run.json`` of a traces directory (or of the directory of one shard); None when absent or unreadable."""
    try:
        info = json.loads((_traces_dir(traces) / RUN_INFO).read_text())
    except (OSError, ValueError):
        return None
    return info if isinstance(info, dict) else None


def reward_roles(traces: str | Path) -> dict[str, str]:
    """The roles the run recorded for its reward functions (empty for runs from before roles were recorded)."""
    roles = (read_run_info(traces) or {}).get("reward_roles")
    return dict(roles) if isinstance(roles, dict) else {}


def write_traces_location(output_dir: str | Path, traces_dir: str | Path) -> Path:
    output_dir, traces_dir = Path(output_dir).resolve(), Path(traces_dir).resolve()
    # Relative when inside OUTPUT_DIR, so a run directory that is moved or copied still finds its traces.
    where = traces_dir.relative_to(output_dir) if traces_dir.is_relative_to(output_dir) else traces_dir
    path = output_dir / TRACES_LOCATION
    _write_json(path, {"traces_dir": str(where)})
    return path


def traces_location(output_dir: str | Path) -> Path:
    """The traces directory of the run in ``output_dir``: where it recorded them, else ``OUTPUT_DIR/traces``."""
    output_dir = Path(output_dir)
    try:
        where = json.loads((output_dir / TRACES_LOCATION).read_text())["traces_dir"]
    except (OSError, ValueError, KeyError, TypeError):
        return output_dir / "traces"
    return output_dir / where  # an absolute path stays itself


def write_wandb_run(output_dir: str | Path, info: dict) -> Path:
    path = Path(output_dir) / WANDB_RUN
    _write_json(path, info)
    return path


def find_wandb_run(traces: str | Path) -> tuple[dict, Path] | None:
    """``wandb_run.json`` of the run that wrote ``traces`` (a traces directory or one shard): beside the
    shards, in the directory above, or in the OUTPUT_DIR run.json names (``traces.dir`` elsewhere).
    Raises ValueError when it is there but unusable."""
    directory = _traces_dir(traces)
    candidates = [directory / WANDB_RUN, directory.parent / WANDB_RUN]
    output_dir = (read_run_info(directory) or {}).get("output_dir")
    if isinstance(output_dir, str):
        candidates.append(Path(output_dir) / WANDB_RUN)
    for path in candidates:
        if not path.is_file():
            continue
        try:
            info = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"{path} is unreadable ({exc})") from None
        if not isinstance(info, dict) or not info.get("id"):
            raise ValueError(f"{path} has no run id")
        return info, path
    return None
