#!/usr/bin/env bash
# The runtime tests once more against the oldest numpy / OpenCV / click a Python 3.8 Jetson runs: numpy 1.24.4
# (the last numpy for Python 3.8), OpenCV 4.5.5 (JetPack 5 ships 4.5.4; 4.5.5.64 is the oldest pip wheel that
# installs here), click 8.1.8 (the last for 3.8) and tqdm 4.64 (rockedge's floor). No Python 3.8 interpreter can be
# installed here, so this runs on this machine's Python; the Python 3.8 language check is scripts/check_device.py.
# torch, onnx and onnxruntime (test fixtures and the ORT backend) come from .venv, behind the old packages.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x .venv/bin/python ] || bash scripts/setup_env.sh dev
py="${PYTHON:-python3}"
if [ ! -x .venv-oldest/bin/python ]; then
  "$py" -m venv .venv-oldest
fi
pip=(.venv-oldest/bin/python -m pip install -q --disable-pip-version-check)
"${pip[@]}" "numpy==1.24.4" "opencv-python-headless==4.5.5.64" "click==8.1.8" "tqdm==4.64.0" "pytest>=7"
"${pip[@]}" --no-deps -e . 2>/dev/null
site=$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
oldsite=$(.venv-oldest/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
echo "$site" > "$oldsite/zz_rockedge_main_venv.pth"   # after the old packages on sys.path
.venv-oldest/bin/python - <<'PY'
import click, cv2, numpy, tqdm
print(f"oldest device dependencies: numpy {numpy.__version__}, OpenCV {cv2.__version__}, click {click.__version__}, "
      f"tqdm {tqdm.__version__}")
assert numpy.__version__ == "1.24.4" and cv2.__version__.startswith("4.5.5"), "the old packages are not the ones imported"
PY
exec .venv-oldest/bin/python -m pytest -q -p no:cacheprovider "$@" \
  tests/test_runtime.py tests/test_run_cli.py tests/test_sources.py tests/test_overlay.py tests/test_preprocess.py \
  tests/test_trt.py tests/test_sizes.py tests/test_metrics.py tests/test_atomic.py tests/test_console.py \
  tests/test_doctor.py tests/test_calibration.py tests/test_engine_plan.py tests/test_faults.py
