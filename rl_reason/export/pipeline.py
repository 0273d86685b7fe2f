"""``rl-reason export``: a run's traces into a distillation dataset, through the R1/STaR quality filters.

Two streaming passes over the shards (``rl_reason.traces.reader``), so memory holds per-prompt
summaries, not traces:

1. every record: drop eval-mode samples, prompts that overlap an evaluation set (word n-grams),
   truncated completions, malformed ``<think>``/answer format, lengths out of range and exact
   duplicates; count samples and correct ones per prompt (the pass rate); note which survivors
   are *eligible* (reward ≥ ``min_reward``, verifier-correct with ``correct_only``). Verifiers are
   the rewards whose role is ``verifier``, as the run recorded in ``traces/run.json``
   (``rl_reason.export.filters.Verifiers``).
2. every prompt, in first-seen order: drop it when its pass rate is outside the band, remove
   near-duplicate eligible completions (rapidfuzz), select per the policy, write rows.

Each removed record is counted once, under the first filter that removed it (in that order).
Output, in ``output_dir``: ``data/messages.{jsonl,parquet}`` (chat ``messages``, one row per
selected trace, plus rows of a human-written dataset mixed in at ``mix_ratio``),
``data/problems.{jsonl,parquet}`` (one row per problem: generations with their correctness,
OpenR1 style), ``dataset/`` (the messages view via ``save_to_disk``, what ``rl-reason distill``
loads), ``README.md`` (the dataset card) and ``export_stats.json`` (the counts). Uploads to the Hub
and W&B come after, in ``rl_reason.export.publish``.
"""

from __future__ import annotations

import json
import os
import random
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tqdm.auto import tqdm

from rl_reason.data.tasks import prompt_messages
from rl_reason.export.filters import (
    SELECT_POLICIES,
    Decontaminator,
    Verifiers,
    completion_length,
    drop_near_duplicates,
    finish_reason,
    in_pass_band,
    load_texts,
    problem_text,
    prompt_key,
    reward_passes,
    select_indices,
    to_messages,
    well_formed,
)
from rl_reason.traces.reader import ListSource, TraceSource
from rl_reason.traces.schema import reward_roles

__all__ = ["ExportError", "ExportOptions", "ExportStats", "export", "select_records", "to_messages"]

# The order filters run in; ``ExportStats.removed`` uses these names.
FILTERS = (
    "eval_mode", "decontaminated", "truncated", "bad_format", "too_short", "too_long", "duplicate",
    "below_min_reward", "not_verified_correct", "pass_rate_band", "near_duplicate", "not_selected",
)


class ExportError(ValueError):
    """A user error (bad option, unreadable file); the CLI prints it as one line."""


@dataclass
class ExportOptions:
    min_reward: float | None = 1.0  # None: no reward threshold
    correct_only: bool = False
    select: str = "all"  # all | best | shortest | first | diverse
    k: int = 1  # traces per prompt for first/diverse/best/shortest
    include_eval: bool = False
    keep_truncated: bool = False
    check_format: bool = False
    prefilled_think: bool = False
    min_tokens: int = 0
    max_tokens: int | None = None
    min_pass_rate: float = 0.0
    max_pass_rate: float = 1.0
    dedup: bool = True
    near_dup_threshold: float | None = None  # rapidfuzz ratio (0-100); None: off
    decontaminate: list[str] = field(default_factory=list)  # evaluation set files
    decontam_column: str | None = None
    ngram: int = 8

    def check(self) -> None:
        if self.select not in SELECT_POLICIES:
            raise ExportError(f"select: expected one of {list(SELECT_POLICIES)}, got {self.select!r}")
        if self.k < 1:
            raise ExportError(f"k must be at least 1, got {self.k}")
        if not 0.0 <= self.min_pass_rate <= self.max_pass_rate <= 1.0:
            raise ExportError("pass-rate band must satisfy 0 <= min <= max <= 1, "
                              f"got [{self.min_pass_rate}, {self.max_pass_rate}]")
        if self.max_tokens is not None and self.max_tokens < self.min_tokens:
            raise ExportError(f"max_tokens {self.max_tokens} is below min_tokens {self.min_tokens}")
        if self.near_dup_threshold is not None and not 0 < self.near_dup_threshold <= 100:
            raise ExportError(
                f"near-duplicate threshold is a rapidfuzz ratio in (0, 100], got {self.near_dup_threshold}"
            )
        if self.ngram < 1:
            raise ExportError(f"ngram must be at least 1, got {self.ngram}")


