"""``rl-reason demo``: the whole R1 pipeline in miniature, on a CPU, in minutes.

build tiny model → warm-start SFT on reference solutions → eval → GRPO → eval → rejection
sampling from the RL checkpoint → export the successful traces → distill a smaller student →
eval the student (and its undistilled base).

``run_pipeline`` is that pipeline, once for every task; a task (``MathTask`` here,
``rl_reason.demo_code.CodeTask``) says what its problems are, how its warm start is taught
and how its answers are judged. Every number in ``summary.json`` comes from real generations
on the same held-out problems with the same (greedy) decoding.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import yaml

from rl_reason.config import DataSection

# The task: 1–3 digit additions worked column by column. The warm-start data come from a
# sloppy teacher: 65% of its reference solutions forget every carry (their lines and boxed
# answer are consistent, but wrong whenever a carry was needed). SFT copies the teacher, so
# the warm-started policy drops carries under greedy decoding while still sampling careful
# solutions about a third of the time. GRPO with a verifier that checks only the final
# answer has to discover that carrying pays: the R1 story (RL improves on imperfect
# imitation) in a form a CPU can run in minutes.
DATA = {"source": "addition", "min_digits": 1, "max_digits": 3, "num_eval": 300}

WARM_START = {
    "num_problems": 8000,
    "sloppy_rate": 0.65,
    "args": {
        "num_train_epochs": 2,
        "learning_rate": 2e-3,
        "per_device_train_batch_size": 32,
        "lr_scheduler_type": "cosine",
        "warmup_steps": 0.05,
        "max_length": 256,
    },
}

GRPO = {
    # Adam moves every weight by about lr per step whatever the gradient's size, and GRPO
    # gradients on 64 samples are noisy: above ~1e-4 this tiny policy collapses (measured).
    "learning_rate": 3e-5,
    "num_generations": 8,
    "per_device_train_batch_size": 64,
    "max_completion_length": 64,
    "max_steps": 120,
    "temperature": 1.0,
    "beta": 0.0,
    "logging_steps": 5,
    "lr_scheduler_type": "constant",
    "activation_checkpointing": False,
    "save_strategy": "no",
    "report_to": "none",
    "rewards": [{"name": "math", "weight": 1.0}, {"name": "format", "weight": 0.1}],
}

# R1's distillation data: rejection sampling from the RL checkpoint on fresh problems.
REJECTION_SAMPLING = {"num_problems": 4000, "num_samples": 2, "temperature": 0.6}  # R1 sampled at 0.6

DISTILL = {
    # A fixed step budget, whatever the export's size. The student learns column addition in a
    # sudden transition somewhere around 700-1000 updates (measured: 37% after 900 steps on one
    # export, 98% after 1500 steps on the same export), so 1500 leaves a margin.
    "max_steps": 1500,
    "learning_rate": 3e-3,
    "per_device_train_batch_size": 32,
    "lr_scheduler_type": "cosine",
    "warmup_steps": 0.05,
    "max_length": 256,
    "save_strategy": "no",
    "report_to": "none",
}

QUICK = {  # --quick: the same pipeline with tiny budgets, for tests (numbers are not meaningful)
    "warm_problems": 64,
    "warm_epochs": 1,
    "grpo_steps": 2,
    "num_eval": 16,
    "sample_problems": 16,
    "distill_steps": 4,
}


def warm_start(base: Path, output_dir: Path, data: DataSection, held_questions: set[str], seed: int = 0,
               quick: bool = False, report_to: str = "none") -> Path:
    """SFT of ``base`` on a sloppy teacher's solutions to procedural problems (none of ``held_questions``)."""
    from datasets import Dataset

    from rl_reason.data.tasks import make_problems, prompt_messages
    from rl_reason.distill import run_sft, sft_config

    n_warm = QUICK["warm_problems"] if quick else WARM_START["num_problems"]
    rows = make_problems(n_warm, seed=seed + 1, min_digits=data.min_digits, max_digits=data.max_digits,
                         exclude=held_questions, sloppy_rate=WARM_START["sloppy_rate"])
    dataset = Dataset.from_list([
        {"messages": prompt_messages(r["question"]) + [{"role": "assistant", "content": r["solution"]}]}
        for r in rows
    ])
    args = dict(WARM_START["args"], report_to=report_to,
                **({"num_train_epochs": QUICK["warm_epochs"]} if quick else {}))
    return run_sft(base, dataset, sft_config(output_dir, args, seed))


