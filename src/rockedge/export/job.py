"""``rockedge export``: one verb for every artifact, as Ultralytics has (``format=engine half=True int8=True``).

:func:`export_model` chains the steps a request needs and returns what each produced: a checkpoint becomes
an FP32 ONNX (with parity against PyTorch); ``--half``/``--int8`` turn an FP32 ONNX into an FP16 or Q/DQ
INT8 ONNX (workstation steps: onnx, ONNX Runtime); ``--format engine`` builds a TensorRT plan on the device
(TensorRT, cuda-python; no torch, no onnx); ``--format triton|deepstream`` writes a serving layout.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rockedge.errors import RockedgeError
from rockedge.precision import Precision

FORMATS = ("onnx", "engine", "triton", "deepstream")


@dataclass
class Step:
    """One artifact written: what it is, where, whether it met its budget, and text to show."""

    kind: str  # onnx | fp16 | int8 | engine | triton | deepstream
    path: Path
    passed: bool
    report_path: Path | None = None
    text: str = ""
    report: dict[str, Any] = field(default_factory=dict)


@dataclass
class ExportRequest:
    """Everything the export command can be asked (CLI options map one to one)."""

    model: Path
    out: Path | None = None
    format: str = "onnx"
    precision: Precision = Precision.FP32
    # ONNX export from a checkpoint
    onnx_options: dict[str, Any] = field(default_factory=dict)  # imgsz, batch, dynamic, opset, simplify, formats
    classes: tuple[str, ...] | None = None
    trust_pickle: bool = False
    # reduced precision
    data: str | os.PathLike[str] | None = None
    calib_data: str | os.PathLike[str] | None = None
    calib_n: int = 64
    calib_method: str = "minmax"
    max_drop: float = 1.0
    max_fp32: int | None = None
    # parity
    budget: Any = None  # ParityBudget for the checkpoint -> ONNX step
    n: int = 8
    seed: int = 0
    progress: bool = True
    # engines
    engine_options: Any = None  # rockedge.engine.plan.BuildOptions
    timing_cache: Path | None = None
    calib_cache: Path | None = None
    # serving
    serving_options: dict[str, Any] = field(default_factory=dict)


def _is_checkpoint(path: Path) -> bool:
    return path.suffix.lower() in (".pt", ".pth", ".ckpt")


def export_model(req: ExportRequest) -> list[Step]:
    """Run the steps ``req`` needs; stops at the first step over its budget (its artifact is kept as ``.failed``)."""
    if req.format not in FORMATS:
        raise RockedgeError(f"--format must be one of {', '.join(FORMATS)}, got {req.format!r}")
    if not req.model.exists():
        raise RockedgeError(f"model not found: {req.model}")
    steps: list[Step] = []
    final_is_onnx = req.format == "onnx"
    onnx = req.model
    serving = req.format in ("triton", "deepstream")
    if serving and req.model.suffix.lower() in (".plan", ".engine"):
        # A TensorRT plan (with its manifest) goes into a Triton repository as it is.
        if req.precision is not Precision.FP32:
            raise RockedgeError(f"{req.model.name} is a built engine: its precision was fixed when it was built; "
                                "drop --half/--int8")
        return [_serving(req, req.model)]
    if _is_checkpoint(req.model):
        if serving:
            req = _serving_onnx_options(req)
        target = req.out if (final_is_onnx and req.precision is Precision.FP32 and req.out) else req.model.with_suffix(".onnx")
        steps.append(_checkpoint_to_onnx(req, target))
        onnx = steps[-1].path
    elif req.model.suffix.lower() != ".onnx":
        raise RockedgeError(f"export starts from a checkpoint (.pt) or an ONNX model, got {req.model.name}")
    if not _ok(steps):
        return steps
    reduced_out = req.out if final_is_onnx else None
    # Reduced precision as an ONNX (the workstation steps) for ONNX Runtime and serving formats. An engine
    # takes the FP32 ONNX and its builder's own FP16/INT8 (TensorRT 8.5-10), or an FP16/Q-DQ ONNX given as MODEL.
    if req.precision is not Precision.FP32 and req.format != "engine":
        steps.append(_reduce(req, onnx, reduced_out))
        onnx = steps[-1].path
    if not _ok(steps) or final_is_onnx:
        return steps
    if req.format == "engine":
        steps.append(_engine(req, onnx))
    else:
        steps.append(_serving(req, onnx))
    return steps


def _serving(req: ExportRequest, model: Path) -> Step:
    from rockedge.export.serving import DS_CHECK_FRAMES, write_serving

    return write_serving(req.format, model, req.out, **{"n": min(req.n, DS_CHECK_FRAMES), "seed": req.seed,
                                                        **req.serving_options})


def _serving_onnx_options(req: ExportRequest) -> ExportRequest:
    """The ONNX a serving layout needs from a checkpoint: a dynamic batch (Triton batches requests, nvinfer batches
    cameras), and for DeepStream float input and logits (turned into probabilities by the serving step)."""
    from dataclasses import replace

    opts = dict(req.onnx_options)
    if req.format == "deepstream" or int(req.serving_options.get("max_batch", 1)) > 0:
        opts["dynamic"] = True
    if req.format == "deepstream":
        for key, needed in (("input_format", "float"), ("output_format", "logits")):
            if opts.get(key, needed) != needed:
                raise RockedgeError(f"--format deepstream needs --{key.replace('_', '-')} {needed}: nvinfer feeds float "
                                    "RGB planes and its segmentation parser reads float class scores")
    return replace(req, onnx_options=opts)


def _ok(steps: list[Step]) -> bool:
    return all(s.passed for s in steps)


def _checkpoint_to_onnx(req: ExportRequest, target: Path) -> Step:
    from rockedge.export.pipeline import export_and_verify

    outcome = export_and_verify(req.model, target, data_dir=None if str(req.data) == "synth" else req.data, n=req.n,
                                budget=req.budget, seed=req.seed, trust_pickle=req.trust_pickle, classes=req.classes,
                                progress=req.progress, **req.onnx_options)
    return Step("onnx", outcome.export.path, outcome.passed, outcome.report_path,
                _onnx_summary(outcome.export.report) + "\n" + outcome.parity.table(),
                {"export": outcome.export.report, "parity": outcome.parity.to_dict()})


def _reduce(req: ExportRequest, onnx: Path, out: Path | None) -> Step:
    if req.precision is Precision.INT8:
        from rockedge.calibration.int8 import export_int8

        o = export_int8(onnx, out, data=req.data, calib_data=req.calib_data, calib_n=req.calib_n, max_drop=req.max_drop,
                        max_fp32=req.max_fp32, method=req.calib_method, n=req.n, seed=req.seed, progress=req.progress)
    else:
        from rockedge.calibration.fp16 import export_fp16

        o = export_fp16(onnx, out, data=req.data, n=req.n, seed=req.seed)
    return Step(req.precision.value, o.path, o.passed, o.report_path, o.table, o.report)


def _engine(req: ExportRequest, onnx: Path) -> Step:
    from dataclasses import replace

    from rockedge.engine.build import build_engine
    from rockedge.engine.plan import BuildOptions

    opts = req.engine_options or BuildOptions()
    opts = replace(opts, precision=req.precision)
    o = build_engine(onnx, req.out, opts, batch=int(req.onnx_options.get("batch", 1)),
                     imgsz=req.onnx_options.get("imgsz"), timing_cache=req.timing_cache,
                     calib_source=str(req.calib_data) if req.calib_data else None, calib_n=req.calib_n,
                     calib_cache=req.calib_cache, data_dir=req.data, max_drop=req.max_drop, n=req.n, seed=req.seed)
    text = f"engine -> {o.plan} (manifest {o.manifest})\n  build: {o.build.get('seconds')} s, layers by precision " \
           f"{o.build.get('layer_precisions')}"
    return Step("engine", o.plan, o.passed, o.report, text, {"build": o.build, "verification": o.verification})


def _onnx_summary(r: dict[str, Any]) -> str:
    t = r["times"]
    notes = "".join(f"note: {n}\n" for n in r["notes"])
    from rockedge.export.lint import Finding, format_findings

    return (
        f"{notes}exported {r['arch']} -> {r['model']}\n"
        f"  input  {r['input']['name']} {r['input']['shape']} ({r['input']['format']})\n"
        f"  output {r['output']['name']} {r['output']['shape']} ({r['output']['format']})\n"
        f"  size {r['size_bytes'] / 1e6:.1f} MB, nodes {r['nodes_before_simplify']} -> "
        f"{r['nodes_after_simplify']} after simplify, opset {r['settings']['opset']}\n"
        f"  time {t['total_s']:.1f} s (export {t['export_s']:.1f} s, simplify {t['simplify_s']:.1f} s)\n"
        + format_findings([Finding(**f) for f in r["lint"]])
    )
