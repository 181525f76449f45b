#!/usr/bin/env bash
# Set up the environment and run the embedded default config (no API key, no network) into runs/quickstart.
# Extra arguments go to `trajforge run`, e.g. ./scripts/quickstart.sh --set run.seed=3
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/trajforge run configs/quickstart.yaml "$@"
