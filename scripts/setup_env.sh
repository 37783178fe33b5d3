#!/usr/bin/env bash
# Create .venv and install rockedge with the given extras (default: dev). Idempotent and quiet.
set -euo pipefail
cd "$(dirname "$0")/.."
extras="${1:-dev}"
py="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$py" -m venv .venv
fi
.venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip >/dev/null
# torch/torchvision are pinned here (not in pyproject) so a Jetson keeps JetPack's own torch.
.venv/bin/python -m pip install -q --disable-pip-version-check "torch==2.14.1" "torchvision==0.29.1"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[${extras}]"
if [ "$extras" = "dev" ]; then
  # TensorRT 10 type stubs for the device gate (scripts/check_device.py). The wheel declares TensorRT itself as a
  # dependency, which PyPI cannot give (its tensorrt is a placeholder): install the stubs alone.
  # Into a folder of their own (pyrightconfig.json's stubPath), not site-packages: there the stubs' 'tensorrt'
  # package would make this venv look like it has a broken TensorRT.
  [ -f .venv/trt-stubs/tensorrt/__init__.pyi ] || \
    .venv/bin/python -m pip install -q --disable-pip-version-check --no-deps --target .venv/trt-stubs "tensorrt-stubs>=10,<11"
fi
