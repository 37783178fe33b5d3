"""``rockedge export MODEL --int8 [--target tensorrt|cpu]``: FP32 ONNX -> Q/DQ INT8 ONNX held to an accuracy budget
(a workstation step). The target picks the layout (:mod:`rockedge.calibration.qdq`): TensorRT's, or the one ONNX
Runtime's CPU provider runs as int8 kernels; both go through the same reader, budget and fallback.

Steps: read the calibration set (the labelled set's train split by default, so the val split that judges
the budget is never calibrated on), calibrate once, quantize and score against the FP32 model on the val
split, keep the most sensitive layers in FP32 until within ``--max-drop`` points of rock IoU, check parity
in segmentation terms, stamp spec, precision and quantization settings into the metadata, and put the model
at ``<stem>.int8.onnx`` with ``<stem>.int8.parity.json`` beside it. A model that cannot meet the budget is
kept as ``<stem>.int8.failed.onnx`` with its own ``<stem>.int8.failed.parity.json`` (the good model's report is
never overwritten), and the command exits 1.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

from rockedge.atomic import ensure_writable_dir
from rockedge.calibration.budget import fit_budget
from rockedge.calibration.inputs import labelled_set, precision_path, read_fp32
from rockedge.calibration.qdq import (
    CPU_OPTIONS,
    OP_TYPES,
    TARGETS,
    TRT_OPTIONS,
    calibrate,
    check_graph,
    cpu_op_types,
    prepare,
    temporary_writes,
)
from rockedge.calibration.reader import load_calibration_set
from rockedge.console import warn
from rockedge.deps import require
from rockedge.digest import sha256_file
from rockedge.errors import RockedgeError
from rockedge.export.onnx import stamp
from rockedge.precision import Precision
from rockedge.runtime.backends.ort import OrtBackend
from rockedge.steps import Step, run_step
from rockedge.verify.compare import verify_backends
from rockedge.verify.parity import ParityBudget, ParityReport


def export_int8(
    fp32: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    *,
    data: str | os.PathLike[str] | None,
    calib_data: str | os.PathLike[str] | None = None,
    calib_n: int = 64,
    max_drop: float = 1.0,
    max_fp32: int | None = None,
    method: str = "minmax",
    n: int = 8,
    seed: int = 0,
    progress: bool = True,
    target: str = "tensorrt",
) -> Step:
    """Quantize a rockedge FP32 ONNX to Q/DQ INT8 in ``target``'s layout (``tensorrt`` or ``cpu``) within the
    accuracy budget (see the module docstring)."""
    onnx = require("onnx", "INT8 quantization")
    if target not in TARGETS:
        raise RockedgeError(f"--target must be one of {', '.join(TARGETS)}, got {target!r}")
    fp32 = Path(fp32)
    spec, mf = read_fp32(fp32)
    input_name = mf.single_input().name
    dest = precision_path(fp32, Precision.INT8, Path(out) if out else None)
    ensure_writable_dir(dest.parent if str(dest.parent) else Path("."))
    with OrtBackend(fp32, providers=["cpu"]) as probe:
        size, fixed_batch = probe.fixed_size or spec.input_size, probe.fixed_batch
    with temporary_writes(dest, fp32), labelled_set(data, spec, what="--int8") as (root, val), \
            tempfile.TemporaryDirectory(prefix="rockedge-int8-") as tmp:
        source = calib_data if calib_data is not None else root  # the train split: never the val images
        cal_set = load_calibration_set(source, spec, n=calib_n, size_hw=size, seed=seed)
        graph = prepare(fp32, target, Path(tmp))
        calibration = calibrate(graph, cal_set, input_name=input_name, fixed_batch=fixed_batch, method=method)
        model, budget = fit_budget(calibration, val, max_drop=max_drop, max_fp32=max_fp32, progress=progress,
                                   target=target)
        ort_version = require("onnxruntime", "INT8 quantization").__version__
        layout = ("symmetric int8 Q/DQ on Conv/Add inputs, per-channel weights (TensorRT's)" if target == "tensorrt"
                  else "uint8 activations and per-channel int8 weights around every quantizable op (ORT CPU's)")
        settings = {
            "source": str(fp32), "target": target, "method": method, "calibration": calibration.to_dict(),
            "op_types": list(OP_TYPES) if target == "tensorrt" else cpu_op_types(),
            "options": dict(TRT_OPTIONS if target == "tensorrt" else CPU_OPTIONS), "kept_fp32": budget.kept,
            "max_drop_points": max_drop, "quantizer": f"onnxruntime {ort_version} QDQ ({layout})",
            "preprocessed": target == "cpu",
        }
        stamp(model, spec, settings, source_sha256=sha256_file(fp32), precision=Precision.INT8, int8_target=target)
        check_graph(model, f"the INT8 model made from {fp32.name}")  # sorted, as ONNX and other tools expect

        def make(staged: Path) -> tuple[bool, ParityReport]:
            onnx.save(model, str(staged))
            with OrtBackend(fp32, providers=["cpu"]) as ref, OrtBackend(staged, providers=["cpu"], layout_note=False) as cand:
                parity = verify_backends(ref, cand, data_dir=root, n=n, seed=seed,
                                         budget=ParityBudget.for_precision(Precision.INT8))
            return budget.passed, parity  # the accuracy budget is the gate; parity is informational for INT8

        def report(final: Path, parity: ParityReport) -> dict[str, Any]:
            parity.candidate["model"] = str(final)
            return {"model": str(final), "precision": "int8", "target": target, "budget": budget.to_dict(),
                    "parity": parity.to_dict(), "calibration": calibration.to_dict(),
                    "size_bytes": final.stat().st_size, "fp32_size_bytes": fp32.stat().st_size}

        landed = run_step(dest, make, report)
    final, parity, rpath = landed.path, landed.outcome, landed.report_path
    for c in budget.caveats:
        warn(c)
    table = f"int8 ({target} layout) -> {final}\n" + budget.table() + "\n" + parity.table()
    if not parity.passed:
        table += ("\nnote: for INT8 this parity table is informational: the model is held to --max-drop on labelled "
                  f"images (above). `rockedge verify {final.name} --reference {fp32.name}` holds it to the int8 "
                  "parity preset as well.")
    return Step("int8", final, budget.passed, rpath, table, landed.report)
