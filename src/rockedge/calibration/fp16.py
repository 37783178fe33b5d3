"""``rockedge export MODEL --half``: FP32 ONNX -> FP16 ONNX with float32 inputs and outputs (a workstation step).

For TensorRT's strongly typed networks (opt-in in 10, the only kind in 11) and ONNX Runtime's GPU providers,
where the graph's own types are the precision. onnxconverter-common does the conversion and keeps its default
block list of numerically sensitive ops in FP32 (Resize among them, so Resize scales stay float32). Its
``keep_io_types`` still declares an FP16 output when the graph ends in a blocked op, as DeepLabV3 does (it ends
in Resize); :func:`_float32_outputs` appends the missing Cast, so the outputs really are float32.
TensorRT 8.5-10 users do not need this file: the FP32 ONNX with ``--half`` gives the same engine.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from rockedge.atomic import ensure_writable_dir
from rockedge.calibration.inputs import precision_path, read_fp32
from rockedge.deps import require
from rockedge.digest import sha256_file
from rockedge.export.onnx import stamp
from rockedge.precision import Precision
from rockedge.runtime.backends.ort import OrtBackend
from rockedge.steps import Step, run_step
from rockedge.verify.compare import verify_backends
from rockedge.verify.parity import ParityBudget, ParityReport


def to_fp16(model: Any) -> Any:
    """An FP16 copy of an FP32 ``ModelProto`` whose inputs and outputs stay float32."""
    float16 = require("onnxconverter_common.float16", "FP16 conversion")
    with warnings.catch_warnings():
        # One warning per weight clipped to fp16's range: thousands of lines about values below 1e-7.
        warnings.simplefilter("ignore", UserWarning)
        half = float16.convert_float_to_float16(model, keep_io_types=True)
    _float32_outputs(half)
    return half


def _float32_outputs(model: Any) -> None:
    """Make every FLOAT16 graph output FLOAT: the converter's trailing Cast to float16 becomes a Cast to float
    (the blocked op before it already ran in FP32, so no value is rounded twice); any other producer gets a Cast."""
    import onnx
    from onnx import TensorProto, helper

    g = model.graph
    producers = {o: n for n in g.node for o in n.output}
    for out in g.output:
        if out.type.tensor_type.elem_type != TensorProto.FLOAT16:
            continue
        cast = producers.get(out.name)
        if cast is not None and cast.op_type == "Cast":
            next(a for a in cast.attribute if a.name == "to").i = TensorProto.FLOAT
            out.type.tensor_type.elem_type = TensorProto.FLOAT
            continue
        inner = out.name + "_fp16"
        for node in g.node:
            node.output[:] = [inner if o == out.name else o for o in node.output]
            node.input[:] = [inner if i == out.name else i for i in node.input]
        g.node.append(helper.make_node("Cast", [inner], [out.name], to=TensorProto.FLOAT, name=out.name + "_to_fp32"))
        out.type.tensor_type.elem_type = TensorProto.FLOAT
    onnx.checker.check_model(model)


def export_fp16(fp32: str | os.PathLike[str], out: str | os.PathLike[str] | None = None, *,
                data: str | os.PathLike[str] | None = None, n: int = 8, seed: int = 0) -> Step:
    """Convert a rockedge FP32 ONNX to ``<stem>.fp16.onnx`` and check it against the FP32 model (fp16 budget)."""
    onnx = require("onnx", "FP16 conversion")
    fp32 = Path(fp32)
    spec, _ = read_fp32(fp32)
    target = precision_path(fp32, Precision.FP16, Path(out) if out else None)
    ensure_writable_dir(target.parent if str(target.parent) else Path("."))
    half = to_fp16(onnx.load(str(fp32)))
    converter = require("onnxconverter_common", "FP16 conversion")
    settings = {"source": str(fp32), "converter": f"onnxconverter-common {converter.__version__}",
                "keep_io_types": True, "fp32_ops": "onnxconverter-common's default block list (Resize, ...)"}
    stamp(half, spec, settings, source_sha256=sha256_file(fp32), precision=Precision.FP16)
    data_dir = None if data is None or os.fspath(data) == "synth" else data

    def make(staged: Path) -> tuple[bool, ParityReport]:  # a unique hidden name: two exports never collide
        onnx.save(half, str(staged))
        with OrtBackend(fp32, providers=["cpu"]) as ref, OrtBackend(staged, providers=["cpu"]) as cand:
            parity = verify_backends(ref, cand, data_dir=data_dir, n=n, seed=seed,
                                     budget=ParityBudget.for_precision(Precision.FP16))
        return parity.passed, parity

    def report(final: Path, parity: ParityReport) -> dict[str, Any]:
        parity.candidate["model"] = str(final)
        return {"model": str(final), "precision": "fp16", "parity": parity.to_dict(), "settings": settings,
                "size_bytes": final.stat().st_size, "fp32_size_bytes": fp32.stat().st_size, "note": CPU_NOTE}

    landed = run_step(target, make, report)
    final, parity = landed.path, landed.outcome
    size = f"size {fp32.stat().st_size / 1e6:.1f} MB -> {final.stat().st_size / 1e6:.1f} MB\n"
    return Step("fp16", final, parity.passed, landed.report_path,
                f"fp16 -> {final}\n  {size}  note: {CPU_NOTE}\n" + parity.table(), landed.report)


# What an FP16 parity run on ONNX Runtime's CPU provider does and does not show (measured with onnxruntime 1.32).
CPU_NOTE = ("ONNX Runtime's CPU provider has no FP16 kernels for these ops and computes the graph in FP32: this parity "
            "checks the FP16 weights and the graph, not FP16 arithmetic, which TensorRT or a GPU provider adds "
            "(rockedge verify MODEL.fp16.plan --reference MODEL.onnx on the device)")
