"""The dataset card (README.md) of an export: where the data came from and what each filter removed.

The YAML header declares the two views as Hub configs, so ``load_dataset(path_or_repo, "messages")``
and ``load_dataset(path_or_repo, "problems")`` work locally and after ``--push-to-hub``.
"""

from __future__ import annotations

import datetime
from dataclasses import asdict
from pathlib import Path

import numpy as np

FILTER_DOC = {
    "eval_mode": "sampled during evaluation, not training (use --include-eval to keep)",
    "decontaminated": "prompt shares a word n-gram with an evaluation set",
    "truncated": "generation hit the token limit before EOS",
    "bad_format": "`<think>…</think>` not well formed, or not exactly one final answer",
    "too_short": "fewer completion tokens than --min-tokens",
    "too_long": "more completion tokens than --max-tokens",
    "duplicate": "exact duplicate of an earlier completion of the same prompt",
    "below_min_reward": "weighted reward below --min-reward",
    "not_verified_correct": "a verifier reward (math, code or the run's own) did not mark it correct (--correct-only)",
    "pass_rate_band": "its prompt's pass rate is outside the difficulty band",
    "near_duplicate": "rapidfuzz ratio at or above the threshold with a kept completion of the same prompt",
    "not_selected": "not chosen by the per-prompt selection policy",
    "mix_decontaminated": "human-written row dropped by decontamination",
    "mix_shortfall": "human-written rows wanted but not available",
}


def histogram(values, bins: int = 10, width: int = 40, value_range: tuple[float, float] | None = None,
              digits: int = 1) -> str:
    """A text histogram (Markdown code block), readable on the Hub and in a terminal."""
    if len(values) == 0:
        return "_(no data)_"
    values = np.asarray(values, dtype=float)
    counts, edges = np.histogram(values, bins=bins, range=value_range)
    peak = max(int(counts.max()), 1)
    lines = []
    for c, lo, hi in zip(counts, edges[:-1], edges[1:]):
        bar = "#" * round(width * c / peak)
        lines.append(f"{lo:9.{digits}f} – {hi:9.{digits}f} | {bar} {c}")
    return "```\n" + "\n".join(lines) + "\n```"


def render_card(stats, opts, *, traces_dir, fmt: str, mix: str | None, mix_ratio: float, decon) -> str:
    total_removed = sum(v for k, v in stats.removed.items() if not k.startswith("mix_"))
    lengths = np.asarray(stats.lengths, dtype=float)
    lines = [
        "---",
        "configs:",
        "- config_name: messages",
        "  default: true",
        "  data_files:",
        "  - split: train",
        f"    path: data/messages.{fmt}",
        "- config_name: problems",
        "  data_files:",
        "  - split: train",
        f"    path: data/problems.{fmt}",
        "tags:",
        "- reasoning",
        "- rl-reason",
        "---",
        "",
        "# Reasoning traces exported by rl-reason",
        "",
        f"Exported {datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')} from `{traces_dir}`.",
        "",
        "## Source",
        "",
        "| run id | traces kept after record filters |",
        "|---|---:|",
        *[f"| `{run or '(none)'}` | {n} |" for run, n in sorted(stats.run_ids.items())],
        "",
        *_run_metadata(traces_dir),
        "## Views",
        "",
        "- `messages` (default): one row per selected trace, chat `messages` with the full `<think>…</think>` in the"
        " assistant turn" + (f", plus human-written rows (`origin: human`) from `{mix}` at ratio {mix_ratio}"
                             if mix else "") + ".",
        "- `problems`: one row per problem, OpenR1 style: `generations` (the completions that passed the record"
        " filters) with `correctness`, `rewards`, `finish_reasons`, `selected`, `correctness_count`, `num_generations`"
        " and `generations_pass_rate`; `num_samples` and `pass_rate` count every sample of the problem; and the"
        " selected `messages`.",
        "",
        "## Counts",
        "",
        f"- traces read: {stats.read}",
        f"- prompts seen: {stats.prompts_seen}{_eval_only(stats)}; prompts exported: {stats.prompts}",
        f"- traces exported: {stats.kept}; human-written rows mixed in: {stats.mixed}",
        f"- traces removed: {total_removed}",
        f"- unreadable shard lines skipped: {stats.skipped_lines}",
        "",
        "Each removed trace is counted once, under the first filter (in this order) that removed it:",
        "",
        "| filter | removed | meaning |",
        "|---|---:|---|",
        *[f"| `{k}` | {stats.removed.get(k, 0)} | {doc} |" for k, doc in FILTER_DOC.items()],
        "",
        "## Options",
        "",
        "```",
        *[f"{k}: {v}" for k, v in asdict(opts).items()],
        "```",
    ]
    if decon is not None:
        lines += ["", f"Decontamination: word {decon.n}-grams against {decon.eval_problems} evaluation problems from "
                  + ", ".join(f"`{p}`" for p in opts.decontaminate) + "."]
    lines += [
        "",
        "## Completion length (tokens) of exported traces",
        "",
        (f"mean {lengths.mean():.1f}, median {np.median(lengths):.0f}, max {lengths.max():.0f}"
         if len(lengths) else ""),
        "",
        histogram(lengths),
        "",
        "## Pass rate of exported prompts",
        "",
        histogram(stats.pass_rates, bins=10),
        "",
    ]
    return "\n".join(lines)


def _eval_only(stats) -> str:
    if not stats.eval_only_prompts:
        return ""
    return f" (and {stats.eval_only_prompts} only in evaluation samples, which --include-eval exports)"


def _run_metadata(traces_dir) -> list[str]:
    """The run's own metadata (git SHA, model, sampling), when the trainer wrote ``traces/run.json``."""
    import json

    from rl_reason.traces.schema import read_run_info

    meta = read_run_info(traces_dir) if Path(traces_dir).is_dir() else None
    if meta is None:
        return []
    return ["Run metadata (`run.json`):", "", "```json", json.dumps(meta, indent=2, sort_keys=True), "```", ""]


def write_card(directory: Path, stats, opts, **kwargs) -> Path:
    path = Path(directory) / "README.md"
    path.write_text(render_card(stats, opts, **kwargs), encoding="utf-8")
    return path
