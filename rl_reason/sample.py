"""Rejection sampling from any model: N samples per prompt, scored by the training rewards, kept as traces.

This is DeepSeek-R1's recipe for SFT data (sample the RL checkpoint, keep what the verifiers
accept) and STaR's inner step. Traces use the training schema with ``mode: "sample"``, so
``rl-reason export`` treats them like any other.
"""

from __future__ import annotations

import math
import uuid
from pathlib import Path

from rl_reason.traces import TraceWriter


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
) -> dict:
    """Sample, score and append traces; returns counts (samples, correct, prompts solved)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from rewards.registry import get_reward
    from rl_reason.generation import generate
    from rl_reason.task import SYSTEM_PROMPT, prompt_messages

    tokenizer = AutoTokenizer.from_pretrained(model_path)
    model = AutoModelForCausalLM.from_pretrained(model_path)
    prompts = [prompt_messages(p["question"], system_prompt if system_prompt is not None else SYSTEM_PROMPT) for p in problems]
    samples = generate(
        model, tokenizer, prompts, max_new_tokens=max_new_tokens, num_samples=num_samples,
        temperature=temperature, batch_size=batch_size, seed=seed,
    )
    funcs = [(get_reward(name, **kwargs), weight) for name, weight, kwargs in reward_specs]
    columns = {"answer": [problems[s.prompt_index]["answer"] for s in samples]}
    texts = [s.text for s in samples]
    per_func = {
        fn.__name__: fn(prompts=[prompts[s.prompt_index] for s in samples], completions=texts,
                        completion_ids=[s.token_ids for s in samples], **columns)
        for fn, _ in funcs
    }
    weights = {fn.__name__: w for fn, w in funcs}
    run_id = run_id or f"sample-{uuid.uuid4().hex[:8]}"
    solved = set()
    correct = 0
    with TraceWriter(traces_dir, run_id=run_id, shard=f"sample-{run_id}") as writer:
        for i, s in enumerate(samples):
            rewards = {name: values[i] for name, values in per_func.items()}
            valid = [(v, weights[n]) for n, v in rewards.items() if v is not None]
            total = sum(v * w for v, w in valid) if valid else None
            if rewards.get("accuracy_reward") == 1.0:
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
                    "completion_tokens": len(s.token_ids),
                    "truncated": s.truncated,
                    "id": problem.get("id"),
                    "source": problem.get("source"),
                    "temperature": temperature,
                    "model": str(model_path),
                }
            )
    return {"samples": len(samples), "correct": correct, "prompts": len(problems), "solved": len(solved)}
