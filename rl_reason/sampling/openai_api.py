"""The ``openai`` generation backend: completions from an OpenAI-compatible HTTP endpoint (a vLLM server
started with ``vllm serve``, or any hosted API), called exactly like ``generation.Generator``.

One request per prompt (``n`` completions each), at most ``max_concurrency`` in flight. Retries are the
official client's own (``openai.OpenAI(max_retries=...)``): a connection error, a timeout, or a 408, 409,
429 or 5xx answer is retried after ``0.5 * 2**retry`` seconds (at most 8), shortened by up to 25% of
random jitter, or after the server's ``Retry-After`` when it names a short one (a minute or two,
depending on the client's version). When a prompt has no answer after all attempts, or the endpoint
refuses it (400, 401, 404: retrying cannot help), no further request starts, the ones in flight are
finished (their answers still go to ``on_result``), and the call raises ``TeacherUnavailable`` with one
line.
"""

from __future__ import annotations

import os
import queue
import threading

import openai
from tqdm.auto import tqdm

from rl_reason.sampling.generation import OnResult, Sample

# Models listed at most in an error message: a hosted API serves hundreds.
_LISTED = 10
_CHECK_TIMEOUT = 10.0


class TeacherUnavailable(ValueError):
    """The endpoint gave no usable answer: unreachable, overloaded past the retries, or refusing the request."""


def _one_line(exc: BaseException, limit: int = 200) -> str:
    """``Class: message`` on one line, short enough for an error line (a 4xx body can be long)."""
    text = " ".join(str(exc).split())
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


