"""Datasets for every stage: the procedural task, or a user's JSONL / Parquet / saved Hugging Face dataset.

``load_file`` is the one reader of a dataset file or directory; every stage that takes one (training data,
evaluation sets, the export's mix-in, distillation data) goes through it and words its own errors.
Training rows come out in TRL's conversational prompt form: ``prompt`` is a list of chat messages,
``answer`` the reference, plus ``id`` and ``source`` so a trace can name its row.
"""

from __future__ import annotations

import re
from pathlib import Path

from datasets import Dataset, DatasetDict, load_dataset, load_from_disk

from rl_reason.config import ConfigError, DataSection
from rl_reason.data.tasks import make_problems, prompt_messages, resolve_system_prompt

PROCEDURAL = {"addition"}
_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*/[\w.-]+$")
EVAL_SEED_OFFSET = 10_000  # held-out problems come from a seed no training set uses
FILE_BUILDERS = {".jsonl": "json", ".json": "json", ".parquet": "parquet"}


class UnknownFileType(ValueError):
    """A file ``load_file`` cannot read; callers turn it into their own one-line error."""


def load_file(path: str | Path) -> Dataset | DatasetDict:
    """A ``.jsonl``/``.json``/``.parquet`` file (its rows) or a ``save_to_disk`` directory.

    Raises ``FileNotFoundError`` when ``path`` does not exist (or is a directory without a saved
    dataset) and ``UnknownFileType`` for any other file.
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found")
    if path.is_dir():
        return load_from_disk(str(path))
    builder = FILE_BUILDERS.get(path.suffix)
    if builder is None:
        raise UnknownFileType(f"{path}: expected a .jsonl, .json, .parquet file or a saved dataset directory")
    return load_dataset(builder, data_files=str(path), split="train")


def procedural_splits(data: DataSection) -> tuple[list[dict], list[dict]]:
    """(train, held-out) problem rows; held-out questions never appear in train."""
    heldout = make_problems(data.num_eval, seed=data.seed + EVAL_SEED_OFFSET, min_digits=data.min_digits,
                            max_digits=data.max_digits)
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
        if _HUB_ID.match(data.source) and path.suffix not in {*FILE_BUILDERS, ".csv"}:
            try:
                ds = load_dataset(data.source, split=data.split or "train")
            except Exception as exc:  # offline, missing, gated: one line either way
                raise ConfigError(
                    f"{where}: data.source: {data.source!r} is not an existing path and loading it from the Hub "
                    f"failed ({type(exc).__name__})"
                ) from None
            return ds.select(range(min(data.limit, len(ds)))) if data.limit else ds
        raise ConfigError(f"{where}: data.source: {data.source!r} is neither a procedural task {sorted(PROCEDURAL)} "
                          "nor an existing path")
    try:
        ds = load_file(path)
    except UnknownFileType:
        raise ConfigError(
            f"{where}: data.source: {path} is not a .jsonl, .json, .parquet file or a dataset directory"
        ) from None
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
    system_prompt = resolve_system_prompt(data.system_prompt)
    if data.source in PROCEDURAL:
        train, _ = procedural_splits(data)
        return Dataset.from_list(to_prompt_rows(train, system_prompt))
    ds = _load_rows(data, where)
    columns = set(ds.column_names)
    if "prompt" not in columns:
        if data.question_column not in columns:
            raise ConfigError(f"{where}: data.question_column: column {data.question_column!r} not in {data.source} "
                              f"(columns: {sorted(columns)})")
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
        {"question": str(r[data.question_column]), "answer": str(r[data.answer_column]), "id": str(r.get("id", i)),
         "source": r.get("source", data.source)}
        for i, r in enumerate(ds)
    ]


def load_problems(source: str, *, split: str, num_problems: int, seed: int = 0, question_column: str = "question",
                  answer_column: str = "answer", limit: int | None = None, where: str = "config") -> list[dict]:
    """Problem rows (``question``, ``answer``, ``id``, ``source``) for sampling and evaluation.

    ``source`` is a procedural task, whose ``split`` (``train`` or ``heldout``) gives ``num_problems``
    rows, or a file, directory or Hub dataset, whose rows are all problems (the first ``limit``).
    """
    if source in PROCEDURAL:
        section = DataSection(source=source, num_train=num_problems if split == "train" else 1,
                              num_eval=num_problems if split == "heldout" else 1, seed=seed)
        train, heldout = procedural_splits(section)
        return train if split == "train" else heldout
    section = DataSection(source=source, question_column=question_column, answer_column=answer_column, seed=seed,
                          limit=limit)
    return heldout_problems(section, where=where)
