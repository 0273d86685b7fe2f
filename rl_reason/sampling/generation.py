"""Generating completions for chat prompts: the backends every sampling stage shares.

``generate`` is batched transformers ``generate`` (CPU or one GPU); ``Generator`` holds one loaded
model and samples with it through transformers or vLLM's offline ``LLM`` engine (GPU; a thin path,
not exercised by this repository's CPU tests). Rejection sampling, evaluation and STaR use it.

A third backend, ``openai``, asks an OpenAI-compatible HTTP endpoint (a vLLM server, a hosted API)
through ``rl_reason.sampling.openai_api.OpenAIGenerator``, which is called exactly like ``Generator``;
``make_generator`` builds either.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch
from tqdm.auto import tqdm


@dataclass
class Sample:
    """One completion of prompt ``prompt_index``.

    ``token_ids`` is empty only from the ``openai`` backend: an HTTP API returns text, not ids. That
    backend puts what it knows of the length in ``completion_tokens`` (the API's count when the request
    asked for one completion, else None); the local backends leave it None, ``len(token_ids)`` being exact."""

    prompt_index: int
    text: str
    token_ids: list[int]
    truncated: bool
    completion_tokens: int | None = None

    @property
    def num_tokens(self) -> int | None:
        """The completion's length in tokens; None when the backend could not tell (openai, n > 1)."""
        return len(self.token_ids) if self.token_ids else self.completion_tokens


# ``on_result(prompt_index, samples)``: called in the calling thread once per prompt, with all of its
# samples, as soon as they are generated, so a caller can persist them before the whole call returns.
OnResult = Callable[[int, list[Sample]], None]


def _report(on_result: OnResult | None, samples: list[Sample]) -> None:
    """``on_result`` once per prompt of ``samples`` (one batch's, in prompt order)."""
    if on_result is None:
        return
    by_prompt: dict[int, list[Sample]] = {}
    for s in samples:
        by_prompt.setdefault(s.prompt_index, []).append(s)
    for index, group in by_prompt.items():
        on_result(index, group)


