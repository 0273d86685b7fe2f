"""The ``rl-reason`` command line. Heavy imports happen inside commands, so ``--help`` is instant."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer

from rl_reason.config import ConfigError

app = typer.Typer(
    help="R1-style GRPO reasoning trainer: train, export traces, distill a student, evaluate.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

Overrides = Annotated[Optional[list[str]], typer.Argument(help="KEY=VALUE overrides, e.g. learning_rate=1e-5 model.name_or_path=out/sft")]


def _fail(message: str) -> None:
    typer.echo(f"error: {message}", err=True)
    raise typer.Exit(2)


def train_summary(result) -> str:
    """A few lines a person reads at the end of a run: where things are and how it went."""
    logged = [h for h in result.log_history if "reward" in h]
    lines = [f"done: {result.global_step} steps, model in {result.output_dir}"]
    if logged:
        first, last = logged[0], logged[-1]
        health = ", ".join(f"{name} {last[key]:.2f}" for name, key in (("pass rate", "health/pass_rate"), ("format rate", "health/format_rate"))
                           if isinstance(last.get(key), (int, float)))
        lines.append(f"reward {first['reward']:.3f} (step {first['step']}) -> {last['reward']:.3f} (step {last['step']})"
                     + (f"; {health}" if health else ""))
        if isinstance(last.get("traces/written"), (int, float)):
            lines.append(f"traces: {int(last['traces/written'])} written by rank 0 in {result.traces_dir}")
    if result.traces_dir:
        lines.append(f"next: rl-reason report {result.output_dir}  |  rl-reason export {result.traces_dir} OUT")
    return "\n".join(lines)


@app.command()
def train(
    config: Annotated[Path, typer.Argument(help="YAML recipe: GRPOConfig keys plus model/data/rewards/traces sections")],
    overrides: Overrides = None,
    resume: Annotated[bool, typer.Option("--resume", help="continue from the last checkpoint in output_dir")] = False,
):
    """GRPO training with TRL's GRPOTrainer; every scored completion is kept in OUTPUT_DIR/traces."""
    from rl_reason.train import load_train_recipe
    from rl_reason.train import train as run_train

    try:
        recipe = load_train_recipe(config, overrides or [])
        result = run_train(recipe, resume=resume)
    except ConfigError as exc:
        _fail(str(exc))
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
        _fail(str(exc))
    typer.echo(f"done: student in {out}")


@app.command()
def demo(
    output: Annotated[Path, typer.Option("--output", "-o", help="directory for models, traces, dataset, summary.json")] = Path("demo_out"),
    seed: Annotated[int, typer.Option()] = 0,
    quick: Annotated[bool, typer.Option("--quick", help="tiny budgets, for smoke tests; the numbers mean nothing")] = False,
    report_to: Annotated[str, typer.Option(help="'none' or 'wandb' (offline without an account)")] = "none",
):
    """The R1 pipeline in miniature: tiny model, warm start, GRPO, export, distill, evals."""
    from rl_reason.demo import run_demo

    try:
        run_demo(output, seed=seed, quick=quick, report_to=report_to)
    except ConfigError as exc:
        _fail(str(exc))


@app.command()
def launch(
    config: Annotated[Path, typer.Argument(help="the training recipe")],
    overrides: Overrides = None,
    accelerate_config: Annotated[str, typer.Option(help="zero2, zero3, zero3_offload, multi_gpu (configs/accelerate) or a .yaml path")] = "zero2",
    num_machines: Annotated[int, typer.Option(help="training nodes")] = 1,
    processes_per_machine: Annotated[int, typer.Option(help="processes (GPUs) per training node")] = 1,
    machine_rank: Annotated[Optional[int], typer.Option(help="this node's rank (default: $NODE_RANK, $SLURM_NODEID or 0)")] = None,
    main_process_ip: Annotated[str, typer.Option(help="rank-0 node address (default: $MASTER_ADDR or 127.0.0.1)")] = "",
    main_process_port: Annotated[int, typer.Option()] = 29500,
    slurm: Annotated[bool, typer.Option("--slurm", help="take nodes, ranks and GPUs from the SLURM allocation")] = False,
    vllm_node: Annotated[bool, typer.Option("--vllm-node", help="with --slurm: the last node serves vLLM for the others")] = False,
    model: Annotated[Optional[str], typer.Option(help="model the vLLM server serves (the recipe's policy)")] = None,
    resume: Annotated[bool, typer.Option("--resume")] = False,
    mixed_precision: Annotated[Optional[str], typer.Option(help="override the accelerate config's mixed precision (no, bf16, fp16)")] = None,
    vllm_timeout: Annotated[float, typer.Option(help="seconds training nodes wait for the vLLM server's /health")] = 900.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="print every node's command and exit")] = False,
):
    """Start this node's part of a (multi-node) run, or print every node's command with --dry-run."""
    import os

    from rl_reason.launch import LaunchPlan, all_commands, format_commands, plan_from_slurm

    plan = LaunchPlan(
        recipe=str(config), overrides=overrides or [], accelerate_config=accelerate_config,
        num_machines=num_machines, processes_per_machine=processes_per_machine,
        main_process_ip=main_process_ip or os.environ.get("MASTER_ADDR", "127.0.0.1"),
        main_process_port=main_process_port, model=model, resume=resume,
        extra_accelerate_args=["--mixed_precision", mixed_precision] if mixed_precision else [],
    )
    try:
        if slurm:
            plan = plan_from_slurm(plan, use_vllm_node=vllm_node)
        commands = all_commands(plan)
    except (ValueError, KeyError) as exc:
        _fail(f"launch: {exc}")
    if dry_run:
        typer.echo(format_commands(commands))
        return
    rank = machine_rank
    if rank is None:
        rank = int(os.environ.get("NODE_RANK") or os.environ.get("SLURM_NODEID") or 0)
    node = list(commands)[rank]
    cmd = commands[node]
    if plan.vllm_node and node != plan.vllm_node:
        from rl_reason.launch import wait_for_vllm

        typer.echo(f"[{node}] waiting for the vLLM server on {plan.vllm_node}:{plan.vllm_port}", err=True)
        try:
            wait_for_vllm(plan.vllm_node, plan.vllm_port, timeout=vllm_timeout)
        except TimeoutError as exc:
            _fail(str(exc))
    typer.echo(f"[{node}] {' '.join(cmd)}", err=True)
    import shutil

    # accelerate/trl sit beside this interpreter even when its venv is not on PATH.
    bin_dir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    program = shutil.which(cmd[0]) or str(Path(bin_dir) / cmd[0])
    os.execv(program, [program, *cmd[1:]])


def _register_command_modules() -> None:
    # Commands that live beside the code they drive: traces → datasets → evaluation, and reports.
    from rl_reason import cli_data, cli_report

    cli_data.register(app)
    cli_report.register(app)


_register_command_modules()


def main() -> None:
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)


if __name__ == "__main__":
    main()
