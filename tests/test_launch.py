"""Launch plans: every node's command from arguments or a SLURM allocation (no cluster needed)."""

import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from rl_reason.launch import (
    LaunchError,
    LaunchPlan,
    VllmServer,
    all_commands,
    expand_nodelist,
    plan_from_slurm,
    resolve_accelerate_config,
)


REPO = Path(__file__).resolve().parents[1]


def test_single_node():
    (cmd,) = all_commands(LaunchPlan(recipe="r.yaml", processes_per_machine=4)).values()
    assert cmd[:2] == ["accelerate", "launch"]
    assert cmd[cmd.index("--num_processes") + 1] == "4"
    assert cmd[cmd.index("--config_file") + 1].endswith("rl_reason/accelerate/zero2.yaml")
    assert cmd[-3:] == ["rl_reason.cli", "train", "r.yaml"]
    assert "--rdzv_backend" not in cmd


def test_multi_node_ranks_and_world_size():
    plan = LaunchPlan(recipe="r.yaml", overrides=["learning_rate=1e-6"], num_machines=3, processes_per_machine=8,
                      main_process_ip="10.0.0.1", accelerate_config="zero3", resume=True)
    commands = list(all_commands(plan).values())
    assert [c[c.index("--machine_rank") + 1] for c in commands] == ["0", "1", "2"]
    for c in commands:
        assert c[c.index("--num_processes") + 1] == "24" and c[c.index("--num_machines") + 1] == "3"
        assert c[c.index("--main_process_ip") + 1] == "10.0.0.1"
        assert "c10d" in c and c[-2:] == ["learning_rate=1e-6", "--resume"]


@pytest.mark.parametrize(
    "nodelist, hosts",
    [("n1", ["n1"]), ("n[1-3]", ["n1", "n2", "n3"]),
     ("gpu[08-10,12],cpu1", ["gpu08", "gpu09", "gpu10", "gpu12", "cpu1"])],
)
def test_expand_nodelist(nodelist, hosts):
    assert expand_nodelist(nodelist) == hosts


def test_slurm_allocation_with_a_vllm_node():
    env = {"SLURM_JOB_NODELIST": "localhost,n[2-3]", "SLURM_GPUS_ON_NODE": "8"}
    plan = LaunchPlan(recipe="r.yaml", vllm=VllmServer(node="", host="", model="m", port=8001, group_port=51300))
    plan = plan_from_slurm(plan, env=env)
    assert plan.train_nodes == ["localhost", "n2"] and plan.vllm.node == "n3"
    assert plan.processes_per_machine == 8 and plan.world_size == 16
    assert plan.main_process_ip.count(".") == 3  # resolved to an address
    commands = all_commands(plan)
    assert commands["n3"][:4] == ["VLLM_SERVER_DEV_MODE=1", "vllm", "serve", "m"]
    assert {"vllm_server_host=n3", "vllm_mode=server", "vllm_server_port=8001",
            "vllm_group_port=51300"} <= set(commands["n2"])


def test_unknown_accelerate_config():
    with pytest.raises(LaunchError, match="zero2"):
        resolve_accelerate_config("zero9")


def test_a_wheel_ships_every_accelerate_config_launch_names(tmp_path):
    """A wheel install has no repository root: the configs `launch` resolves by name live in the package,
    and configs/accelerate (what the docs and scripts name) is the same directory."""
    import zipfile

    import rl_reason
    from rl_reason.launch import ACCELERATE_CONFIGS

    assert ACCELERATE_CONFIGS.is_relative_to(Path(rl_reason.__file__).resolve().parent)
    assert (REPO / "configs" / "accelerate").resolve() == ACCELERATE_CONFIGS
    import shutil

    src = tmp_path / "src"  # built from a copy: an in-tree build leaves build/ in the repository
    for name in ("rl_reason", "rewards"):
        shutil.copytree(REPO / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, src / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", str(src),
                    "-w", str(tmp_path / "dist")], check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp_path / "dist").glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    configs = sorted(ACCELERATE_CONFIGS.glob("*.yaml"))
    assert {p.stem for p in configs} >= {"zero2", "zero3", "multi_gpu"}
    for config in configs:
        assert f"rl_reason/accelerate/{config.name}" in names
        assert resolve_accelerate_config(config.stem) == config