class OpenAIGenerator:
    """Samples completions for chat prompts from the model ``model`` served at ``base_url``.

    The API key is read from the environment variable ``api_key_env``; when it is unset the key is
    ``"EMPTY"``, which a local vLLM server (started without ``--api-key``) accepts, as vLLM's docs show.
    ``timeout`` (seconds) bounds each request's connect, write and each read; ``max_retries`` is the
    client's retry count (so ``max_retries + 1`` attempts per prompt; see the module docstring).

    An HTTP API returns text, not token ids: each ``Sample.token_ids`` is empty, and
    ``Sample.completion_tokens`` is the API's ``usage.completion_tokens`` when a request asked for one
    completion (exact), else None (the API counts a request's ``n`` completions together).
    """

    backend = "openai"

    def __init__(self, base_url: str, model: str, api_key_env: str = "OPENAI_API_KEY", max_concurrency: int = 8,
                 max_retries: int = 3, timeout: float = 60.0, seed: int = 0):
        if not str(base_url).startswith(("http://", "https://")):
            raise ValueError(f"base_url: expected an http:// or https:// URL, got {base_url!r}")
        if not model:
            raise ValueError("model: give the name the endpoint serves the model under")
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be at least 1, got {max_concurrency}")
        if max_retries < 0:
            raise ValueError(f"max_retries must be at least 0, got {max_retries}")
        if not timeout > 0:
            raise ValueError(f"timeout must be positive, got {timeout}")
        self.base_url = str(base_url)
        self.model = str(model)
        self.model_path = self.model  # what Generator calls the model it samples
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        self.max_retries = max_retries
        self.timeout = timeout
        self.seed = seed
        self.client = openai.OpenAI(base_url=self.base_url, api_key=os.environ.get(api_key_env) or "EMPTY",
                                    timeout=timeout, max_retries=max_retries)

    def check(self) -> None:
        """Preflight: the endpoint answers (one try, short timeout) and serves ``model``; else TeacherUnavailable."""
        try:
            page = self.client.with_options(timeout=min(self.timeout, _CHECK_TIMEOUT), max_retries=0).models.list()
            served = [m.id for m in page]
        except openai.APIStatusError as exc:
            raise TeacherUnavailable(f"teacher {self.base_url}: listing its models failed "
                                     f"({_one_line(exc)}){self._hint(exc)}") from None
        except openai.OpenAIError as exc:
            raise TeacherUnavailable(f"teacher {self.base_url} is unreachable ({_one_line(exc)})") from None
        if self.model not in served:
            shown = ", ".join(served[:_LISTED]) + (f", … ({len(served)} in all)" if len(served) > _LISTED else "")
            raise TeacherUnavailable(f"teacher {self.base_url} does not serve model {self.model!r}; "
                                     f"it serves: {shown or 'no models'}")

    def __call__(self, prompts: list[list[dict]], *, max_new_tokens: int, num_samples: int = 1,
                 temperature: float = 0.0, top_p: float = 1.0, batch_size: int = 64, seed: int | None = None,
                 desc: str = "generating", on_result: OnResult | None = None) -> list[Sample]:
        """``num_samples`` completions per prompt, in prompt order, as ``Generator`` returns them.

        ``batch_size`` is accepted for the common interface and unused: ``max_concurrency`` bounds the load.
        ``on_result(i, samples)`` runs in the calling thread as each prompt's answer arrives."""
        if not prompts:
            return []
        params = {"n": num_samples, "temperature": temperature, "top_p": top_p, "max_tokens": max_new_tokens,
                  "seed": self.seed if seed is None else seed}
        todo: queue.SimpleQueue = queue.SimpleQueue()
        for index in range(len(prompts)):
            todo.put(index)
        # Set once a prompt failed for good (the client's retries are spent): requests not started never start.
        stop = threading.Event()
        done: queue.SimpleQueue = queue.SimpleQueue()  # (index, samples or error); (None, None): a worker ended

        def work() -> None:
            while not stop.is_set():
                try:
                    index = todo.get_nowait()
                except queue.Empty:
                    break
                try:
                    done.put((index, self._complete(index, prompts[index], params)))
                except BaseException as exc:  # noqa: BLE001 - every outcome goes back to the calling thread
                    stop.set()  # here, not in the calling thread: this worker must not take another prompt first
                    done.put((index, exc))
            done.put((None, None))

        # Daemon threads, not a ThreadPoolExecutor: after Ctrl-C the interpreter need not wait for
        # requests in flight (up to ``timeout`` per attempt) before it exits.
        workers = [threading.Thread(target=work, name=f"openai-request-{k}", daemon=True)
                   for k in range(min(self.max_concurrency, len(prompts)))]
        results: list[list[Sample] | None] = [None] * len(prompts)
        failure: BaseException | None = None
        with tqdm(total=len(prompts), desc=desc, unit="prompt", disable=None) as bar:
            try:
                for w in workers:
                    w.start()
                running = len(workers)
                while running:  # a worker's outcomes all come before its end mark
                    index, outcome = done.get()
                    if index is None:
                        running -= 1
                    elif isinstance(outcome, list):
                        results[index] = outcome
                        bar.update()
                        if on_result is not None:
                            on_result(index, outcome)
                    elif failure is None:
                        failure = outcome
            finally:
                stop.set()  # reached early only on an exception here (Ctrl-C, a raising on_result)
        if failure is not None:
            error = self._unavailable(failure)
            if error is None:
                raise failure
            raise error from failure
        return [s for group in results for s in group]

    def _complete(self, index: int, messages: list[dict], params: dict) -> list[Sample]:
        response = self.client.chat.completions.create(model=self.model, messages=messages, **params)
        choices = sorted(response.choices, key=lambda c: c.index)
        usage = response.usage
        count = usage.completion_tokens if usage is not None and params["n"] == 1 else None
        return [Sample(prompt_index=index, text=c.message.content or "", token_ids=[],
                       truncated=c.finish_reason == "length", completion_tokens=count) for c in choices]

    def _unavailable(self, exc: BaseException) -> TeacherUnavailable | None:
        """The one-line error for a prompt that failed for good; None for an error not from the API (a bug)."""
        where = f"teacher {self.base_url} (model {self.model})"
        if isinstance(exc, openai.APIStatusError) and not _retried(exc.status_code):
            return TeacherUnavailable(f"{where} refused the request ({_one_line(exc)}){self._hint(exc)}")
        if isinstance(exc, openai.OpenAIError):
            attempts = self.max_retries + 1
            tries = "1 attempt" if attempts == 1 else f"{attempts} attempts"
            return TeacherUnavailable(f"{where}: no answer after {tries} ({_one_line(exc)})")
        return None

    def _hint(self, exc: openai.APIStatusError) -> str:
        if exc.status_code in (401, 403):
            return f"; check the API key in ${self.api_key_env}"
        if exc.status_code == 404:
            return "; check the model name and that base_url ends in /v1"
        return ""


def _retried(status: int) -> bool:
    """The statuses the openai client retries (without an ``x-should-retry`` header saying otherwise)."""
    return status in (408, 409, 429) or status >= 500