class MathTask:
    """The math demo's task: column additions, judged by the math verifier on the boxed answer."""

    name = "math"
    run_name = "demo"
    grpo, rejection_sampling, distill = GRPO, REJECTION_SAMPLING, DISTILL
    system_prompt = None  # the data loader's default
    passed = "correct"  # what a verified sample is, in the log

    def __init__(self, seed: int, quick: bool):
        self.data = DataSection(**{**DATA, "seed": seed, **({"num_eval": QUICK["num_eval"]} if quick else {})})

    def build_models(self, models: Path, seed: int) -> None:
        from rl_reason.data.tiny import build_tiny

        build_tiny(models / "base", size="tiny", seed=seed)
        build_tiny(models / "student_base", size="student", seed=seed)

    def heldout(self) -> list[dict]:
        from rl_reason.data.load import procedural_splits

        return procedural_splits(self.data)[1]

    def warm_start(self, base: Path, output_dir: Path, held_questions: set[str], seed: int, quick: bool,
                   report_to: str) -> Path:
        return warm_start(base, output_dir, self.data, held_questions, seed, quick, report_to)

    def evaluate(self, model_dir: Path, heldout: list[dict]) -> dict[str, float]:
        from rl_reason.sampling.evaluate import evaluate

        return {"all": evaluate(model_dir, heldout, max_new_tokens=GRPO["max_completion_length"]).accuracy}

    def grpo_data(self, out: Path, seed: int, held_questions: set[str]) -> dict:
        """The GRPO recipe's ``data`` section (the loader draws the same held-out set and excludes it)."""
        return {**DATA, "seed": seed, "num_train": 4000, "num_eval": self.data.num_eval}

    def sample_problems(self, n: int, seed: int, held_questions: set[str]) -> list[dict]:
        from rl_reason.data.tasks import make_problems

        return make_problems(n, seed=seed, min_digits=self.data.min_digits, max_digits=self.data.max_digits,
                             exclude=held_questions)


