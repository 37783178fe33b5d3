"""Everything about building a TensorRT engine that does not need TensorRT: which mechanism the installed
version offers, which flags a request turns into, the optimisation profile, the workspace, and what to
say when a build cannot be done or was killed.

:func:`plan_build` turns (TensorRT version, what the user asked, what the ONNX is, what the device has)
into a :class:`BuildPlan` of *names* (``"FP16"``, ``"EXPLICIT_BATCH"``): TensorRT 11 renumbered
BuilderFlag values, so plans, manifests and caches record names, and :mod:`rockedge.engine.builder`
looks them up on the module it runs with. The version rules (NVIDIA's headers and changelogs, see
docs/tensorrt.md):

* 8.5 / 8.6 (JetPack 5.1 / 6.0): explicit-batch networks for ONNX; precision by builder flags; implicit
  INT8 by an entropy calibrator; version-compatible and hardware-compatible engines from 8.6.
* 10.x (JetPack 6.1 / 6.2 ship 10.3): networks are always explicit batch; precision flags and calibrators
  still work (deprecated in 10.1 / 10.12); strongly typed networks are opt-in.
* 11.x: strongly typed only. No precision flags, no calibrators: the precision is the ONNX's (an FP16 or
  Q/DQ INT8 ONNX made on the workstation).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from rockedge.errors import RockedgeError
from rockedge.precision import Precision
from rockedge.runtime.manifest import parse_version
from rockedge.tensors import Profile

MIN_VERSION = (8, 5)
GIB = 1 << 30
MIB = 1 << 20


@dataclass(frozen=True)
class BuildOptions:
    """What the user asked for (``rockedge export MODEL.onnx --format engine ...``)."""

    precision: Precision = Precision.FP32
    workspace_gb: float | None = None  # trtexec --memPoolSize=workspace:N; None: sized from the device memory
    dla_core: int | None = None  # Xavier/Orin DLA, with GPU fallback
    version_compatible: bool = False  # TensorRT >= 8.6: later TensorRT versions (also later majors) can load it
    hardware_compatible: bool = False  # TensorRT >= 8.6: any Ampere-or-newer GPU can load it
    min_shape: tuple[int, ...] | None = None  # dynamic inputs (trtexec --minShapes/--optShapes/--maxShapes)
    opt_shape: tuple[int, ...] | None = None
    max_shape: tuple[int, ...] | None = None
    strongly_typed: bool = False  # TensorRT 10: build the ONNX's own types (FP16/Q/DQ ONNX); implied on 11
    optimization_level: int | None = None  # TensorRT >= 8.6: builder_optimization_level 0..5 (default 3)


@dataclass(frozen=True)
class OnnxFacts:
    """What the ONNX to build from is (read without the onnx package, :mod:`rockedge.onnx_proto`)."""

    input_name: str
    input_shape: tuple[int | None, ...]  # None: a dynamic axis
    precision: Precision  # rockedge.precision metadata: fp32, fp16 (FP16 graph) or int8 (Q/DQ graph)
    has_qdq: bool = False
    opset: int = 17
    flops: int = 0  # per image at the export size (rockedge.flops metadata), for the manifest and benchmarks


@dataclass(frozen=True)
class DeviceFacts:
    """The GPU the engine is built on (cuda-python), and memory for the workspace default."""

    gpu_name: str = ""
    compute_capability: tuple[int, int] = (0, 0)
    total_memory: int = 0  # bytes of GPU memory (a Jetson's is its RAM, shared with the CPU)
    dla_cores: int = 0
    is_jetson: bool = False


@dataclass
class BuildPlan:
    """What the builder will do, in TensorRT names; ``notes`` are said to the user before the build."""

    trt_version: tuple[int, ...]
    precision: Precision
    network_flags: list[str]
    builder_flags: list[str]
    workspace_bytes: int
    shapes: Profile
    implicit_int8: bool = False  # calibrate with the entropy calibrator (no Q/DQ in the ONNX)
    dla_core: int | None = None
    hardware_compatibility: str = "none"  # none | ampere_plus
    version_compatible: bool = False
    optimization_level: int | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def strongly_typed(self) -> bool:
        return self.trt_version[0] >= 11 or "STRONGLY_TYPED" in self.network_flags

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["trt_version"] = ".".join(map(str, self.trt_version))
        d["precision"] = self.precision.value
        d["shapes"] = self.shapes.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "BuildPlan":
        s = d["shapes"]
        return cls(parse_version(d["trt_version"]), Precision.parse(d["precision"]), list(d["network_flags"]),
                   list(d["builder_flags"]), int(d["workspace_bytes"]),
                   Profile(tuple(s["min"]), tuple(s["opt"]), tuple(s["max"])), bool(d["implicit_int8"]), d["dla_core"],
                   d["hardware_compatibility"], bool(d["version_compatible"]), d["optimization_level"],
                   list(d["notes"]))


def default_workspace(device: DeviceFacts) -> int:
    """256 MiB on 4 GB boards, 512 MiB up to 8 GB (Orin Nano/NX builds get OOM-killed with more), 1 GiB up to
    16 GB, 2 GiB above. TensorRT uses less when tactics need less; the cap only bounds the worst case."""
    gb = device.total_memory / GIB if device.total_memory else 16.0
    if gb <= 4.5:
        return 256 * MIB
    if gb <= 8.5:
        return 512 * MIB
    return GIB if gb <= 16.5 else 2 * GIB


def plan_shapes(onnx: OnnxFacts, opts: BuildOptions, default_hw: tuple[int, int], batch: int = 1) -> Profile:
    """The optimisation profile. A static ONNX has exactly one shape; a dynamic one takes --min/--opt/--max
    shapes (trtexec's), or defaults to ``batch`` at ``default_hw`` (min batch 1)."""
    shape = onnx.input_shape
    rank = len(shape)
    nhwc = rank == 4 and shape[3] == 3
    given = [s for s in (opts.min_shape, opts.opt_shape, opts.max_shape) if s is not None]
    if all(v is not None for v in shape):
        static = tuple(int(v) for v in shape)  # type: ignore[arg-type]
        for s in given:
            if tuple(s) != static:
                raise RockedgeError(f"{onnx.input_name} is static {_fmt(static)}; --min/--opt/--max shapes "
                                    f"{_fmt(s)} do not apply (export the ONNX with --dynamic)")
        return Profile(static, static, static)

    def fill(hw: tuple[int, int], n: int) -> tuple[int, ...]:
        full = (n, hw[0], hw[1], 3) if nhwc else (n, 3, hw[0], hw[1])
        return tuple(int(v) if v is not None else f for v, f in zip(shape, full))

    opt = tuple(opts.opt_shape) if opts.opt_shape else fill(default_hw, batch)
    mn = tuple(opts.min_shape) if opts.min_shape else fill(default_hw, 1)
    mx = tuple(opts.max_shape) if opts.max_shape else opt
    if opts.opt_shape is None and opts.max_shape is not None:
        opt = mx
    for name, s in (("min", mn), ("opt", opt), ("max", mx)):
        if len(s) != rank:
            raise RockedgeError(f"--{name}-shape {_fmt(s)} has rank {len(s)}; {onnx.input_name} has rank {rank}")
        for axis, (v, fixed) in enumerate(zip(s, shape)):
            if fixed is not None and v != fixed:
                raise RockedgeError(f"--{name}-shape {_fmt(s)}: axis {axis} of {onnx.input_name} is fixed at {fixed}")
            if v < 1:
                raise RockedgeError(f"--{name}-shape {_fmt(s)}: every dimension must be >= 1")
    if not all(a <= b <= c for a, b, c in zip(mn, opt, mx)):
        raise RockedgeError(f"shapes must satisfy min <= opt <= max on every axis: {_fmt(mn)} / {_fmt(opt)} / {_fmt(mx)}")
    return Profile(mn, opt, mx)


def plan_build(trt_version: str, opts: BuildOptions, onnx: OnnxFacts, device: DeviceFacts,
               *, default_hw: tuple[int, int], batch: int = 1) -> BuildPlan:
    """Decide how to build (see the module docstring); one clear line for anything this TensorRT cannot do."""
    v = parse_version(trt_version)
    label = ".".join(map(str, v))
    if v[:2] < MIN_VERSION:
        raise RockedgeError(f"TensorRT {label} is too old: rockedge builds with 8.5 or newer (JetPack 5.1+)")
    want = opts.precision
    if onnx.precision is not Precision.FP32 and want not in (Precision.FP32, onnx.precision):
        raise RockedgeError(f"the ONNX is already {onnx.precision.value}; build it without --half/--int8 "
                            f"(or from the FP32 ONNX)")
    precision = onnx.precision if onnx.precision is not Precision.FP32 else want
    qdq = onnx.has_qdq or onnx.precision is Precision.INT8
    notes: list[str] = []
    network: list[str] = []
    flags: list[str] = []
    implicit = False

    if v[0] >= 11:
        # Strongly typed only: the engine runs in the precision the ONNX carries.
        if want is Precision.FP16 and onnx.precision is Precision.FP32:
            raise RockedgeError(
                f"TensorRT {label} builds what the ONNX says and has no FP16 flag: make an FP16 ONNX on the "
                "workstation (rockedge export MODEL --half) and build from MODEL.fp16.onnx")
        if want is Precision.INT8 and not qdq:
            raise RockedgeError(
                f"TensorRT {label} has no INT8 calibrators: quantize on the workstation (rockedge export MODEL --int8 "
                "--data DIR) and build from the Q/DQ MODEL.int8.onnx")
        if opts.strongly_typed:
            notes.append(f"TensorRT {label} networks are always strongly typed")
    else:
        if v[0] < 10:
            network.append("EXPLICIT_BATCH")
        if opts.strongly_typed:
            if v[0] < 10:
                raise RockedgeError(f"--strongly-typed needs TensorRT 10 or newer (this is {label})")
            # A strongly typed network runs in the ONNX's own types and ignores precision flags: an FP32 ONNX
            # with --half/--int8 would silently build FP32.
            if want is Precision.FP16 and onnx.precision is Precision.FP32:
                raise RockedgeError(
                    "--strongly-typed builds the ONNX's own types, and this ONNX is FP32: make an FP16 ONNX on the "
                    "workstation (rockedge export MODEL --half) and build MODEL.fp16.onnx, or drop --strongly-typed")
            if want is Precision.INT8 and not qdq:
                raise RockedgeError(
                    "--strongly-typed builds the ONNX's own types, and this ONNX has no Q/DQ nodes: quantize on the "
                    "workstation (rockedge export MODEL --int8 --data DIR) and build MODEL.int8.onnx, or drop "
                    "--strongly-typed")
            network.append("STRONGLY_TYPED")
        elif precision is Precision.FP16:
            flags.append("FP16")
        elif precision is Precision.INT8:
            # INT8 kernels where the graph (or the calibrator) allows, FP16 for the rest (trtexec --best).
            flags += ["INT8", "FP16"]
            implicit = not qdq
            if implicit:
                notes.append("no Q/DQ nodes in the ONNX: calibrating INT8 with TensorRT's entropy calibrator"
                             + (" (deprecated since TensorRT 10.1; a Q/DQ ONNX from `rockedge export --int8` is the "
                                "route TensorRT 11 keeps)" if v[0] >= 10 else ""))
    dla = None
    if opts.dla_core is not None:
        if device.dla_cores <= opts.dla_core:
            raise RockedgeError(f"--dla-core {opts.dla_core}: this device has {device.dla_cores} DLA cores "
                                "(Orin Nano has none; AGX Orin and Orin NX have 2)")
        if precision is Precision.FP32:
            raise RockedgeError("DLA runs FP16 and INT8 only: add --half or --int8")
        dla = opts.dla_core
        # GPU_FALLBACK is a BuilderFlag in every version rockedge builds with, 11 included (pyCore.cpp).
        flags.append("GPU_FALLBACK")
        notes.append(f"DLA core {dla} with GPU fallback: layers DLA cannot run (often Resize) go to the GPU")
    hw = "none"
    if opts.version_compatible or opts.hardware_compatible:
        if v[:2] < (8, 6):
            raise RockedgeError(f"version- and hardware-compatible engines need TensorRT 8.6 or newer (this is {label})")
    if opts.version_compatible:
        flags.append("VERSION_COMPATIBLE")
    if opts.hardware_compatible:
        if device.is_jetson:
            raise RockedgeError("--hardware-compatible is not supported on Jetson (NVIDIA documents hardware "
                                "compatibility for x86 data-centre and desktop GPUs only); build on each device instead")
        if opts.dla_core is not None:
            raise RockedgeError("--hardware-compatible and --dla-core do not go together: a DLA plan runs on the DLA "
                                "it was built for")
        if device.compute_capability < (8, 0):
            raise RockedgeError(f"--hardware-compatible needs an Ampere-or-newer GPU to build on; this is "
                                f"{device.gpu_name or 'a GPU'} ({device.compute_capability[0]}.{device.compute_capability[1]})")
        hw = "ampere_plus"
    if opts.optimization_level is not None:
        if v[:2] < (8, 6):
            raise RockedgeError(f"--optimization-level needs TensorRT 8.6 or newer (this is {label})")
        if not 0 <= opts.optimization_level <= 5:
            raise RockedgeError(f"--optimization-level must be 0..5, got {opts.optimization_level}")
    workspace = int(opts.workspace_gb * GIB) if opts.workspace_gb is not None else default_workspace(device)
    if workspace < 16 * MIB:
        raise RockedgeError(f"--workspace {opts.workspace_gb} GB is too small to build anything; use >= 0.0625")
    return BuildPlan(v, precision, network, flags, workspace, plan_shapes(onnx, opts, default_hw, batch), implicit, dla,
                     hw, opts.version_compatible, opts.optimization_level, notes)


def _fmt(shape: Any) -> str:
    return "x".join("?" if s is None else str(s) for s in shape)


def parse_shape(text: str | None) -> tuple[int, ...] | None:
    """trtexec's shape spelling: ``1x3x512x512`` or ``images:1x3x512x512`` (the name is accepted and dropped)."""
    if text is None:
        return None
    body = text.rsplit(":", 1)[-1]
    try:
        shape = tuple(int(p) for p in body.lower().split("x"))
    except ValueError:
        raise RockedgeError(f"shape {text!r}: expected dims joined by 'x', e.g. 1x3x512x512") from None
    if len(shape) < 2:
        raise RockedgeError(f"shape {text!r}: expected dims joined by 'x', e.g. 1x3x512x512")
    return shape


def failure_advice(plan: BuildPlan, device: DeviceFacts, *, killed: bool, swap_bytes: int | None = None) -> str:
    """What to try after a build that failed or was killed (the OOM killer sends SIGKILL: no Python error)."""
    tips = []
    if plan.workspace_bytes > 256 * MIB:
        tips.append(f"a smaller workspace (--workspace {max(0.25, plan.workspace_bytes / GIB / 2):g})")
    if device.is_jetson or killed:
        if not swap_bytes:
            tips.append("swap: sudo fallocate -l 8G /swapfile && sudo mkswap /swapfile && sudo swapon /swapfile")
        tips.append("freeing memory: stop the desktop (sudo systemctl isolate multi-user.target) and other jobs")
    if plan.precision is Precision.INT8 and plan.implicit_int8:
        tips.append("a Q/DQ ONNX from the workstation (rockedge export --int8) instead of calibrating here, or --half")
    if plan.shapes.max != plan.shapes.min:
        tips.append("a narrower profile (smaller --max-shape)")
    what = "was killed (out of memory?)" if killed else "failed"
    return f"the engine build {what}; try " + "; ".join(tips) if tips else f"the engine build {what}"
