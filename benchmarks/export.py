"""Benchmark: ``rl-reason export`` on synthetic traces, every filter on; prints seconds and peak RSS.

    python benchmarks/export.py                    # 1,000,000 traces (target: <= 60 s, <= 2 GB on 2 cores)
    python benchmarks/export.py --traces 100000

Synthetic run: prompts of 8 samples each (GRPO groups) over 2 rank shards, completions of
~60 tokens in the ``<think>`` format. About a third are wrong, 3% truncated, 3% malformed, 5%
exact and 5% near duplicates, 1% of prompts copy an evaluation problem. The export runs in a
child process so its peak RSS is measured alone (generation is not timed).
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
WORDS = "add the digits carry one then sum each column from right to left and write result".split()


def eval_question(i: int) -> str:
    return (f"Evaluation problem {i}: a train leaves the station at {i} km/h, "
            f"how far does it travel in {i % 7 + 2} hours?")


def make_traces(directory: Path, n: int, group: int = 8, seed: int = 0) -> None:
    rng = random.Random(seed)
    directory.mkdir(parents=True, exist_ok=True)
    shards = [open(directory / f"rank-{r:05d}.jsonl", "w") for r in range(2)]
    system = {"role": "system", "content": "Think inside <think></think>, then answer in \\boxed{}."}
    for p in range(n // group):
        a, b = rng.randint(100, 99999), rng.randint(100, 99999)
        question = eval_question(p % 500) if p % 100 == 0 else f"What is {a} + {b}? Show the column work."
        prompt = [system, {"role": "user", "content": question}]
        difficulty = rng.random()
        previous = None
        out = shards[p % 2]
        for g in range(group):
            correct = rng.random() > difficulty * 0.7
            body = " ".join(rng.choice(WORDS) for _ in range(45))
            text = f"<think>\n{body}\n</think>\n\\boxed{{{a + b if correct else a + b + 1}}}"
            u = rng.random()
            if previous and u < 0.05:
                text = previous  # exact duplicate
            elif previous and u < 0.10:
                text = previous.replace("carry", "carries", 1)  # near duplicate
            elif u < 0.13:
                text = text.replace("</think>", "")  # malformed
            truncated = rng.random() < 0.03
            previous = text
            rec = {
                "schema": 1, "run_id": "bench", "rank": p % 2, "time": 0.0, "step": p // 64, "mode": "train",
                "group": f"{p // 64}-0-{p}", "prompt": prompt, "completion": text, "answer": str(a + b),
                "rewards": {"accuracy_reward": 1.0 if correct else 0.0, "think_format_reward": 1.0},
                "reward": (1.0 if correct else 0.0) + 0.1, "advantage": 0.0, "group_mean": 0.5, "group_std": 0.5,
                "completion_tokens": 60 + len(text) // 8, "truncated": truncated, "id": f"bench-{p}", "source": "bench",
            }
            out.write(json.dumps(rec) + "\n")
    for f in shards:
        f.close()


CHILD = """
import json, sys, time
from rl_reason.export.pipeline import ExportOptions, export
traces, out, evalset, mix, fmt = sys.argv[1:6]
opts = ExportOptions(min_reward=1.0, correct_only=True, select="diverse", k=2, check_format=True,
                     min_tokens=10, max_tokens=4096, min_pass_rate=0.1, max_pass_rate=0.9,
                     near_dup_threshold=95.0, decontaminate=[evalset], ngram=8)
t = time.time()
stats = export(traces, out, options=opts, fmt=fmt, mix=mix, mix_ratio=0.1)
print(json.dumps({"seconds": time.time() - t, **stats.as_dict()}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--traces", type=int, default=1_000_000)
    ap.add_argument("--format", default="parquet", choices=["jsonl", "parquet"])
    ap.add_argument("--mix", default=str(REPO.parent / "shared" / "data" / "gsm8k" / "train.jsonl"))
    ap.add_argument("--workdir", default=None, help="keep the synthetic traces here (default: a temporary dir)")
    args = ap.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(args.workdir or tmp)
        traces = work / "traces"
        t = time.time()
        if not traces.exists():
            make_traces(traces, args.traces)
        evalset = work / "eval.jsonl"
        evalset.write_text("".join(json.dumps({"problem": eval_question(i)}) + "\n" for i in range(500)))
        size = sum(p.stat().st_size for p in traces.glob("*.jsonl")) / 2**20
        print(f"synthetic traces: {args.traces} ({size:.0f} MiB) in {time.time() - t:.1f} s")
        mix = args.mix if Path(args.mix).exists() else "-"
        cmd = [sys.executable, "-c", CHILD, str(traces), str(work / "export"), str(evalset), mix, args.format]
        if mix == "-":
            cmd[-2] = ""
        t = time.time()
        proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
        wall = time.time() - t
        if proc.returncode:
            sys.exit(proc.stderr[-3000:])
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 2**10  # KiB on Linux
        print(f"export: {result['seconds']:.1f} s inside, {wall:.1f} s with interpreter start; peak RSS {peak:.0f} MiB")
        print(f"read {result['read']}, kept {result['kept']} from {result['prompts']} prompts, mixed {result['mixed']}")
        print(f"removed: {result['removed']}")


if __name__ == "__main__":
    main()
