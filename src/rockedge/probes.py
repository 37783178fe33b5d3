"""Environment probes: what this machine can do, as results rather than exceptions.

``rockedge doctor`` prints them, error messages use them for hints, and the test suite's markers use
them to skip what cannot run here. Nothing heavy is imported at module level; each probe imports its
library when called and caches what is costly to find out.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import platform
import sys
import tempfile
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from rockedge.console import quiet_stderr
from rockedge.cuda_rt import cudart, memory_info, require_gpu
from rockedge.errors import RockedgeError

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass(frozen=True)
class Check:
    """One probe's answer: ``status`` ok/warn/fail, a one-line ``detail`` and, when not ok, a ``hint``."""

    name: str
    status: str
    detail: str
    hint: str = ""
    value: Any = None  # machine-readable result (a version, a list of providers...)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# -- OpenCV -----------------------------------------------------------------------------------------


@lru_cache(maxsize=None)
def opencv_build() -> dict[str, str]:
    """``cv2.getBuildInformation()`` as {key: value} for its "Key: value" lines (FFMPEG, GStreamer, GTK...)."""
    import cv2

    info: dict[str, str] = {}
    for line in cv2.getBuildInformation().splitlines():
        if ":" in line:
            key, _, value = line.strip().partition(":")
            info.setdefault(key.strip(), value.strip())
    return info


def opencv_has(feature: str) -> bool:
    """Whether OpenCV was built with ``feature`` ("GStreamer", "FFMPEG"): JetPack's has GStreamer, pip's not."""
    return opencv_build().get(feature, "").upper().startswith("YES")


@lru_cache(maxsize=None)
def writable_fourcc(suffix: str, fourcc: str, is_color: bool = True) -> bool:
    """Whether this OpenCV build can write ``fourcc`` into a ``suffix`` container (probed once per pair)."""
    import cv2
    import numpy as np

    fd, tmp = tempfile.mkstemp(suffix=suffix)
    os.close(fd)
    try:
        with quiet_stderr():
            w = cv2.VideoWriter(tmp, cv2.VideoWriter.fourcc(*fourcc), 30.0, (64, 48), is_color)
            ok = w.isOpened()
            if ok:
                w.write(np.zeros((48, 64, 3) if is_color else (48, 64), np.uint8))
            w.release()
        return ok and os.path.getsize(tmp) > 0
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


@lru_cache(maxsize=None)
def has_gui() -> bool:
    """Whether OpenCV can open a window (False for opencv-python-headless or without a display)."""
    import cv2

    try:
        cv2.namedWindow("rockedge-probe", cv2.WINDOW_NORMAL)
        cv2.destroyWindow("rockedge-probe")
        return True
    except cv2.error:
        return False


def opencv() -> Check:
    import cv2

    build = opencv_build()
    video = build.get("FFMPEG", "NO").split()[0] if build.get("FFMPEG") else "NO"
    gst = "YES" if opencv_has("GStreamer") else "NO"
    codecs = [f"{s}/{c}" for s, c in ((".mp4", "avc1"), (".mp4", "mp4v"), (".mkv", "FFV1"), (".avi", "MJPG"))
              if writable_fourcc(s, c)]
    detail = f"{cv2.__version__}; FFmpeg {video}, GStreamer {gst}; writes {', '.join(codecs) or 'no video'}"
    status = OK if codecs else WARN
    hint = "" if codecs else "this OpenCV cannot write video (no FFmpeg); rockedge run can still write images"
    if gst == "NO" and jetson().ok:
        status, hint = WARN, "this OpenCV has no GStreamer: camera pipelines need JetPack's OpenCV (python3-opencv)"
    return Check("OpenCV", status, detail, hint, {"version": cv2.__version__, "gstreamer": gst == "YES",
                                                   "codecs": codecs})


# -- inference runtimes -----------------------------------------------------------------------------


def module_version(name: str) -> str | None:
    """The module's ``__version__`` if it imports, else None (never raises)."""
    try:
        mod = importlib.import_module(name)
    except Exception:
        return None
    return str(getattr(mod, "__version__", "?"))


def onnxruntime() -> Check:
    v = module_version("onnxruntime")
    if v is None:
        return Check("ONNX Runtime", FAIL, "not installed", "pip install 'rockedge[ort]' (on a Jetson: NVIDIA's "
                     "onnxruntime-gpu wheel for your JetPack)")
    import onnxruntime as ort

    providers = list(ort.get_available_providers())
    short = [p.replace("ExecutionProvider", "") for p in providers]
    return Check("ONNX Runtime", OK, f"{v}; providers {', '.join(short)}", value={"version": v, "providers": providers})


