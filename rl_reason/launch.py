"""Every node's launch command, computed in Python so it can be tested; the shell scripts stay thin.

A job is N training nodes running ``accelerate launch`` (DeepSpeed configs from
``configs/accelerate``) and, optionally, one node running vLLM's server the way TRL 1.16 expects
(``trl vllm-serve`` execs ``vllm serve`` with the weight-transfer settings, and the trainer's
rank 0 hosts the weight-sync rendezvous on ``vllm_group_port``).

Rank, node count and master address come from the arguments or, under SLURM, from the job's
environment (``SLURM_JOB_NODELIST``, ``SLURM_NODEID``, ``SLURM_GPUS_ON_NODE``).
"""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
ACCELERATE_CONFIGS = REPO / "configs" / "accelerate"


@dataclass
class LaunchPlan:
    recipe: str
    overrides: list[str] = field(default_factory=list)
    accelerate_config: str = "zero2"
    num_machines: int = 1
    processes_per_machine: int = 1
    main_process_ip: str = "127.0.0.1"
    main_process_port: int = 29500
    train_nodes: list[str] = field(default_factory=list)
    vllm_node: str | None = None
    vllm_port: int = 8000
    vllm_tensor_parallel_size: int = 1
    model: str | None = None  # what the vLLM server serves
    resume: bool = False
    extra_accelerate_args: list[str] = field(default_factory=list)

    @property
    def world_size(self) -> int:
        return self.num_machines * self.processes_per_machine


def resolve_accelerate_config(name: str) -> Path:
    """A bare name (``zero2``) means ``configs/accelerate/zero2.yaml``; a path is taken as is."""
    path = Path(name)
    if path.suffix in {".yaml", ".yml"} and path.exists():
        return path
    candidate = ACCELERATE_CONFIGS / f"{name}.yaml"
    if candidate.exists():
        return candidate
    known = sorted(p.stem for p in ACCELERATE_CONFIGS.glob("*.yaml"))
    raise ValueError(f"accelerate config {name!r} not found; choose one of {known} or give a .yaml path")


def _is_deepspeed(config: str) -> bool:
    import yaml

    return yaml.safe_load(resolve_accelerate_config(config).read_text()).get("distributed_type") == "DEEPSPEED"


def train_command(plan: LaunchPlan, machine_rank: int) -> list[str]:
    """The command one training node runs."""
    cmd = [
        "accelerate", "launch",
        "--config_file", str(resolve_accelerate_config(plan.accelerate_config)),
        "--num_machines", str(plan.num_machines),
        "--num_processes", str(plan.world_size),
        "--machine_rank", str(machine_rank),
        "--main_process_ip", plan.main_process_ip,
        "--main_process_port", str(plan.main_process_port),
    ]
    if plan.num_machines > 1:
        # c10d rendezvous: nodes may start in any order and wait for each other.
        cmd += ["--rdzv_backend", "c10d", "--same_network"]
        if _is_deepspeed(plan.accelerate_config):
            # One torchrun per node (what SLURM and our launchers do), not DeepSpeed's pdsh fan-out.
            cmd += ["--deepspeed_multinode_launcher", "standard"]
    cmd += [*plan.extra_accelerate_args, "-m", "rl_reason.cli", "train", plan.recipe, *plan.overrides]
    if plan.vllm_node:
        cmd += ["use_vllm=true", "vllm_mode=server", f"vllm_server_host={plan.vllm_node}", f"vllm_server_port={plan.vllm_port}"]
    if plan.resume:
        cmd.append("--resume")
    return cmd


def vllm_command(plan: LaunchPlan) -> list[str]:
    """The vLLM server node's command, as TRL 1.16's ``trl vllm-serve`` starts it."""
    if not plan.model:
        raise ValueError("a vLLM node needs the model to serve (--model)")
    return [
        "trl", "vllm-serve",
        "--model", plan.model,
        "--host", "0.0.0.0",
        "--port", str(plan.vllm_port),
        "--tensor_parallel_size", str(plan.vllm_tensor_parallel_size),
    ]


