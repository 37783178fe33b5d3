"""``rockedge doctor``: what this machine can do for rockedge, one line per check, each ok / warn / fail with a hint.

Runs on the device with the runtime-only install: it imports neither torch nor onnx (the import-isolation test
covers it). Every probe is guarded: a probe that raises becomes a ``fail`` line with the exception's first line.

Severity choices:
- Off a Jetson, a missing TensorRT or CUDA GPU is ``warn``: ONNX Runtime on the CPU still runs every model; the
  detail says what is lost (building and running engines). On a Jetson they are ``fail``: that is what it is for.
- JetPack installs TensorRT's bindings for the system Python; inside a venv they are invisible. When TensorRT does
  not import but ``/usr/lib/python3*/dist-packages/tensorrt`` exists, the hint says exactly that and how to fix it,
  including a Python-version mismatch (bindings built for the system's 3.8/3.10, venv on another version).
- A ``tensorrt`` package that is found but does not import (a pip wheel against another libnvinfer, a stub-only
  package) is reported with its import error rather than as "not installed".
- CUDA: the detail carries the driver's CUDA version and the cuda-python runtime's; a runtime newer (major) than the
  driver -- ``pip install cuda-python`` on JetPack 6 brings CUDA 13 against the driver's 12.6 -- gets the pin to fix
  it.
- Jetson: the L4T release comes from ``/etc/nv_tegra_release``, else from dpkg's ``nvidia-l4t-core`` version; an L4T
  release missing from the table maps to its JetPack family (35 -> 5.1.x, 36 -> 6.x). L4T outside 35/36/38 is
  ``warn``. On a Jetson, ONNX Runtime without the CUDA provider is ``warn`` (pip's CPU wheel).
- Memory: an engine build needs room for the network, its tactics and the workspace; under 2 GiB of available
  memory plus free swap is ``warn`` with the swap recipe and ``--workspace`` / ``--half``.
- No video codec that OpenCV can write, an unwritable output folder, or no ONNX Runtime and no TensorRT at all
  (nothing could run a model) are ``fail``.
"""

from __future__ import annotations

import glob
import importlib.util
import platform
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rockedge import probes
from rockedge.cuda_rt import cuda_version, cuda_versions, pin_advice
from rockedge.layers import OLDEST_PYTHON
from rockedge.probes import FAIL, OK, WARN, Check

MIN_BUILD_MEMORY = 2 * 2**30  # available memory + free swap below this: an engine build may be OOM-killed


def python_check() -> Check:
    venv = sys.prefix != sys.base_prefix
    where = f"venv {sys.prefix}" if venv else "system interpreter"
    detail = f"{platform.python_version()} ({where}, {platform.machine()})"
    if sys.version_info[:2] < OLDEST_PYTHON:
        return Check("Python", FAIL, detail, f"rockedge needs Python >= {'.'.join(map(str, OLDEST_PYTHON))}")
    return Check("Python", OK, detail, value={"version": platform.python_version(), "venv": venv})


def numpy_check() -> Check:
    v = probes.module_version("numpy")
    if v is None:
        return Check("numpy", FAIL, "not installed", "pip install -e . (the runtime core)")
    return Check("numpy", OK, v, value=v)


def opencv_check() -> Check:
    if probes.module_version("cv2") is None:
        return Check("OpenCV", FAIL, "not installed", "pip install opencv-python-headless (on a Jetson: JetPack's "
                     "python3-opencv, which has GStreamer)")
    c = probes.opencv()
    if not c.value["codecs"]:
        return Check(c.name, FAIL, c.detail, c.hint or "no video codec can be written", c.value)
    return c


def jetpack_bindings(root: Path = Path("/")) -> list[Path]:
    """TensorRT Python bindings that JetPack (python3-libnvinfer) installed for the system Python."""
    return sorted(Path(p) for p in glob.glob(str(root / "usr/lib/python3*/dist-packages/tensorrt")))


def tensorrt_import_error() -> str | None:
    """Why a ``tensorrt`` package that is on the path is not a usable TensorRT; None when there is none."""
    if importlib.util.find_spec("tensorrt") is None:
        return None
    try:
        import tensorrt
    except Exception as e:  # noqa: BLE001 - a missing libnvinfer, an ABI mismatch...: all are the finding
        return f"{type(e).__name__}: {_first_line(e)}"
    if not hasattr(tensorrt, "Runtime"):
        return "a stub-only package (no tensorrt.Runtime)"
    return None


