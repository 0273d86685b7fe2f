"""What a synthesis leaves for training: ``dataset/train.jsonl`` (a ``data.source`` as it is), its
card (``dataset/README.md``) and ``synthesize_stats.json``.

Both are rewritten after every round (a temporary file, then a rename), so a killed run always
leaves a dataset that is whole, if smaller.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import yaml

from rl_reason.export.card import histogram

MATH_FIELDS = ("id", "question", "answer", "solution", "system_instruction", "agreement", "votes", "num_generations",
               "pass_rate", "topic", "round", "source")
CODE_FIELDS = ("id", "question", "tests", "reference", "entry_point", "solution", "system_instruction", "pass_rate",
               "topic", "round", "source")


def dataset_row(c: dict, task: str) -> dict:
    row = {**c, "topic": c.get("leaf"), "source": "synthetic"}
    return {k: row.get(k) for k in (CODE_FIELDS if task == "code" else MATH_FIELDS)}


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def stats(plan, state) -> dict:
    from rl_reason.synthesize.pipeline import leaf_coverage

    s = plan.recipe.synthesize
    return {
        "task": s.task,
        "kept": len(state.kept),
        "candidates": state.candidates,
        "rounds": state.round,
        "removed": dict(sorted(state.removed.items())),
        "stop_reason": state.stop_reason,
        "teacher": {"backend": s.teacher.backend, "model": s.teacher.model, "base_url": s.teacher.base_url},
        "difficulty_model": s.difficulty.model,
        "taxonomy_coverage": leaf_coverage(plan, state),
        "per_round": state.rounds,
    }


def write_dataset(out: Path, plan, state, final: bool = False) -> Path:
    task = plan.recipe.synthesize.task
    directory = out / "dataset"
    directory.mkdir(parents=True, exist_ok=True)
    rows = [dataset_row(c, task) for c in state.kept]
    _write_atomic(directory / "train.jsonl", "".join(json.dumps(r) + "\n" for r in rows))
    summary = stats(plan, state)
    _write_atomic(directory / "README.md", render_card(plan, state, summary, final))
    _write_atomic(out / "synthesize_stats.json", json.dumps(summary, indent=2) + "\n")
    return directory / "train.jsonl"


def render_card(plan, state, summary: dict, final: bool) -> str:
    from rl_reason.synthesize.pipeline import FILTERS

    recipe, s = plan.recipe, plan.recipe.synthesize
    t = s.teacher
    teacher = f"`{t.model}` ({t.backend}" + (f", {t.base_url}" if t.base_url else "") + ")"
    lines = [
        "---",
        yaml.safe_dump({"configs": [{"config_name": "default", "data_files": "train.jsonl"}],
                        "tags": ["synthetic", "rl-reason", s.task]}, sort_keys=False).strip(),
        "---",
        "",
        f"# Synthesized {s.task} problems",
        "",
        f"{summary['kept']} problems kept of {summary['candidates']} candidates in {summary['rounds']} rounds, "
        f"teacher {teacher}." + ("" if final else " (In progress: rewritten after every round.)"),
    ]
    if state.stop_reason:
        lines.append(f"Stopped: {state.stop_reason}.")
    lines += [
        "",
        "Train on it with `data.source: <this directory>/train.jsonl` in an `rl-reason train` recipe"
        + (" (rewards: `code`; the `tests` column holds each problem's tests)." if s.task == "code" else "."),
        "",
        "## Removed, per filter",
        "",
        "| filter | removed | why |",
        "|---|---:|---|",
    ]
    lines += [f"| {k} | {v} | {FILTERS.get(k, '')} |" for k, v in sorted(state.removed.items(), key=lambda kv: -kv[1])]
    kept_rouge = [c["rouge_l"] for c in state.kept if c.get("rouge_l") is not None]
    lines += ["", f"## ROUGE-L of kept problems to the pool (max over ≤ 500 earlier problems; near-copy at "
              f"≥ {s.filters.rouge_l_threshold})", "", histogram(kept_rouge, value_range=(0, 1), digits=2)]
    if s.task == "math":
        lines += ["", f"## Agreement of the teacher's {s.verify.num_generations} solutions (kept at ≥ "
                  f"{s.verify.min_agreement})", "", histogram(state.agreements, value_range=(0, 1), digits=2)]
    d = s.difficulty
    if d.model is not None:
        lines += ["", f"## Difficulty: pass rate of `{d.model}` over {d.num_generations} samples (kept in "
                  f"[{d.min_pass_rate}, {d.max_pass_rate}])", "",
                  histogram(state.verified_pass_rates, value_range=(0, 1), digits=2)]
    if summary["taxonomy_coverage"]:
        lines += ["", f"## Taxonomy coverage ({s.taxonomy})", "", "| leaf | kept | share | target share |",
                  "|---|---:|---:|---:|"]
        lines += [f"| {c['leaf']} | {c['count']} | {c['share']:.2f} | {c['target_share']:.2f} |"
                  for c in summary["taxonomy_coverage"]]
    lines += ["", "## Rounds (the collapse guard's measurements)", "",
              "| round | kept | distinct-1 | distinct-2 | mean ROUGE-L | coverage | human share | collapse |",
              "|---:|---:|---:|---:|---:|---:|---:|---|"]
    for m in state.rounds:
        cov = "" if m["taxonomy_coverage"] is None else f"{m['taxonomy_coverage']:.2f}"
        lines.append(f"| {m['round']} | {m['kept']} | {m['distinct_1']:.3f} | {m['distinct_2']:.3f} | "
                     f"{m['mean_rouge_l']:.3f} | {cov} | {m['human_share']:.2f} | {m.get('collapse') or ''} |")
    if s.filters.decontaminate:
        lines += ["", f"Decontaminated ({s.filters.ngram}-gram word overlap) against: "
                  + ", ".join(f"`{p}`" for p in s.filters.decontaminate) + "."]
    lines += ["", "## Recipe", "", "```yaml", yaml.safe_dump(recipe.raw, sort_keys=False).strip(), "```", ""]
    return "\n".join(lines)
