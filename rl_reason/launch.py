"""Every node's launch command, computed in Python so it can be tested; the shell scripts stay thin.

A job is N training nodes running ``accelerate launch`` (DeepSpeed configs from
``configs/accelerate``) and, when the recipe generates with a vLLM server (``vllm_mode: server``)
or ``--vllm-node`` asks for one, one more node running vLLM's own server the way TRL's
``VLLMClient`` expects it (``VLLM_SERVER_DEV_MODE=1 vllm serve ...``, flags from TRL's own
translation in ``trl/scripts/vllm_serve.py``). Machine ranks 0..N-1 train; rank N serves.

The recipe is the one source of truth: mixed precision, the server's port and the weight-sync
port are read from it and handed to both sides, so accelerate, DeepSpeed, the Trainer, the
server and the client cannot disagree. Everything checkable is checked here, before any
process starts: a mistake is one line (``LaunchError``), exit 2.

Rank, node count and master address come from the arguments or, under SLURM, from the job's
environment (``SLURM_JOB_NODELIST``, ``SLURM_NODEID``, ``SLURM_GPUS_ON_NODE``).
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from rl_reason.config import ConfigError

# Shipped inside the package, so a wheel install has them too; configs/accelerate links here.
ACCELERATE_CONFIGS = Path(__file__).resolve().parent / "accelerate"
# Shown in a dry run for an address nobody gave; a real launch refuses instead of guessing.
PLACEHOLDER = "<{}-address>"


class LaunchError(ConfigError):
    """A launch that cannot work as asked: one line, exit 2, before any process starts."""


@dataclass
class VllmServer:
    """The vLLM node: what it serves, where the trainers find it."""

    node: str  # its name in the plan
    host: str  # the address training nodes connect to
    model: str
    port: int = 8000  # the recipe's vllm_server_port
    group_port: int = 51216  # the recipe's vllm_group_port: rank 0 hosts the weight-sync rendezvous there
    tensor_parallel_size: int = 1
    data_parallel_size: int = 1


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
    mixed_precision: str = "no"  # from the recipe's bf16/fp16
    vllm: VllmServer | None = None
    resume: bool = False

    @property
    def world_size(self) -> int:
        return self.num_machines * self.processes_per_machine

    @property
    def nodes(self) -> list[str]:
        """Every node of the plan in machine-rank order: training nodes, then the vLLM node."""
        train = self.train_nodes or [f"node{i}" for i in range(self.num_machines)]
        return train + ([self.vllm.node] if self.vllm else [])


def resolve_accelerate_config(name: str) -> Path:
    """A bare name (``zero2``) means the shipped ``configs/accelerate/zero2.yaml``; a path is taken as is."""
    path = Path(name)
    if path.suffix in {".yaml", ".yml"} and path.exists():
        return path
    candidate = ACCELERATE_CONFIGS / f"{name}.yaml"
    if candidate.exists():
        return candidate
    known = sorted(p.stem for p in ACCELERATE_CONFIGS.glob("*.yaml"))
    raise LaunchError(f"launch: accelerate config {name!r} not found; choose one of {known} or give a .yaml path")


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
        # From the recipe: DeepSpeed's bf16/fp16 section and the Trainer's flags must agree.
        "--mixed_precision", plan.mixed_precision,
    ]
    if plan.num_machines > 1:
        # c10d rendezvous: nodes may start in any order and wait for each other.
        cmd += ["--rdzv_backend", "c10d", "--same_network"]
        if _is_deepspeed(plan.accelerate_config):
            # One torchrun per node (what SLURM and our launchers do), not DeepSpeed's pdsh fan-out.
            cmd += ["--deepspeed_multinode_launcher", "standard"]
    cmd += ["-m", "rl_reason.cli", "train", plan.recipe, *plan.overrides]
    if plan.vllm:
        cmd += ["use_vllm=true", "vllm_mode=server", f"vllm_server_host={plan.vllm.host}",
                f"vllm_server_port={plan.vllm.port}", f"vllm_group_port={plan.vllm.group_port}"]
    if plan.resume:
        cmd.append("--resume")
    return cmd


def vllm_command(server: VllmServer) -> list[str]:
    """``VLLM_SERVER_DEV_MODE=1 vllm serve MODEL ...``: TRL 1.16's own translation (``trl vllm-serve``
    is deprecated and only execs this). Leading ``NAME=value`` items are environment variables."""
    from trl.scripts.vllm_serve import ScriptArguments, build_command

    # The server binds every interface; trainers reach it at server.host.
    args = ScriptArguments(model=server.model, host="0.0.0.0", port=server.port,
                           tensor_parallel_size=server.tensor_parallel_size,
                           data_parallel_size=server.data_parallel_size)
    command = build_command(args)
    return ["VLLM_SERVER_DEV_MODE=1", "vllm", *command[command.index("serve"):]]


def split_env(cmd: list[str]) -> tuple[dict[str, str], list[str]]:
    """Leading ``NAME=value`` items as an environment, and the program with its arguments."""
    env = {}
    while cmd and re.fullmatch(r"[A-Z_][A-Z0-9_]*=.*", cmd[0]):
        name, _, value = cmd[0].partition("=")
        env[name] = value
        cmd = cmd[1:]
    return env, cmd


def all_commands(plan: LaunchPlan) -> dict[str, list[str]]:
    """Node name → command, in machine-rank order: training nodes, then the vLLM node."""
    nodes = plan.nodes
    train = nodes[: len(nodes) - (1 if plan.vllm else 0)]
    if len(train) != plan.num_machines:
        raise LaunchError(f"launch: {len(train)} training nodes listed for num_machines={plan.num_machines}")
    commands = {node: train_command(plan, rank) for rank, node in enumerate(train)}
    if plan.vllm:
        commands[plan.vllm.node] = vllm_command(plan.vllm)
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
    """An IP for a node: ranks on other nodes may not resolve short SLURM host names alike.

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


