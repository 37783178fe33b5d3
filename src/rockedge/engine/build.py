"""``rockedge export MODEL.onnx --format engine``: plan, build in a child process, verify, then put in place.

The steps, each a function: read what the ONNX is (:func:`onnx_facts`, no onnx package) and what the
device has (:func:`device_facts`); plan (:func:`rockedge.engine.plan.plan_build`); build in a child
process (:func:`run_worker`), so a build the kernel kills for memory is reported with advice instead of
vanishing; check the plan against the ONNX with the parity budgets of its precision (and, for INT8 with
labelled data, the accuracy budget); then move it into place with its manifest and report. A plan over
budget is kept as ``<stem>.failed.plan``, never at the target. Nothing here imports torch or onnx.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from rockedge.atomic import ensure_writable_dir
from rockedge.calibration.cache import cache_path_for
from rockedge.child import run_child
from rockedge.console import note, warn
from rockedge.digest import sha256_file
from rockedge.engine.plan import (
    BuildOptions,
    BuildPlan,
    DeviceFacts,
    OnnxFacts,
    failure_advice,
    plan_build,
)
from rockedge.errors import BackendUnavailable, RockedgeError
from rockedge.flops import FLOPS_KEY
from rockedge.plan_trust import record_built
from rockedge.precision import Precision
from rockedge.probes import jetson, meminfo, module_version
from rockedge.runtime.backends.ort import OrtBackend
from rockedge.runtime.backends.trt import TrtBackend
from rockedge.runtime.manifest import EngineManifest, manifest_path, write_manifest
from rockedge.runtime.modelfile import (
    ENGINE_SUFFIXES,
    cpu_layout_refusal,
    open_model_file,
)
from rockedge.spec import ModelSpec
from rockedge.steps import Step, run_step
from rockedge.verify.accuracy import accuracy_drop
from rockedge.verify.compare import verify_backends
from rockedge.verify.parity import ParityBudget


def engine_path(onnx: Path, precision: Precision, out: Path | None) -> Path:
    """``--out``, else the ONNX's name with .plan (and the precision, when the ONNX itself is FP32)."""
    if out is not None:
        if out.suffix.lower() not in ENGINE_SUFFIXES:
            raise RockedgeError(f"an engine path must end in {', '.join(ENGINE_SUFFIXES)}, got {out.name}")
        return out
    tag = "" if precision is Precision.FP32 or precision.value in onnx.stem.split(".") else f".{precision.value}"
    return onnx.with_name(f"{onnx.stem}{tag}.plan")


def onnx_facts(onnx: Path) -> tuple[OnnxFacts, ModelSpec]:
    """The input, precision and Q/DQ-ness of a rockedge ONNX, and its spec."""
    mf = open_model_file(onnx)
    spec = mf.require_spec("an engine build needs its classes and preprocessing")
    inp = mf.single_input()
    flops = int(mf.metadata.get(FLOPS_KEY, 0) or 0)
    return OnnxFacts(inp.name, inp.shape, mf.precision, mf.has_qdq, mf.opset, flops), spec


def device_facts(*, command: list[str] | None = None) -> tuple[str, DeviceFacts, dict[str, Any]]:
    """(TensorRT version, the GPU, the platform) or one line saying what is missing (TensorRT first, then a GPU).

    TensorRT and CUDA are asked in a child process (:func:`rockedge.engine.worker.probe`): the parent never
    creates a CUDA context or a Builder, whose memory the build child needs on a Jetson."""
    facts = run_worker({"probe": True}, command=command)
    j = jetson()
    total = int(facts.get("total_memory") or 0)
    if j.ok:  # a Jetson's GPU memory is its RAM: /proc/meminfo says the same without CUDA
        total = meminfo().get("MemTotal", total)
    major, minor = (int(x) for x in str(facts["compute_capability"]).split("."))
    gib = 2**30
    platform = {"gpu": f"{facts['gpu_name']} (compute capability {facts['compute_capability']}), "
                       f"{int(facts.get('free_memory') or 0) / gib:.1f} of {int(facts.get('total_memory') or 0) / gib:.1f}"
                       " GiB free", **(j.value or {})}
    device = DeviceFacts(str(facts["gpu_name"]), (major, minor), total, int(facts.get("dla_cores") or 0), j.ok)
    return str(facts["tensorrt_version"]), device, platform


# A build child that runs longer than this is stopped (seconds; ROCKEDGE_BUILD_TIMEOUT overrides). A large INT8
# build on an Orin Nano takes tens of minutes; hours mean it hangs. The probe child (import TensorRT, create a CUDA
# context, ask for the GPU and its DLA cores) takes seconds: minutes mean a hung driver.
BUILD_TIMEOUT_S = 3 * 3600.0
PROBE_TIMEOUT_S = 600.0


