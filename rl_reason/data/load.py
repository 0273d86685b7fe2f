"""Datasets for every stage: the procedural task, or a user's JSONL / saved Hugging Face dataset.

Rows come out in TRL's conversational prompt form: ``prompt`` is a list of chat messages,
``answer`` the reference, plus ``id`` and ``source`` so a trace can name its row.
"""

from __future__ import annotations

import re
from pathlib import Path

from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

from rl_reason.config import ConfigError, DataSection
from rl_reason.data.tasks import SYSTEM_PROMPT, make_problems, prompt_messages

PROCEDURAL = {"addition"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
EVAL_SEED_OFFSET = 10_000  # held-out problems come from a seed no training set uses


def procedural_splits(data: DataSection) -> tuple[list[dict], list[dict]]:
    """(train, held-out) problem rows; held-out questions never appear in train."""
    heldout = make_problems(data.num_eval, seed=data.seed + EVAL_SEED_OFFSET, min_digits=data.min_digits, max_digits=data.max_digits)
    train = make_problems(
        data.num_train,
        seed=data.seed,
        min_digits=data.min_digits,
        max_digits=data.max_digits,
        exclude={r["question"] for r in heldout},
    )
    return train, heldout


def _load_rows(data: DataSection, where: str) -> Dataset:
    path = Path(data.source)
    if not path.exists():
        if _HUB_ID.match(data.source) and path.suffix not in {".jsonl", ".json", ".parquet", ".csv"}:
            try:
                ds = load_dataset(data.source, split=data.split or "train")
            except Exception as exc:  # offline, missing, gated: one line either way
                raise ConfigError(
                    f"{where}: data.source: {data.source!r} is not an existing path and loading it from the Hub failed ({type(exc).__name__})"
                ) from None
            return ds.select(range(min(data.limit, len(ds)))) if data.limit else ds
        raise ConfigError(f"{where}: data.source: {data.source!r} is neither a procedural task {sorted(PROCEDURAL)} nor an existing path")
    if path.is_dir():
        ds = load_from_disk(str(path))
    elif path.suffix in {".jsonl", ".json"}:
        ds = load_dataset("json", data_files=str(path), split="train")
    elif path.suffix == ".parquet":
        ds = load_dataset("parquet", data_files=str(path), split="train")
    else:
        raise ConfigError(f"{where}: data.source: {path} is not a .jsonl, .json, .parquet file or a dataset directory")
    if isinstance(ds, DatasetDict):
        split = data.split or ("train" if "train" in ds else next(iter(ds)))
        if split not in ds:
            raise ConfigError(f"{where}: data.split: {split!r} not in {sorted(ds)}")
        ds = ds[split]
    if data.limit:
        ds = ds.select(range(min(data.limit, len(ds))))
    return ds


def to_prompt_rows(rows: list[dict], system_prompt: str | None) -> list[dict]:
    out = []
    for r in rows:
        out.append(
            {
                "prompt": prompt_messages(r["question"], system_prompt),
                "answer": r["answer"],
                "id": r.get("id", ""),
                "source": r.get("source", ""),
            }
        )
    return out


def train_dataset(data: DataSection, required_columns: set[str] = frozenset(), where: str = "config") -> Dataset:
    """The GRPO training set, checked for every column the chosen rewards read."""
    system_prompt = data.system_prompt if data.system_prompt is not None else SYSTEM_PROMPT
    if data.source in PROCEDURAL:
        train, _ = procedural_splits(data)
        return Dataset.from_list(to_prompt_rows(train, system_prompt))
    ds = _load_rows(data, where)
    columns = set(ds.column_names)
    if "prompt" not in columns:
        if data.question_column not in columns:
            raise ConfigError(f"{where}: data.question_column: column {data.question_column!r} not in {data.source} (columns: {sorted(columns)})")
        ds = ds.map(lambda r: {"prompt": prompt_messages(str(r[data.question_column]), system_prompt)})
    if data.answer_column != "answer" and data.answer_column in columns:
        ds = ds.rename_column(data.answer_column, "answer") if "answer" not in columns else ds
    missing = sorted(c for c in required_columns if c not in ds.column_names)
    if missing:
        raise ConfigError(
            f"{where}: data: the rewards need column(s) {missing}, which {data.source} lacks "
            f"(columns: {sorted(ds.column_names)}; set data.answer_column to map one)"
        )
    return ds


def heldout_problems(data: DataSection, where: str = "config") -> list[dict]:
    """Held-out rows with ``question``/``answer`` for evaluation."""
    if data.source in PROCEDURAL:
        return procedural_splits(data)[1]
    ds = _load_rows(data, where)
    for col in (data.question_column, data.answer_column):
        if col not in ds.column_names:
            raise ConfigError(f"{where}: column {col!r} not in {data.source} (columns: {sorted(ds.column_names)})")
    return [
        {"question": str(r[data.question_column]), "answer": str(r[data.answer_column]), "id": str(r.get("id", i)), "source": r.get("source", data.source)}
        for i, r in enumerate(ds)
    ]