def plan_from_slurm(plan: LaunchPlan, env: dict | None = None) -> LaunchPlan:
    """Fill nodes, ranks and addresses from a SLURM allocation; a planned vLLM node takes the last node."""
    env = dict(os.environ if env is None else env)
    if "SLURM_JOB_NODELIST" not in env:
        raise LaunchError("launch --slurm: SLURM_JOB_NODELIST is not set "
                          "(run it inside an allocation: sbatch, salloc, srun)")
    nodes = expand_nodelist(env["SLURM_JOB_NODELIST"])
    if plan.vllm:
        if len(nodes) < 2:
            raise LaunchError("launch --slurm: a vLLM server node needs at least 2 nodes in the allocation, "
                              f"got {len(nodes)}")
        plan.vllm.node = nodes[-1]
        plan.vllm.host = resolve_address(nodes[-1])
        nodes = nodes[:-1]
    plan.train_nodes = nodes
    plan.num_machines = len(nodes)
    gpus = env.get("SLURM_GPUS_ON_NODE") or env.get("SLURM_GPUS_PER_NODE")
    if gpus and gpus.split(":")[-1].isdigit():
        plan.processes_per_machine = int(gpus.split(":")[-1])
    plan.main_process_ip = resolve_address(nodes[0])
    return plan