@dataclass
class ExportStats:
    read: int = 0
    kept: int = 0
    prompts: int = 0  # prompts with at least one exported trace
    prompts_seen: int = 0  # prompts of the records export considers (eval-mode ones only with include_eval)
    eval_only_prompts: int = 0  # prompts left out because all their records are eval-mode (for the card)
    mixed: int = 0  # human-written rows mixed in
    removed: Counter = field(default_factory=Counter)
    skipped_lines: dict = field(default_factory=dict)
    run_ids: Counter = field(default_factory=Counter)
    lengths: list = field(default_factory=list)  # completion tokens of exported traces (for the card)
    pass_rates: list = field(default_factory=list)  # per exported prompt

    def as_dict(self) -> dict:
        return {
            "read": self.read, "kept": self.kept, "prompts": self.prompts, "prompts_seen": self.prompts_seen,
            "mixed": self.mixed, "removed": {k: self.removed[k] for k in FILTERS if self.removed[k]},
            "skipped_lines": self.skipped_lines, "run_ids": dict(self.run_ids),
        }


class _Prompt:
    __slots__ = ("order", "total", "correct", "contaminated", "hashes", "cands")

    def __init__(self, order: int):
        self.order = order
        self.total = 0
        self.correct = 0
        self.contaminated: bool | None = None
        self.hashes: set[int] = set()
        self.cands: list[tuple] = []  # (locator, eligible, reward, length)


def _scan(source, opts: ExportOptions, stats: ExportStats, decon: Decontaminator | None,
          verifiers: Verifiers) -> dict[int, _Prompt]:
    """Pass 1: record-level filters and per-prompt counts."""
    prompts: dict[int, _Prompt] = {}
    eval_prompts: set[int] = set()
    removed = stats.removed
    for locator, r in tqdm(source, desc="export: reading traces", unit=" traces", mininterval=0.5, disable=None):
        stats.read += 1
        if r.get("mode") == "eval" and not opts.include_eval:
            removed["eval_mode"] += 1
            eval_prompts.add(prompt_key(r))
            continue
        key = prompt_key(r)
        info = prompts.get(key)
        if info is None:
            info = prompts[key] = _Prompt(len(prompts))
        reward = r.get("reward")
        verdict = verifiers.verdict(r)
        correct = reward_passes(r, opts.min_reward) if verdict is None else verdict
        info.total += 1
        info.correct += correct
        if decon is not None:
            if info.contaminated is None:
                info.contaminated = decon.contaminated(problem_text(r.get("prompt")))
            if info.contaminated:
                removed["decontaminated"] += 1
                continue
        if r.get("truncated") and not opts.keep_truncated:
            removed["truncated"] += 1
            continue
        text = r.get("completion") or ""
        if opts.check_format and not well_formed(text, opts.prefilled_think):
            removed["bad_format"] += 1
            continue
        length = completion_length(r)
        if length < opts.min_tokens:
            removed["too_short"] += 1
            continue
        if opts.max_tokens is not None and length > opts.max_tokens:
            removed["too_long"] += 1
            continue
        if opts.dedup:
            h = hash(text)
            if h in info.hashes:
                removed["duplicate"] += 1
                continue
            info.hashes.add(h)
        eligible = True
        if opts.min_reward is not None and (reward is None or reward < opts.min_reward):
            removed["below_min_reward"] += 1
            eligible = False
        elif opts.correct_only and not verdict:
            removed["not_verified_correct"] += 1
            eligible = False
        stats.run_ids[r.get("run_id") or ""] += 1
        info.cands.append((locator, eligible, reward, length))
    for info in prompts.values():
        info.hashes = set()  # not needed in pass 2: free the memory
    stats.prompts_seen = len(prompts)
    stats.eval_only_prompts = len(eval_prompts - prompts.keys())
    return prompts


