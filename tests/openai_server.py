"""A real OpenAI-compatible HTTP server for tests: a stand-in for ``vllm serve``, which needs a GPU.

    python tests/openai_server.py MODEL_DIR --port 0 [--model-name NAME] [--delay S]

Loads MODEL_DIR with transformers, listens on 127.0.0.1 (only), and prints ``PORT <n>`` on stdout once
it is listening. Serves:

* ``GET /v1/models``: the one model, named NAME (default: MODEL_DIR, as vLLM names it).
* ``POST /v1/chat/completions``: messages, n, temperature, top_p, max_tokens, seed. The tokenizer's chat
  template with the generation prompt, greedy when temperature is 0, decoded without special tokens;
  ``finish_reason`` "stop" (EOS) or "length"; usage counts as vLLM reports them (the EOS token included).
* ``GET /stats``: ``{"requests": total chat requests, "in_flight": now, "max_in_flight": most at once}``;
  ``POST /stats/reset`` zeroes the counts.

Errors have OpenAI's shape (``{"error": {"message", "type", "param", "code"}}``): 404 for an unknown model
or path, 400 for a bad request. ``--delay S`` holds each chat request S seconds before generating, so
that concurrent requests overlap. One model generates one request at a time, under a lock; a request
waiting for the lock counts as in flight.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


class Backend:
    def __init__(self, model_dir: str, name: str, delay: float):
        self.name = name
        self.delay = delay
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir).eval()
        self.generate_lock = threading.Lock()
        self.stats_lock = threading.Lock()
        self.stats = {"requests": 0, "in_flight": 0, "max_in_flight": 0}

    def enter(self) -> None:
        with self.stats_lock:
            self.stats["requests"] += 1
            self.stats["in_flight"] += 1
            self.stats["max_in_flight"] = max(self.stats["max_in_flight"], self.stats["in_flight"])

    def leave(self) -> None:
        with self.stats_lock:
            self.stats["in_flight"] -= 1

    @torch.inference_mode()
    def complete(self, body: dict) -> dict:
        messages = body["messages"]
        n = int(body.get("n") or 1)
        # OpenAI's defaults when a field is absent or null
        temperature = 1.0 if body.get("temperature") is None else float(body["temperature"])
        top_p = 1.0 if body.get("top_p") is None else float(body["top_p"])
        max_tokens = int(body.get("max_tokens") or 256)
        tok = self.tokenizer
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        enc = tok(text, return_tensors="pt", add_special_tokens=False)
        sampling = temperature > 0
        with self.generate_lock:
            if sampling and body.get("seed") is not None:
                torch.manual_seed(int(body["seed"]))
            out = self.model.generate(**enc, max_new_tokens=max_tokens, do_sample=sampling,
                                      temperature=temperature if sampling else None,
                                      top_p=top_p if sampling else None, top_k=0 if sampling else None,
                                      num_return_sequences=n if sampling else 1, pad_token_id=tok.pad_token_id,
                                      eos_token_id=tok.eos_token_id)
        if not sampling:  # greedy: n copies of the one answer, as vLLM gives (transformers refuses n > 1 here)
            out = out.repeat(n, 1)
        choices, generated = [], 0
        for i, ids in enumerate(out[:, enc["input_ids"].shape[1]:].tolist()):
            if tok.eos_token_id in ids:
                ids, reason = ids[: ids.index(tok.eos_token_id) + 1], "stop"
            else:
                ids, reason = [t for t in ids if t != tok.pad_token_id], "length"
            generated += len(ids)
            choices.append({"index": i, "finish_reason": reason, "logprobs": None,
                            "message": {"role": "assistant",
                                        "content": tok.decode(ids, skip_special_tokens=True)}})
        prompt_tokens = enc["input_ids"].shape[1]
        return {"id": f"chatcmpl-{uuid.uuid4().hex}", "object": "chat.completion", "created": int(time.time()),
                "model": self.name, "choices": choices,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": generated,
                          "total_tokens": prompt_tokens + generated}}


def make_handler(backend: Backend):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, as the openai client expects of a server

        def log_message(self, *args):  # quiet: tests read stdout for the port only
            pass

        def reply(self, status: int, payload: dict) -> None:
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def error(self, status: int, message: str, kind: str) -> None:
            self.reply(status, {"error": {"message": message, "type": kind, "param": None, "code": status}})

        def do_GET(self):
            if self.path == "/v1/models":
                self.reply(200, {"object": "list", "data": [
                    {"id": backend.name, "object": "model", "created": 0, "owned_by": "tests"}]})
            elif self.path == "/stats":
                with backend.stats_lock:
                    self.reply(200, dict(backend.stats))
            else:
                self.error(404, f"no route {self.path}", "NotFoundError")

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length)
            if self.path == "/stats/reset":
                with backend.stats_lock:
                    backend.stats.update(requests=0, max_in_flight=backend.stats["in_flight"])
                self.reply(200, {})
                return
            if self.path != "/v1/chat/completions":
                self.error(404, f"no route {self.path}", "NotFoundError")
                return
            backend.enter()
            try:
                try:
                    body = json.loads(raw)
                    assert isinstance(body, dict) and isinstance(body.get("messages"), list)
                except (ValueError, AssertionError):
                    self.error(400, "expected a JSON object with 'messages'", "BadRequestError")
                    return
                if body.get("model") != backend.name:
                    self.error(404, f"The model `{body.get('model')}` does not exist.", "NotFoundError")
                    return
                time.sleep(backend.delay)
                try:
                    result = backend.complete(body)
                except (KeyError, TypeError, ValueError) as exc:
                    self.error(400, f"bad request: {exc}", "BadRequestError")
                    return
                self.reply(200, result)
            finally:
                backend.leave()

    return Handler


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model_dir")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    parser.add_argument("--model-name", default=None, help="the served model's name (default: MODEL_DIR)")
    parser.add_argument("--delay", type=float, default=0.0, help="seconds each chat request waits before generating")
    args = parser.parse_args(argv)
    backend = Backend(args.model_dir, args.model_name or args.model_dir, args.delay)
    server = ThreadingHTTPServer(("127.0.0.1", args.port), make_handler(backend))
    server.daemon_threads = True
    print(f"PORT {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()


if __name__ == "__main__":
    sys.exit(main())
