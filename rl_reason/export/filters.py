"""The building blocks of ``rl-reason export``: one small function per filter or selection policy.

Everything here works on plain trace records (``rl_reason.traces.writer`` schema) or their texts, so each
filter can be tested alone on crafted traces. The pipeline that streams a run through them is in
``rl_reason.export.pipeline``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from rewards.registry import names_with_role

SELECT_POLICIES = ("all", "best", "shortest", "first", "diverse")
_NON_WORD = re.compile(r"[^\w]+")


# --- prompts -------------------------------------------------------------------------------------


def prompt_key(record: dict) -> int:
    """Identity of a prompt across steps and shards (the same messages give the same key, in this process)."""
    prompt = record.get("prompt")
    if isinstance(prompt, str):
        return hash(prompt)
    try:
        return hash(_dumps_sorted(prompt))
    except TypeError:
        return hash(json.dumps(prompt, sort_keys=True, ensure_ascii=False, default=str))


try:
    import orjson

    def _dumps_sorted(value) -> bytes:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
except ImportError:  # pragma: no cover

    def _dumps_sorted(value) -> str:
        return json.dumps(value, sort_keys=True, ensure_ascii=False)


def problem_text(prompt) -> str:
    """The problem a prompt asks: its user turns (a system prompt is shared by every row, so it is left out)."""
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list):
        return "\n".join(str(m.get("content") or "") for m in prompt if isinstance(m, dict) and m.get("role") == "user")
    return "" if prompt is None else str(prompt)


def to_messages(record: dict) -> list[dict]:
    prompt = record.get("prompt")
    messages = list(prompt) if isinstance(prompt, list) else [{"role": "user", "content": str(prompt)}]
    return messages + [{"role": "assistant", "content": record["completion"]}]


# --- correctness and record-level checks ---------------------------------------------------------


class Verifiers:
    """Which of a record's rewards decide correctness: those whose role is ``verifier``.

    Roles come from the run's ``traces/run.json`` (``recorded``: ``{function name: role}``), then the
    registry's built-in names, so traces from before roles were recorded judge as they always did and
    a recipe's own ``module:function`` verifier counts once its run recorded it. Built once per export.
    """

    def __init__(self, recorded: Mapping[str, str] | None = None):
        self.recorded = dict(recorded or {})
        self._names: dict[tuple, list[str]] = {}  # a run records the same few reward sets again and again

    def names(self, rewards: Mapping) -> list[str]:
        key = tuple(rewards)
        names = self._names.get(key)
        if names is None:
            names = self._names[key] = names_with_role(key, "verifier", self.recorded)
        return names

    def verdict(self, record: dict) -> bool | None:
        """True when every verifier that scored the record gave 1.0 (on a math+code mix each row is scored
        by one of them); False when verifiers ran but none could judge it (an unjudged answer is not a
        verified one); ``None`` when the record has no verifier reward at all."""
        rewards = record.get("rewards") or {}
        names = self.names(rewards)
        if not names:
            return None
        values = [rewards[n] for n in names if rewards[n] is not None]
        return bool(values) and all(v >= 1.0 for v in values)

    def is_correct(self, record: dict, min_reward: float | None = 1.0) -> bool:
        """The verifiers' verdict when there is one, else ``reward_passes``."""
        verdict = self.verdict(record)
        return reward_passes(record, min_reward) if verdict is None else verdict


def reward_passes(record: dict, min_reward: float | None = 1.0) -> bool:
    """The weighted reward against ``min_reward`` (1.0 if unset): correctness when no verifier scored the record."""
    reward = record.get("reward")
    return reward is not None and reward >= (1.0 if min_reward is None else min_reward)


def completion_length(record: dict) -> int:
    """Completion length in tokens as recorded; whitespace words when the record has no token count."""
    n = record.get("completion_tokens")
    return int(n) if isinstance(n, int) else len(str(record.get("completion") or "").split())


def well_formed(text: str, prefilled_think: bool = False) -> bool:
    """``<think>…</think>`` well formed and exactly one final answer (the format reward's own check)."""
    from rewards.format import is_well_formed

    return is_well_formed(text, prefilled_think)


def finish_reason(record: dict) -> str:
    return record.get("finish_reason") or ("length" if record.get("truncated") else "stop")


# --- decontamination: word n-gram overlap --------------------------------------------------------


def normalize_words(text: str) -> list[str]:
    """Lowercase words with punctuation dropped, as in open-r1's decontaminate.py."""
    return _NON_WORD.sub(" ", text.lower()).split()


def word_ngrams(text: str, n: int = 8) -> set[str]:
    """Word ``n``-grams of ``text``; a text shorter than ``n`` words is one n-gram of all its words.

    Without that rule a short problem ("12+34", a one-line AIME question) could never match, and
    short problems are exactly the ones most often copied verbatim.
    """
    words = normalize_words(text)
    if not words:
        return set()
    if len(words) < n:
        return {" ".join(words)}
    return {" ".join(words[i : i + n]) for i in range(len(words) - n + 1)}


