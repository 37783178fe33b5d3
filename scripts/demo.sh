#!/usr/bin/env bash
# The main job on its embedded default: CPU, ONNX Runtime, data it generates itself.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup_env.sh all
exec .venv/bin/rockedge demo --out demo "$@"