def tensorrt_available() -> bool:
    """A real TensorRT, not the stub-only package tensorrt-stubs leaves importable."""
    if importlib.util.find_spec("tensorrt") is None:
        return False
    try:
        import tensorrt

        return hasattr(tensorrt, "Runtime")
    except Exception:
        return False


def tensorrt() -> Check:
    if not tensorrt_available():
        in_venv = sys.prefix != sys.base_prefix
        hint = ("JetPack installs TensorRT's Python bindings for the system Python (python3-libnvinfer); "
                + ("this is a venv: recreate it with --system-site-packages, or symlink "
                   "/usr/lib/python3*/dist-packages/tensorrt* into it" if in_venv else "sudo apt install python3-libnvinfer"))
        if not jetson().ok:
            hint = "TensorRT comes from JetPack on a Jetson, or NVIDIA's pip index on a workstation with a GPU"
        return Check("TensorRT", FAIL, "not importable", hint)
    import tensorrt as trt

    return Check("TensorRT", OK, str(trt.__version__), value=str(trt.__version__))


def cuda_gpu(device: int = 0) -> Check:
    """The GPU through cuda-python (what the TensorRT backend uses), or why there is none."""

    try:
        cudart()
    except RockedgeError as e:
        return Check("CUDA GPU", FAIL, "cuda-python not installed", str(e))
    try:
        name, cc = require_gpu(device)
    except RockedgeError as e:
        detail = str(e).split(" (", 1)[0].replace("no usable CUDA GPU: ", "no usable GPU (") + (
            ")" if str(e).startswith("no usable CUDA GPU") else "")
        return Check("CUDA GPU", FAIL, detail,
                     "no NVIDIA GPU, or its driver is missing or older than this cuda-python's CUDA runtime")
    mem = ""
    try:
        free, total = memory_info()
        mem = f", {free / 2**30:.1f} of {total / 2**30:.1f} GiB free"
    except RockedgeError:
        pass
    return Check("CUDA GPU", OK, f"{name} (compute capability {cc}){mem}", value={"name": name, "cc": cc})


def torch_cuda() -> bool:
    """Whether torch is installed and sees a CUDA GPU (never raises)."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:
        return False


# -- the machine ------------------------------------------------------------------------------------

# L4T release -> JetPack (from jetson-stats' table; the L4T release is what the device reports).
L4T_TO_JETPACK = {
    "35.1.0": "5.0.2", "35.2.1": "5.1", "35.3.1": "5.1.1", "35.4.1": "5.1.2", "35.5.0": "5.1.3", "35.6.0": "5.1.4",
    "35.6.1": "5.1.5", "36.2.0": "6.0 DP", "36.3.0": "6.0", "36.4.0": "6.1", "36.4.3": "6.2", "36.4.4": "6.2.1",
    "38.2.0": "7.0", "38.4.0": "7.1",
}


def _read(path: str) -> str | None:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return None


def parse_l4t_release(text: str) -> str | None:
    """First line of /etc/nv_tegra_release, e.g. '# R36 (release), REVISION: 4.3, ...' -> '36.4.3'."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    parts = [p.strip() for p in first.split(",")]
    if len(parts) < 2 or not parts[0].startswith("# R"):
        return None
    major = parts[0][3:].split()[0]
    rev = parts[1].split(":", 1)[-1].strip()
    return f"{major}.{rev}" if major.isdigit() else None


def dpkg_version(status_text: str, package: str) -> str | None:
    """A package's version from dpkg's status file (``/var/lib/dpkg/status``), or None."""
    for stanza in status_text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in stanza.splitlines() if ": " in line and not line.startswith(" "))
        if fields.get("Package") == package:
            return fields.get("Version")
    return None


def jetpack_for(l4t: str) -> str:
    """The JetPack release of an L4T release: the table's, else the family's (35 -> 5.1.x, 36 -> 6.x)."""
    if l4t in L4T_TO_JETPACK:
        return L4T_TO_JETPACK[l4t]
    family = {"32": "4.x", "34": "5.0.x", "35": "5.1.x", "36": "6.x", "38": "7.x"}
    return family.get(l4t.split(".")[0], "unknown")