def run_pipeline(task, output: str | Path, seed: int = 0, quick: bool = False, report_to: str = "none") -> dict:
    """The R1 pipeline on ``task`` (a ``MathTask`` or ``rl_reason.demo_code.CodeTask``); returns the summary."""
    from rl_reason.distill import load_messages, run_sft, sft_config
    from rl_reason.export.pipeline import export
    from rl_reason.preflight import check_output_dir
    from rl_reason.sampling.sample import sample_traces
    from rl_reason.train.run import load_train_recipe, train

    start = time.time()
    out = check_output_dir(output, "demo")
    models = out / "models"
    timings: dict[str, float] = {}

    def stage(name):
        timings[name] = round(time.time() - start - sum(timings.values()), 1)
        print(f"[demo] {name} done in {timings[name]} s")

    heldout = task.heldout()
    held_questions = {p["question"] for p in heldout}
    evals: dict[str, dict[str, float]] = {}

    def accuracy(name: str, model_dir: Path) -> float:
        evals[name] = task.evaluate(model_dir, heldout)
        families = {k: v for k, v in evals[name].items() if k != "all"}
        print(f"[demo] {name} accuracy {evals[name]['all']:.3f}" + (f" {json.dumps(families)}" if families else ""))
        return evals[name]["all"]

    # 1. Tiny policy and student, built from code.
    task.build_models(models, seed)

    # 2. Warm start on the sloppy teacher's solutions.
    task.warm_start(models / "base", models / "warm_start", held_questions, seed, quick, report_to)
    stage("warm_start")
    warm_acc = accuracy("warm_start", models / "warm_start")

    # 3. GRPO from the warm start, through the same recipe path as `rl-reason train`.
    run_name = f"{task.run_name}-seed{seed}"
    grpo_recipe = {
        **{k: v for k, v in task.grpo.items() if k != "rewards"},
        "output_dir": str(out / "grpo"),
        "seed": seed,
        "max_steps": QUICK["grpo_steps"] if quick else task.grpo["max_steps"],
        "report_to": report_to,
        "model": {"name_or_path": str(models / "warm_start")},
        "data": task.grpo_data(out, seed, held_questions),
        "rewards": task.grpo["rewards"],
        "run_name": run_name,
    }
    (out / "grpo_recipe.yaml").write_text(yaml.safe_dump(grpo_recipe, sort_keys=False))
    result = train(load_train_recipe(out / "grpo_recipe.yaml"))
    stage("grpo")
    policy_acc = accuracy("policy", out / "grpo")

    # 4. Rejection sampling from the RL checkpoint on fresh problems, into the same trace store (R1's
    # distillation data), judged by the same rewards.
    sampling = task.rejection_sampling
    sample_rows = task.sample_problems(QUICK["sample_problems"] if quick else sampling["num_problems"], seed + 2,
                                       held_questions)
    sampled = sample_traces(
        out / "grpo", sample_rows, result.traces_dir,
        reward_specs=[(r["name"], r["weight"], {}) for r in task.grpo["rewards"]],
        num_samples=sampling["num_samples"], temperature=sampling["temperature"],
        max_new_tokens=task.grpo["max_completion_length"], seed=seed, run_id=f"{run_name}-sample",
        system_prompt=task.system_prompt,
    )
    print(f"[demo] rejection sampling: {sampled['correct']} of {sampled['samples']} samples {task.passed}")
    stage("rejection_sampling")

    # 5. Export the verified-correct traces and distill the small student on them.
    stats = export(result.traces_dir, out / "export", min_reward=1.0, correct_only=True, select="all")
    stage("export")
    student_base_acc = accuracy("student_base", models / "student_base")
    distill_args = dict(task.distill, **({"max_steps": QUICK["distill_steps"]} if quick else {}))
    if stats.kept:
        run_sft(models / "student_base", load_messages(out / "export"), sft_config(models / "student", distill_args,
                                                                                     seed))
        student_acc = accuracy("student", models / "student")
    else:
        student_acc = student_base_acc
    stage("distill")

    summary = {
        "task": task.name,
        "warm_start_accuracy": warm_acc,
        "policy_accuracy": policy_acc,
        "student_base_accuracy": student_base_acc,
        "student_accuracy": student_acc,
        "by_family": evals,
        "traces": stats.read,
        "exported": stats.kept,
        "heldout_problems": len(heldout),
        "grpo_steps": result.global_step,
        "grpo_traces": stats.read - sampled["samples"],
        "sampled_traces": sampled["samples"],
        "seed": seed,
        "quick": quick,
        "stage_seconds": timings,
        "wall_seconds": round(time.time() - start, 1),
    }
    plot_reward_curve(result.log_history, out / "reward_curve.png", verifier=task.grpo["rewards"][0]["name"])
    from rl_reason.report import write_report

    write_report(out / "grpo", out / "report.html")
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print_summary(summary)
    return summary


def run_demo(output: str | Path, seed: int = 0, quick: bool = False, report_to: str = "none") -> dict:
    return run_pipeline(MathTask(seed, quick), output, seed, quick, report_to)


def plot_reward_curve(log_history: list[dict], path: Path, verifier: str = "math") -> None:
    """The weighted reward and the verifier's reward (``verifier``: a registry name) per logged GRPO step."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from rewards.registry import REWARDS

    verifier = REWARDS[verifier].func_name  # under the name TRL logs it by
    key = f"rewards/{verifier}/mean"
    points = [(h["step"], h["reward"]) for h in log_history if "reward" in h]
    acc = [(h["step"], h[key]) for h in log_history if key in h]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    if points:
        ax.plot(*zip(*points), label="weighted reward", marker="o")
    if acc:
        ax.plot(*zip(*acc), label=f"{verifier} (sampled)", marker=".")
    ax.set_xlabel("GRPO step")
    ax.set_ylabel("mean reward")
    ax.set_title("GRPO reward curve")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def print_summary(summary: dict) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title="rl-reason demo (held-out accuracy, greedy)")
    table.add_column("model")
    table.add_column("accuracy", justify="right")
    table.add_row("warm start (SFT)", f"{summary['warm_start_accuracy']:.1%}")
    table.add_row("policy after GRPO", f"{summary['policy_accuracy']:.1%}")
    table.add_row("student, undistilled", f"{summary['student_base_accuracy']:.1%}")
    table.add_row("student, distilled", f"{summary['student_accuracy']:.1%}")
    console = Console()
    console.print(table)
    console.print(
        f"traces {summary['traces']}, exported {summary['exported']}, "
        f"GRPO steps {summary['grpo_steps']}, wall {summary['wall_seconds']} s"
    )