def make_plan(
    recipe_path: str | Path,
    overrides: list[str] = (),
    *,
    accelerate_config: str = "zero2",
    num_machines: int = 1,
    processes_per_machine: int = 1,
    main_process_ip: str | None = None,
    main_process_port: int = 29500,
    slurm: bool = False,
    vllm_node: bool = False,
    vllm_host: str | None = None,
    model: str | None = None,
    vllm_tensor_parallel_size: int = 1,
    vllm_data_parallel_size: int = 1,
    mixed_precision: str | None = None,
    resume: bool = False,
    env: dict | None = None,
):
    """Check every argument and the recipe, then plan every node. Returns ``(plan, recipe, notes)``:
    ``notes`` name what a dry run had to leave as a placeholder (a real launch refuses those)."""
    env = dict(os.environ if env is None else env)
    for name, value in (("--num-machines", num_machines), ("--processes-per-machine", processes_per_machine),
                        ("--vllm-tensor-parallel-size", vllm_tensor_parallel_size),
                        ("--vllm-data-parallel-size", vllm_data_parallel_size)):
        if value < 1:
            raise LaunchError(f"launch: {name} must be at least 1, got {value}")
    if not 1 <= main_process_port <= 65535:
        raise LaunchError(f"launch: --main-process-port must be a port (1-65535), got {main_process_port}")
    if mixed_precision not in (None, "no", "bf16", "fp16"):
        raise LaunchError(f"launch: --mixed-precision must be no, bf16 or fp16, got {mixed_precision!r}")
    if not Path(recipe_path).is_file():
        raise LaunchError(f"{recipe_path}: config file not found")
    resolve_accelerate_config(accelerate_config)

    overrides = list(overrides)
    if mixed_precision is not None:
        # The option is a shorthand for the recipe's own keys, so the recipe stays the one source.
        overrides += [f"bf16={mixed_precision == 'bf16'}".lower(), f"fp16={mixed_precision == 'fp16'}".lower()]
    # Import-time chatter (transformers' "[INFO] Running in WANDB offline mode") must not mix with the plan.
    with contextlib.redirect_stdout(sys.stderr):
        from rl_reason.preflight import mixed_precision as recipe_mixed_precision
        from rl_reason.train.run import load_train_recipe

        recipe = load_train_recipe(recipe_path, overrides)
    args = recipe.args

    server_mode = args.use_vllm and args.vllm_mode == "server"
    if server_mode and args.vllm_server_base_url:
        if vllm_node or vllm_host:
            raise LaunchError("launch: the recipe sets vllm_server_base_url (a server run elsewhere); "
                              "drop it to have the plan start one, or drop --vllm-node/--vllm-host")
        want_server = False
    else:
        want_server = server_mode or vllm_node
    if not want_server:
        given = [name for name, value in (("--model", model), ("--vllm-host", vllm_host)) if value]
        if vllm_tensor_parallel_size != 1 or vllm_data_parallel_size != 1:
            given.append("--vllm-*-parallel-size")
        if given:
            raise LaunchError(f"launch: {', '.join(given)} configure a vLLM server node, and this plan has none "
                              "(the recipe is not vllm_mode: server; add --vllm-node to plan one)")

    notes = []
    plan = LaunchPlan(recipe=str(recipe_path), overrides=overrides, accelerate_config=accelerate_config,
                      num_machines=num_machines, processes_per_machine=processes_per_machine,
                      main_process_port=main_process_port, mixed_precision=recipe_mixed_precision(args),
                      resume=resume)
    if want_server:
        plan.vllm = VllmServer(node=f"node{num_machines}", host="", model=model or recipe.model.name_or_path,
                               port=args.vllm_server_port, group_port=args.vllm_group_port,
                               tensor_parallel_size=vllm_tensor_parallel_size,
                               data_parallel_size=vllm_data_parallel_size)
        if plan.vllm.model == "tiny":
            raise LaunchError("launch: a vLLM node serves a saved model; the recipe's model is 'tiny' "
                              "(built at train time): give --model PATH")
    if slurm:
        if main_process_ip or vllm_host:
            raise LaunchError("launch --slurm: addresses come from the allocation; drop --main-process-ip/--vllm-host")
        return plan_from_slurm(plan, env), recipe, notes

    ip = main_process_ip or env.get("MASTER_ADDR")
    if ip:
        plan.main_process_ip = ip
    elif num_machines > 1:
        plan.main_process_ip = PLACEHOLDER.format("node0")
        notes.append("no --main-process-ip (or $MASTER_ADDR): rank-0 address left as a placeholder")
    if plan.vllm:
        host = vllm_host or env.get("VLLM_HOST")
        if host:
            plan.vllm.host = host
        else:
            plan.vllm.host = PLACEHOLDER.format(plan.vllm.node)
            notes.append(f"no --vllm-host (or $VLLM_HOST): the vLLM node's address left as a placeholder; "
                         f"run machine rank {num_machines} there")
    return plan, recipe, notes


