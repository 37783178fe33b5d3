"""``rockedge export``: one verb for every artifact, as Ultralytics has (``format=engine half=True int8=True``).

:func:`export_model` chains the steps a request needs and returns what each produced: a checkpoint becomes
an FP32 ONNX (with parity against PyTorch); ``--half``/``--int8`` turn an FP32 ONNX into an FP16 or Q/DQ
INT8 ONNX (workstation steps: onnx, ONNX Runtime); ``--format engine`` builds a TensorRT plan on the device
(TensorRT, cuda-python; no torch, no onnx); ``--format triton|deepstream`` writes a serving layout. Which options
each format uses is :mod:`rockedge.jobs.formats`; each step stages, checks and keeps its artifact the same way
(:mod:`rockedge.steps`).

This module is on the device side (``export --format engine`` runs on a Jetson, Python 3.8, no torch or onnx):
the workstation steps (checkpoint -> ONNX in :mod:`rockedge.export`, FP16/INT8 ONNX in :mod:`rockedge.calibration`)
are imported by the step that runs them, so a device never loads them (:mod:`rockedge.layers`).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rockedge.engine.build import build_engine
from rockedge.engine.plan import BuildOptions
from rockedge.errors import RockedgeError
from rockedge.jobs.formats import validate_options
from rockedge.jobs.serve import DS_CHECK_FRAMES, write_serving
from rockedge.precision import Precision
from rockedge.runtime.modelfile import file_kind
from rockedge.steps import Step


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
    int8_target: str = "tensorrt"  # --target: tensorrt | cpu
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
    # the options the user set (names as in rockedge.jobs.formats): refused when the format does not use them
    given: frozenset[str] = frozenset()


def export_model(req: ExportRequest) -> list[Step]:
    """Run the steps ``req`` needs; stops at the first step over its budget (its artifact is kept as ``.failed``)."""
    if not req.model.exists():
        raise RockedgeError(f"model not found: {req.model}")
    kind = file_kind(req.model).name
    validate_options(req.format, req.given, from_checkpoint=kind == "checkpoint")
    serving = req.format in ("triton", "deepstream")
    if kind == "engine":
        if not serving:
            raise RockedgeError(f"{req.model.name} is a built engine already; export starts from a checkpoint (.pt) or "
                                "an ONNX model (a plan goes into --format triton as it is)")
        # A TensorRT plan (with its manifest) goes into a Triton repository as it is.
        if req.precision is not Precision.FP32:
            raise RockedgeError(f"{req.model.name} is a built engine: its precision was fixed when it was built; "
                                "drop --half/--int8")
        return [_serving(req, req.model)]
    if kind == "onnx" and req.format == "onnx" and req.precision is Precision.FP32:
        raise RockedgeError(f"{req.model.name} is an ONNX model already: nothing to export; add --half or --int8 for "
                            "a reduced-precision copy, or --format engine|triton|deepstream")
    with _workdir(req) as work:
        steps = _chain(req, kind, work)
        return steps if work is None else [_out_of(work, s, req.model.parent) for s in steps]


def _out_of(work: Path, step: Step, beside: Path) -> Step:
    """A step whose artifact is an intermediate in ``work``, which goes when the command ends: a passed one names no
    report file (its table is in the command's output and in --json); a failed one and its report are moved beside
    the model, so "kept for inspection" stays true."""
    if work not in step.path.parents:
        return step
    if step.passed:
        text = step.text.replace(str(step.path), f"{step.path.name} (an intermediate, not kept)")
        return replace(step, report_path=None, text=text.replace(str(work) + os.sep, ""))
    kept = {p: beside / p.name for p in (step.path, step.report_path) if p is not None and p.exists()}
    for src, dst in kept.items():
        shutil.move(str(src), str(dst))
    return replace(step, path=kept.get(step.path, step.path),
                   report_path=kept.get(step.report_path, step.report_path) if step.report_path else None)


def _chain(req: ExportRequest, kind: str, work: Path | None) -> list[Step]:
    steps: list[Step] = []
    final_is_onnx = req.format == "onnx"
    onnx = req.model
    if kind == "checkpoint":
        if req.format in ("triton", "deepstream"):
            req = _serving_onnx_options(req)
        if work is not None:
            target = work / req.model.with_suffix(".onnx").name
        elif final_is_onnx and req.precision is Precision.FP32 and req.out:
            target = req.out
        else:
            target = req.model.with_suffix(".onnx")
        steps.append(_checkpoint_to_onnx(req, target))
        onnx = steps[-1].path
    if not _ok(steps):
        return steps
    # Reduced precision as an ONNX (the workstation steps) for ONNX Runtime and serving formats. An engine
    # takes the FP32 ONNX and its builder's own FP16/INT8 (TensorRT 8.5-10), or an FP16/Q-DQ ONNX given as MODEL.
    if req.precision is not Precision.FP32 and req.format != "engine":
        steps.append(_reduce(req, onnx, req.out if final_is_onnx else (work / f"{onnx.stem}.{req.precision.value}.onnx"
                                                                        if work is not None else None)))
        onnx = steps[-1].path
    if not _ok(steps) or final_is_onnx:
        return steps
    steps.append(_engine(req, onnx) if req.format == "engine" else _serving(req, onnx))
    return steps


@contextlib.contextmanager
def _workdir(req: ExportRequest) -> Iterator[Path | None]:
    """Where a serving layout's intermediate ONNX models go: a temporary folder (the layout holds its own copy and
    the steps' reports are in the command's output and --json), so exporting a checkpoint for Triton or DeepStream
    never rewrites the ``best.onnx`` beside it. Other formats keep their ONNX: it is the portable artifact."""
    if req.format not in ("triton", "deepstream"):
        yield None
        return
    with tempfile.TemporaryDirectory(prefix="rockedge-export-") as tmp:
        yield Path(tmp)


def _serving(req: ExportRequest, model: Path) -> Step:
    return write_serving(req.format, model, req.out, **{"n": min(req.n, DS_CHECK_FRAMES), "seed": req.seed,
                                                        **req.serving_options})


def _serving_onnx_options(req: ExportRequest) -> ExportRequest:
    """The ONNX a serving layout needs from a checkpoint: a dynamic batch (Triton batches requests, nvinfer batches
    cameras), and for DeepStream float input and logits (turned into probabilities by the serving step)."""
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
    from rockedge.export.pipeline import export_and_verify  # workstation step: see the module docstring

    outcome = export_and_verify(req.model, target, data_dir=None if str(req.data) == "synth" else req.data, n=req.n,
                                budget=req.budget, seed=req.seed, trust_pickle=req.trust_pickle, classes=req.classes,
                                progress=req.progress, **req.onnx_options)
    return Step("onnx", outcome.export.path, outcome.passed, outcome.report_path,
                _onnx_summary(outcome.export.report) + "\n" + outcome.parity.table(),
                {"export": outcome.export.report, "parity": outcome.parity.to_dict()})


def _reduce(req: ExportRequest, onnx: Path, out: Path | None) -> Step:
    from rockedge.calibration.fp16 import export_fp16  # workstation steps: see the module docstring
    from rockedge.calibration.int8 import export_int8

    if req.precision is Precision.INT8:
        return export_int8(onnx, out, data=req.data, calib_data=req.calib_data, calib_n=req.calib_n,
                           max_drop=req.max_drop, max_fp32=req.max_fp32, method=req.calib_method, n=req.n,
                           seed=req.seed, progress=req.progress, target=req.int8_target)
    return export_fp16(onnx, out, data=req.data, n=req.n, seed=req.seed)


def _engine(req: ExportRequest, onnx: Path) -> Step:
    opts = req.engine_options or BuildOptions()
    opts = replace(opts, precision=req.precision)
    return build_engine(onnx, req.out, opts, batch=int(req.onnx_options.get("batch", 1)),
                        imgsz=req.onnx_options.get("imgsz"), timing_cache=req.timing_cache,
                        calib_source=str(req.calib_data) if req.calib_data else None, calib_n=req.calib_n,
                        calib_cache=req.calib_cache, data_dir=req.data, max_drop=req.max_drop, n=req.n, seed=req.seed)


def _onnx_summary(r: dict[str, Any]) -> str:
    from rockedge.export.lint import Finding, format_findings  # workstation step: see the module docstring

    t = r["times"]
    notes = "".join(f"note: {n}\n" for n in r["notes"])
    return (
        f"{notes}exported {r['arch']} -> {r['model']}\n"
        f"  input  {r['input']['name']} {r['input']['shape']} ({r['input']['format']})\n"
        f"  output {r['output']['name']} {r['output']['shape']} ({r['output']['format']})\n"
        f"  size {r['size_bytes'] / 1e6:.1f} MB, nodes {r['nodes_before_simplify']} -> "
        f"{r['nodes_after_simplify']} after simplify, opset {r['settings']['opset']}\n"
        f"  time {t['total_s']:.1f} s (export {t['export_s']:.1f} s, simplify {t['simplify_s']:.1f} s)\n"
        + format_findings([Finding(**f) for f in r["lint"]])
    )