def jetson(root: Path = Path("/")) -> Check:
    """Jetson model, L4T and JetPack release, power mode: ``ok`` on a Jetson, ``warn`` "not a Jetson" elsewhere
    (callers read ``.ok`` as "is a Jetson"). ``root`` lets tests point it at a fixture tree."""
    release = _read(str(root / "etc/nv_tegra_release"))
    model = (_read(str(root / "proc/device-tree/model")) or "").replace("\x00", "").strip()
    l4t = parse_l4t_release(release or "")
    if l4t is None:  # JetPack 6 images may lack nv_tegra_release; the L4T core package says the same
        core = dpkg_version(_read(str(root / "var/lib/dpkg/status")) or "", "nvidia-l4t-core")
        l4t = core.split("-", 1)[0] if core else None
    if l4t is None and release is None and "jetson" not in model.lower():
        return Check("Jetson", WARN, f"not a Jetson ({platform.machine()}, {platform.system()})")
    l4t = l4t or "?"
    jp = jetpack_for(l4t)
    detail = f"{model or 'Jetson'}; L4T {l4t} (JetPack {jp})"
    power = _nvpmodel() if root == Path("/") else None
    if power:
        detail += f"; power mode {power}"
    return Check("Jetson", OK, detail, value={"model": model, "l4t": l4t, "jetpack": jp, "power_mode": power})


def _nvpmodel() -> str | None:
    import shutil
    import subprocess

    exe = shutil.which("nvpmodel")
    if not exe:
        return None
    try:
        out = subprocess.run([exe, "-q"], capture_output=True, text=True, timeout=5).stdout
    except (OSError, subprocess.SubprocessError):
        return None
    for line in out.splitlines():
        if "Power Mode" in line:
            return line.split(":", 1)[-1].strip()
    return None


def meminfo(text: str | None = None) -> dict[str, int]:
    """/proc/meminfo in bytes: MemTotal, MemAvailable, SwapTotal, SwapFree..."""
    out: dict[str, int] = {}
    for line in (text if text is not None else (_read("/proc/meminfo") or "")).splitlines():
        key, _, rest = line.partition(":")
        fields = rest.split()
        if fields and fields[0].isdigit():
            out[key.strip()] = int(fields[0]) * (1024 if len(fields) > 1 and fields[1] == "kB" else 1)
    return out


# The CPU features that decide inference speed, by the names /proc/cpuinfo uses (x86 "flags", Arm "Features").
# VNNI / AMX-INT8 / Arm's dot product (asimddp) are what int8 kernels need to beat float ones.
ISA_FLAGS = {
    "x86_64": (("avx2", "AVX2"), ("fma", "FMA"), ("avx512f", "AVX-512"), ("avx512_vnni", "AVX-512 VNNI"),
               ("avx_vnni", "AVX-VNNI"), ("avx512_bf16", "AVX-512 BF16"), ("amx_int8", "AMX-INT8"),
               ("amx_bf16", "AMX-BF16")),
    "aarch64": (("asimd", "NEON"), ("asimddp", "dot product"), ("asimdhp", "FP16 arithmetic"), ("sve", "SVE"),
                ("sve2", "SVE2"), ("i8mm", "int8 matmul"), ("bf16", "BF16")),
}


def cpu_info(text: str | None = None, machine: str | None = None) -> dict[str, Any]:
    """The CPU model, core count and instruction-set extensions, from /proc/cpuinfo (``text`` for tests)."""
    arch = machine or platform.machine()
    raw = text if text is not None else (_read("/proc/cpuinfo") or "")
    model = platform.processor() or arch
    flags: set[str] = set()
    for line in raw.splitlines():
        key, _, value = line.partition(":")
        key = key.strip().lower()
        if key in ("model name", "cpu model") and value.strip():
            model = value.strip()
        elif key in ("flags", "features"):
            flags |= set(value.split())
    known = ISA_FLAGS.get(arch, ISA_FLAGS["aarch64"] if arch.startswith("arm") else ())
    isa = [label for flag, label in known if flag in flags]
    return {"model": model, "arch": arch, "cores": os.cpu_count(), "isa": isa,
            "int8_dot_product": any(f in flags for f in ("avx512_vnni", "avx_vnni", "amx_int8", "asimddp"))}


def writable_dir(path: str | os.PathLike[str]) -> Check:
    p = Path(path)
    target = p if p.exists() else next((q for q in p.parents if q.exists()), Path("."))
    if os.access(target, os.W_OK):
        return Check("output folder", OK, f"{p} is writable")
    return Check("output folder", FAIL, f"{p} is not writable", f"choose another --out or fix the permissions of {target}")