def _select(source, prompts: dict[int, _Prompt], opts: ExportOptions, stats: ExportStats):
    """Pass 2: per prompt, the pass-rate band, near-duplicates and the selection policy.

    Yields ``(records, flags)`` per exported prompt: every surviving candidate and whether it was selected.
    """
    removed = stats.removed
    for info in tqdm(prompts.values(), total=len(prompts), desc="export: selecting", unit=" prompts", mininterval=0.5,
                     disable=None):
        eligible = [c for c in info.cands if c[1]]
        if not eligible:
            continue
        if not in_pass_band(info.correct, info.total, opts.min_pass_rate, opts.max_pass_rate):
            removed["pass_rate_band"] += len(eligible)
            continue
        records = [source.fetch(c[0]) for c in info.cands]
        elig_idx = [i for i, c in enumerate(info.cands) if c[1]]
        if opts.near_dup_threshold is not None and len(elig_idx) > 1:
            keep = drop_near_duplicates([records[i]["completion"] for i in elig_idx], opts.near_dup_threshold)
            _count(removed, "near_duplicate", len(elig_idx) - len(keep))
            elig_idx = [elig_idx[j] for j in keep]
        cands = [{"reward": info.cands[i][2], "length": info.cands[i][3], "text": records[i]["completion"]}
                 for i in elig_idx]
        chosen = {elig_idx[j] for j in select_indices(cands, opts.select, opts.k)}
        _count(removed, "not_selected", len(elig_idx) - len(chosen))
        stats.prompts += 1
        stats.kept += len(chosen)
        stats.pass_rates.append(info.correct / info.total)
        for i in sorted(chosen):
            stats.lengths.append(info.cands[i][3])
        yield records, [i in chosen for i in range(len(records))], info


def _count(counter: Counter, key: str, n: int) -> None:
    if n > 0:  # no zero entries: ``removed`` lists only filters that removed something
        counter[key] += n


def _decontaminator(opts: ExportOptions) -> Decontaminator | None:
    if not opts.decontaminate:
        return None
    texts: list[str] = []
    for path in opts.decontaminate:
        try:
            texts.extend(load_texts(path, opts.decontam_column))
        except (FileNotFoundError, ValueError) as exc:
            raise ExportError(f"--decontaminate: {exc}") from None
    return Decontaminator(texts, n=opts.ngram)


def select_records(records, *, stats: ExportStats | None = None, options: ExportOptions | None = None,
                   reward_roles: dict[str, str] | None = None, **kwargs) -> list[dict]:
    """The selected traces of in-memory ``records`` (the same filters as ``export``), in prompt order.

    ``reward_roles`` plays the part of the run's recorded roles (``traces/run.json``)."""
    opts = options or ExportOptions(**kwargs)
    opts.check()
    stats = stats if stats is not None else ExportStats()
    source = ListSource(records)
    prompts = _scan(source, opts, stats, _decontaminator(opts), Verifiers(reward_roles))
    return [r for records_, flags, _ in _select(source, prompts, opts, stats) for r, f in zip(records_, flags) if f]


# --- output rows ---------------------------------------------------------------------------------


def message_row(r: dict, correct: bool) -> dict:
    return {
        "messages": to_messages(r),
        "answer": None if r.get("answer") is None else str(r.get("answer")),
        "reward": None if r.get("reward") is None else float(r["reward"]),
        "correct": bool(correct),
        "completion_tokens": completion_length(r),
        "id": None if r.get("id") is None else str(r.get("id")),
        "source": None if r.get("source") is None else str(r.get("source")),
        "run_id": r.get("run_id"),
        "step": r.get("step") if isinstance(r.get("step"), int) else None,
        "origin": "trace",
    }