def all_commands(plan: LaunchPlan) -> dict[str, list[str]]:
    """Node name (or ``node<rank>``) → command, training nodes first."""
    nodes = plan.train_nodes or [f"node{i}" for i in range(plan.num_machines)]
    if len(nodes) != plan.num_machines:
        raise ValueError(f"{len(nodes)} training nodes listed for num_machines={plan.num_machines}")
    commands = {node: train_command(plan, rank) for rank, node in enumerate(nodes)}
    if plan.vllm_node:
        commands[plan.vllm_node] = vllm_command(plan)
    return commands


def format_commands(commands: dict[str, list[str]]) -> str:
    return "\n".join(f"[{node}] {shlex.join(cmd)}" for node, cmd in commands.items())


def expand_nodelist(nodelist: str) -> list[str]:
    """SLURM's compressed node list (``n[1-3,5],gpu7``) as host names; ``scontrol`` when present."""
    try:
        out = subprocess.run(["scontrol", "show", "hostnames", nodelist], capture_output=True, text=True, timeout=10)
        if out.returncode == 0 and out.stdout.strip():
            return out.stdout.split()
    except (FileNotFoundError, subprocess.TimeoutExpired):
        pass
    hosts = []
    for part in re.findall(r"[^,\[]+(?:\[[^\]]*\])?", nodelist):
        m = re.fullmatch(r"(.*)\[(.*)\]", part)
        if not m:
            hosts.append(part)
            continue
        prefix, ranges = m.groups()
        for r in ranges.split(","):
            lo, _, hi = r.partition("-")
            if hi:
                width = len(lo)
                hosts += [f"{prefix}{i:0{width}d}" for i in range(int(lo), int(hi) + 1)]
            else:
                hosts.append(prefix + lo)
    return hosts


def resolve_address(host: str) -> str:
    """An IP for the master: ranks on other nodes may not resolve short SLURM host names alike.

    DNS first, then SLURM's own record of the node (``NodeAddr``), else the name unchanged.
    """
    try:
        return socket.gethostbyname(host)
    except OSError:
        pass
    try:
        out = subprocess.run(["scontrol", "show", "node", host], capture_output=True, text=True, timeout=10).stdout
        m = re.search(r"\bNodeAddr=(\S+)", out)
        if m:
            return socket.gethostbyname(m.group(1))
    except (FileNotFoundError, subprocess.TimeoutExpired, OSError):
        pass
    return host


def plan_from_slurm(plan: LaunchPlan, env: dict | None = None, use_vllm_node: bool = False) -> LaunchPlan:
    """Fill nodes, ranks and the master address from a SLURM allocation."""
    env = dict(os.environ if env is None else env)
    nodes = expand_nodelist(env["SLURM_JOB_NODELIST"])
    if use_vllm_node:
        if len(nodes) < 2:
            raise ValueError("a vLLM server node needs at least 2 nodes in the allocation")
        plan.vllm_node = nodes[-1]
        nodes = nodes[:-1]
    plan.train_nodes = nodes
    plan.num_machines = len(nodes)
    gpus = env.get("SLURM_GPUS_ON_NODE") or env.get("SLURM_GPUS_PER_NODE")
    if gpus and gpus.split(":")[-1].isdigit():
        plan.processes_per_machine = int(gpus.split(":")[-1])
    plan.main_process_ip = resolve_address(nodes[0])
    return plan


def wait_for_vllm(host: str, port: int, timeout: float = 900.0, interval: float = 5.0) -> None:
    """Block until the vLLM server answers ``/health``; raise after ``timeout`` seconds."""
    import time
    import urllib.request

    url = f"http://{host}:{port}/health"
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=interval) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"vLLM server at {url} not healthy after {timeout:.0f} s (see its node's log)")
        time.sleep(interval)
