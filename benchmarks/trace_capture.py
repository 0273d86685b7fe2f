"""Benchmark: what trace capture costs, as a fraction of the GRPO step time (target: <= 1%).

    python benchmarks/trace_capture.py            # about 2 minutes on 2 shared CPU cores
    python benchmarks/trace_capture.py --quick    # smoke test, well under a minute
    python benchmarks/trace_capture.py --rounds 8 --steps 30 --gpu-step-s 45 --workdir /lustre/scratch

Three measurements, printed side by side:

1. End-to-end: tiny GRPO runs (the real ``rl_reason.train.run.train``) with ``traces.enabled`` true
   and false, same seed and steps, so both arms generate the same completions. The arms alternate
   (on/off, off/on, ...) so load from other jobs hits both alike. Reported: the median step wall
   time (this script's own clock, from one ``on_step_end`` to the next, so it includes the flush
   and logging), the trainer's ``time/step`` and TRL's ``step_time`` (both stop before the trace
   flush: ``_FlushTraces.on_step_end`` runs after ``_StepTimer.on_step_end``), the process CPU
   time per step, a ratio paired by step (same completions), and two extra runs that trace only
   every other step (adjacent steps share the load of other jobs). The spread between runs of one
   arm is printed as the noise floor; on a tiny CPU model it is far above 1%, hence:
2. Direct: inside the traces-on runs, this script times the capture work itself by wrapping
   (in a subclass; the library is not edited) ``TracingGRPOTrainer._after_rollout`` (building and
   checking the records), ``_log_health`` (health metrics; both run with traces off too, so the
   on/off difference is encoding and flushing), ``TraceWriter.add`` (JSON encoding) and
   ``TraceWriter.flush`` (one write + fsync per step), as a fraction of the step wall time.
3. Realistic size, synthetic: the real ``_after_rollout`` (on a stand-in trainer, CPU tensors, one
   process) and ``TraceWriter.flush`` on 16 groups x 16 completions of up to 4096 token ids (ids
   and text kept), all written by one writer (an upper bound: with N ranks each writes 1/N of
   them), compared with an *assumed* GPU step time (``--gpu-step-s``, default 60 s for a 7B GRPO
   step with 4k-token completions: an assumption, not measured here; pass your run's
   ``time/step``). Also printed: the step time below which capture exceeds 1%, and where the time
   goes (JSON of the token ids, the whole record, orjson instead, write, fsync).

Traces are written under ``--workdir`` (default: a temporary directory). fsync cost depends on
the file system: point it at the run's real output file system (NFS, Lustre) to measure that.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
import types
import warnings
from collections import defaultdict, deque
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("WANDB_MODE", "disabled")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import torch  # noqa: E402
from transformers import TrainerCallback  # noqa: E402

import rl_reason.train.run as train_module  # noqa: E402
from rl_reason.traces.schema import SCHEMA_VERSION  # noqa: E402
from rl_reason.traces.writer import TraceWriter, _jsonable  # noqa: E402
from rl_reason.train.health import weighted_totals  # noqa: E402
from rl_reason.train.trainer import TracingGRPOTrainer, trl_group_statistics  # noqa: E402

COMPONENTS = ("build", "encode", "health", "flush")
LABELS = {
    "build": "build records (_after_rollout)",
    "encode": "JSON encode (TraceWriter.add)",
    "health": "health metrics",
    "flush": "flush: write + fsync",
    "total": "total capture",
}


# --------------------------------------------------------------------------- 1 + 2: tiny runs


class _Probe:
    """Per-step timings collected by the instrumented trainer of the current run."""

    def __init__(self, interleave: int | None = None):
        self.steps: list[dict] = []  # one dict per optimizer step
        self.current = defaultdict(float)
        self.completions = 0
        # None: traces as the recipe says; 0 or 1: traced only on steps with global_step % 2 == it.
        self.interleave = interleave


PROBE = _Probe()


class _WallClock(TrainerCallback):
    """Step wall time from one on_step_end to the next: everything, flush and logging included.

    Added after the library's callbacks, so its on_step_end runs after the trace flush."""

    def __init__(self, trainer):
        self.trainer, self.writer = trainer, trainer.trace_writer

    def on_train_begin(self, args, state, control, **kwargs):
        self.last = time.perf_counter()
        self.last_cpu = time.process_time()

    def on_step_begin(self, args, state, control, **kwargs):
        if PROBE.interleave is not None:  # before this step's rollout: trace it or not
            traced = state.global_step % 2 == PROBE.interleave
            self.trainer.trace_writer = self.writer if traced else None
        PROBE.current["traced"] = float(self.trainer.trace_writer is not None)

    def on_step_end(self, args, state, control, **kwargs):
        now, cpu = time.perf_counter(), time.process_time()
        PROBE.steps.append({"wall": now - self.last, "cpu": cpu - self.last_cpu, **PROBE.current})
        PROBE.current = defaultdict(float)
        self.last, self.last_cpu = now, cpu


