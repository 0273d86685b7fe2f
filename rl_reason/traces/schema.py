"""The trace formats, in one place: record fields, shard names, and the run's metadata files.

A trace shard is ``OUTPUT_DIR/traces/rank-XXXXX.jsonl``: one JSON object per line, one shard per
process rank (``rl-reason compact`` turns it into ``rank-XXXXX.parquet``). Records are separated by
``\n`` only: a completion can hold U+2028, U+0085 or a form feed, which ``str.splitlines()`` also
breaks on, so a reader must split the bytes on ``\n`` (``rl_reason.traces.reader`` does).

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
    reward             weighted total (TRL's nan-sum)
    advantage          GRPO advantage used in the update
    completion_tokens  number of completion tokens
    completion_ids     the completion's token ids
    truncated          true when generation hit max_completion_length before EOS
    finish_reason      "stop" (EOS) or "length"
    time               unix time when written
    id, source         dataset row id and source, when present

    group_mean         mean ``reward`` of the completion's group (TRL's baseline)
    group_std          standard deviation of ``reward`` in the group

Files beside the shards, each written once by its owner below:

* ``traces/run.json`` (``write_run_info``): what every record of a run shares: git SHA, model and
  revision, chat template hash, sampling parameters, rewards and each reward function's role
  (``reward_roles``: ``{function name: "verifier" | "format" | "shaping"}``).
* ``OUTPUT_DIR/wandb_run.json`` (``write_wandb_run``): the W&B run the job logged to, so
  ``rl-reason export --wandb`` can put the dataset beside it.
"""

from __future__ import annotations

import json
from pathlib import Path

SCHEMA_VERSION = 1
RUN_INFO = "run.json"
WANDB_RUN = "wandb_run.json"


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


def write_wandb_run(output_dir: str | Path, info: dict) -> Path:
    path = Path(output_dir) / WANDB_RUN
    _write_json(path, info)
    return path


def find_wandb_run(traces: str | Path) -> tuple[dict, Path] | None:
    """``wandb_run.json`` of the run that wrote ``traces`` (a traces directory or one shard): beside the
    shards or in the directory above (OUTPUT_DIR). Raises ValueError when it is there but unusable."""
    directory = _traces_dir(traces)
    for path in (directory / WANDB_RUN, directory.parent / WANDB_RUN):
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