def tensorrt_check(on_jetson: bool, root: Path = Path("/")) -> Check:
    if probes.tensorrt_available():
        import tensorrt as trt

        return Check("TensorRT", OK, str(trt.__version__), value=str(trt.__version__))
    status = FAIL if on_jetson else WARN
    broken = tensorrt_import_error()
    if broken:
        return Check("TensorRT", status, f"installed but not usable: {broken}",
                     "the tensorrt package must match the system's TensorRT libraries (dpkg -l | grep nvinfer); on a "
                     "Jetson uninstall pip's tensorrt and use JetPack's bindings (venv --system-site-packages)",
                     {"error": broken})
    found = jetpack_bindings(root)
    if found:
        sys_py = found[0].parent.parent.name  # python3.10
        mine = f"python{sys.version_info.major}.{sys.version_info.minor}"
        hint = (f"JetPack's bindings are in {found[0].parent} but this Python does not see them: recreate the venv "
                f"with `python3 -m venv --system-site-packages`, or add a .pth file holding {found[0].parent}")
        if sys_py != mine:
            hint += f"; they are built for {sys_py} and this is {mine}: use the system's {sys_py} for the venv"
        return Check("TensorRT", status, "not importable here (JetPack's bindings found outside this environment)",
                     hint, {"bindings": [str(p) for p in found]})
    if on_jetson:
        return Check("TensorRT", FAIL, "not installed", "sudo apt install python3-libnvinfer (part of JetPack)")
    return Check("TensorRT", WARN, "not installed: engines cannot be built or run here (ONNX Runtime still works)",
                 "on a Jetson TensorRT comes with JetPack; on an x86 GPU machine, NVIDIA's tensorrt wheels")


def cuda_check(on_jetson: bool) -> Check:
    c = probes.cuda_gpu()
    driver, runtime = cuda_versions()
    parts = []
    if driver == 0:
        parts.append("no NVIDIA driver")
    elif driver:
        parts.append(f"driver CUDA {cuda_version(driver)}")
    if runtime:
        parts.append(f"cuda-python runtime {cuda_version(runtime)}")
    versions = ", ".join(parts)
    value = {**(c.value or {}), "driver": cuda_version(driver) if driver else None,
             "runtime": cuda_version(runtime) if runtime else None}
    hint = c.hint
    if not c.ok and driver and runtime and runtime // 1000 > driver // 1000:
        hint = pin_advice(driver, runtime)
    detail = c.detail
    if versions:  # inside the error's parentheses when there are some: "no usable GPU (cudaError..., no driver)"
        detail = f"{detail[:-1]}, {versions})" if not c.ok and detail.endswith(")") else f"{detail}; {versions}"
    if c.ok or on_jetson:
        return Check(c.name, c.status, detail, hint, value)
    return Check(c.name, WARN, f"{detail}; CPU only (ONNX Runtime)", hint, value)


def onnxruntime_check(trt_ok: bool, on_jetson: bool = False) -> Check:
    c = probes.onnxruntime()
    if c.status == FAIL and trt_ok:  # TensorRT can run plans; ONNX models need ONNX Runtime
        return Check(c.name, WARN, "not installed: ONNX models cannot run here (TensorRT plans can)", c.hint)
    if c.ok and on_jetson and "CUDAExecutionProvider" not in c.value["providers"]:
        return Check(c.name, WARN, f"{c.detail}: CPU only on a Jetson",
                     "pip's onnxruntime has no GPU providers on aarch64: install NVIDIA's onnxruntime-gpu wheel built "
                     "for your JetPack (or use TensorRT plans: rockedge export --engine)", c.value)
    return c


def read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def jetson_check(root: Path = Path("/")) -> Check:
    """The Jetson probe, with "not a Jetson" as ``ok`` and an untested L4T family as ``warn``."""
    j = probes.jetson(root)
    if not j.ok:
        return Check("Jetson", OK, j.detail, value=None)
    if j.value["l4t"].split(".")[0] not in ("35", "36", "38"):
        return Check("Jetson", WARN, j.detail, "rockedge is tested against JetPack 5.1 (L4T 35) and 6.x (L4T 36)",
                     j.value)
    return j