def machine_rank(plan: LaunchPlan, given: int | None, env: dict | None = None) -> int:
    """This node's rank: the option, else ``$NODE_RANK`` / ``$SLURM_NODEID``, else 0; checked against the plan."""
    env = dict(os.environ if env is None else env)
    rank = given
    if rank is None:
        text = env.get("NODE_RANK") or env.get("SLURM_NODEID") or "0"
        if not text.strip().isdigit():
            raise LaunchError(f"launch: machine rank {text!r} (from $NODE_RANK/$SLURM_NODEID) is not a number")
        rank = int(text)
    last = len(plan.nodes) - 1
    if not 0 <= rank <= last:
        what = f"0-{plan.num_machines - 1} train" + (f", {last} serves vLLM" if plan.vllm else "")
        raise LaunchError(f"launch: --machine-rank {rank} is not in this plan ({what})")
    return rank


def check_placeholders(plan: LaunchPlan, rank: int) -> None:
    """A real launch never guesses an address (a wrong one hangs every node until a timeout)."""
    if rank >= plan.num_machines:
        return  # the vLLM node only binds
    if plan.main_process_ip.startswith("<"):
        raise LaunchError(f"launch: --num-machines {plan.num_machines} needs --main-process-ip (or $MASTER_ADDR): "
                          "the address of machine rank 0, reachable from every node")
    if plan.vllm and plan.vllm.host.startswith("<"):
        raise LaunchError("launch: the recipe generates with a vLLM server: give its address with --vllm-host "
                          f"(or $VLLM_HOST), and run machine rank {plan.num_machines} on that node")


def start_node(plan: LaunchPlan, recipe, rank: int, vllm_timeout: float = 900.0, say=print) -> None:
    """Run machine ``rank``'s part of the plan in this process (``execve``: the launcher becomes it).

    A training node first runs the trainer's own preflight (and, on rank 0, checks that no live
    run holds OUTPUT_DIR), then waits for the vLLM server when there is one."""
    import shutil

    check_placeholders(plan, rank)
    node = plan.nodes[rank]
    serving = plan.vllm is not None and node == plan.vllm.node
    if not serving:
        from rl_reason.train.run_lock import holder_of, refusal
        from rl_reason.train.run import preflight

        preflight(recipe)
        holder = holder_of(recipe.args.output_dir) if rank == 0 else None
        if holder:
            raise LaunchError(f"{recipe.source}: {refusal(recipe.args.output_dir, holder)}")
    commands = all_commands(plan)
    env, cmd = split_env(commands[node])
    # accelerate and vllm sit beside this interpreter even when its venv is not on PATH.
    bin_dir = str(Path(sys.executable).parent)
    os.environ["PATH"] = bin_dir + os.pathsep + os.environ.get("PATH", "")
    program = shutil.which(cmd[0])
    if program is None:
        raise LaunchError(f"launch: {cmd[0]!r} is not installed on this node"
                          + (" (pip install -e '.[vllm]')" if serving else ""))
    if plan.vllm and not serving:
        say(f"[{node}] waiting for the vLLM server on {plan.vllm.host}:{plan.vllm.port}")
        try:
            wait_for_vllm(plan.vllm.host, plan.vllm.port, timeout=vllm_timeout)
        except TimeoutError as exc:
            raise LaunchError(str(exc)) from None
    say(format_commands({node: commands[node]}))
    os.execve(program, [program, *cmd[1:]], {**os.environ, **env})


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
