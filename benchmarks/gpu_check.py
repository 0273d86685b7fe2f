"""One prepared GPU check: install from wheels, GRPO plain and under DeepSpeed ZeRO-2, the gpu tests.

For a single-GPU Linux machine with CUDA torch, transformers and accelerate but no internet and
no vLLM (docs/gpu_check.md says how to prepare the wheels/ directory beside this file):

    bash benchmarks/gpu_check.sh              # the GPU check, about 3-5 minutes, at most 8
    bash benchmarks/gpu_check.sh --cpu        # CPU-size dry path: tiny model, fp32, 2 steps each
    GPU_CHECK_CPU=1 bash benchmarks/gpu_check.sh

Parts, each with its own timeout, run in order and never stop the others:
  install  pip install --no-index from wheels/ (skipped when there is no wheels/ directory)
  model    imports checked, then a ~0.5B Qwen2-architecture model from config (Qwen2.5-0.5B's
           shape, random weights, the project's tokenizer), saved in bf16; on the CPU path the
           same construction at a toy width, fp32
  plain    `rl-reason train RECIPE`, 10 GRPO steps, HF generation, bf16
  zero2    the same under `accelerate launch` with configs/accelerate/zero2.yaml, one process
  gpu_tests  pytest -m gpu on the test files that carry the marker

Step times and tokens/s are medians over the steps after the first (warm-up), read from the
run's OUTPUT_DIR/trainer_state.json (rl_reason.train.trainer._StepTimer). Peak GPU memory is read
inside each training process: a sitecustomize.py put on PYTHONPATH for the run registers an
atexit hook that writes torch.cuda.max_memory_allocated()/max_memory_reserved() to a file. The
last line on stdout is one JSON object; a part that failed has "pass": false and its error tail
went to stderr. No GPU number is printed that was not measured: on the CPU path and in a failed
part they are null.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent

# Qwen2.5-0.5B's architecture (hidden, layers, heads, kv heads, intermediate, padded vocab).
QWEN05B = {"hidden_size": 896, "num_hidden_layers": 24, "num_attention_heads": 14, "num_key_value_heads": 2,
           "intermediate_size": 4864, "vocab_size": 151936, "rope_theta": 1000000.0, "rms_norm_eps": 1e-6}
# The CPU dry path's model: the same construction at a toy width, Qwen's padded vocabulary kept
# (so generation can sample ids the tokenizer does not have, as the GPU model does).
CPU_SHAPE = {**QWEN05B, "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
             "intermediate_size": 128}

# Per-part time limits (seconds). GPU: 100 + 70 + 110 + 110 + 90 = 480 s, the 8 minutes.
# `model` includes the import check (torch, transformers, trl, datasets, deepspeed, rl_reason).
GPU_TIMEOUTS = {"install": 100, "model": 70, "plain": 110, "zero2": 110, "gpu_tests": 90}
CPU_TIMEOUTS = {"install": 300, "model": 120, "plain": 240, "zero2": 300, "gpu_tests": 120}

# Run settings. GPU: 4 prompts x 8 completions of 128 tokens per step, 10 steps.
GPU_RUN = {"max_steps": 10, "num_generations": 8, "per_device_train_batch_size": 32, "max_completion_length": 128,
           "learning_rate": 1e-6, "bf16": True}
CPU_RUN = {"max_steps": 2, "num_generations": 4, "per_device_train_batch_size": 4, "max_completion_length": 8,
           "learning_rate": 1e-3, "bf16": False, "use_cpu": True}

SITECUSTOMIZE = (r'''
# Written by benchmarks/gpu_check.py: record this process's peak memory when it exits.
import atexit, json, os, sys

def _gpu_check_probe():
    out = os.environ.get("GPU_CHECK_PROBE_DIR")
    if not out:
        return
    rec = {"pid": os.getpid(), "argv": sys.argv[:3], "cuda": False}
    try:
        import resource
        rec["maxrss_gib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20
    except Exception:
        pass
    torch = sys.modules.get("torch")
    try:
        if torch is not None and torch.cuda.is_initialized():
            rec.update(cuda=True, device=torch.cuda.get_device_name(),
                       max_allocated_gib=max(torch.cuda.max_memory_allocated(i) '''
r'''for i in range(torch.cuda.device_count())) / 2**30,
                       max_reserved_gib=max(torch.cuda.max_memory_reserved(i) '''
r'''for i in range(torch.cuda.device_count())) / 2**30)
    except Exception as exc:
        rec["error"] = repr(exc)
    try:
        with open(os.path.join(out, f"probe-{os.getpid()}.json"), "w") as f:
            json.dump(rec, f)
    except OSError:
        pass

atexit.register(_gpu_check_probe)
del atexit

# Chain to a sitecustomize that this one shadows, if there is one.
def _gpu_check_chain():
    import importlib.machinery, importlib.util
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [p for p in sys.path if os.path.abspath(p or ".") != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    if spec is not None and spec.loader is not None:
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)

try:
    _gpu_check_chain()
except Exception:
    pass
''')


def log(msg: str) -> None:
    print(f"[gpu_check {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def run_cmd(cmd: list[str], timeout: float, env: dict | None = None, cwd: Path = REPO,
            log_path: Path | None = None) -> tuple[int, str]:
    """Run a command with a wall-clock limit; return (rc, output). rc 124 on timeout.
    The output goes to log_path as it comes, so a killed run still leaves its log."""
    log(f"$ {' '.join(str(c) for c in cmd)}  (limit {timeout:.0f} s)")
    log_path = log_path or Path(tempfile.mktemp(prefix="gpu_check-", suffix=".log"))
    with open(log_path, "w") as out:
        proc = subprocess.Popen([str(c) for c in cmd], stdout=out, stderr=subprocess.STDOUT, env=env, cwd=cwd,
                                start_new_session=True, text=True)
        try:
            rc = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            _kill_group(proc)
            rc = 124
    return rc, log_path.read_text(errors="replace")


def _kill_group(proc: subprocess.Popen) -> None:
    import signal

    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


def fail(result: dict, name: str, rc: int, output: str, why: str = "") -> dict:
    why = why or ("timed out" if rc == 124 else f"exit status {rc}")
    tail = output[-3000:]
    print(f"\n===== gpu_check: part {name!r} failed ({why}); last output:\n{tail}\n===== end of {name}\n",
          file=sys.stderr, flush=True)
    result.update({"pass": False, "error": why})
    return result


# ---------------------------------------------------------------------------------------------
# Wheels. What `rl-reason train`, the ZeRO-2 run and `pytest -m gpu` import beyond what the GPU
# machine has (CUDA torch, transformers, accelerate and their dependencies), pinned to the
# versions tested together (pyproject.toml). Left out because the check never imports them:
# wandb, matplotlib, rapidfuzz (export only), sympy, jinja2, networkx (torch has them),
# hypothesis. pyarrow 24 is the oldest that datasets 5.1+ accepts; datasets < 5.1 caps
# huggingface_hub < 2, which transformers 5.24 does not allow.
REQUIREMENTS = [
    "trl==1.16.0", "datasets==5.2.0", "pyarrow==24.0.0", "pandas==3.0.6", "python-dateutil==2.9.0.post0", "six==1.17.0",
    "dill==0.4.1", "multiprocess==0.70.19", "xxhash==4.1.0", "fsspec==2026.9.0",
    # DeepSpeed's own dependencies (DeepSpeed itself is an sdist, installed with --no-deps)
    "hjson==3.1.0", "msgpack==1.2.4", "ninja==1.13.2", "py-cpuinfo==9.0.0", "einops==0.8.2",
    "pydantic==2.14.4", "pydantic-core==2.50.5", "annotated-types==0.8.0", "typing-inspection==0.4.5",
    "typing-extensions==4.16.0",
    # rl_reason's CLI and traces
    "typer==0.29.2", "rich==15.0.0", "shellingham==1.5.4", "annotated-doc==0.0.7", "markdown-it-py==4.3.0",
    "mdurl==0.1.2", "pygments==2.21.0", "click==8.5.1", "orjson==3.13.0",
    # pytest -m gpu
    "pytest==9.2.0", "iniconfig==2.3.1", "pluggy==1.7.0",
]
DEEPSPEED_SDIST = "deepspeed==0.19.8"


def download_commands(directory: Path, python: str = "python3") -> list[list[str]]:
    """The pip commands that fill DIRECTORY (any machine with internet; pip >= 22)."""
    target = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312",
              "--platform", "manylinux_2_28_x86_64", "--platform", "manylinux2014_x86_64"]
    return [
        [python, "-m", "pip", "download", "--no-deps", *target, "-d", str(directory), *REQUIREMENTS],
        [python, "-m", "pip", "download", "--no-deps", "--no-binary=:all:", "-d", str(directory), DEEPSPEED_SDIST],
    ]


def download_wheels(directory: Path) -> None:
    """`gpu_check.py download DIR`: pip download the wheels for Python 3.12 manylinux x86_64, then slim them."""
    directory.mkdir(parents=True, exist_ok=True)
    for cmd in download_commands(directory, sys.executable):
        print("$", " ".join(cmd), flush=True)
        subprocess.run(cmd, check=True)
    slim_wheels(directory)


# `gpu_check.py slim DIR` drops what a run never loads from the two big wheels.

# (wheel name prefix, regexes of members to drop). pyarrow: Arrow Flight (RPC; only
# `import pyarrow.flight` loads it), C++ headers, Cython sources, tests, and the unversioned and
# .so.N.0.0 copies of libraries that the loader reaches by their .so.N soname. pandas: its tests.
SLIM = {
    "pyarrow-": [r"^pyarrow/(include|includes|src|tests)/", r"\.(pxd|pyx|pxi)$", r"^pyarrow/libarrow_flight\.so",
                 r"^pyarrow/libarrow_python_flight\.so", r"^pyarrow/_flight\.cpython",
                 r"^pyarrow/lib[a-z_]+\.so(\.\d+\.\d+\.\d+)?$"],
    "pandas-": [r"^pandas/tests/"],
}


def slim_wheels(directory: Path) -> None:
    """Rewrite pyarrow-*.whl and pandas-*.whl in DIRECTORY without the members in SLIM; RECORD
    loses their lines, every other member keeps its bytes (and so its RECORD hash)."""
    import zipfile

    for wheel in sorted(directory.glob("*.whl")):
        rules = next((r for prefix, r in SLIM.items() if wheel.name.startswith(prefix)), None)
        if rules is None:
            continue
        drop = re.compile("|".join(rules))
        before = wheel.stat().st_size
        tmp = wheel.with_suffix(".tmp")
        with zipfile.ZipFile(wheel) as src, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as dst:
            names = src.namelist()
            dropped = {n for n in names if drop.search(n) and ".dist-info/" not in n}
            if not dropped:
                print(f"{wheel.name}: already slim ({before / 1e6:.1f} MB)")
                tmp.unlink()
                continue
            for info in src.infolist():
                if info.filename in dropped:
                    continue
                data = src.read(info)
                if info.filename.endswith(".dist-info/RECORD"):
                    lines = data.decode().splitlines(keepends=True)
                    data = "".join(ln for ln in lines if ln.split(",", 1)[0] not in dropped).encode()
                dst.writestr(info, data, compress_type=zipfile.ZIP_DEFLATED, compresslevel=9)
        tmp.replace(wheel)
        print(f"{wheel.name}: {before / 1e6:.1f} MB -> {wheel.stat().st_size / 1e6:.1f} MB "
              f"({len(dropped)} members dropped)")
    files = [p for p in directory.iterdir() if p.suffix in (".whl", ".gz")]
    print(f"total: {len(files)} files, {sum(p.stat().st_size for p in files) / 1e6:.1f} MB")


# ---------------------------------------------------------------------------------------------
# Parts


def part_install(wheels: Path, timeout: float, python: str) -> dict:
    """pip install --no-index from wheels/: what the target lacks, DeepSpeed's sdist without its
    ops (they build just in time), then this repository, editable, without dependencies."""
    start = time.perf_counter()
    result: dict = {"pass": True, "wheels": str(wheels)}
    if not wheels.is_dir():
        result.update(skipped=True, note=f"no {wheels} directory: using the packages already installed")
        return result
    files = sorted(p.name for p in wheels.iterdir() if p.suffix in (".whl", ".gz"))
    result["files"] = len(files)
    result["size_mb"] = round(sum((wheels / f).stat().st_size for f in files) / 1e6, 1)
    env = {**os.environ, "DS_BUILD_OPS": "0", "PIP_NO_INDEX": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    pip = [python, "-m", "pip", "install", "--no-index", "--find-links", str(wheels)]
    steps = []
    # By name, not pinned: what is installed stays unless a dependency's range needs the wheel's
    # version (e.g. fsspec for datasets); what is missing comes from the wheels.
    steps.append(pip + [r.split("==")[0] for r in REQUIREMENTS])
    # setup.py imports torch, so no build isolation; DS_BUILD_OPS=0: ops build just in time.
    steps.append(pip + ["--no-build-isolation", "--no-deps", DEEPSPEED_SDIST.split("==")[0]])
    steps.append([python, "-m", "pip", "install", "--no-index", "--no-deps", "--no-build-isolation", "-e", str(REPO)])
    for cmd in steps:
        left = timeout - (time.perf_counter() - start)
        rc, out = run_cmd(cmd, max(left, 1), env=env)
        if rc != 0:
            result["seconds"] = round(time.perf_counter() - start, 1)
            return fail(result, "install", rc, out)
    result["seconds"] = round(time.perf_counter() - start, 1)
    return result


def build_model(out: str, cpu: bool) -> None:
    """Internal (`gpu_check.py _build OUT [--cpu]`): check what the runs import and whether CUDA
    is there (in this subprocess, so the parent never touches the GPU), then build the model and
    save it with save_pretrained. Prints one JSON line."""
    import accelerate
    import datasets
    import deepspeed
    import torch
    import transformers
    import trl
    from transformers import Qwen2Config, Qwen2ForCausalLM

    import rl_reason.train.run  # noqa: F401 - everything `rl-reason train` imports
    from rl_reason.data.tiny import build_tokenizer

    cuda = torch.cuda.is_available()
    info = {
        "versions": {"python": sys.version.split()[0], "torch": torch.__version__, "cuda": torch.version.cuda,
                     "transformers": transformers.__version__, "trl": trl.__version__,
                     "accelerate": accelerate.__version__, "datasets": datasets.__version__,
                     "deepspeed": deepspeed.__version__},
        "cuda_available": cuda,
        "device": torch.cuda.get_device_name(0) if cuda else None,
        "gpus": torch.cuda.device_count() if cuda else 0,
        "bf16_supported": bool(cuda and torch.cuda.is_bf16_supported()),
    }
    if not cpu and not cuda:
        info.update(error="CUDA is not available (use --cpu for the dry path)")
    else:
        shape = CPU_SHAPE if cpu else QWEN05B
        dtype = torch.float32 if cpu else torch.bfloat16
        tokenizer = build_tokenizer()
        # The model's vocabulary is Qwen's padded 151936; the project's tokenizer uses the first few hundred ids.
        assert len(tokenizer) <= shape["vocab_size"]
        config = Qwen2Config(
            **shape, max_position_embeddings=32768, tie_word_embeddings=True, hidden_act="silu",
            pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=None, use_cache=True,
        )
        torch.manual_seed(0)
        model = Qwen2ForCausalLM(config).to(dtype)
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.bos_token_id = None
        info.update(params=sum(p.numel() for p in model.parameters()), dtype=str(dtype).removeprefix("torch."),
                    shape="toy-width Qwen2 (random weights, padded vocab)" if cpu else "Qwen2.5-0.5B (random weights)")
        model.save_pretrained(out)
        tokenizer.save_pretrained(out)
    print(json.dumps(info), flush=True)


def part_model(python: str, env: dict, out: Path, cpu: bool, timeout: float) -> dict:
    start = time.perf_counter()
    cmd = [python, str(Path(__file__).resolve()), "_build", str(out)] + (["--cpu"] if cpu else [])
    rc, output = run_cmd(cmd, timeout, env=env)
    lines = [ln for ln in output.splitlines() if ln.startswith("{")]
    if rc != 0 or not lines:
        return fail({}, "model", rc, output)
    info = json.loads(lines[-1])
    if "error" in info:
        return fail(info, "model", rc, output, why=info["error"])
    return {"pass": True, **info, "seconds": round(time.perf_counter() - start, 1)}


def write_recipe(path: Path, model_dir: Path, output_dir: Path, run: dict) -> Path:
    recipe = {
        "output_dir": str(output_dir),
        "model": {"name_or_path": str(model_dir)},
        "data": {"source": "addition", "num_train": 256, "min_digits": 1, "max_digits": 3},
        "rewards": [{"name": "math", "weight": 1.0}, {"name": "format", "weight": 0.1}],
        "traces": {"enabled": True},
        "temperature": 1.0,
        "beta": 0.0,
        "logging_steps": 1,
        "save_strategy": "no",
        "report_to": "none",
        "seed": 0,
        **run,
    }
    path.write_text(json.dumps(recipe, indent=2))  # JSON is YAML
    return path


def summarize_run(output_dir: Path, probe_dir: Path, steps: int) -> dict:
    """Medians over the steps after the first, from trainer_state.json; peak memory from the probes."""
    history = json.loads((output_dir / "trainer_state.json").read_text())["log_history"]
    rows = [h for h in history if "time/step" in h]
    if len(rows) != steps:
        raise RuntimeError(f"{len(rows)} logged steps with time/step in trainer_state.json, expected {steps}")
    measured = rows[1:] if len(rows) > 1 else rows

    def med(key):
        vals = [h[key] for h in measured if isinstance(h.get(key), (int, float))]
        return round(statistics.median(vals), 4) if vals else None

    losses = [h.get("loss") for h in rows]
    out = {
        "steps": len(rows),
        "step_s": med("time/step"),
        "generation_s": med("time/generation"),
        "reward_s": med("time/reward"),
        "scoring_s": med("time/scoring"),
        "update_s": med("time/update"),
        "tokens_per_s": med("throughput/tokens_per_s"),
        # Completion tokens of the step over its generation time alone: HF generate's throughput.
        "generation_tokens_per_s": round(statistics.median(
            [h["throughput/tokens_per_s"] * h["time/step"] / h["time/generation"]
             for h in measured if h.get("time/generation")]
        ), 2) if any(h.get("time/generation") for h in measured) else None,
        "mean_completion_tokens": med("completions/mean_length"),
        "loss_finite": all(isinstance(v, (int, float)) and math.isfinite(v) for v in losses),
    }
    probes = [json.loads(p.read_text()) for p in sorted(probe_dir.glob("probe-*.json"))]
    gpu = [p for p in probes if p.get("cuda")]
    out["peak_gpu_mem_gib"] = round(max(p["max_allocated_gib"] for p in gpu), 3) if gpu else None
    out["peak_gpu_reserved_gib"] = round(max(p["max_reserved_gib"] for p in gpu), 3) if gpu else None
    # The training process: `rl-reason train` or `python -m rl_reason.cli`
    # (argv[0] is then rl_reason/cli/__main__.py).
    rss = [p["maxrss_gib"] for p in probes
           if "maxrss_gib" in p and re.search(r"rl[-_]reason", (p.get("argv") or [""])[0])]
    out["peak_rss_gib"] = round(max(rss), 3) if rss else None
    traces = output_dir / "traces"
    out["traces"] = sum(1 for f in traces.glob("rank-*.jsonl") for _ in f.open()) if traces.is_dir() else 0
    return out


def part_train(name: str, python: str, env: dict, work: Path, model_dir: Path, cpu: bool, timeout: float) -> dict:
    start = time.perf_counter()
    run = CPU_RUN if cpu else GPU_RUN
    out_dir = work / name
    probe_dir = work / f"{name}-probe"
    probe_dir.mkdir(parents=True, exist_ok=True)
    recipe = write_recipe(work / f"{name}.yaml", model_dir, out_dir, run)
    env = {**env, "GPU_CHECK_PROBE_DIR": str(probe_dir)}
    bindir = Path(python).parent
    if name == "plain":
        exe = bindir / "rl-reason"
        cmd = ([str(exe), "train", str(recipe)] if exe.exists()
               else [python, "-m", "rl_reason.cli", "train", str(recipe)])
    else:
        accelerate = bindir / "accelerate"
        launcher = [str(accelerate)] if accelerate.exists() else [python, "-m", "accelerate.commands.launch"]
        if accelerate.exists():
            launcher.append("launch")
        cmd = launcher + [
            "--config_file", str(REPO / "configs" / "accelerate" / "zero2.yaml"),
            "--num_processes", "1", "--num_machines", "1", "--main_process_port", "29561",
            "--mixed_precision", "no" if cpu else "bf16",
            "-m", "rl_reason.cli", "train", str(recipe),
        ]
        if cpu:
            env = {**env, "DS_ACCELERATOR": "cpu"}
    rc, output = run_cmd(cmd, timeout, env=env, log_path=work / f"{name}.log")
    result: dict = {"pass": False, "seconds": round(time.perf_counter() - start, 1)}
    if rc != 0:
        return fail(result, name, rc, output)
    if f"done: {run['max_steps']} steps" not in output:
        return fail(result, name, rc, output, why="no 'done: N steps' line")
    try:
        result.update(summarize_run(out_dir, probe_dir, run["max_steps"]))
    except Exception as exc:  # noqa: BLE001 - any unreadable result fails the part
        return fail(result, name, rc, output, why=f"could not read the run's results: {exc!r}")
    if not result["loss_finite"]:
        return fail(result, name, rc, output, why="a logged loss is not finite")
    if not cpu and result["peak_gpu_mem_gib"] is None:
        return fail(result, name, rc, output, why="no peak-memory record with CUDA from the training process "
                    "(it never used CUDA, or it exited without running atexit hooks)")
    result["pass"] = True
    return result


def part_gpu_tests(python: str, env: dict, work: Path, timeout: float) -> dict:
    files = sorted(str(p.relative_to(REPO)) for p in (REPO / "tests").glob("test_*.py")
                   if re.search(r"pytest\.mark\.gpu\b", p.read_text(errors="replace")))
    junit = work / "gpu_tests.xml"
    cmd = [python, "-m", "pytest", "-m", "gpu", "-q", "-p", "no:cacheprovider", "-rs", f"--junitxml={junit}", *files]
    rc, output = run_cmd(cmd, timeout, env=env, log_path=work / "gpu_tests.log")
    result: dict = {"pass": False, "files": files}
    counts = {"passed": 0, "failed": 0, "skipped": 0, "errors": 0}
    if junit.exists():
        for case in ET.parse(junit).getroot().iter("testcase"):
            if case.find("skipped") is not None:
                counts["skipped"] += 1
            elif case.find("failure") is not None:
                counts["failed"] += 1
            elif case.find("error") is not None:
                counts["errors"] += 1
            else:
                counts["passed"] += 1
    result.update(counts)
    skips = re.findall(r"^SKIPPED \[\d+\] (.*)$", output, flags=re.MULTILINE)
    if skips:
        result["skip_reasons"] = sorted({s.split(": ", 1)[-1] for s in skips})
    if rc != 0 or counts["failed"] or counts["errors"]:
        return fail(result, "gpu_tests", rc, output)
    result["pass"] = True
    return result


# ---------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu", action="store_true", default=os.environ.get("GPU_CHECK_CPU", "") not in ("", "0"),
                        help="CPU-size dry path: tiny model, fp32, 2 steps each (also GPU_CHECK_CPU=1)")
    parser.add_argument("--wheels", type=Path, default=HERE / "wheels",
                        help="wheel directory (default: wheels/ beside this script)")
    parser.add_argument("--no-install", action="store_true", help="skip the install part")
    parser.add_argument("--python", default=sys.executable, help="the interpreter to install into and run with")
    parser.add_argument("--workdir", type=Path,
                        help="keep runs here (default: a temporary directory, removed at the end)")
    parser.add_argument("--skip-tests", action="store_true", help="skip the pytest -m gpu part")
    args = parser.parse_args(argv)

    t0 = time.perf_counter()
    cpu = args.cpu
    limits = CPU_TIMEOUTS if cpu else GPU_TIMEOUTS
    work = args.workdir or Path(tempfile.mkdtemp(prefix="gpu_check-"))
    work.mkdir(parents=True, exist_ok=True)
    report: dict = {"mode": "cpu-dry" if cpu else "gpu", "device": None}

    # The probe's sitecustomize goes first on PYTHONPATH, the repository second (so the runs
    # import this checkout even where the editable install failed).
    probe_site = work / "probe_site"
    probe_site.mkdir(exist_ok=True)
    (probe_site / "sitecustomize.py").write_text(SITECUSTOMIZE)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(probe_site), str(REPO)]
                                      + ([os.environ["PYTHONPATH"]] if os.environ.get("PYTHONPATH") else [])),
        "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "WANDB_MODE": "disabled", "TOKENIZERS_PARALLELISM": "false", "PYTHONUNBUFFERED": "1",
    }
    if cpu:
        env.update({"CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": env.get("OMP_NUM_THREADS", "2")})

    try:
        report["install"] = ({"pass": True, "skipped": True, "note": "--no-install"} if args.no_install
                             else part_install(args.wheels, limits["install"], args.python))
        model_dir = work / "model"
        model = part_model(args.python, env, model_dir, cpu, limits["model"])
        report["versions"] = model.pop("versions", None)
        device = model.pop("device", None)
        report["device"] = "cpu (dry run: no GPU numbers)" if cpu else device
        if not cpu and model.get("gpus", 0) > 1:
            report["device_note"] = f"{model['gpus']} GPUs visible; the runs use one process"
        report["model"] = model
        for name in ("plain", "zero2"):
            if model["pass"]:
                report[name] = part_train(name, args.python, env, work, model_dir, cpu, limits[name])
            else:
                report[name] = {"pass": False, "error": f"no model ({model.get('error')})"}
        if args.skip_tests:
            report["gpu_tests"] = {"pass": True, "skipped": True, "note": "--skip-tests"}
        else:
            report["gpu_tests"] = part_gpu_tests(args.python, env, work, limits["gpu_tests"])
    except Exception as exc:  # noqa: BLE001 - the JSON line is printed whatever happened
        import traceback

        traceback.print_exc()
        report["error"] = repr(exc)
    finally:
        parts = [report.get(k, {}) for k in ("install", "model", "plain", "zero2", "gpu_tests")]
        report["pass"] = all(isinstance(p, dict) and p.get("pass") for p in parts) and "error" not in report
        report["total_s"] = round(time.perf_counter() - t0, 1)
        if args.workdir is None:
            shutil.rmtree(work, ignore_errors=True)
        else:
            report["workdir"] = str(work)
        print(json.dumps(report), flush=True)
    return 0 if report["pass"] else 1


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "_build":
        sys.path.insert(0, str(REPO))
        build_model(sys.argv[2], cpu="--cpu" in sys.argv[3:])
    elif len(sys.argv) == 3 and sys.argv[1] == "download":
        download_wheels(Path(sys.argv[2]))
    elif len(sys.argv) == 3 and sys.argv[1] == "slim":
        slim_wheels(Path(sys.argv[2]))
    else:
        sys.exit(main())