def problem_row(records: list[dict], flags: list[bool], info: _Prompt, correctness: list[bool]) -> dict:
    """One problem: ``generations`` (and the lists beside it) hold the completions that passed the record filters,
    ``num_samples``/``pass_rate`` count every sample of the prompt."""
    first = records[0]
    chosen = next(r for r, f in zip(records, flags) if f)
    return {
        "problem": problem_text(first.get("prompt")),
        "prompt": to_messages({"prompt": first.get("prompt"), "completion": ""})[:-1],
        "answer": None if first.get("answer") is None else str(first.get("answer")),
        "id": None if first.get("id") is None else str(first.get("id")),
        "source": None if first.get("source") is None else str(first.get("source")),
        "generations": [r.get("completion") or "" for r in records],
        "correctness": correctness,
        "rewards": [None if r.get("reward") is None else float(r["reward"]) for r in records],
        "finish_reasons": [finish_reason(r) for r in records],
        "completion_tokens": [completion_length(r) for r in records],
        "selected": list(flags),
        "correctness_count": sum(correctness),
        "num_generations": len(records),
        "generations_pass_rate": sum(correctness) / len(records),
        "num_samples": info.total,  # every sample of the prompt, before filters
        "pass_rate": info.correct / info.total,
        "messages": to_messages(chosen),
    }


def _schemas():
    import pyarrow as pa

    msg = pa.list_(pa.struct([("role", pa.string()), ("content", pa.string())]))
    messages = pa.schema([
        ("messages", msg), ("answer", pa.string()), ("reward", pa.float64()), ("correct", pa.bool_()),
        ("completion_tokens", pa.int64()), ("id", pa.string()), ("source", pa.string()), ("run_id", pa.string()),
        ("step", pa.int64()), ("origin", pa.string()),
    ])
    problems = pa.schema([
        ("problem", pa.string()), ("prompt", msg), ("answer", pa.string()), ("id", pa.string()),
        ("source", pa.string()), ("generations", pa.list_(pa.string())), ("correctness", pa.list_(pa.bool_())),
        ("rewards", pa.list_(pa.float64())), ("finish_reasons", pa.list_(pa.string())),
        ("completion_tokens", pa.list_(pa.int64())), ("selected", pa.list_(pa.bool_())),
        ("correctness_count", pa.int64()), ("num_generations", pa.int64()), ("generations_pass_rate", pa.float64()),
        ("num_samples", pa.int64()), ("pass_rate", pa.float64()), ("messages", msg),
    ])
    return messages, problems


