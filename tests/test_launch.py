"""Launch plans: every node's command from arguments or a SLURM allocation (no cluster needed)."""

import subprocess
import sys

import pytest

from rl_reason.launch import LaunchPlan, all_commands, expand_nodelist, plan_from_slurm, resolve_accelerate_config


def test_single_node():
    (cmd,) = all_commands(LaunchPlan(recipe="r.yaml", processes_per_machine=4)).values()
    assert cmd[:2] == ["accelerate", "launch"]
    assert cmd[cmd.index("--num_processes") + 1] == "4"
    assert cmd[cmd.index("--config_file") + 1].endswith("configs/accelerate/zero2.yaml")
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
    [("n1", ["n1"]), ("n[1-3]", ["n1", "n2", "n3"]), ("gpu[08-10,12],cpu1", ["gpu08", "gpu09", "gpu10", "gpu12", "cpu1"])],
)
def test_expand_nodelist(nodelist, hosts):
    assert expand_nodelist(nodelist) == hosts


def test_slurm_allocation_with_a_vllm_node():
    env = {"SLURM_JOB_NODELIST": "localhost,n[2-3]", "SLURM_GPUS_ON_NODE": "8"}
    plan = plan_from_slurm(LaunchPlan(recipe="r.yaml", model="m"), env=env, use_vllm_node=True)
    assert plan.train_nodes == ["localhost", "n2"] and plan.vllm_node == "n3"
    assert plan.processes_per_machine == 8 and plan.world_size == 16
    assert plan.main_process_ip.count(".") == 3  # resolved to an address
    commands = all_commands(plan)
    assert commands["n3"][:2] == ["trl", "vllm-serve"]
    assert "vllm_server_host=n3" in commands["n2"] and "vllm_mode=server" in commands["n2"]


def test_unknown_accelerate_config():
    with pytest.raises(ValueError, match="zero2"):
        resolve_accelerate_config("zero9")


def test_cli_dry_run_prints_every_node():
    proc = subprocess.run(
        [sys.executable, "-m", "rl_reason.cli", "launch", "configs/grpo_tiny.yaml", "--num-machines", "2", "--dry-run"],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("[node0] accelerate launch") and "--machine_rank 1" in lines[1]


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
