"""Batched sampling with transformers ``generate`` (the CPU path; vLLM is the GPU path)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tqdm.auto import tqdm


@dataclass
class Sample:
    prompt_index: int
    text: str
    token_ids: list[int]
    truncated: bool


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
) -> list[Sample]:
    """``num_samples`` completions for each chat prompt; greedy when ``temperature == 0``."""
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
    batches = tqdm(range(0, len(texts), per_batch), desc=desc, unit="batch", disable=None if progress and len(texts) > per_batch else True)
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
    model.train(was_training)
    return samples
