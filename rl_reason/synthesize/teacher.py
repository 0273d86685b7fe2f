"""A model that answers requests during synthesis, with every answer kept on disk as it arrives.

``Teacher`` wraps the sampling backends (``rl_reason.sampling.generation.make_generator``: local
transformers, vLLM's offline engine, or an OpenAI-compatible endpoint) and a response log: one
JSONL line per request, appended and flushed the moment its answer comes back. A killed run that
starts again asks only what it had not been answered, and never records an answer twice.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from rl_reason.sampling.generation import make_generator


def request_key(stage: str, messages: list[dict], n: int, temperature: float, top_p: float, max_tokens: int,
                seed: int) -> str:
    blob = json.dumps([stage, messages, n, temperature, top_p, max_tokens, seed], sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:32]


def read_log(path: Path) -> dict[str, list[str]]:
    """Answers by request key; a last line cut short by a kill is dropped (and truncated away)."""
    answers: dict[str, list[str]] = {}
    if not path.exists():
        return answers
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as fh:
            fh.truncate(end)
    for line in data[:end].split(b"\n"):
        if line.strip():
            row = json.loads(line)
            answers[row["key"]] = row["texts"]
    return answers


class Teacher:
    """``generate(stage, prompts, n=...)`` → ``n`` texts per prompt, answered from the log when it can."""

    def __init__(self, name: str, model: str, log_path: Path, *, backend: str = "transformers", seed: int = 0,
                 batch_size: int = 64, **endpoint):
        self.name, self.model, self.backend, self.seed = name, model, backend, seed
        self.batch_size = batch_size
        self.endpoint = endpoint
        self.log_path = Path(log_path)
        self.answers = read_log(self.log_path)
        self._generator = None
        self.requests_sent = 0

    @property
    def generator(self):
        if self._generator is None:
            self._generator = make_generator(self.model, self.backend, seed=self.seed, **self.endpoint)
        return self._generator

    def check(self) -> None:
        """Fail early (``TeacherUnavailable``) when an endpoint is unreachable or does not serve the model."""
        if self.backend == "openai":
            self.generator.check()

    def generate(self, stage: str, prompts: list[list[dict]], *, n: int, temperature: float, top_p: float = 1.0,
                 max_tokens: int, seed: int) -> list[list[str]]:
        keys = [request_key(stage, p, n, temperature, top_p, max_tokens, seed) for p in prompts]
        todo = sorted({k: i for i, k in reversed(list(enumerate(keys))) if k not in self.answers}.values())
        if todo:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "a", encoding="utf-8") as log:
                def keep(j: int, samples) -> None:
                    key = keys[todo[j]]
                    texts = [s.text for s in samples]
                    self.answers[key] = texts
                    log.write(json.dumps({"key": key, "stage": stage, "texts": texts}) + "\n")
                    log.flush()
                    os.fsync(log.fileno())

                self.requests_sent += len(todo)
                self.generator([prompts[i] for i in todo], max_new_tokens=max_tokens, num_samples=n,
                               temperature=temperature, top_p=top_p, seed=seed, batch_size=self.batch_size,
                               desc=f"{self.name}: {stage}", on_result=keep)
        return [self.answers[k] for k in keys]
