"""``rl-reason export``: successful traces into a distillation dataset in chat ``messages`` form.

Keeps completions whose weighted reward is at or above a threshold (optionally only those the
math/code verifier marked correct), then all of them or the best per prompt (highest reward,
then shortest). Exact duplicates of a prompt's completion are kept once. Writes a Hugging Face
dataset with ``save_to_disk`` and the same rows as JSONL, which ``datasets`` loads directly.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from rl_reason.traces import read_traces

Select = Literal["all", "best"]


@dataclass
class ExportStats:
    read: int = 0
    kept: int = 0
    prompts: int = 0
    removed: Counter = field(default_factory=Counter)
    skipped_lines: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"read": self.read, "kept": self.kept, "prompts": self.prompts, "removed": dict(self.removed), "skipped_lines": self.skipped_lines}


def _prompt_key(record: dict) -> str:
    return json.dumps(record.get("prompt"), sort_keys=True, ensure_ascii=False)


def to_messages(record: dict) -> list[dict]:
    prompt = record.get("prompt")
    messages = list(prompt) if isinstance(prompt, list) else [{"role": "user", "content": str(prompt)}]
    return messages + [{"role": "assistant", "content": record["completion"]}]


def select_records(
    records,
    *,
    min_reward: float = 1.0,
    correct_only: bool = False,
    select: Select = "all",
    include_eval: bool = False,
    stats: ExportStats | None = None,
) -> list[dict]:
    stats = stats if stats is not None else ExportStats()
    by_prompt: dict[str, list[dict]] = {}
    for r in records:
        stats.read += 1
        if r.get("mode") == "eval" and not include_eval:
            stats.removed["eval_mode"] += 1
            continue
        reward = r.get("reward")
        if reward is None or reward < min_reward:
            stats.removed["below_min_reward"] += 1
            continue
        if correct_only and not _verified_correct(r):
            stats.removed["not_verified_correct"] += 1
            continue
        if r.get("truncated"):
            stats.removed["truncated"] += 1
            continue
        group = by_prompt.setdefault(_prompt_key(r), [])
        if any(g["completion"] == r["completion"] for g in group):
            stats.removed["duplicate"] += 1
            continue
        group.append(r)
    kept = []
    for group in by_prompt.values():
        if select == "best":
            group = sorted(group, key=lambda r: (-r["reward"], len(r["completion"])))
            stats.removed["not_best"] += len(group) - 1
            group = group[:1]
        kept.extend(group)
    stats.kept = len(kept)
    stats.prompts = len(by_prompt)
    return kept


def _verified_correct(record: dict) -> bool:
    rewards = record.get("rewards") or {}
    verifiers = [v for k, v in rewards.items() if k in ("accuracy_reward", "code_reward")]
    return bool(verifiers) and all(v is not None and v >= 1.0 for v in verifiers)


def export(
    traces_dir: str | Path,
    output_dir: str | Path,
    *,
    min_reward: float = 1.0,
    correct_only: bool = False,
    select: Select = "all",
    include_eval: bool = False,
) -> ExportStats:
    from datasets import Dataset

    output_dir = Path(output_dir)
    stats = ExportStats()
    records = select_records(
        read_traces(traces_dir, stats.skipped_lines),
        min_reward=min_reward,
        correct_only=correct_only,
        select=select,
        include_eval=include_eval,
        stats=stats,
    )
    rows = [
        {
            "messages": to_messages(r),
            "answer": None if r.get("answer") is None else str(r.get("answer")),
            "reward": float(r["reward"]),
            "id": r.get("id"),
            "source": r.get("source"),
            "run_id": r.get("run_id"),
            "step": r.get("step"),
        }
        for r in records
    ]
    output_dir.mkdir(parents=True, exist_ok=True)
    jsonl = output_dir / "train.jsonl"
    tmp = jsonl.with_suffix(".jsonl.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    tmp.replace(jsonl)
    if rows:
        Dataset.from_list(rows).save_to_disk(str(output_dir / "dataset"))
    (output_dir / "export_stats.json").write_text(json.dumps(stats.as_dict(), indent=2))
    return stats
