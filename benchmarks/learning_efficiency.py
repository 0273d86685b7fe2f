"""Learning per unit of compute: plain GRPO vs DAPO dynamic sampling vs dynamic sampling + curriculum.

The task mix: the demo's 1-3 digit additions (some easy, many with carries the warm start drops) plus 30%
four-digit additions, beyond the warm start (trained on 1-3 digits). The reward is the math verifier alone,
as in DAPO. From the demo's own warm start most groups come out all right or all wrong: the setting where a
group without spread costs a generation and teaches nothing. Each arm trains from the same warm start with
the same seed for the same compute budget; snapshots of the policy along the way are evaluated afterwards
(greedy, held-out problems of the same mix), so held-out accuracy is plotted against compute and against
generated tokens.

"Plain" is TRL's GRPOTrainer as rl_reason runs it with both switches off (TRL has no dynamic sampling).
The budget is process CPU seconds on one torch thread: on an idle core that is wall time, and a busy
machine slows every arm without changing what each got. Wall seconds are reported too.

    python benchmarks/learning_efficiency.py --seeds 0 1 2 --budget 240 --out docs/learning_efficiency
    python benchmarks/learning_efficiency.py --quick      # a tiny end-to-end run (the test suite's)
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARMS = {
    "plain GRPO": {},
    "dynamic sampling": {"dynamic_sampling": {"enabled": True}},
    "dynamic sampling + curriculum": {"dynamic_sampling": {"enabled": True}, "curriculum": {"enabled": True}},
}


HARD_SHARE, HARD_DIGITS = 0.3, 4


def task_mix(n: int, seed: int, exclude: set[str]) -> list[dict]:
    """``n`` distinct problems: the demo's 1-3 digit additions, and ``HARD_SHARE`` of ``HARD_DIGITS``-digit ones."""
    from rl_reason.data.tasks import make_problem

    rng = random.Random(seed)
    seen, rows = set(exclude), []
    while len(rows) < n:
        digits = HARD_DIGITS if rng.random() < HARD_SHARE else None
        row = make_problem(rng, digits or 1, digits or 3)
        if row["question"] not in seen:
            seen.add(row["question"])
            rows.append({"question": row["question"], "answer": row["answer"], "source": f"{digits or '1-3'}-digit"})
    return rows


