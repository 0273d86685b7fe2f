"""``rl-reason eval``: accuracy of a model on held-out problems, scored by the same rewards as training.

Greedy pass@1 always; with ``k > 1``, ``n`` samples per problem and the unbiased pass@k estimator
of Chen et al. (2021): ``1 - C(n - c, k) / C(n, k)`` averaged over problems. Accuracy is broken
down per dataset source and per answer type (integer, decimal, fraction, expression, text), so a
regression on one slice does not hide in the mean. Backends: transformers ``generate`` or vLLM.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

_INTEGER = re.compile(r"^[+-]?\d[\d,]*$")
_DECIMAL = re.compile(r"^[+-]?(\d+\.\d*|\.\d+)(e[+-]?\d+)?$", re.I)
_FRACTION = re.compile(r"^[+-]?(\d+\s*/\s*\d+|\\d?frac\{.*\}\{.*\})$")
_MATHY = re.compile(r"[\\^_{}=<>()\[\]+*/]|\d")


def answer_type(answer) -> str:
    """A coarse class of a reference answer: integer, decimal, fraction, expression or text."""
    text = str(answer).strip().strip("$").strip()
    if _INTEGER.match(text):
        return "integer"
    if _DECIMAL.match(text):
        return "decimal"
    if _FRACTION.match(text):
        return "fraction"
    if _MATHY.search(text):
        return "expression"
    return "text"


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
    by_answer_type: dict[str, float] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # problems per source / answer type
    pass_at_k_by_source: dict[str, dict[str, float]] = field(default_factory=dict)
    format_rate: float = 0.0
    truncated_rate: float = 0.0
    backend: str = "transformers"
    settings: dict = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)

    def write(self, path: str | Path) -> None:
        """The JSON report into ``path``, atomically (a reader never sees half of it)."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        tmp.write_text(self.to_json())
        tmp.replace(path)

    def table(self) -> str:
        """The report as a plain-text table (what the CLI prints)."""
        ks = list(self.pass_at_k)
        header = ["slice", "problems", "greedy"] + ks
        rows = [["all", str(self.problems), f"{self.accuracy:.1%}"] + [f"{self.pass_at_k[k]:.1%}" for k in ks]]
        for name, acc in self.by_source.items():
            by_k = self.pass_at_k_by_source.get(name, {})
            rows.append([f"source={name}", str(self.counts.get("source", {}).get(name, "")), f"{acc:.1%}"]
                        + [f"{by_k[k]:.1%}" if k in by_k else "" for k in ks])
        for name, acc in self.by_answer_type.items():
            count = str(self.counts.get("answer_type", {}).get(name, ""))
            rows.append([f"answer={name}", count, f"{acc:.1%}"] + [""] * len(ks))
        widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
        fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))  # noqa: E731
        lines = [fmt(header), "  ".join("-" * w for w in widths), *map(fmt, rows)]
        lines.append(f"format ok {self.format_rate:.1%}, truncated {self.truncated_rate:.1%} (greedy)")
        return "\n".join(lines)


def score(completions: list[str], answers: list[str]) -> list[float]:
    from rewards.math import accuracy_reward

    values = accuracy_reward(prompts=[None] * len(completions), completions=completions, answer=answers)
    return [v or 0.0 for v in values]


def _mean_by(keys: list[str], values) -> dict[str, float]:
    groups: dict[str, list[float]] = {}
    for key, v in zip(keys, values):
        groups.setdefault(key, []).append(v)
    return {k: float(np.mean(v)) for k, v in sorted(groups.items())}


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
    backend: str = "transformers",
    generator=None,
) -> EvalReport:
    from rewards.format import is_well_formed
    from rl_reason.data.tasks import problem_prompts
    from rl_reason.sampling.generation import Generator

    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    n = n or k
    if n < k:
        raise ValueError(f"pass@{k} needs n >= k samples per problem, got n={n}")
    gen = generator or Generator(model_path, backend=backend, seed=seed)
    prompts = problem_prompts(problems, system_prompt)
    answers = [p["answer"] for p in problems]
    sources = [str(p.get("source") or "all") for p in problems]
    types = [answer_type(a) for a in answers]

    greedy = gen(prompts, max_new_tokens=max_new_tokens, batch_size=batch_size, desc="eval: greedy")
    correct = score([s.text for s in greedy], answers)
    report = EvalReport(
        model=str(model_path),
        problems=len(problems),
        accuracy=float(np.mean(correct)) if correct else 0.0,
        by_source=_mean_by(sources, correct),
        by_answer_type=_mean_by(types, correct),
        counts={"source": {s: sources.count(s) for s in sorted(set(sources))},
                "answer_type": {t: types.count(t) for t in sorted(set(types))}},
        format_rate=float(np.mean([is_well_formed(s.text) for s in greedy])) if greedy else 0.0,
        truncated_rate=float(np.mean([s.truncated for s in greedy])) if greedy else 0.0,
        backend=gen.backend,
        settings={"max_new_tokens": max_new_tokens, "k": k, "n": n, "temperature": temperature, "seed": seed},
    )
    if k > 1:
        sampled = gen(prompts, max_new_tokens=max_new_tokens, num_samples=n, temperature=temperature,
                      batch_size=batch_size, seed=seed, desc=f"eval: {n} samples")
        hits = score([s.text for s in sampled], [answers[s.prompt_index] for s in sampled])
        per_problem = np.zeros(len(problems))
        for s, h in zip(sampled, hits):
            per_problem[s.prompt_index] += h
        report.samples_per_problem = n
        for kk in sorted({1, k}):
            values = [pass_at_k(n, int(c), kk) for c in per_problem]
            report.pass_at_k[f"pass@{kk}"] = float(np.mean(values)) if values else 0.0
            for name, v in _mean_by(sources, values).items():
                report.pass_at_k_by_source.setdefault(name, {})[f"pass@{kk}"] = v
    return report