class RowWriter:
    """Buffered JSONL or Parquet rows into one file."""

    def __init__(self, path: Path, fmt: str, schema, batch_size: int = 4096):
        self.path, self.fmt, self.schema, self.batch_size = path, fmt, schema, batch_size
        self.rows: list[dict] = []
        self.count = 0
        if fmt == "parquet":
            import pyarrow.parquet as pq

            self._writer = pq.ParquetWriter(path, schema, compression="zstd")
        else:
            self._file = open(path, "w", encoding="utf-8")

    def add(self, row: dict) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.batch_size:
            self._flush()

    def _flush(self) -> None:
        if not self.rows:
            return
        if self.fmt == "parquet":
            import pyarrow as pa

            self._writer.write_table(pa.Table.from_pylist(self.rows, schema=self.schema))
        else:
            self._file.write("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.rows))
        self.count += len(self.rows)
        self.rows.clear()

    def close(self) -> None:
        self._flush()
        (self._writer if self.fmt == "parquet" else self._file).close()


def _mix_rows(path: str, ratio: float, n_traces: int, seed: int, question_column: str, answer_column: str,
              decon: Decontaminator | None, system_prompt: str | None, stats: ExportStats) -> list[dict]:
    """Human-written rows so they make up ``ratio`` of the messages view (model-collapse insurance)."""
    from rl_reason.data.load import UnknownFileType, load_file

    p = Path(path)
    if not p.exists():
        raise ExportError(f"--mix: {path} not found")
    try:
        ds = load_file(p)
    except UnknownFileType as exc:
        raise ExportError(f"--mix: {exc}") from None
    for col in (question_column, answer_column):
        if col not in ds.column_names:
            raise ExportError(f"--mix: {path} has no column {col!r} (columns: {sorted(ds.column_names)})")
    wanted = round(n_traces * ratio / (1.0 - ratio))
    order = list(range(len(ds)))
    random.Random(seed).shuffle(order)
    rows = []
    for i in order:
        if len(rows) >= wanted:
            break
        row = ds[i]
        question, answer = str(row[question_column]), str(row[answer_column])
        if decon is not None and decon.contaminated(question):
            stats.removed["mix_decontaminated"] += 1
            continue
        prompt = prompt_messages(question, system_prompt)
        rows.append({
            "messages": prompt + [{"role": "assistant", "content": answer}], "answer": None, "reward": None,
            "correct": True, "completion_tokens": len(answer.split()), "id": str(row.get("id", i)),
            "source": f"human:{p.stem}", "run_id": None, "step": None, "origin": "human",
        })
    stats.mixed = len(rows)
    _count(stats.removed, "mix_shortfall", wanted - len(rows))
    return rows


def export(
    traces_dir: str | Path,
    output_dir: str | Path,
    *,
    min_reward: float | None = 1.0,
    correct_only: bool = False,
    select: str = "all",
    include_eval: bool = False,
    options: ExportOptions | None = None,
    fmt: str = "jsonl",
    mix: str | None = None,
    mix_ratio: float = 0.0,
    mix_question_column: str = "question",
    mix_answer_column: str = "answer",
    mix_system_prompt: str | None = None,
    seed: int = 0,
    save_to_disk: bool = True,
    overwrite: bool = True,
) -> ExportStats:
    """Export ``traces_dir`` into ``output_dir``; returns the counts (``read``, ``kept``, ``removed`` per filter).

    Everything is written into a temporary sibling directory and renamed at the end, so an error
    leaves no half-written dataset (and an existing ``output_dir`` untouched until then).
    """
    opts = options or ExportOptions(min_reward=min_reward, correct_only=correct_only, select=select,
                                    include_eval=include_eval)
    opts.check()
    if fmt not in ("jsonl", "parquet"):
        raise ExportError(f"format: expected 'jsonl' or 'parquet', got {fmt!r}")
    if mix and not 0.0 < mix_ratio < 1.0:
        raise ExportError(f"--mix-ratio: expected a fraction in (0, 1), got {mix_ratio}")
    output_dir = Path(output_dir)
    if output_dir.exists() and not overwrite:
        raise ExportError(f"{output_dir} exists (use --overwrite)")
    decon = _decontaminator(opts)
    stats = ExportStats()
    source = TraceSource(traces_dir)
    verifiers = Verifiers(reward_roles(traces_dir))  # the run's own roles, read once
    tmp = output_dir.parent / f".{output_dir.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "data").mkdir(parents=True)
    try:
        messages_schema, problems_schema = _schemas()
        messages = RowWriter(tmp / "data" / f"messages.{fmt}", fmt, messages_schema)
        problems = RowWriter(tmp / "data" / f"problems.{fmt}", fmt, problems_schema)
        prompts = _scan(source, opts, stats, decon, verifiers)
        for records, flags, info in _select(source, prompts, opts, stats):
            correctness = [verifiers.is_correct(r, opts.min_reward) for r in records]
            for r, f, c in zip(records, flags, correctness):
                if f:
                    messages.add(message_row(r, c))
            problems.add(problem_row(records, flags, info, correctness))
        del prompts
        if mix:
            for row in _mix_rows(mix, mix_ratio, stats.kept, seed, mix_question_column, mix_answer_column, decon,
                                 mix_system_prompt, stats):
                messages.add(row)
        messages.close()
        problems.close()
        stats.skipped_lines = dict(source.skipped)
        if save_to_disk and messages.count:
            _save_to_disk(tmp / "data" / f"messages.{fmt}", fmt, tmp / "dataset")
        from rl_reason.export.card import write_card

        write_card(tmp, stats, opts, traces_dir=traces_dir, fmt=fmt, mix=mix, mix_ratio=mix_ratio, decon=decon)
        (tmp / "export_stats.json").write_text(json.dumps(stats.as_dict(), indent=2))
        if output_dir.exists():
            shutil.rmtree(output_dir)
        os.replace(tmp, output_dir)
    finally:
        source.close()
        shutil.rmtree(tmp, ignore_errors=True)
    return stats


def _save_to_disk(path: Path, fmt: str, target: Path) -> None:
    """The messages view as a ``save_to_disk`` dataset (memory-mapped Arrow; what ``distill`` loads)."""
    from datasets import Dataset

    cache = target.parent / ".cache"
    read = Dataset.from_parquet if fmt == "parquet" else Dataset.from_json
    ds = read(str(path), cache_dir=str(cache))
    ds.save_to_disk(str(target))
    del ds
    shutil.rmtree(cache, ignore_errors=True)