def _timed(fn, key):
    def wrapper(*a, **kw):
        start = time.perf_counter()
        try:
            return fn(*a, **kw)
        finally:
            PROBE.current[key] += time.perf_counter() - start

    return wrapper


class InstrumentedTrainer(TracingGRPOTrainer):
    """TracingGRPOTrainer with perf_counter around the capture work; behaviour unchanged."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.add_callback(_WallClock(self))
        writer = self.trace_writer
        if writer is not None:  # instance attributes shadow the methods: only this writer is timed
            writer.add = _timed(writer.add, "encode")
            writer.flush = _timed(writer.flush, "flush")

    def _after_rollout(self, advantages):
        PROBE.completions += len(self._pending[1])
        start = time.perf_counter()
        try:
            return super()._after_rollout(advantages)
        finally:
            PROBE.current["write_traces"] += time.perf_counter() - start

    def _log_health(self, *args, **kwargs):
        start = time.perf_counter()
        try:
            return super()._log_health(*args, **kwargs)
        finally:
            PROBE.current["health"] += time.perf_counter() - start


def tiny_run(tmp: Path, name: str, traces: bool, args, interleave: int | None = None) -> dict:
    import yaml

    recipe = tmp / f"{name}.yaml"
    recipe.write_text(yaml.safe_dump({
        "output_dir": str(tmp / name), "model": {"name_or_path": str(tmp / "model")},
        "data": {"num_train": 1024, "min_digits": 1, "max_digits": 3},
        "rewards": [{"name": "math"}, {"name": "format", "weight": 0.1}],
        "traces": {"enabled": traces},
        "num_generations": args.num_generations, "per_device_train_batch_size": args.batch,
        "max_completion_length": args.max_completion_length,
        "max_steps": args.steps, "logging_steps": 1, "save_strategy": "no", "report_to": "none",
        "seed": 0, "disable_tqdm": True,
    }))
    global PROBE
    PROBE = _Probe(interleave)
    train_module.TracingGRPOTrainer = InstrumentedTrainer
    sink = io.StringIO()
    try:
        with contextlib.redirect_stdout(sink), contextlib.redirect_stderr(sink), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            result = train_module.train(train_module.load_train_recipe(recipe))
    except Exception:
        sys.stderr.write(sink.getvalue()[-5000:])
        raise
    finally:
        train_module.TracingGRPOTrainer = TracingGRPOTrainer
    logs = [h for h in result.log_history if "time/step" in h]
    steps = PROBE.steps
    for s in steps:
        s["build"] = max(s.get("write_traces", 0.0) - s.get("encode", 0.0) - s.get("health", 0.0), 0.0)
        s["total"] = sum(s.get(k, 0.0) for k in COMPONENTS)
    skip = args.skip
    return {
        "name": name, "traces": traces,
        "wall": [s["wall"] for s in steps][skip:],
        "cpu": [s["cpu"] for s in steps][skip:],
        "time/step": [h["time/step"] for h in logs][skip:],
        "step_time": [h["step_time"] for h in logs if "step_time" in h][skip:],
        "lengths": [round(h.get("completions/mean_length", 0.0), 4) for h in logs],
        "capture": steps[skip:],
        "traced": [s["traced"] for s in steps][skip:],
        "completions_per_step": PROBE.completions / max(len(steps), 1),
    }


def _spread(values: list[float]) -> float:
    """Largest relative difference between two per-run medians of one arm."""
    return max(values) / min(values) - 1 if len(values) > 1 else float("nan")


def end_to_end(tmp: Path, args) -> tuple[list[dict], list[str]]:
    from rl_reason.data.tiny import build_tiny

    build_tiny(tmp / "model")
    torch.set_num_threads(args.threads)
    lines = []
    # Warm-up (discarded): first-run costs (allocator, lazy imports, page cache) hit neither arm.
    warm = argparse.Namespace(**{**vars(args), "steps": 2, "skip": 0})
    tiny_run(tmp, "warmup", True, warm)
    runs = []
    for r in range(args.rounds):
        order = (True, False) if r % 2 == 0 else (False, True)
        for traces in order:
            name = f"r{r}_{'on' if traces else 'off'}"
            t = time.perf_counter()
            run = tiny_run(tmp, name, traces, args)
            print(f"  {name:<8} {len(run['wall'])} steps timed, median {statistics.median(run['wall']):.3f} s/step "
                  f"({time.perf_counter() - t:.0f} s)", flush=True)
            runs.append(run)
    on = [r for r in runs if r["traces"]]
    off = [r for r in runs if not r["traces"]]
    same = all(r["lengths"] == runs[0]["lengths"] for r in runs)

    lines.append(f"End-to-end, tiny model: {args.rounds} rounds (on/off alternated), {args.steps} steps per run, "
                 f"first {args.skip} not timed, {args.batch} completions/step of <= {args.max_completion_length} "
                 f"tokens, torch threads {args.threads}")
    lines.append(f"  {'step time, median':<34}{'traces on':>11}{'traces off':>12}{'on/off':>9}"
                 f"{'run spread on/off':>20}")
    for key, label in (("wall", "wall, flush included (this script)"), ("time/step", "time/step (trainer)"),
                       ("step_time", "step_time (TRL)"), ("cpu", "CPU time of this process")):
        a = statistics.median([x for r in on for x in r[key]])
        b = statistics.median([x for r in off for x in r[key]])
        sa = _spread([statistics.median(r[key]) for r in on])
        sb = _spread([statistics.median(r[key]) for r in off])
        spread = f"{sa:.1%} / {sb:.1%}" if len(on) > 1 else "n/a (1 round)"
        lines.append(f"  {label:<34}{a:>10.3f}s{b:>11.3f}s{a / b:>9.3f}{spread:>20}")
    # Paired: step k of the on and the off run of one round generated the same completions.
    paired = [a / b for r in range(args.rounds) for a, b in zip(runs[2 * r + (0 if r % 2 == 0 else 1)]["wall"],
                                                                runs[2 * r + (1 if r % 2 == 0 else 0)]["wall"])]
    lines.append(f"  {'wall, paired by step and round':<34}{'':>23}{statistics.median(paired):>9.3f}"
                 f"{'(median of ratios)':>20}")
    # Interleaved: traces on every other step of one run (two runs, opposite phases, so each
    # step's completions are traced once): adjacent steps share the load of other jobs.
    inter = []
    for phase in (0, 1):
        run = tiny_run(tmp, f"interleaved{phase}", True, args, interleave=phase)
        print(f"  interleaved{phase}: traces on every other step, median "
              f"{statistics.median(run['wall']):.3f} s/step", flush=True)
        inter.append(run)
    traced = [w for r in inter for w, t in zip(r["wall"], r["traced"]) if t]
    untraced = [w for r in inter for w, t in zip(r["wall"], r["traced"]) if not t]
    a, b = statistics.median(traced), statistics.median(untraced)
    lines.append(f"  {'wall, interleaved within runs':<34}{a:>10.3f}s{b:>11.3f}s{a / b:>9.3f}"
                 f"{'(every other step)':>20}")
    lines.append(f"  same completions in every run (mean length per step): {'yes' if same else 'NO'}; "
                 "run spread = largest difference between two runs of one arm (the noise floor)")
    return on, lines


def direct(on: list[dict]) -> tuple[dict, list[str]]:
    steps = [s for r in on for s in r["capture"]]
    walls = [s["wall"] for s in steps]
    wall = statistics.mean(walls)
    n = statistics.median([r["completions_per_step"] for r in on])
    lines = [f"Direct, inside the traces-on runs ({len(steps)} steps, {n:.0f} completions/step, "
             f"mean step wall {wall:.3f} s; means, so the components add up):"]
    lines.append(f"  {'component':<34}{'ms/step':>10}{'% of step':>11}{'us/completion':>15}")
    out = {}
    for key in (*COMPONENTS, "total"):
        mean = statistics.mean([s.get(key, 0.0) for s in steps])
        out[key] = mean
        lines.append(f"  {LABELS[key]:<34}{mean * 1e3:>10.2f}{mean / wall:>11.3%}{mean / n * 1e6:>15.1f}")
    ratios = sorted(s["total"] / s["wall"] for s in steps)
    lines.append(f"  per step, capture / step wall: median {statistics.median(ratios):.3%}, worst {ratios[-1]:.3%}")
    out.update(wall=wall, completions=n)
    return out, lines


# --------------------------------------------------------------------------- 3: realistic size

EOS = 151645  # Qwen2.5's <|im_end|>
WEIGHTS = torch.tensor([1.0, 0.1])
VOCAB = 151_643
WORDS = ("so the sum of the digits is then we carry one and check again wait let me recompute this "
         "step carefully because the previous line had an error therefore").split()


def synthetic_batch(groups: int, group_size: int, tokens: int, seed: int = 0):
    """One generation batch as TracingGRPOTrainer._after_rollout receives it, at realistic size."""
    rng = random.Random(seed)
    n = groups * group_size
    system = {"role": "system", "content": "You are a helpful assistant. Think step by step inside <think></think>, "
                                           "then give the final answer in \\boxed{}."}
    inputs, prompts, completions, ids = [], [], [], []
    for g in range(groups):
        question = " ".join(rng.choice(WORDS) for _ in range(60)) + f" What is {rng.randint(1, 10**6)}?"
        prompt = [system, {"role": "user", "content": question}]
        for _ in range(group_size):
            inputs.append({"prompt": prompt, "answer": str(rng.randint(1, 10**6)), "id": f"synthetic-{g}",
                           "source": "synthetic"})
            prompts.append(prompt)
            length = tokens if rng.random() < 0.5 else rng.randint(tokens // 4, tokens)  # half truncated
            row = [rng.randrange(VOCAB) for _ in range(length)]
            if length < tokens:
                row[-1] = EOS
            ids.append(row)
            # ~4 characters per token, as for English text under a BPE tokenizer.
            text = " ".join(rng.choice(WORDS) for _ in range(length * 4 // 6))
            completions.append([{"role": "assistant", "content": "<think>" + text + "</think> \\boxed{42}"}])
    rewards = torch.tensor([[float(rng.random() < 0.5), float(rng.random() < 0.9)] for _ in range(n)])
    # TRL's advantages (group scaling), which the trainer checks its records against.
    mean, _, scale = trl_group_statistics(weighted_totals(rewards, WEIGHTS), group_size, "group")
    advantages = torch.nan_to_num((weighted_totals(rewards, WEIGHTS) - mean) / scale, nan=0.0)
    return (inputs, prompts, completions, ids, rewards), advantages


def _stand_in(pending, writer, group_size: int, step: int):
    """What _after_rollout reads from the trainer, on the CPU, one process."""
    stub = types.SimpleNamespace(
        _pending=pending, model=types.SimpleNamespace(training=True), num_generations=group_size,
        num_generations_eval=group_size,
        accelerator=types.SimpleNamespace(process_index=0, device=torch.device("cpu"), gather=lambda t: t),
        reward_weights=WEIGHTS, state=types.SimpleNamespace(global_step=step), scale_rewards="group",
        _generation_batches=0, eos_token_ids=[EOS], reward_func_names=["accuracy_reward", "think_format_reward"],
        reward_roles={"accuracy_reward": "verifier", "think_format_reward": "format"},
        trace_writer=writer, recent_traces=deque(maxlen=64), _metrics={"train": defaultdict(list)},
    )
    for method in ("_build_records", "_log_health"):
        setattr(stub, method, types.MethodType(getattr(TracingGRPOTrainer, method), stub))
    return stub


class _Collect:
    """A writer that keeps the records instead of encoding them: times record building alone."""

    def __init__(self):
        self.records = []
        self.total = 0

    def add(self, record):
        self.records.append(record)
        self.total += 1


def realistic(workdir: Path, args) -> tuple[dict, list[str]]:
    n = args.groups * args.group_size
    pending, advantages = synthetic_batch(args.groups, args.group_size, args.tokens)
    writer = TraceWriter(workdir / "synthetic", rank=0, run_id="bench")
    capture, flush, build = [], [], []
    for step in range(args.reps):
        start = time.perf_counter()
        TracingGRPOTrainer._after_rollout(_stand_in(pending, writer, args.group_size, step), advantages)
        mid = time.perf_counter()
        writer.flush()
        capture.append(mid - start)
        flush.append(time.perf_counter() - mid)
        collect = _Collect()
        start = time.perf_counter()
        TracingGRPOTrainer._after_rollout(_stand_in(pending, collect, args.group_size, step), advantages)
        build.append(time.perf_counter() - start)
    writer.close()
    records = collect.records

    # Where the time goes, on the same records: best of reps (timeit's convention), as load from
    # other jobs only ever adds time.
    def best(fn):
        times = []
        for _ in range(max(args.reps, 3)):
            t = time.perf_counter()
            fn()
            times.append(time.perf_counter() - t)
        return min(times)

    header = {"schema": SCHEMA_VERSION, "run_id": "bench", "rank": 0, "time": time.time()}
    lines_json = [json.dumps({**header, **r}, ensure_ascii=False, default=_jsonable) for r in records]
    payload = "\n".join(lines_json) + "\n"
    parts = {
        "json.dumps, whole records": best(lambda: [json.dumps({**header, **r}, ensure_ascii=False, default=_jsonable)
                                                   for r in records]),
        "  of which completion_ids": best(lambda: [json.dumps(r["completion_ids"]) for r in records]),
        "  compact separators (,:)": best(lambda: [json.dumps({**header, **r}, ensure_ascii=False, default=_jsonable,
                                                              separators=(",", ":")) for r in records]),
    }
    try:
        import orjson

        parts["  orjson instead"] = best(lambda: [orjson.dumps({**header, **r}, default=_jsonable) for r in records])
    except ImportError:
        pass
    path = workdir / "synthetic" / "breakdown.jsonl"
    with open(path, "a", encoding="utf-8") as f:
        def write():
            f.write(payload)
            f.flush()

        def sync():
            f.write(payload)
            f.flush()
            os.fsync(f.fileno())

        parts["write (page cache)"] = best(write)
        parts["write + fsync"] = best(sync)
    parts["fsync alone (estimate)"] = max(parts["write + fsync"] - parts["write (page cache)"], 0.0)

    total = statistics.median(capture) + statistics.median(flush)
    out = {"n": n, "capture": statistics.median(capture), "flush": statistics.median(flush), "total": total,
           "build": statistics.median(build), "bytes": len(payload.encode()), "parts": parts}
    step_s = args.gpu_step_s
    mib = out["bytes"] / 2**20
    lines = [f"Realistic size, synthetic: {args.groups} groups x {args.group_size} completions, <= {args.tokens} "
             f"token ids + text each, one writer, {args.reps} reps, {mib:.1f} MiB/step:"]
    lines.append(f"  {'component':<34}{'ms/step':>10}{'us/completion':>15}{f'% of {step_s:g} s':>12}")
    rows = [("build records (no encoding)", out["build"]),
            ("capture in _after_rollout", out["capture"]),
            ("flush: write + fsync", out["flush"]),
            ("total capture", total)]
    for label, v in rows:
        lines.append(f"  {label:<34}{v * 1e3:>10.1f}{v / n * 1e6:>15.1f}{v / step_s:>12.3%}")
    lines.append(f"  capture reaches 1% of the step when a step is shorter than {total / 0.01:.1f} s "
                 f"(assumed GPU step: {step_s:g} s, --gpu-step-s)")
    lines.append("  where the time goes (same records, best of reps):")
    for label, v in parts.items():
        lines.append(f"    {label:<32}{v * 1e3:>10.1f} ms")
    return out, lines


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=4, help="on/off pairs of tiny runs, order alternated (default 4)")
    ap.add_argument("--steps", type=int, default=20, help="optimizer steps per tiny run (default 20)")
    ap.add_argument("--skip", type=int, default=2, help="first steps of each run not timed (default 2)")
    ap.add_argument("--batch", type=int, default=16, help="completions per step in the tiny runs (default 16)")
    ap.add_argument("--num-generations", type=int, default=8)
    ap.add_argument("--max-completion-length", type=int, default=32)
    ap.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: 2 threads on 2 shared cores make step times far noisier)")
    ap.add_argument("--groups", type=int, default=16, help="synthetic: groups per step (default 16)")
    ap.add_argument("--group-size", type=int, default=16, help="synthetic: completions per group (default 16)")
    ap.add_argument("--tokens", type=int, default=4096, help="synthetic: max completion tokens (default 4096)")
    ap.add_argument("--reps", type=int, default=5, help="synthetic: steps timed (default 5)")
    ap.add_argument("--gpu-step-s", type=float, default=60.0,
                    help="assumed GPU step time to compare with (default 60 s, a 7B GRPO step; an assumption)")
    ap.add_argument("--workdir", default=None, help="where traces are written (default: a temporary directory)")
    ap.add_argument("--quick", action="store_true", help="smoke test: 1 round of 4 steps, a small synthetic batch")
    args = ap.parse_args()
    if args.quick:
        args.rounds, args.steps, args.skip, args.batch = 1, 4, 1, 8
        args.groups, args.group_size, args.tokens, args.reps = 2, 8, 1024, 2

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.workdir) as d:
        tmp = Path(d)
        print("tiny runs:", flush=True)
        on, e2e_lines = end_to_end(tmp, args)
        d_out, direct_lines = direct(on)
        print("synthetic batch ...", flush=True)
        r_out, real_lines = realistic(tmp, args)

    print()
    for block in (e2e_lines, direct_lines, real_lines):
        print("\n".join(block))
        print()
    tiny_pct = d_out["total"] / d_out["wall"]
    real_pct = r_out["total"] / args.gpu_step_s
    naive = d_out["total"] / d_out["completions"] * r_out["n"] / args.gpu_step_s
    print("Summary (target: capture <= 1% of step time):")
    print(f"  {'setting':<48}{'capture/step':>14}{'<= 1%':>7}")
    for label, pct in (("tiny CPU model, direct (mean step)", tiny_pct),
                       (f"tiny per-completion cost x {r_out['n']} completions / {args.gpu_step_s:g} s", naive),
                       (f"{r_out['n']} x {args.tokens}-token completions / {args.gpu_step_s:g} s", real_pct)):
        print(f"  {label:<48}{pct:>14.3%}{'yes' if pct <= 0.01 else 'NO':>7}")
    print(f"\n({time.perf_counter() - started:.0f} s in all)")


if __name__ == "__main__":
    main()