@torch.inference_mode()
def generate(
    model,
    tokenizer,
    prompts: list[list[dict]],
    *,
    max_new_tokens: int,
    num_samples: int = 1,
    temperature: float = 0.0,
    top_p: float = 1.0,
    batch_size: int = 64,
    seed: int | None = None,
    desc: str = "generating",
    progress: bool = True,
    on_result: OnResult | None = None,
) -> list[Sample]:
    """``num_samples`` completions for each chat prompt; greedy when ``temperature == 0``.

    ``on_result`` is called per prompt after each generated batch."""
    if seed is not None:
        torch.manual_seed(seed)
    was_training = model.training
    model.eval()
    tokenizer.padding_side = "left"
    texts = [tokenizer.apply_chat_template(p, tokenize=False, add_generation_prompt=True) for p in prompts]
    eos = tokenizer.eos_token_id
    samples: list[Sample] = []
    per_batch = max(1, batch_size // num_samples)
    # Bars only on a terminal (disable=None): logs and piped stderr stay one line per message.
    quiet = not progress or len(texts) <= per_batch
    batches = tqdm(range(0, len(texts), per_batch), desc=desc, unit="batch", disable=True if quiet else None)
    for start in batches:
        chunk = texts[start : start + per_batch]
        enc = tokenizer(chunk, return_tensors="pt", padding=True, add_special_tokens=False).to(model.device)
        sampling = temperature > 0
        out = model.generate(
            **enc,
            max_new_tokens=max_new_tokens,
            do_sample=sampling,
            temperature=temperature if sampling else None,
            top_p=top_p if sampling else None,
            top_k=0 if sampling else None,
            num_return_sequences=num_samples,
            pad_token_id=tokenizer.pad_token_id,
            eos_token_id=eos,
        )
        completions = out[:, enc["input_ids"].shape[1] :].tolist()
        done = len(samples)
        for j, ids in enumerate(completions):
            if eos in ids:
                ids = ids[: ids.index(eos) + 1]
                truncated = False
            else:
                ids = [t for t in ids if t != tokenizer.pad_token_id]
                truncated = True
            samples.append(
                Sample(
                    prompt_index=start + j // num_samples,
                    text=tokenizer.decode(ids, skip_special_tokens=True),
                    token_ids=ids,
                    truncated=truncated,
                )
            )
        _report(on_result, samples[done:])
    model.train(was_training)
    return samples


BACKENDS = ("transformers", "vllm", "auto", "openai")


def resolve_backend(backend: str, base_url: str | None = None) -> str:
    """``backend`` checked, with ``auto`` decided: vLLM when it is installed and a GPU is there.

    ``openai`` (an HTTP endpoint) needs ``base_url``; ``auto`` only ever picks a local backend."""
    if backend not in BACKENDS:
        raise ValueError(f"backend: expected one of {list(BACKENDS)}, got {backend!r}")
    if backend == "openai":
        if not base_url:
            raise ValueError("backend 'openai' needs a base URL (--base-url), e.g. http://127.0.0.1:8000/v1")
        return backend
    has_vllm = importlib.util.find_spec("vllm") is not None
    if backend == "auto":
        return "vllm" if has_vllm and torch.cuda.is_available() else "transformers"
    if backend == "vllm" and not has_vllm:
        raise ValueError("backend 'vllm' needs vLLM installed (pip install 'rl-reason[vllm]')")
    return backend


def make_generator(model: str | Path, backend: str = "transformers", seed: int = 0, **endpoint):
    """A ``Generator`` (transformers, vLLM, auto) or, for ``openai``, an ``OpenAIGenerator`` asking the endpoint
    for the served model named ``model``: the same call either way.

    ``endpoint``: ``OpenAIGenerator``'s options (base_url, api_key_env, max_concurrency, max_retries, timeout);
    they mean nothing to a local backend, which refuses them rather than ignore them."""
    given = {k: v for k, v in endpoint.items() if v is not None}
    backend = resolve_backend(backend, given.get("base_url"))
    if backend == "openai":
        from rl_reason.sampling.openai_api import OpenAIGenerator

        return OpenAIGenerator(model=str(model), seed=seed, **given)
    if given:
        raise ValueError(f"{', '.join(sorted(given))}: only for backend 'openai', not {backend!r}")
    return Generator(model, backend=backend, seed=seed)


class Generator:
    """One loaded model that samples completions for chat prompts, with a local backend (transformers, vLLM)."""

    def __init__(self, model_path: str | Path, backend: str = "transformers", seed: int = 0):
        if backend == "openai":
            raise ValueError("backend 'openai' is an HTTP endpoint: use make_generator or OpenAIGenerator")
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
                 desc: str = "generating", on_result: OnResult | None = None) -> list[Sample]:
        """``num_samples`` completions per prompt, in prompt order; ``on_result(i, samples)`` per prompt as they
        come (after each batch with transformers; at the end with vLLM, which generates all prompts at once)."""
        if self.backend == "vllm":  # pragma: no cover
            samples = self._vllm(prompts, max_new_tokens, num_samples, temperature, top_p, seed)
            _report(on_result, samples)
            return samples
        return generate(self.model, self.tokenizer, prompts, max_new_tokens=max_new_tokens, num_samples=num_samples,
                        temperature=temperature, top_p=top_p, batch_size=batch_size, seed=seed, desc=desc,
                        on_result=on_result)

    def _vllm(self, prompts, max_new_tokens, num_samples, temperature, top_p, seed):  # pragma: no cover
        from vllm import SamplingParams

        params = SamplingParams(n=num_samples, temperature=temperature, top_p=top_p, max_tokens=max_new_tokens,
                                seed=self.seed if seed is None else seed)
        outputs = self.llm.chat(prompts, params, use_tqdm=True)
        samples = []
        for i, out in enumerate(outputs):
            for c in out.outputs:
                samples.append(Sample(prompt_index=i, text=c.text, token_ids=list(c.token_ids),
                                      truncated=c.finish_reason == "length"))
        return samples