class Decontaminator:
    """Flags problems that share a word n-gram with any problem of the given evaluation sets."""

    def __init__(self, eval_texts: Iterable[str], n: int = 8):
        self.n = n
        self.ngrams: set[str] = set()
        self.eval_problems = 0
        for text in eval_texts:
            self.ngrams |= word_ngrams(text, n)
            self.eval_problems += 1

    def contaminated(self, text: str) -> bool:
        return not self.ngrams.isdisjoint(word_ngrams(text, self.n))


EVAL_TEXT_COLUMNS = ("problem", "question", "prompt", "input")


def load_texts(path: str | Path, column: str | None = None) -> list[str]:
    """Problem texts from a JSONL/JSON/Parquet file or a saved dataset directory (column auto-detected)."""
    from rl_reason.data.load import load_file

    if not Path(path).exists():
        raise FileNotFoundError(f"evaluation set not found: {path}")
    ds = load_file(path)
    if hasattr(ds, "keys") and not hasattr(ds, "column_names"):  # a DatasetDict: every split counts
        ds = [row for split in ds.values() for row in split]
        columns = set(ds[0]) if ds else set()
    else:
        columns = set(ds.column_names)
    if column is None:
        column = next((c for c in EVAL_TEXT_COLUMNS if c in columns), None)
        if column is None:
            raise ValueError(f"{path}: no problem column among {list(EVAL_TEXT_COLUMNS)} (columns: {sorted(columns)})")
    elif column not in columns:
        raise ValueError(f"{path}: column {column!r} not found (columns: {sorted(columns)})")
    return [problem_text(row[column]) for row in ds]


# --- near duplicates and diversity (rapidfuzz) ---------------------------------------------------


def drop_near_duplicates(texts: list[str], threshold: float = 95.0) -> list[int]:
    """Indices of ``texts`` to keep: each text unless ``fuzz.ratio`` ≥ threshold with an earlier kept one.

    ``fuzz.ratio`` (normalised Indel similarity, 0–100) at 95 is open-thoughts' dedup threshold.
    """
    from rapidfuzz import fuzz, process

    kept: list[int] = []
    kept_texts: list[str] = []
    for i, text in enumerate(texts):
        if kept_texts and process.extractOne(text, kept_texts, scorer=fuzz.ratio, score_cutoff=threshold) is not None:
            continue
        kept.append(i)
        kept_texts.append(text)
    return kept


def most_diverse(texts: list[str], k: int, start: int = 0) -> list[int]:
    """``k`` indices chosen greedily to maximise the smallest pairwise distance (farthest-point sampling).

    Distance is ``100 - fuzz.ratio``. Starts from ``start`` (the caller passes its preferred trace,
    e.g. the shortest), so the choice is deterministic.
    """
    if k >= len(texts):
        return list(range(len(texts)))
    import numpy as np
    from rapidfuzz import fuzz, process

    sim = process.cdist(texts, texts, scorer=fuzz.ratio, dtype=np.float32)
    chosen = [start]
    nearest = 100.0 - sim[start]
    nearest[start] = -1.0
    while len(chosen) < k:
        nxt = int(np.argmax(nearest))
        chosen.append(nxt)
        nearest = np.minimum(nearest, 100.0 - sim[nxt])
        nearest[chosen] = -1.0
    return sorted(chosen)


# --- per-prompt selection ------------------------------------------------------------------------


def select_indices(candidates: list[dict], policy: str, k: int = 1) -> list[int]:
    """Which of one prompt's eligible candidates (in trace order) a policy keeps.

    ``candidates`` carry ``reward``, ``length`` and ``text``. all: every one; best: highest reward,
    then shortest; shortest: the shortest; first: the first ``k``; diverse: the ``k`` most diverse.
    best and shortest keep ``k`` (default 1).
    """
    n = len(candidates)
    if n == 0:
        return []
    if policy == "all":
        return list(range(n))
    if policy == "first":
        return list(range(min(k, n)))
    if policy == "best":
        order = sorted(range(n), key=lambda i: (-(candidates[i]["reward"] or 0.0), candidates[i]["length"], i))
        return sorted(order[:k])
    if policy == "shortest":
        order = sorted(range(n), key=lambda i: (candidates[i]["length"], i))
        return sorted(order[:k])
    if policy == "diverse":
        shortest = min(range(n), key=lambda i: (candidates[i]["length"], i))
        return most_diverse([c["text"] for c in candidates], k, start=shortest)
    raise ValueError(f"unknown selection policy {policy!r}; choose one of {list(SELECT_POLICIES)}")


def in_pass_band(correct: int, total: int, low: float, high: float) -> bool:
    """Difficulty calibration: keep a prompt whose pass rate over its samples lies in [low, high]."""
    if total == 0:
        return False
    rate = correct / total
    return low - 1e-12 <= rate <= high + 1e-12
