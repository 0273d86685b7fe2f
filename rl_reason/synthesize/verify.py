"""Answers a problem can be trusted with: self-consistency for math, tests that bite for code.

Math (``majority_votes``): K teacher solutions per problem, final answers extracted as the
training reward extracts them and grouped by ``rewards.math`` equivalence (``0.5`` and ``1/2`` are
one answer). The largest group's share is the problem's agreement; a solution without an answer
(or one that hedges between several) counts against it. Code: ``rl_reason.synthesize.code_check``.
Pass rates (``pass_rates``) score a model's samples with the very rewards training will use.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from rewards.math import check_batch, extract_answer


@dataclass
class Vote:
    answer: str | None  # the majority answer as the teacher most often wrote it; None: no answer at all
    agreement: float  # the majority group's share of all K solutions
    votes: int
    total: int
    agreeing: list[int] = field(default_factory=list)  # indices of the solutions in the majority group


def majority_votes(solutions: list[list[str]]) -> list[Vote]:
    """One ``Vote`` per problem; ties between groups go to the group seen first."""
    answers = [[extract_answer(t) for t in texts] for texts in solutions]
    pairs, index = [], {}
    for i, found in enumerate(answers):
        distinct = list(dict.fromkeys(a for a in found if a is not None))
        for x in range(len(distinct)):
            for y in range(x):
                index[(i, distinct[y], distinct[x])] = len(pairs)
                pairs.append((distinct[y], distinct[x]))
    verdicts = check_batch(pairs) if pairs else []
    votes = []
    for i, found in enumerate(answers):
        reps: list[str] = []  # one representative string per group, first seen first
        group_of: dict[str, int] = {}
        for a in dict.fromkeys(a for a in found if a is not None):
            match = next((g for g, rep in enumerate(reps) if verdicts[index[(i, rep, a)]].equal), None)
            if match is None:
                reps.append(a)
                match = len(reps) - 1
            group_of[a] = match
        members: dict[int, list[int]] = {}
        for j, a in enumerate(found):
            if a is not None:
                members.setdefault(group_of[a], []).append(j)
        total = len(found)
        if not members:
            votes.append(Vote(None, 0.0, 0, total))
            continue
        best = max(sorted(members), key=lambda g: len(members[g]))
        written = Counter(found[j] for j in members[best]).most_common(1)[0][0]
        votes.append(Vote(written, len(members[best]) / total if total else 0.0, len(members[best]), total,
                          members[best]))
    return votes


def pass_rates(task: str, prompts: list[list[dict]], samples: list[list[str]], references: list) -> list[float]:
    """Share of each problem's samples the training verifier marks correct (math: ``accuracy_reward``
    against the answer; code: all tests passing, ``code_reward(all_or_nothing=True)``)."""
    flat_prompts, flat_completions, flat_refs = [], [], []
    for prompt, texts, ref in zip(prompts, samples, references):
        for t in texts:
            flat_prompts.append(prompt)
            flat_completions.append(t)
            flat_refs.append(ref)
    if task == "code":
        from rewards.code import make_code_reward

        scores = make_code_reward(all_or_nothing=True)(flat_prompts, flat_completions, tests=flat_refs)
    else:
        from rewards.math import accuracy_reward

        scores = accuracy_reward(flat_prompts, flat_completions, answer=flat_refs)
    rates, k = [], 0
    for texts in samples:
        chunk = [s or 0.0 for s in scores[k : k + len(texts)]]
        rates.append(sum(chunk) / len(chunk) if chunk else 0.0)
        k += len(texts)
    return rates
