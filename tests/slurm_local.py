"""A real SLURM cluster on localhost for tests: slurmctld plus two slurmd (n1, n2) on separate ports.

Debian's slurm-wlm, run as root with auth/none so no munge daemon is needed. Every daemon is
our child and is killed on exit; state lives in a temporary directory.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

def missing() -> str | None:
    """Why SLURM cannot run here (tests/system_deps.sh installs it), or None."""
    if all(shutil.which(b) for b in ("slurmctld", "slurmd", "sbatch", "sinfo")):
        return None
    return "SLURM is not installed: run tests/system_deps.sh (the README's test command does)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _conf(root: Path, cpus: int) -> str:
    ctl, n1, n2 = _free_port(), _free_port(), _free_port()
    return f"""\
ClusterName=rltest
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort={ctl}
AuthType=auth/none
CredType=cred/none
SlurmUser=root
SlurmdUser=root
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool-%n
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd-%n.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd-%n.log
ProctrackType=proctrack/pgid
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
SchedulerParameters=nohold_on_prolog_fail
NodeName=n1 NodeHostname=localhost NodeAddr=127.0.0.1 Port={n1} CPUs={cpus} RealMemory=2000 State=UNKNOWN
NodeName=n2 NodeHostname=localhost NodeAddr=127.0.0.1 Port={n2} CPUs={cpus} RealMemory=2000 State=UNKNOWN
PartitionName=debug Nodes=n1,n2 Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE
"""


@contextmanager
def local_cluster(root: Path, cpus: int = 1, timeout: float = 60.0):
    """Start the cluster; yields the environment (SLURM_CONF) for sbatch/sinfo."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "state").mkdir(exist_ok=True)
    conf = root / "slurm.conf"
    conf.write_text(_conf(root, cpus))
    env = {**os.environ, "SLURM_CONF": str(conf)}
    daemons = [subprocess.Popen(["slurmctld", "-D", "-i", "-f", str(conf)], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)]
    try:
        time.sleep(1.0)
        for name in ("n1", "n2"):
            daemons.append(subprocess.Popen(["slurmd", "-D", "-N", name, "-f", str(conf)], env=env,
                                            stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT))
        deadline = time.monotonic() + timeout
        while True:
            out = subprocess.run(["sinfo", "-h", "-N", "-o", "%N %t"], capture_output=True, text=True, env=env).stdout
            states = dict(line.split() for line in out.splitlines() if line.strip())
            if states.get("n1") == "idle" and states.get("n2") == "idle":
                break
            if time.monotonic() > deadline or any(d.poll() is not None for d in daemons):
                logs = "\n".join(p.read_text()[-800:] for p in root.glob("*.log"))
                raise RuntimeError(f"local SLURM did not come up (nodes: {states})\n{logs}")
            time.sleep(0.5)
        yield env
    finally:
        subprocess.run(["scancel", "--full", "-u", "root"], env=env, capture_output=True)
        for d in reversed(daemons):
            d.terminate()
        for d in daemons:
            try:
                d.wait(timeout=10)
            except subprocess.TimeoutExpired:
                d.kill()
