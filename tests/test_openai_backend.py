"""The ``openai`` backend against a real HTTP server (``tests/openai_server.py``, a stand-in for ``vllm serve``).

Only loopback addresses: the server listens on 127.0.0.1 and "unreachable" is a free loopback port.
"""

import json
import select
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from rl_reason.data.tasks import make_problems, problem_prompts
from rl_reason.sampling.generation import Generator, make_generator, resolve_backend
from rl_reason.sampling.openai_api import OpenAIGenerator, TeacherUnavailable
from rl_reason.traces.reader import read_traces

SERVER = Path(__file__).with_name("openai_server.py")
DELAY = 0.2  # seconds each request waits on the module's server, so that concurrent requests overlap
BACKOFF_FLOOR = 0.375  # the openai client's first retry waits 0.5 s less up to 25% of jitter; then doubles


@pytest.fixture(autouse=True)
def no_proxy(monkeypatch):
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")


def launch(model_dir: Path, log: Path, *args: str) -> subprocess.Popen:
    """The server as a subprocess (``listening`` waits for it), its stderr in ``log``."""
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, str(SERVER), str(model_dir), "--port", "0", *args],
                                stdout=subprocess.PIPE, stderr=err, text=True)
    proc.log = log
    return proc


def listening(proc: subprocess.Popen) -> str:
    """The base URL of a launched server, once it listens."""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if select.select([proc.stdout], [], [], 0.5)[0]:
            line = proc.stdout.readline()
            if line.startswith("PORT "):
                return f"http://127.0.0.1:{int(line.split()[1])}/v1"
    stop(proc)
    raise RuntimeError(f"openai_server did not start:\n{proc.log.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    proc.stdout.close()


@pytest.fixture(scope="module")
def servers(tiny_model_dir, tmp_path_factory):
    """The module's server, and one for test_a_server_killed_mid_run to kill: started together, to start sooner."""
    logs = tmp_path_factory.mktemp("servers")
    procs = {"main": launch(tiny_model_dir, logs / "main.txt", "--model-name", "tiny", "--delay", str(DELAY)),
             "victim": launch(tiny_model_dir, logs / "victim.txt", "--model-name", "tiny", "--delay", "0.3")}
    try:
        yield procs
    finally:
        for proc in procs.values():
            stop(proc)


@pytest.fixture(scope="module")
def server(servers) -> str:
    return listening(servers["main"])


def stats(url: str, reset: bool = False) -> dict:
    root = url.removesuffix("/v1")
    request = urllib.request.Request(f"{root}/stats/reset", data=b"", method="POST") if reset else f"{root}/stats"
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def prompts(n: int) -> list[list[dict]]:
    return problem_prompts(make_problems(n, seed=3, min_digits=1, max_digits=2))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_greedy_answers_are_the_models(server, tiny_model_dir):
    batch = prompts(4)
    remote = OpenAIGenerator(server, "tiny")(batch, max_new_tokens=8)
    # One prompt per generate call locally too: the server pads nothing, so neither may here.
    local = Generator(tiny_model_dir)(batch, max_new_tokens=8, batch_size=1)
    assert [(s.prompt_index, s.text, s.truncated) for s in remote] == [
        (s.prompt_index, s.text, s.truncated) for s in local]
    # no ids over HTTP; with n=1 the API's token count is the completion's own
    assert all(s.token_ids == [] for s in remote)
    assert [s.completion_tokens for s in remote] == [len(s.token_ids) for s in local]
    assert [s.num_tokens for s in remote] == [s.num_tokens for s in local]


def test_n_samples_per_prompt_and_on_result(server):
    reported = []
    samples = OpenAIGenerator(server, "tiny")(prompts(3), max_new_tokens=4, num_samples=3, temperature=1.0,
                                              on_result=lambda i, group: reported.append((i, group)))
    assert [s.prompt_index for s in samples] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert sorted(i for i, _ in reported) == [0, 1, 2]
    assert all(len(group) == 3 and {s.prompt_index for s in group} == {i} for i, group in reported)
    assert all(s.completion_tokens is None and s.num_tokens is None for s in samples)  # usage sums 3 completions


def test_the_concurrency_bound_holds(server):
    stats(server, reset=True)
    OpenAIGenerator(server, "tiny", max_concurrency=3)(prompts(9), max_new_tokens=2)
    seen = stats(server)
    assert seen["requests"] == 9
    assert 1 < seen["max_in_flight"] <= 3


def test_check_and_an_unserved_model(server):
    OpenAIGenerator(server, "tiny").check()
    with pytest.raises(TeacherUnavailable, match=r"does not serve model 'other'; it serves: tiny$"):
        OpenAIGenerator(server, "other").check()
    stats(server, reset=True)
    with pytest.raises(TeacherUnavailable, match=r"\(model other\) refused the request \(NotFoundError") as err:
        OpenAIGenerator(server, "other", max_concurrency=1)(prompts(3), max_new_tokens=2)
    assert "\n" not in str(err.value)
    assert stats(server)["requests"] == 1  # a 404 is not retried, and the prompts after it never start


def test_an_unreachable_endpoint(monkeypatch):
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(TeacherUnavailable, match=f"^teacher {url} is unreachable"):
        OpenAIGenerator(url, "tiny").check()
    start = time.monotonic()
    with pytest.raises(TeacherUnavailable) as err:
        OpenAIGenerator(url, "tiny", max_retries=2)(prompts(2), max_new_tokens=2)
    elapsed = time.monotonic() - start
    assert str(err.value) == (f"teacher {url} (model tiny): no answer after 3 attempts "
                              "(APIConnectionError: Connection error.)")
    assert elapsed >= BACKOFF_FLOOR * (1 + 2)  # two retries waited


def test_each_retry_is_a_new_attempt():
    """A loopback listener that hangs up on every connection counts the attempts."""
    listener = socket.create_server(("127.0.0.1", 0))
    attempts = []

    def hang_up():
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # closed: the test is over
                return
            attempts.append(1)
            conn.recv(65536)
            conn.close()

    threading.Thread(target=hang_up, daemon=True).start()
    url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
    try:
        with pytest.raises(TeacherUnavailable, match="no answer after 3 attempts"):
            OpenAIGenerator(url, "tiny", max_retries=2, max_concurrency=1)(prompts(1), max_new_tokens=2)
    finally:
        listener.close()
    assert len(attempts) == 3


def test_a_server_killed_mid_run(servers):
    proc = servers["victim"]
    url = listening(proc)
    reported = []

    def on_result(index, group):
        reported.append(index)
        if len(reported) == 3:
            proc.kill()  # SIGKILL: requests in flight lose their connection

    with pytest.raises(TeacherUnavailable) as err:
        OpenAIGenerator(url, "tiny", max_concurrency=2, max_retries=1)(prompts(16), max_new_tokens=2,
                                                                     on_result=on_result)
    message = str(err.value)
    assert "\n" not in message and message.startswith(f"teacher {url} (model tiny): no answer after 2 attempts")
    assert len(reported) >= 3 and len(set(reported)) == len(reported)  # each answer reported once
    assert len(reported) < 16  # the prompts not started when it failed were never sent


def test_make_generator_and_backends(server, tiny_model_dir):
    gen = make_generator("tiny", "openai", base_url=server, max_concurrency=2, api_key_env=None)
    assert isinstance(gen, OpenAIGenerator) and gen.max_concurrency == 2 and gen.backend == "openai"
    assert resolve_backend("openai", server) == "openai" and resolve_backend("auto") != "openai"
    with pytest.raises(ValueError, match="backend 'openai' needs a base URL"):
        make_generator("tiny", "openai")
    with pytest.raises(ValueError, match="base_url: only for backend 'openai'"):
        make_generator(tiny_model_dir, "transformers", base_url=server)
    with pytest.raises(ValueError, match="use make_generator or OpenAIGenerator"):
        Generator("tiny", backend="openai")
    # the local Generator reports per prompt too, batch by batch
    reported = []
    Generator(tiny_model_dir)(prompts(3), max_new_tokens=2, num_samples=2, temperature=1.0, batch_size=2,
                              on_result=lambda i, group: reported.append((i, len(group))))
    assert reported == [(0, 2), (1, 2), (2, 2)]


def test_cli_sample_through_the_endpoint(server, tmp_path):
    stats(server, reset=True)
    cmd = [sys.executable, "-m", "rl_reason.cli", "sample", "tiny", "-o", str(tmp_path / "traces"),
           "--num-problems", "2", "-n", "2", "--max-new-tokens", "4", "--backend", "openai"]
    # the refused command (no --base-url) runs beside the real one, to take no longer
    refused = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc = subprocess.run(cmd + ["--base-url", server, "--max-concurrency", "2"], capture_output=True, text=True,
                          timeout=120)
    _, refused_err = refused.communicate(timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "of 4 samples correct" in proc.stdout
    records = list(read_traces(tmp_path / "traces"))
    assert len(records) == 4 and stats(server)["requests"] == 2  # one request of n=2 per problem
    r = records[0]
    assert r["model"] == "tiny" and r["sampling"]["backend"] == "openai" and r["sampling"]["base_url"] == server
    assert r["completion_ids"] is None and r["completion_tokens"] is None  # unknown, not 0
    assert refused.returncode == 2
    assert refused_err.startswith("error: backend 'openai' needs a base URL (--base-url)")
    assert len(refused_err.strip().splitlines()) == 1