def write_jsonl(rows: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


class Budget:
    """Stops training after ``seconds`` of process CPU time, saving ``snapshots`` evenly spaced policies on
    the way; the time spent saving is not counted."""

    def __init__(self, trainer, seconds: float, snapshots: int, out: Path):
        from transformers import TrainerCallback

        budget = self

        class _Callback(TrainerCallback):
            def on_train_begin(self, args, state, control, **kwargs):
                budget.cpu0, budget.wall0 = time.process_time(), time.time()
                budget._save(state, 0)

            def on_step_end(self, args, state, control, **kwargs):
                budget.tokens += trainer._timers["tokens"]
                used = budget._used()
                if used >= budget.marks[0]:
                    budget.marks.pop(0)
                    budget._save(state, used)
                if not budget.marks:
                    control.should_training_stop = True

        self.trainer, self.out, self.tokens, self.paused = trainer, out, 0.0, 0.0
        self.marks = [seconds * (i + 1) / snapshots for i in range(snapshots)]
        self.points: list[dict] = []
        self.callback = _Callback()

    def _used(self) -> float:
        return time.process_time() - self.cpu0 - self.paused

    def _save(self, state, used: float) -> None:
        start = time.process_time()
        path = self.out / f"snap-{len(self.points)}"
        self.trainer.model.save_pretrained(path)
        self.trainer.processing_class.save_pretrained(path)
        self.points.append({"path": str(path), "step": state.global_step, "cpu_s": used,
                            "wall_s": time.time() - self.wall0, "generated_tokens": self.tokens})
        self.paused += time.process_time() - start


def run_arm(name: str, warm: Path, out: Path, seed: int, budget_s: float, snapshots: int, pool: Path) -> dict:
    import rl_reason.train.run as run_module
    from rl_reason.demo import GRPO
    from rl_reason.train.run import load_train_recipe, train

    recipe = {
        **{k: v for k, v in GRPO.items() if k != "rewards"},
        "max_steps": 100_000,  # the budget ends the run
        "output_dir": str(out / "run"), "seed": seed, "run_name": f"{name}-{seed}",
        "model": {"name_or_path": str(warm)},
        "data": {"source": str(pool)},
        "rewards": [{"name": "math", "weight": 1.0}],  # DAPO's reward: the verifier alone
        "traces": {"enabled": False},
        **ARMS[name],
    }
    import yaml

    out.mkdir(parents=True, exist_ok=True)
    (out / "recipe.yaml").write_text(yaml.safe_dump(recipe, sort_keys=False))
    holder = {}
    callbacks = run_module.monitoring_callbacks

    def with_budget(r, trainer):
        holder["budget"] = Budget(trainer, budget_s, snapshots, out)
        return [*callbacks(r, trainer), holder["budget"].callback]

    run_module.monitoring_callbacks = with_budget
    try:
        result = train(load_train_recipe(out / "recipe.yaml"))
    finally:
        run_module.monitoring_callbacks = callbacks
    history = [h for h in result.log_history if "reward" in h]

    def mean(key):
        values = [h[key] for h in history if key in h]
        return statistics.fmean(values) if values else None

    return {"arm": name, "seed": seed, "steps": result.global_step, "points": holder["budget"].points,
            "zero_spread_generated": mean("health/zero_variance_groups"),
            "generated_per_trained_token": mean("efficiency/generated_tokens_per_trained_token"),
            "extra_rounds": mean("dynamic_sampling/extra_rounds"), "skipped": mean("curriculum/skipped")}


def evaluate_points(row: dict, heldout: list[dict]) -> None:
    from rl_reason.demo import GRPO
    from rl_reason.sampling.evaluate import evaluate

    for point in row["points"]:
        report = evaluate(point["path"], heldout, max_new_tokens=GRPO["max_completion_length"])
        point["accuracy"], point["by_source"] = report.accuracy, report.by_source
        shutil.rmtree(point["path"])


def _at(points: list[dict], key: str, x: float) -> float:
    """Accuracy at ``x`` of ``key``, linear between snapshots (the last one beyond them)."""
    for a, b in zip(points, points[1:]):
        if a[key] <= x <= b[key]:
            t = (x - a[key]) / (b[key] - a[key]) if b[key] > a[key] else 1.0
            return a["accuracy"] + t * (b["accuracy"] - a["accuracy"])
    return points[-1]["accuracy"]


def summarize(rows: list[dict]) -> tuple[list[dict], str]:
    """Per arm over seeds: accuracy at the start, at the budget, at the plain arm's token count, and the
    compute each arm needed to reach the plain arm's final accuracy."""
    seeds = sorted({r["seed"] for r in rows})
    by = {(r["arm"], r["seed"]): r for r in rows}
    table = []
    for arm in ARMS:
        if not all((arm, s) in by for s in seeds):
            continue
        final, at_tokens, cpu_to_plain = [], [], []
        for s in seeds:
            points = by[(arm, s)]["points"]
            plain = by[("plain GRPO", s)]["points"]
            final.append(points[-1]["accuracy"])
            at_tokens.append(_at(points, "generated_tokens", plain[-1]["generated_tokens"]))
            target = plain[-1]["accuracy"]
            reached = next((p["cpu_s"] for p in points if p["accuracy"] >= target), None)
            cpu_to_plain.append(reached)
        arm_rows = [by[(arm, s)] for s in seeds]

        def avg(values):
            values = [v for v in values if v is not None]
            return statistics.fmean(values) if values else None

        table.append({
            "arm": arm, "seeds": len(seeds),
            "start": avg([r["points"][0]["accuracy"] for r in arm_rows]),
            "final": avg(final), "final_sd": statistics.stdev(final) if len(final) > 1 else 0.0,
            "at_plain_tokens": avg(at_tokens),
            "cpu_to_plain_final": avg(cpu_to_plain),
            "reached_plain_final": sum(v is not None for v in cpu_to_plain),
            "steps": avg([r["steps"] for r in arm_rows]),
            "generated_tokens": avg([r["points"][-1]["generated_tokens"] for r in arm_rows]),
            "zero_spread_generated": avg([r["zero_spread_generated"] for r in arm_rows]),
            "generated_per_trained_token": avg([r["generated_per_trained_token"] for r in arm_rows]),
            "extra_rounds": avg([r["extra_rounds"] for r in arm_rows]),
            "skipped": avg([r["skipped"] for r in arm_rows]),
        })

    def f(v, fmt):
        return "-" if v is None else format(v, fmt)

    lines = ["| arm | start | final (mean ± sd) | at plain's tokens | CPU s to plain's final | steps | generated "
             "tokens | zero-spread groups generated | generated / trained token | extra rounds | skipped |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for t in table:
        lines.append(
            f"| {t['arm']} | {f(t['start'], '.1%')} | {f(t['final'], '.1%')} ± {f(t['final_sd'], '.1%')} | "
            f"{f(t['at_plain_tokens'], '.1%')} | {f(t['cpu_to_plain_final'], '.0f')} "
            f"({t['reached_plain_final']}/{t['seeds']}) | {f(t['steps'], '.0f')} | "
            f"{f(t['generated_tokens'], ',.0f')} | "
            f"{f(t['zero_spread_generated'], '.0%')} | {f(t['generated_per_trained_token'], '.2f')} | "
            f"{f(t['extra_rounds'], '.2f')} | {f(t['skipped'], '.1f')} |")
    return table, "\n".join(lines)


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    colors = dict(zip(ARMS, ("tab:gray", "tab:blue", "tab:green"), strict=True))
    for ax, key, label in ((axes[0], "cpu_s", "compute (CPU seconds, one thread)"),
                           (axes[1], "generated_tokens", "generated tokens")):
        for arm in ARMS:
            arm_rows = [r for r in rows if r["arm"] == arm]
            for i, r in enumerate(arm_rows):
                xs = [p[key] for p in r["points"]]
                ys = [p["accuracy"] for p in r["points"]]
                ax.plot(xs, ys, color=colors[arm], alpha=0.8, marker=".", label=arm if i == 0 else None)
        ax.set_xlabel(label)
        ax.set_ylabel("held-out accuracy (greedy)")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    fig.suptitle("Learning per unit of compute (one line per seed)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--budget", type=float, default=240.0, help="CPU seconds of GRPO per arm and seed")
    parser.add_argument("--snapshots", type=int, default=6, help="policies evaluated along each run")
    parser.add_argument("--pool", type=int, default=128, help="training prompts (repeats make the curriculum matter)")
    parser.add_argument("--num-eval", type=int, default=300, help="held-out problems")
    parser.add_argument("--arms", nargs="+", default=list(ARMS), choices=list(ARMS))
    parser.add_argument("--work", type=Path, default=Path("/tmp/learning_efficiency"))
    parser.add_argument("--out", type=Path, default=None, help="write OUT.md (table), OUT.png and OUT.json")
    parser.add_argument("--quick", action="store_true", help="tiny budgets, for the test suite")
    parser.add_argument("--merge", type=Path, nargs="+", default=None,
                        help="summarize the OUT.json of earlier runs (e.g. one per seed, run in parallel)")
    args = parser.parse_args(argv)
    if args.merge:
        rows = [row for path in args.merge for row in json.loads(path.read_text())["rows"]]
        report(rows, args)
        return 0

    import torch

    torch.set_num_threads(1)
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from rl_reason.config import DataSection
    from rl_reason.data.load import procedural_splits
    from rl_reason.data.tasks import make_problems
    from rl_reason.data.tiny import build_tiny
    from rl_reason.demo import DATA, QUICK, WARM_START, warm_start

    if args.quick:
        args.budget, args.snapshots, args.num_eval, args.pool = 6.0, 2, 16, 32
    rows = []
    for seed in args.seeds:
        # The demo's warm start, on the demo's problems (none of the demo's held-out ones).
        data = DataSection(**{**DATA, "seed": seed})
        demo_held = {p["question"] for p in procedural_splits(data)[1]}
        work = args.work / f"seed{seed}"
        warm = work / "warm_start"
        if not (warm / "config.json").exists():
            build_tiny(work / "base", size="tiny", seed=seed)
            warm_start(work / "base", warm, data, demo_held, seed, quick=args.quick)
        # What the warm start saw (warm_start's own draw) stays out of the pool and the held-out set.
        n_warm = QUICK["warm_problems"] if args.quick else WARM_START["num_problems"]
        seen = {r["question"] for r in make_problems(n_warm, seed=seed + 1, min_digits=data.min_digits,
                                                     max_digits=data.max_digits, exclude=demo_held)}
        heldout = task_mix(args.num_eval, seed + 10_000, seen)
        pool = write_jsonl(task_mix(args.pool, seed, seen | {p["question"] for p in heldout}), work / "pool.jsonl")
        for arm in args.arms:
            out = work / arm.replace(" ", "_").replace("+", "and")
            shutil.rmtree(out, ignore_errors=True)
            row = run_arm(arm, warm, out, seed, args.budget, args.snapshots, pool)
            evaluate_points(row, heldout)
            rows.append(row)
            last = row["points"][-1]
            print(f"[seed {seed}] {arm}: {row['steps']} steps, accuracy {row['points'][0]['accuracy']:.3f} -> "
                  f"{last['accuracy']:.3f} in {last['cpu_s']:.0f} CPU s ({last['wall_s']:.0f} s wall), "
                  f"{last['generated_tokens']:,.0f} tokens generated", flush=True)
    report(rows, args)
    return 0


def report(rows: list[dict], args) -> None:
    table, markdown = summarize(rows)
    print(markdown)
    plain = next((t for t in table if t["arm"] == "plain GRPO"), None)
    for t in table:
        if plain and t is not plain and plain["final"] is not None:
            gain = plain["final"] - plain["start"]
            ratio = (t["final"] - t["start"]) / gain if gain else float("nan")
            print(f"{t['arm']} vs plain GRPO: accuracy gained in the budget {ratio:.2f}x, "
                  f"final {t['final'] - plain['final']:+.1%}")
    if plain and plain["zero_spread_generated"] is not None:
        print(f"plain GRPO generated {plain['zero_spread_generated']:.0%} groups without reward spread "
              "(the feature's premise: most of a batch teaches nothing)")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()},
                                                             "rows": rows, "table": table}, indent=1))
        args.out.with_suffix(".md").write_text(markdown + "\n")
        plot(rows, args.out.with_suffix(".png"))
        print(f"wrote {args.out.with_suffix('.md')}, .png, .json")


if __name__ == "__main__":
    sys.exit(main())