def build_timeout() -> float:
    """The build child's time limit: ROCKEDGE_BUILD_TIMEOUT (seconds) when set, else :data:`BUILD_TIMEOUT_S`."""
    text = os.environ.get("ROCKEDGE_BUILD_TIMEOUT", "").strip()
    if not text:
        return BUILD_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value > 0:
        raise RockedgeError(f"ROCKEDGE_BUILD_TIMEOUT must be a number of seconds > 0, got {text!r}")
    return value


def run_worker(request: dict[str, Any], *, command: list[str] | None = None,
               timeout: float | None = None) -> dict[str, Any]:
    """Run the build child on ``request``; returns its result, or raises with what to do when it failed or was killed.

    ``command`` replaces ``python -m rockedge.engine.worker`` (the tests use children that kill themselves or run
    against a fake TensorRT)."""
    probe = bool(request.get("probe"))
    limit = timeout if timeout is not None else PROBE_TIMEOUT_S if probe else build_timeout()
    what = "the TensorRT probe (import TensorRT, open the GPU)" if probe else "the engine build"
    try:
        child = run_child("rockedge.engine.worker", request, what=what, command=command, timeout=limit)
    except RockedgeError as e:
        if probe:
            raise RockedgeError(f"{e}: is the GPU driver hung? (nvidia-smi / tegrastats); nothing was written") from None
        raise RockedgeError(f"{e} (set ROCKEDGE_BUILD_TIMEOUT to allow longer); nothing was written") from None
    if probe:
        if child.ok:
            return child.result
        error = child.error("the TensorRT probe")
        raise (BackendUnavailable if child.result.get("unavailable") else RockedgeError)(error)
    plan = BuildPlan.from_dict(request["plan"])
    device = DeviceFacts(**request.get("device", {})) if request.get("device") else DeviceFacts()
    told = "\n".join([child.stderr, *map(str, child.result.get("messages") or [])])
    out_of_memory = any(sig in told for sig in OOM_SIGNATURES)
    if child.signal is not None:
        killed = child.signal == signal.SIGKILL
        advice = failure_advice(plan, device, killed=killed, swap_bytes=meminfo().get("SwapTotal"))
        raise RockedgeError(f"{advice} (signal {child.signal}); nothing was written")
    if not child.ok:
        error = child.error("the build process")
        if out_of_memory or any(sig in error for sig in OOM_SIGNATURES):
            error += "; " + failure_advice(plan, device, killed=False)
        raise RockedgeError(f"{error}; nothing was written")
    result = child.result
    if out_of_memory:
        result.setdefault("warnings", []).append(
            "the build ran short of memory (some tactics were skipped); a larger --workspace or more free memory "
            "may give a faster engine")
    return result


# What running out of memory looks like in a build's output (TensorRT, the Jetson driver, the CUDA runtime).
OOM_SIGNATURES = ("NvMapMemAllocInternalTagged", "OutOfMemory", "out of memory", "FAILED_ALLOCATION",
                  "could not be allocated", "insufficient memory", "insuficient memory")