def test_cli_dry_run_prints_every_node():
    proc = subprocess.run(
        [sys.executable, "-m", "rl_reason.cli", "launch", "configs/grpo_tiny.yaml", "--num-machines", "2",
         "--main-process-ip", "10.1.2.3", "--dry-run"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("[node0] accelerate launch") and "--machine_rank 1" in lines[1]
    assert all("--main_process_ip 10.1.2.3" in line and "--mixed_precision no" in line for line in lines)


def _plan_lines(stdout: str) -> dict[str, list[str]]:
    return {line[1:line.index("]")]: shlex.split(line[line.index("]") + 2:]) for line in stdout.strip().splitlines()}


def _value(cmd: list[str], key: str) -> str:
    return next(item.split("=", 1)[1] for item in cmd if item.startswith(key + "="))


def test_readme_server_example_plans_the_vllm_node_as_trl_expects():
    """The README's own command: a server recipe on 4 nodes without SLURM plans a 5th, vLLM node."""
    from trl.scripts.vllm_serve import ScriptArguments, build_command

    from rl_reason.train.run import load_train_recipe

    argv = ["launch", "configs/grpo_7b_server.yaml", "--num-machines", "4", "--processes-per-machine", "8", "--dry-run"]
    proc = subprocess.run([sys.executable, "-m", "rl_reason.cli", *argv], capture_output=True, text=True, timeout=120,
                          cwd=REPO)
    assert proc.returncode == 0, proc.stderr
    # No addresses given: placeholders, said on stderr, never a silent 127.0.0.1 or 0.0.0.0.
    assert "placeholder" in proc.stderr and "127.0.0.1" not in proc.stdout
    plan = _plan_lines(proc.stdout)
    assert list(plan) == ["node0", "node1", "node2", "node3", "node4"]
    server = plan["node4"]
    assert server[:4] == ["VLLM_SERVER_DEV_MODE=1", "vllm", "serve", "Qwen/Qwen2.5-7B"]
    # Exactly TRL's own translation of `trl vllm-serve` (trl/scripts/vllm_serve.py), flag for flag.
    trl_cmd = build_command(ScriptArguments(model="Qwen/Qwen2.5-7B", host="0.0.0.0", port=8000))
    assert server[2:] == trl_cmd[trl_cmd.index("serve"):]
    flags = dict(zip(server[4::2], server[5::2]))
    assert (flags["--weight-transfer-config"] == '{"backend": "nccl"}'
            and flags["--logprobs-mode"] == "processed_logprobs")
    assert (flags["--max-logprobs"] == "-1" and flags["--tensor-parallel-size"] == "1"
            and flags["--data-parallel-size"] == "1")
    for rank in range(4):
        cmd = plan[f"node{rank}"]
        assert cmd[cmd.index("--machine_rank") + 1] == str(rank) and cmd[cmd.index("--num_processes") + 1] == "32"
        assert cmd[cmd.index("--mixed_precision") + 1] == "bf16"  # the recipe's bf16: true
        overrides = cmd[cmd.index("train") + 2:]
        # What TRL's client will be built from, read back through the recipe loader as the trainer does.
        args = load_train_recipe(REPO / "configs/grpo_7b_server.yaml", overrides).args
        assert args.use_vllm and args.vllm_mode == "server" and args.vllm_server_base_url is None
        assert args.vllm_server_host == "<node4-address>" and str(args.vllm_server_port) == flags["--port"]
        assert args.vllm_group_port == 51216

    given = subprocess.run([sys.executable, "-m", "rl_reason.cli", *argv, "--main-process-ip", "10.0.0.1",
                            "--vllm-host", "10.0.0.9", "vllm_server_port=8123", "--vllm-tensor-parallel-size", "2"],
                           capture_output=True, text=True, timeout=120, cwd=REPO)
    assert given.returncode == 0 and "placeholder" not in given.stderr, given.stderr
    plan = _plan_lines(given.stdout)
    server = plan["node4"]
    assert server[server.index("--port") + 1] == "8123" and server[server.index("--tensor-parallel-size") + 1] == "2"
    for rank in range(4):
        assert _value(plan[f"node{rank}"], "vllm_server_host") == "10.0.0.9"
        assert _value(plan[f"node{rank}"], "vllm_server_port") == "8123"
        assert "10.0.0.1" in plan[f"node{rank}"]


def test_wait_for_vllm_times_out_on_a_dead_port_and_passes_a_healthy_server():
    import http.server
    import socket
    import threading
    import time

    from rl_reason.launch import wait_for_vllm

    with socket.socket() as s:  # a loopback port with nothing listening
        s.bind(("127.0.0.1", 0))
        dead_port = s.getsockname()[1]
    start = time.monotonic()
    with pytest.raises(TimeoutError, match="not healthy"):
        wait_for_vllm("127.0.0.1", dead_port, timeout=1.0, interval=0.2)
    assert time.monotonic() - start < 5

    class Health(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200 if self.path == "/health" else 404)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        wait_for_vllm("127.0.0.1", server.server_address[1], timeout=5.0, interval=0.2)
    finally:
        server.shutdown()


@pytest.fixture
def launch_cli(monkeypatch):
    """`rl-reason launch` in-process; a launch that got past its checks would exec, so that fails the test."""
    from typer.testing import CliRunner

    from rl_reason.cli import app

    for var in ("MASTER_ADDR", "VLLM_HOST", "NODE_RANK", "SLURM_NODEID", "SLURM_JOB_NODELIST"):
        monkeypatch.delenv(var, raising=False)

    def started(*args, **kwargs):
        raise AssertionError(f"a process was started: {args[:2]}")

    monkeypatch.setattr("os.execve", started)

    def run(*args, env=None):
        for key, value in (env or {}).items():
            monkeypatch.setenv(key, value)
        result = CliRunner().invoke(app, ["launch", *map(str, args)])
        return result.exit_code, result.stdout, result.stderr

    return run


@pytest.fixture
def server_recipe(tmp_path, write_recipe):
    """``server_recipe(model_dir, **overrides)``: a recipe that asks for a vLLM server."""
    return lambda model_dir, **extra: write_recipe(tmp_path / "server.yaml", model_dir, tmp_path / "run", use_vllm=True,
                                                   vllm_mode="server", **extra)


BAD_LAUNCHES = [
    (lambda t, m, s: [t / "tiny.yaml", "--num-machines", "0"], "--num-machines must be at least 1"),
    (lambda t, m, s: [t / "tiny.yaml", "--num-machines", "0", "--dry-run"], "--num-machines must be at least 1"),
    (lambda t, m, s: [t / "tiny.yaml", "--processes-per-machine", "0", "--dry-run"],
     "--processes-per-machine must be at least 1"),
    (lambda t, m, s: [t / "tiny.yaml", "--processes-per-machine", "-2"], "--processes-per-machine must be at least 1"),
    (lambda t, m, s: [t / "missing.yaml"], "config file not found"),
    (lambda t, m, s: [t / "missing.yaml", "--dry-run"], "config file not found"),
    (lambda t, m, s: [t / "tiny.yaml", "lerning_rate=1"], "unknown key 'lerning_rate'"),
    (lambda t, m, s: [t / "tiny.yaml", "--accelerate-config", "zero9"], "accelerate config 'zero9' not found"),
    (lambda t, m, s: [t / "tiny.yaml", "--mixed-precision", "fp8"], "--mixed-precision must be"),
    (lambda t, m, s: [t / "tiny.yaml", "--main-process-port", "0"], "--main-process-port"),
    (lambda t, m, s: [t / "tiny.yaml", "--num-machines", "2"], "needs --main-process-ip"),
    (lambda t, m, s: [t / "tiny.yaml", "--num-machines", "2", "--main-process-ip", "10.0.0.1", "--machine-rank", "2"],
     "--machine-rank 2 is not in this plan"),
    (lambda t, m, s: [t / "tiny.yaml", "--machine-rank", "-1"], "--machine-rank -1 is not in this plan"),
    (lambda t, m, s: [t / "tiny.yaml", "--model", "Qwen/Qwen2.5-7B", "--dry-run"],
     "--model configure a vLLM server node"),
    (lambda t, m, s: [t / "tiny.yaml", "--vllm-host", "10.0.0.9"], "--vllm-host configure a vLLM server node"),
    (lambda t, m, s: [t / "tiny.yaml", "--vllm-tensor-parallel-size", "2", "--dry-run"],
     "configure a vLLM server node"),
    (lambda t, m, s: [t / "tiny.yaml", "--slurm", "--dry-run"], "SLURM_JOB_NODELIST is not set"),
    (lambda t, m, s: [s(m)], "give its address with --vllm-host"),
    (lambda t, m, s: [s(m), "--num-machines", "2", "--vllm-host", "10.0.0.9"], "needs --main-process-ip"),
    (lambda t, m, s: [s(m, vllm_server_base_url="http://10.0.0.9:8000"), "--vllm-node", "--dry-run"],
     "vllm_server_base_url"),
    (lambda t, m, s: [s(m), "--vllm-host", "127.0.0.1", "--vllm-tensor-parallel-size", "0"],
     "--vllm-tensor-parallel-size must be"),
    (lambda t, m, s: [s("tiny"), "--dry-run"], "a vLLM node serves a saved model"),
    # This CPU machine has no vLLM: a training node says so before starting anything.
    (lambda t, m, s: [s(m), "--vllm-host", "127.0.0.1"], "use_vllm: vLLM"),
]


@pytest.mark.parametrize("argv, expected", BAD_LAUNCHES)
def test_bad_launch_input_is_one_line_exit_2_before_any_process(tmp_path, tiny_model_dir, launch_cli, argv, expected,
                                                                 write_recipe, server_recipe):
    import torch

    if "use_vllm" in expected and torch.cuda.is_available():
        pytest.skip("a CUDA machine may have vLLM")
    write_recipe(tmp_path / "tiny.yaml", tiny_model_dir, tmp_path / "run")
    code, out, err = launch_cli(*argv(tmp_path, tiny_model_dir, server_recipe))
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(errors) == 1 and expected in errors[0], (code, out, err)
    assert not (tmp_path / "run" / "traces").exists()


def test_bad_node_rank_from_the_environment(tmp_path, tiny_model_dir, launch_cli, write_recipe):

    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_model_dir, tmp_path / "run")
    code, _, err = launch_cli(recipe, env={"NODE_RANK": "first"})
    assert code == 2 and "'first'" in err
    code, _, err = launch_cli(recipe, "--num-machines", "2", env={"NODE_RANK": "3", "MASTER_ADDR": "10.0.0.1"})
    assert code == 2 and "--machine-rank 3 is not in this plan" in err


def test_a_held_output_dir_is_refused_before_any_process(tmp_path, tiny_model_dir, launch_cli, write_recipe):

    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_model_dir, tmp_path / "run")
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time\nfrom rl_reason.train.run_lock import RunLock\n"
                               f"RunLock({str(tmp_path / 'run')!r}).acquire(); print('held', flush=True); "
                               "time.sleep(120)"],
                              stdout=subprocess.PIPE, text=True, cwd=REPO)
    try:
        assert holder.stdout.readline().strip() == "held"
        code, _, err = launch_cli(recipe, "--resume")
        assert code == 2 and f"pid {holder.pid}" in err and "in use by another run" in err, err
    finally:
        holder.kill()
        holder.wait()


