"""Rejection sampling from any model: N samples per prompt, scored by the training rewards, kept as traces.

This is DeepSeek-R1's recipe for SFT data (sample the RL checkpoint, keep what the verifiers
accept) and STaR's inner step. Traces use the training schema with ``mode: "sample"``, so
``rl-reason export`` treats them like any other.

The generator backends (transformers, vLLM, and an OpenAI-compatible endpoint) are in
``rl_reason.sampling.generation``. An endpoint returns text, not token ids: its traces record
``completion_ids`` as null, and ``completion_tokens`` as the API's count when each request asked for
one completion (``-n 1``), else null (the API counts a request's completions together), so that
``rl-reason export`` falls back to its word count rather than read a wrong token count.
"""

from __future__ import annotations

import math
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from rl_reason.config import ConfigError
from rl_reason.sampling.generation import Generator, Sample
from rl_reason.traces.schema import read_run_info, write_run_info
from rl_reason.traces.writer import TraceWriter

if TYPE_CHECKING:
    from rl_reason.sampling.openai_api import OpenAIGenerator


def reward_funcs(reward_specs) -> list[tuple[str, Callable, float, str]]:
    """``(name, function, weight, role)`` per ``(registry name or module:function, weight, kwargs)`` spec;
    ``name`` is what TRL logs the function under and traces record its values by."""
    from rewards.registry import func_name, get_reward, role_of

    funcs = []
    for name, weight, kwargs in reward_specs:
        fn = get_reward(name, **kwargs)
        try:
            role = role_of(name, func=fn)
        except ValueError as exc:  # the function's own ``role`` attribute is not a role
            raise ConfigError(f"--rewards: {exc}") from None
        funcs.append((func_name(fn), fn, weight, role))
    return funcs


def score_samples(samples: list[Sample], prompts: list, problems: list[dict], funcs) -> dict[str, list]:
    """Per-function rewards (``{name: [value per sample]}``) of ``reward_funcs``, with the training reward code."""
    columns = {"answer": [problems[s.prompt_index]["answer"] for s in samples]}
    extra = {k for p in problems for k in p} - {"question", "answer", "solution", "id", "source"}
    for key in sorted(extra):  # e.g. code tests: rewards read the dataset columns they need
        columns[key] = [problems[s.prompt_index].get(key) for s in samples]
    texts = [s.text for s in samples]
    # None, as TRL never passes, when a backend gave no ids (openai): a length reward then counts characters
    # rather than read every completion as 0 tokens long.
    ids = [s.token_ids for s in samples] if all(s.token_ids for s in samples) else None
    return {
        name: fn(prompts=[prompts[s.prompt_index] for s in samples], completions=texts, completion_ids=ids,
                 **columns)
        for name, fn, _, _ in funcs
    }


def record_reward_roles(traces_dir: str | Path, roles: dict[str, str]) -> None:
    """Add the rewards' roles to ``traces/run.json`` (a training run's, or an earlier sampling run's, when the
    directory has one), so ``rl-reason export`` judges these traces by the same verifiers.

    Raises ConfigError when the directory already records one of the names with another role: one
    ``run.json`` holds one role per name, and every shard beside it is judged by it."""
    info = read_run_info(traces_dir) or {}
    recorded = info.get("reward_roles") or {}
    for name, role in roles.items():
        if recorded.get(name, role) != role:
            raise ConfigError(f"{Path(traces_dir) / 'run.json'} records reward {name!r} as a {recorded[name]}, "
                             f"this run's rewards make it a {role}: sample into another directory")
    if not roles.items() <= recorded.items():
        Path(traces_dir).mkdir(parents=True, exist_ok=True)
        write_run_info(traces_dir, {**info, "reward_roles": {**recorded, **roles}})


def sample_traces(
    model_path: str | Path,
    problems: list[dict],
    traces_dir: str | Path,
    *,
    reward_specs: list[tuple[str, float, dict]] = (("math", 1.0, {}), ("format", 0.1, {})),
    num_samples: int = 4,
    temperature: float = 1.0,
    max_new_tokens: int = 64,
    batch_size: int = 256,
    seed: int = 0,
    run_id: str | None = None,
    system_prompt: str | None = None,
    top_p: float = 1.0,
    backend: str = "transformers",
    generator: Generator | OpenAIGenerator | None = None,
) -> dict:
    """Sample, score and append traces; returns counts (samples, correct, prompts, solved) and the shard path.

    A sample is correct when the rewards whose role is ``verifier`` accept it (the rule ``rl-reason export``
    applies, with the roles recorded here in ``traces/run.json``)."""
    from rl_reason.data.tasks import problem_prompts
    from rl_reason.export.filters import Verifiers

    funcs = reward_funcs(reward_specs)
    roles = {name: role for name, _, _, role in funcs}
    record_reward_roles(traces_dir, roles)
    verifiers = Verifiers(roles)
    weights = {name: weight for name, _, weight, _ in funcs}
    gen = generator or Generator(model_path, backend=backend, seed=seed)
    prompts = problem_prompts(problems, system_prompt)
    samples = gen(prompts, max_new_tokens=max_new_tokens, num_samples=num_samples, temperature=temperature,
                  top_p=top_p, batch_size=batch_size, seed=seed, desc="sampling")
    per_func = score_samples(samples, prompts, problems, funcs)
    run_id = run_id or f"sample-{uuid.uuid4().hex[:8]}"
    sampling = {"temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens, "n": num_samples,
                "seed": seed, "backend": gen.backend}
    if gen.backend == "openai":
        sampling["base_url"] = gen.base_url
    solved = set()
    correct = 0
    with TraceWriter(traces_dir, run_id=run_id, shard=f"sample-{run_id}") as writer:
        for i, s in enumerate(samples):
            rewards = {name: values[i] for name, values in per_func.items()}
            valid = [(v, weights[n]) for n, v in rewards.items() if v is not None]
            total = sum(v * w for v, w in valid) if valid else None
            if verifiers.verdict({"rewards": rewards}):
                correct += 1
                solved.add(s.prompt_index)
            problem = problems[s.prompt_index]
            writer.add(
                {
                    "step": None,
                    "mode": "sample",
                    "group": f"sample-{s.prompt_index}",
                    "prompt": prompts[s.prompt_index],
                    "completion": s.text,
                    "answer": problem["answer"],
                    "rewards": rewards,
                    "reward": None if total is None or math.isnan(total) else total,
                    "completion_tokens": s.num_tokens,
                    "completion_ids": list(s.token_ids) if s.token_ids else None,
                    "truncated": s.truncated,
                    "finish_reason": "length" if s.truncated else "stop",
                    "id": problem.get("id"),
                    "source": problem.get("source"),
                    "temperature": temperature,
                    "sampling": sampling,
                    "model": str(model_path),
                }
            )
        shard = writer.path
    return {"samples": len(samples), "correct": correct, "prompts": len(problems), "solved": len(solved),
            "shard": str(shard)}