def build_engine(
    onnx: str | os.PathLike[str],
    out: str | os.PathLike[str] | None,
    options: BuildOptions,
    *,
    batch: int = 1,
    imgsz: tuple[int, int] | None = None,
    timing_cache: str | os.PathLike[str] | None = None,
    calib_source: str | None = None,
    calib_n: int = 64,
    calib_cache: str | os.PathLike[str] | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    max_drop: float = 1.0,
    n: int = 8,
    seed: int = 0,
    worker_command: list[str] | None = None,
) -> Step:
    """Build ``onnx`` into a TensorRT plan on this device (see the module docstring)."""
    onnx = Path(onnx)
    if not onnx.is_file():
        raise RockedgeError(f"model not found: {onnx}")
    if open_model_file(onnx).int8_target == "cpu":
        raise RockedgeError(cpu_layout_refusal(onnx.name))
    facts, spec = onnx_facts(onnx)
    target = engine_path(onnx, options.precision if facts.precision is Precision.FP32 else facts.precision,
                         Path(out) if out else None)
    ensure_writable_dir(target.parent if str(target.parent) else Path("."))
    trt_version, device, platform = device_facts(command=worker_command)
    plan = plan_build(trt_version, options, facts, device, default_hw=imgsz or spec.input_size, batch=batch)
    for text in plan.notes:
        note(text)
    onnx_sha = sha256_file(onnx)

    def make(staged: Path) -> tuple[bool, tuple[dict[str, Any], EngineManifest, dict[str, Any], str]]:
        result = run_worker({
            "onnx": str(onnx), "staging": str(staged), "plan": plan.to_dict(), "input_name": facts.input_name,
            "spec": spec.to_dict(), "timing_cache": str(timing_cache) if timing_cache else None,
            "calib_source": calib_source, "calib_n": calib_n, "seed": seed, "onnx_sha256": onnx_sha,
            "calib_cache": str(calib_cache or cache_path_for(onnx)),
            "device": {"gpu_name": device.gpu_name, "compute_capability": list(device.compute_capability),
                       "total_memory": device.total_memory, "dla_cores": device.dla_cores,
                       "is_jetson": device.is_jetson},
        }, command=worker_command)
        manifest = EngineManifest(
            spec=spec, tensorrt_version=trt_version, gpu_name=device.gpu_name,
            compute_capability=f"{device.compute_capability[0]}.{device.compute_capability[1]}",
            precision=plan.precision, input_shapes={facts.input_name: plan.shapes.to_dict()},
            onnx_sha256=onnx_sha, onnx_path=str(onnx), version_compatible=plan.version_compatible,
            hardware_compatibility=plan.hardware_compatibility, plan_sha256=sha256_file(staged),
            build={**plan.to_dict(), "seconds": result.get("seconds"), "layer_precisions": result.get("layer_precisions"),
                   "timing_cache": str(timing_cache) if timing_cache else None, "flops": facts.flops},
            calibration_sha256=(result.get("calibration") or {}).get("sha256"), platform=platform,
        )
        if plan.version_compatible:
            record_built(manifest.plan_sha256 or sha256_file(staged))  # see rockedge.plan_trust
        verification, table = verify_engine(staged, manifest, onnx, data_dir=data_dir, n=n, seed=seed,
                                            max_drop=max_drop, shown_as=target.name)
        _check_precision(plan.precision, result.get("layer_precisions") or {}, verification)
        manifest.verification = verification
        return verification.get("passed", True) is not False, (result, manifest, verification, table)

    def report(final: Path, outcome: tuple[dict[str, Any], EngineManifest, dict[str, Any], str]) -> dict[str, Any]:
        _, manifest, verification, _ = outcome
        write_manifest(final, manifest)  # the plan's manifest lands beside it, passed or .failed
        return {"engine": str(final), "build": manifest.build, "verification": verification}

    landed = run_step(target, make, report, report_to=engine_report_path)
    final, report_file = landed.path, landed.report_path
    result, manifest, verification, table = landed.outcome
    passed = landed.passed
    manifest_file = manifest_path(final)
    text = (f"engine -> {final} (manifest {manifest_file.name})\n  build: {manifest.build.get('seconds')} s, layers by "
            f"precision {manifest.build.get('layer_precisions')}" + (f"\n{table}" if table else ""))
    return Step("engine", final, passed, report_file, text,
                {"build": manifest.build, "verification": verification, "manifest": str(manifest_file)},
                warnings=list(result.get("warnings") or []))


def engine_report_path(plan: Path) -> Path:
    """``m.int8.plan`` -> ``m.int8.plan.parity.json``: beside the manifest ``m.int8.plan.json``, and never the INT8
    step's ``m.int8.parity.json``."""
    return plan.with_name(plan.name + ".parity.json")


def _check_precision(precision: Precision, layers: dict[str, int], verification: dict[str, Any]) -> None:
    """A build that swallowed its precision request (a silent FP32 engine) fails verification."""
    want = {Precision.FP16: "fp16", Precision.INT8: "int8"}.get(precision)
    if want is not None and layers and not layers.get(want):
        verification["passed"] = False
        verification.setdefault("failures", []).append(
            f"asked for {precision.value}, but no layer of the engine runs in {want} ({layers})")


def verify_engine(plan_path: Path, manifest: EngineManifest, onnx: Path, *, data_dir: Any, n: int, seed: int,
                  max_drop: float, shown_as: str = "") -> tuple[dict[str, Any], str]:
    """The new plan against its ONNX (ONNX Runtime): mask parity with the precision's budget, and for INT8 with
    labelled data the rock-IoU drop; returns the record and the parity table. Without ONNX Runtime here it says
    so instead of passing."""
    if module_version("onnxruntime") is None:
        warn("ONNX Runtime is not installed here, so the engine was not compared with its ONNX; run "
             f"`rockedge verify {shown_as or plan_path.name} --reference {onnx.name}` where it is")
        return {"passed": None, "reason": "onnxruntime not installed on the build machine"}, ""
    budget = ParityBudget.for_precision(manifest.precision)
    with OrtBackend(onnx, providers=["cpu"]) as ref, TrtBackend(plan_path, manifest=manifest,
                                                                            trust_plan_code=True) as cand:
        report = verify_backends(ref, cand, data_dir=data_dir, n=n, seed=seed, budget=budget)
        out: dict[str, Any] = {"parity": report.to_dict(), "passed": report.passed, "failures": list(report.failures)}
        if manifest.precision is Precision.INT8 and data_dir is not None:
            drop = accuracy_drop(ref, cand, data_dir)
            out["accuracy"] = drop
            if drop["drop_points"] > max_drop:
                out["passed"] = False
                out["failures"].append(f"{drop['class']} IoU drops {drop['drop_points']:.2f} points > --max-drop {max_drop:g}")
    table = report.table() + "".join(f"\nwarning: {c}" for c in (out.get("accuracy") or {}).get("caveats", []))
    return out, table
