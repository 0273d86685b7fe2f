"""Rejection sampling from any model: N samples per prompt, scored by the training rewards, kept as traces.

This is DeepSeek-R1's recipe for SFT data (sample the RL checkpoint, keep what the verifiers
accept) and STaR's inner step. Traces use the training schema with ``mode: "sample"``, so
``rl-reason export`` treats them like any other.

Two backends: transformers ``generate`` (CPU or one GPU; tested) and vLLM's offline ``LLM``
engine when it is installed (GPU; a thin path, not exercised by this repository's CPU tests).
"""

from __future__ import annotations

import math
import uuid
from pathlib import Path

from rl_reason.sampling.generation import Sample
from rl_reason.traces.writer import TraceWriter

BACKENDS = ("transformers", "vllm", "auto")


def resolve_backend(backend: str) -> str:
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {list(BACKENDS)}, got {backend!r}")
    if backend == "auto":
        import importlib.util

        import torch

        return "vllm" if importlib.util.find_spec("vllm") and torch.cuda.is_available() else "transformers"
    if backend == "vllm":
        import importlib.util

        if importlib.util.find_spec("vllm") is None:
            raise ValueError("backend 'vllm' needs vLLM installed (pip install 'rl-reason[vllm]')")
    return backend


class Generator:
    """One loaded model that samples completions for chat prompts, with either backend."""

    def __init__(self, model_path: str | Path, backend: str = "transformers", seed: int = 0):
        self.model_path = str(model_path)
        self.backend = resolve_backend(backend)
        self.seed = seed
        if self.backend == "vllm":  # pragma: no cover - needs a GPU and vLLM
            from vllm import LLM

            self.llm = LLM(model=self.model_path, seed=seed)
            self.tokenizer = self.llm.get_tokenizer()
        else:
            from transformers import AutoModelForCausalLM, AutoTokenizer

            self.tokenizer = AutoTokenizer.from_pretrained(self.model_path)
            self.model = AutoModelForCausalLM.from_pretrained(self.model_path)

    def __call__(self, prompts: list[list[dict]], *, max_new_tokens: int, num_samples: int = 1,
                 temperature: float = 0.0, top_p: float = 1.0, batch_size: int = 64, seed: int | None = None,
                 desc: str = "generating") -> list[Sample]:
        if self.backend == "vllm":  # pragma: no cover
            return self._vllm(prompts, max_new_tokens, num_samples, temperature, top_p, seed)
        from rl_reason.sampling.generation import generate

        return generate(self.model, self.tokenizer, prompts, max_new_tokens=max_new_tokens, num_samples=num_samples,
                        temperature=temperature, top_p=top_p, batch_size=batch_size, seed=seed, desc=desc)

    def _vllm(self, prompts, max_new_tokens, num_samples, temperature, top_p, seed):  # pragma: no cover
        from vllm import SamplingParams

        params = SamplingParams(n=num_samples, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens,
                                seed=self.seed if seed is None else seed)
        outputs = self.llm.chat(prompts, params, use_tqdm=True)
        samples = []
        for i, out in enumerate(outputs):
            for c in out.outputs:
                samples.append(Sample(prompt_index=i, text=c.text, token_ids=list(c.token_ids), truncated=c.finish_reason == "length"))
        return samples


def score_samples(samples: list[Sample], prompts: list, problems: list[dict], reward_specs) -> tuple[dict, dict]:
    """Per-function rewards (``{name: [value per sample]}``) and the weights, with the training reward code."""
    from rewards.registry import get_reward

    funcs = [(get_reward(name, **kwargs), weight) for name, weight, kwargs in reward_specs]
    columns = {"answer": [problems[s.prompt_index]["answer"] for s in samples]}
    extra = {k for p in problems for k in p} - {"question", "answer", "solution", "id", "source"}
    for key in sorted(extra):  # e.g. code tests: rewards read the dataset columns they need
        columns[key] = [problems[s.prompt_index].get(key) for s in samples]
    texts = [s.text for s in samples]
    per_func = {
        fn.__name__: fn(prompts=[prompts[s.prompt_index] for s in samples], completions=texts,
                        completion_ids=[s.token_ids for s in samples], **columns)
        for fn, _ in funcs
    }
    return per_func, {fn.__name__: w for fn, w in funcs}


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
    generator: Generator | None = None,
) -> dict:
    """Sample, score and append traces; returns counts (samples, correct, prompts, solved) and the shard path."""
    from rl_reason.data.tasks import SYSTEM_PROMPT, prompt_messages

    gen = generator or Generator(model_path, backend=backend, seed=seed)
    prompts = [prompt_messages(p["question"], system_prompt if system_prompt is not None else SYSTEM_PROMPT) for p in problems]
    samples = gen(prompts, max_new_tokens=max_new_tokens, num_samples=num_samples, temperature=temperature,
                  top_p=top_p, batch_size=batch_size, seed=seed, desc="sampling")
    per_func, weights = score_samples(samples, prompts, problems, reward_specs)
    run_id = run_id or f"sample-{uuid.uuid4().hex[:8]}"
    sampling = {"temperature": temperature, "top_p": top_p, "max_new_tokens": max_new_tokens, "n": num_samples,
                "seed": seed, "backend": gen.backend}
    solved = set()
    correct = 0
    with TraceWriter(traces_dir, run_id=run_id, shard=f"sample-{run_id}") as writer:
        for i, s in enumerate(samples):
            rewards = {name: values[i] for name, values in per_func.items()}
            valid = [(v, weights[n]) for n, v in rewards.items() if v is not None]
            total = sum(v * w for v, w in valid) if valid else None
            if rewards.get("accuracy_reward") == 1.0 or rewards.get("code_reward") == 1.0:
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
                    "completion_ids": list(s.token_ids),
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
    return {"samples": len(samples), "correct": correct, "prompts": len(problems), "solved": len(solved), "shard": str(shard)}