def memory_check(root: Path = Path("/")) -> Check:
    info = probes.meminfo(read_text(root / "proc/meminfo") or "")
    if "MemAvailable" not in info:
        return Check("memory", WARN, "cannot read /proc/meminfo")
    avail, swap_free, swap_total = info["MemAvailable"], info.get("SwapFree", 0), info.get("SwapTotal", 0)
    gib = 2**30
    detail = (f"{avail / gib:.1f} GiB available of {info.get('MemTotal', 0) / gib:.1f}; swap {swap_free / gib:.1f} "
              f"GiB free of {swap_total / gib:.1f}")
    value = {"available": avail, "total": info.get("MemTotal"), "swap_free": swap_free, "swap_total": swap_total}
    if avail + swap_free < MIN_BUILD_MEMORY:
        return Check("memory", WARN, detail,
                     "an engine build may be OOM-killed: add swap (sudo fallocate -l 4G /swapfile && sudo chmod 600 "
                     "/swapfile && sudo mkswap /swapfile && sudo swapon /swapfile), close other programs, or build "
                     "with a smaller --workspace or --half instead of --int8", value)
    return Check("memory", OK, detail, value=value)


def output_check(out: Path) -> Check:
    """Write a file where outputs would go (the folder, or its nearest existing parent): permissions, a
    read-only mount and a path through a file all show up, also for root, whom os.access always lets through."""
    target = out if out.exists() else next((q for q in out.parents if q.exists()), Path("."))
    if not target.is_dir():
        return Check("output folder", FAIL, f"{out}: {target} is a file, not a folder", "choose another --out")
    try:
        with tempfile.NamedTemporaryFile(dir=target, prefix=".rockedge-doctor-"):
            pass
    except OSError as e:
        return Check("output folder", FAIL, f"{out} is not writable ({e.strerror or e})",
                     f"choose another --out or fix the permissions of {target}")
    return Check("output folder", OK, f"{out} is writable" + ("" if target == out else " (created on first use)"))


def _first_line(e: BaseException) -> str:
    return (str(e).strip().splitlines() or [type(e).__name__])[0]


def _guard(name: str, probe: Callable[[], Check]) -> Check:
    try:
        return probe()
    except Exception as e:  # noqa: BLE001 - a broken probe is a finding, never a traceback
        return Check(name, FAIL, f"probe failed: {type(e).__name__}: {_first_line(e)}")


def run_checks(out: Path = Path("."), root: Path = Path("/")) -> list[Check]:
    """Every check, in the order a person reads them."""
    jet = _guard("Jetson", lambda: jetson_check(root))
    on_jetson = jet.status == OK and jet.value is not None
    checks = [_guard("Python", python_check), _guard("numpy", numpy_check), _guard("OpenCV", opencv_check)]
    trt = _guard("TensorRT", lambda: tensorrt_check(on_jetson, root))
    checks += [_guard("ONNX Runtime", lambda: onnxruntime_check(trt.ok, on_jetson)), trt,
               _guard("CUDA GPU", lambda: cuda_check(on_jetson)), jet,
               _guard("memory", lambda: memory_check(root)), _guard("output folder", lambda: output_check(out))]
    return checks


def table(checks: list[Check]) -> str:
    width = max(len(c.name) for c in checks)
    lines = []
    for c in checks:
        lines.append(f"{c.status.upper():<5} {c.name:<{width}}  {c.detail}")
        if c.hint and c.status != OK:
            lines.append(f"{'':<5} {'':<{width}}  -> {c.hint}")
    n_fail = sum(c.status == FAIL for c in checks)
    n_warn = sum(c.status == WARN for c in checks)
    lines.append(f"\n{len(checks)} checks: {len(checks) - n_fail - n_warn} ok, {n_warn} warn, {n_fail} fail")
    return "\n".join(lines)


def to_dict(checks: list[Check]) -> dict[str, Any]:
    return {"checks": [c.to_dict() for c in checks], "failed": [c.name for c in checks if c.status == FAIL],
            "platform": {"machine": platform.machine(), "system": platform.system()}}
