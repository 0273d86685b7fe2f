"""``rl-reason eval``: accuracy of a model directory on held-out problems, scored by the same rewards.

Greedy pass@1 always; with ``k > 1``, ``n`` samples per problem and the unbiased pass@k estimator
of Chen et al. (2021): ``1 - C(n - c, k) / C(n, k)`` averaged over problems.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k for one problem with ``c`` correct among ``n`` samples."""
    if k > n:
        raise ValueError(f"pass@{k} needs at least {k} samples, got {n}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


@dataclass
class EvalReport:
    model: str
    problems: int
    accuracy: float  # greedy pass@1
    pass_at_k: dict[str, float] = field(default_factory=dict)
    samples_per_problem: int = 0
    by_source: dict[str, float] = field(default_factory=dict)
    format_rate: float = 0.0
    truncated_rate: float = 0.0

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def score(completions: list[str], answers: list[str]) -> list[float]:
    from rewards.math import accuracy_reward

    values = accuracy_reward(prompts=[None] * len(completions), completions=completions, answer=answers)
    return [v or 0.0 for v in values]


def evaluate(
    model_path: str | Path,
    problems: list[dict],
    *,
    max_new_tokens: int = 64,
    k: int = 1,
    n: int | None = None,
    temperature: float = 1.0,
    system_prompt: str | None = None,
    batch_size: int = 128,
    seed: int = 0,
) -> EvalReport:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rewards.format import is_well_formed
    from rl_reason.generation import generate
    from rl_reason.task import SYSTEM_PROMPT, prompt_messages

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    prompts = [prompt_messages(p["question"], system_prompt if system_prompt is not None else SYSTEM_PROMPT) for p in problems]
    answers = [p["answer"] for p in problems]

    greedy = generate(model, tokenizer, prompts, max_new_tokens=max_new_tokens, batch_size=batch_size)
    correct = score([s.text for s in greedy], answers)
    sources: dict[str, list[float]] = {}
    for p, c in zip(problems, correct):
        sources.setdefault(p.get("source") or "all", []).append(c)
    report = EvalReport(
        model=str(model_path),
        problems=len(problems),
        accuracy=float(np.mean(correct)) if correct else 0.0,
        by_source={s: float(np.mean(v)) for s, v in sorted(sources.items())},
        format_rate=float(np.mean([is_well_formed(s.text) for s in greedy])) if greedy else 0.0,
        truncated_rate=float(np.mean([s.truncated for s in greedy])) if greedy else 0.0,
    )
    if k > 1:
        n = n or k
        sampled = generate(
            model, tokenizer, prompts, max_new_tokens=max_new_tokens, num_samples=n,
            temperature=temperature, batch_size=batch_size, seed=seed,
        )
        hits = score([s.text for s in sampled], [answers[s.prompt_index] for s in sampled])
        per_problem = np.zeros(len(problems))
        for s, h in zip(sampled, hits):
            per_problem[s.prompt_index] += h
        report.samples_per_problem = n
        for kk in sorted({1, k}):
            report.pass_at_k[f"pass@{kk}"] = float(np.mean([pass_at_k(n, int(c), kk) for c in per_problem]))
    return report
