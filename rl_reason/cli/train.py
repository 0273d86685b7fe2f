"""Commands of the training stages: ``train``, ``distill``, ``demo`` and ``launch``."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated, Optional

import typer

from rl_reason.cli.app import Overrides, app, fail
from rl_reason.config import ConfigError


def train_summary(result) -> str:
    """A few lines a person reads at the end of a run: where things are and how it went."""
    logged = [h for h in result.log_history if "reward" in h]
    lines = [f"done: {result.global_step} steps, model in {result.output_dir}"]
    if logged:
        first, last = logged[0], logged[-1]
        rates = (("pass rate", "health/pass_rate"), ("format rate", "health/format_rate"))
        health = ", ".join(f"{name} {last[key]:.2f}" for name, key in rates if isinstance(last.get(key), (int, float)))
        lines.append(f"reward {first['reward']:.3f} (step {first['step']}) -> "
                     f"{last['reward']:.3f} (step {last['step']})" + (f"; {health}" if health else ""))
        if isinstance(last.get("traces/written"), (int, float)):
            lines.append(f"traces: {int(last['traces/written'])} written by rank 0 in {result.traces_dir}")
    if result.traces_dir:
        lines.append(f"next: rl-reason report {result.output_dir}  |  rl-reason export {result.traces_dir} OUT")
    return "\n".join(lines)


@app.command()
def train(
    config: Annotated[Path, typer.Argument(
        help="YAML recipe: GRPOConfig keys plus model/data/rewards/traces sections")],
    overrides: Overrides = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue from the last checkpoint in output_dir")] = False,
):
    """GRPO training with TRL's GRPOTrainer; every scored completion is kept in OUTPUT_DIR/traces."""
    from rl_reason.train.lifeline import follow_launcher
    from rl_reason.train.run import load_train_recipe
    from rl_reason.train.run import train as run_train

    follow_launcher()
    try:
        recipe = load_train_recipe(config, overrides or [])
        result = run_train(recipe, resume=resume)
    except ConfigError as exc:
        fail(str(exc))
    import torch.distributed as dist

    # Every rank says it finished (a launcher log shows which did); rank 0 adds the run's summary.
    main = not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0
    typer.echo(train_summary(result) if main else f"done: {result.global_step} steps")

    if dist.is_available() and dist.is_initialized():
        # Leave the process group cleanly, so the launcher's exit barrier releases every node at once.
        dist.barrier()
        dist.destroy_process_group()


@app.command()
def distill(
    config: Annotated[Path, typer.Argument(help="YAML recipe: SFTConfig keys plus model/data sections")],
    overrides: Overrides = None,
):
    """Train a student on an exported dataset with TRL's SFTTrainer (loss on assistant tokens only)."""
    from rl_reason.distill import distill as run_distill
    from rl_reason.distill import load_distill_recipe

    try:
        out = run_distill(load_distill_recipe(config, overrides or []))
    except ConfigError as exc:
        fail(str(exc))
    typer.echo(f"done: student in {out}")


class DemoTask(str, Enum):
    math = "math"
    code = "code"


@app.command()
def demo(
    output: Annotated[Path, typer.Option(
        "--output", "-o", help="directory for models, traces, dataset, summary.json")] = Path("demo_out"),
    seed: Annotated[int, typer.Option()] = 0,
    quick: Annotated[bool, typer.Option(
        "--quick", help="tiny budgets, for smoke tests; the numbers mean nothing")] = False,
    report_to: Annotated[str, typer.Option(help="'none' or 'wandb' (offline without an account)")] = "none",
    task: Annotated[DemoTask, typer.Option(
        "--task", help="math: column addition, checked by the math verifier; code: one-line Python functions, "
        "rewarded by running their tests in the sandbox")] = DemoTask.math,
):
    """The R1 pipeline in miniature: tiny model, warm start, GRPO, export, distill, evals."""
    if task is DemoTask.code:
        from rl_reason.demo_code import run_demo
    else:
        from rl_reason.demo import run_demo

    try:
        run_demo(output, seed=seed, quick=quick, report_to=report_to)
    except ConfigError as exc:
        fail(str(exc))


@app.command()
def launch(
    config: Annotated[Path, typer.Argument(help="the training recipe")],
    overrides: Overrides = None,
    accelerate_config: Annotated[str, typer.Option(
        help="zero2, zero3, zero3_offload, multi_gpu (configs/accelerate) or a .yaml path")] = "zero2",
    num_machines: Annotated[int, typer.Option(help="training nodes")] = 1,
    processes_per_machine: Annotated[int, typer.Option(help="processes (GPUs) per training node")] = 1,
    machine_rank: Annotated[Optional[int], typer.Option(
        help="this node's rank: 0..N-1 train, N serves vLLM (default: $NODE_RANK, $SLURM_NODEID or 0)")] = None,
    main_process_ip: Annotated[str, typer.Option(
        help="rank-0 node address (default: $MASTER_ADDR; required with several machines)")] = "",
    main_process_port: Annotated[int, typer.Option()] = 29500,
    slurm: Annotated[bool, typer.Option(
        "--slurm", help="take nodes, ranks, GPUs and addresses from the SLURM allocation")] = False,
    vllm_node: Annotated[bool, typer.Option(
        "--vllm-node", help="plan a vLLM server node even if the recipe is not vllm_mode: server")] = False,
    vllm_host: Annotated[str, typer.Option(
        help="address of the vLLM node, as training nodes reach it (default: $VLLM_HOST; from the allocation "
             "with --slurm)")] = "",
    model: Annotated[Optional[str], typer.Option(
        help="what the vLLM node serves (default: the recipe's model)")] = None,
    vllm_tensor_parallel_size: Annotated[int, typer.Option(help="GPUs per vLLM engine on the vLLM node")] = 1,
    vllm_data_parallel_size: Annotated[int, typer.Option(
        help="vLLM engines on the vLLM node (MoE models; keep 1 for dense)")] = 1,
    resume: Annotated[bool, typer.Option("--resume")] = False,
    mixed_precision: Annotated[Optional[str], typer.Option(
        help="shorthand for the recipe's bf16/fp16 keys (no, bf16, fp16); the recipe decides otherwise")] = None,
    vllm_timeout: Annotated[float, typer.Option(
        help="seconds training nodes wait for the vLLM server's /health")] = 900.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print every node's command and exit")] = False,
):
    """Start this node's part of a (multi-node) run, or print every node's command with --dry-run.

    Every argument and the recipe are checked before any process starts. A recipe with
    vllm_mode: server gets a vLLM node in the plan (machine rank N, after the N training nodes)."""
    from rl_reason import launch as L

    try:
        plan, recipe, notes = L.make_plan(
            config, overrides or [], accelerate_config=accelerate_config, num_machines=num_machines,
            processes_per_machine=processes_per_machine, main_process_ip=main_process_ip or None,
            main_process_port=main_process_port, slurm=slurm, vllm_node=vllm_node, vllm_host=vllm_host or None,
            model=model, vllm_tensor_parallel_size=vllm_tensor_parallel_size,
            vllm_data_parallel_size=vllm_data_parallel_size, mixed_precision=mixed_precision, resume=resume,
        )
        if dry_run:
            for note in notes:
                typer.echo(f"note: {note}", err=True)
            typer.echo(L.format_commands(L.all_commands(plan)))
            return
        L.start_node(plan, recipe, L.machine_rank(plan, machine_rank), vllm_timeout=vllm_timeout,
                     say=lambda line: typer.echo(line, err=True))
    except ConfigError as exc:
        fail(str(exc))
