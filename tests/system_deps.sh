#!/usr/bin/env bash
# System packages two tests need, installed as an explicit step (the README's test command and .ci/run
# run it before pytest; pytest itself never installs anything):
#   SLURM (slurmctld, slurmd, sbatch)  tests/test_slurm.py runs a real two-node SLURM job on localhost
#   Chromium                           tests/test_report_browser.py opens the run report in a browser
# As root with apt-get it installs what is missing; elsewhere it says what to install and exits 0,
# and those two tests skip, saying why.
set -euo pipefail
missing=()
command -v slurmctld >/dev/null && command -v slurmd >/dev/null && command -v sbatch >/dev/null \
  || missing+=(slurmctld slurmd slurm-client)
command -v chromium >/dev/null || command -v chromium-browser >/dev/null || missing+=(chromium)
if [ ${#missing[@]} -eq 0 ]; then
  exit 0
fi
if [ "$(id -u)" -ne 0 ] || ! command -v apt-get >/dev/null; then
  echo "tests/system_deps.sh: not root with apt-get; install ${missing[*]} to run the SLURM and browser tests" >&2
  exit 0
fi
echo "tests/system_deps.sh: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get -o DPkg::Lock::Timeout=300 update -qq
apt-get -o DPkg::Lock::Timeout=300 install -y -qq "${missing[@]}" >/dev/null