def test_slurm_plan_of_a_server_recipe_takes_the_last_node_for_vllm(tiny_model_dir, server_recipe):
    from rl_reason.launch import make_plan

    recipe = server_recipe(tiny_model_dir, vllm_server_port=8123)
    env = {"SLURM_JOB_NODELIST": "localhost,gpu-b,gpu-c", "SLURM_GPUS_ON_NODE": "4"}
    plan, _, notes = make_plan(recipe, slurm=True, env=env)
    assert notes == [] and plan.train_nodes == ["localhost", "gpu-b"] and plan.vllm.node == "gpu-c"
    commands = all_commands(plan)
    assert commands["gpu-c"][:4] == ["VLLM_SERVER_DEV_MODE=1", "vllm", "serve", str(tiny_model_dir)]
    assert commands["gpu-c"][commands["gpu-c"].index("--port") + 1] == "8123"
    for node in ("localhost", "gpu-b"):
        assert (_value(commands[node], "vllm_server_host") == "gpu-c"
                and _value(commands[node], "vllm_server_port") == "8123")
    with pytest.raises(LaunchError, match="at least 2 nodes"):
        make_plan(recipe, slurm=True, env={"SLURM_JOB_NODELIST": "localhost"})


def test_vllm_node_option_turns_a_recipe_into_a_server_run(tmp_path, tiny_model_dir, write_recipe):

    from rl_reason.launch import make_plan

    recipe = write_recipe(tmp_path / "tiny.yaml", tiny_model_dir, tmp_path / "run")
    plan, _, _ = make_plan(recipe, vllm_node=True, vllm_host="10.0.0.7", model="/models/policy",
                           vllm_tensor_parallel_size=2, env={})
    commands = all_commands(plan)
    assert list(commands) == ["node0", "node1"] and commands["node1"][3] == "/models/policy"
    assert {"use_vllm=true", "vllm_mode=server", "vllm_server_host=10.0.0.7"} <= set(commands["node0"])
    assert plan.main_process_ip == "127.0.0.1"  # one training machine: loopback is right
