#!/usr/bin/env bash
# Create or update the project's virtual environment (.venv) and install trajforge into it (editable).
# Idempotent: a second run only installs what changed. Used by quickstart.sh, test.sh and .ci/run.
#   scripts/setup.sh          what the pipeline needs
#   scripts/setup.sh --test   also what the test suite needs (Slurm for the batch-job tests)
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "setup: $*" >&2; }

apt_install() {  # apt_install COMMAND PACKAGE...: install Debian packages when COMMAND is missing
  local probe=$1; shift
  command -v "$probe" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing $* (apt)"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@") >/dev/null
  else
    say "warning: $probe is missing and cannot be installed here (needs root and apt): $*"
  fi
}

# bubblewrap isolates the sandbox that runs model-written code (docs/tools.md); without it such code is refused
# (the program teacher's own code still runs), so a failed install is a warning, not an error.
apt_install bwrap bubblewrap || say "warning: could not install bubblewrap; model-written code will be refused unless sample.sandbox.allow_weak"

if [ "${1:-}" = "--test" ]; then
  apt_install slurmctld slurm-wlm munge
  # the viewer's browser tests drive Debian's Chromium (headless) through Playwright; no browser download
  apt_install chromium chromium
fi

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  say "creating .venv with $("$PYTHON" --version)"
  "$PYTHON" -m venv .venv
fi
PY=.venv/bin/python

# The embedded default teacher (llama.cpp + Gemma 3 270M) needs llama-cpp-python, which PyPI ships as source
# only. A build tuned to the build machine (-march=native) can crash on the first completion (it did, with
# SIGSEGV, on CPUs with AVX-512 and AMX), so it is built portably: GGML_NATIVE=OFF and a fixed instruction
# set chosen from this CPU's flags (AVX2+FMA+F16C, else plain x86-64). The wheel is kept under a name that
# carries the version and the build flags, outside pip's cache, so a native wheel cached by an earlier
# `pip install` can never come back.
LLAMA_VERSION=0.3.36  # keep equal to the pin in pyproject.toml (the 'local' extra)
llama_flags() {
  local flags="-DGGML_NATIVE=OFF -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF -DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
  flags+=" -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_TOOLS=OFF"
  if [ "$(uname -m)" = x86_64 ]; then
    if grep -qw avx2 /proc/cpuinfo && grep -qw fma /proc/cpuinfo && grep -qw f16c /proc/cpuinfo; then
      flags+=" -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"
    else
      flags+=" -DGGML_AVX=OFF -DGGML_AVX2=OFF -DGGML_FMA=OFF -DGGML_F16C=OFF"
    fi
  fi
  echo "$flags"
}

build_llama() {  # prints the folder holding a portable llama-cpp-python wheel, building it if needed
  local flags key dir log start pid
  flags=$(llama_flags)
  key=$(printf '%s %s %s' "$LLAMA_VERSION" "$flags" "$("$PY" -c 'import sys; print(sys.implementation.cache_tag)')" | sha256sum | cut -c1-12)
  dir=${TRAJFORGE_WHEELS:-${XDG_CACHE_HOME:-$HOME/.cache}/trajforge/wheels}/llama-cpp-python-$LLAMA_VERSION-$key
  if ls "$dir"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    say "reusing the portable llama-cpp-python $LLAMA_VERSION wheel in $dir" ; echo "$dir"; return
  fi
  mkdir -p "$dir.building"
  log="$dir.building/build.log"
  say "building llama-cpp-python $LLAMA_VERSION from source, portable ($flags)"
  say "this compiles llama.cpp: about 5 minutes on 2 cores, once per machine; log: $log"
  start=$SECONDS
  CMAKE_ARGS="$flags" CMAKE_BUILD_PARALLEL_LEVEL=$(nproc) \
    "$PY" -m pip wheel -v --no-cache-dir --no-deps --no-binary llama-cpp-python -w "$dir.building" \
    "llama-cpp-python==$LLAMA_VERSION" >"$log" 2>&1 &
  pid=$!
  while kill -0 "$pid" 2>/dev/null; do
    sleep 30
    kill -0 "$pid" 2>/dev/null || break
    say "  still building llama.cpp ($(( (SECONDS - start) / 60 )) min so far): step $(grep -oE '^ *\[[0-9]+/[0-9]+\]' "$log" | tail -n 1 | tr -d ' []')"
  done
  if ! wait "$pid"; then
    say "error: building llama-cpp-python failed; end of $log:"; tail -n 30 "$log" >&2; exit 1
  fi
  rm -rf "$dir"; mv "$dir.building" "$dir"
  say "built llama-cpp-python in $(( (SECONDS - start) / 60 )) min"
  echo "$dir"
}

extras=dev,local
[ "${1:-}" = "--test" ] && extras=dev,local,ray
stamp=.venv/.trajforge-installed-$extras
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ "$0" -nt "$stamp" ]; then
  say "installing trajforge and its dependencies into .venv ($extras)"
  "$PY" -m pip install --quiet --upgrade pip
  wheels=$(build_llama)
  # --only-binary: the wheel built above is the only llama-cpp-python this venv may get.
  "$PY" -m pip install --quiet --find-links "$wheels" --only-binary llama-cpp-python -e ".[$extras]"
  # Without their dependencies (torch, vllm, ...): tests read bfcl-eval's data files (the BFCL decontamination
  # reference) and use trl's dataset helpers (trl.data_utils), neither of which needs them.
  "$PY" -m pip install --quiet --no-deps "trl==1.16.0" "bfcl-eval==2026.3.23"
  # The smoke test: start the server, one short completion, stop. A build that cannot answer fails here,
  # naming its log, instead of as thousands of timed-out rows later; a broken wheel is not kept.
  say "checking the local teacher (start llama.cpp, one completion, stop)"
  if ! .venv/bin/trajforge local-teacher check; then
    rm -rf "$wheels"
    say "error: the local teacher does not answer (its wheel in $wheels was removed; the next setup rebuilds it)"
    exit 1
  fi
  touch "$stamp"
fi
