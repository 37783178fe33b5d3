"""``rockedge export MODEL --int8``: FP32 ONNX -> Q/DQ INT8 ONNX held to an accuracy budget (workstation step).

Steps: read the calibration set (the labelled set's train split by default, so the val split that judges
the budget is never calibrated on), calibrate once, quantize and score against the FP32 model on the val
split, keep the most sensitive layers in FP32 until within ``--max-drop`` points of rock IoU, check parity
in segmentation terms, stamp spec, precision and quantization settings into the metadata, and put the model
at ``<stem>.int8.onnx`` with ``<stem>.int8.parity.json`` beside it. A model that cannot meet the budget is
kept as ``<stem>.int8.failed.onnx`` with its report, and the command exits 1.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rockedge.atomic import atomic_path, ensure_writable_dir, write_json
from rockedge.calibration.reader import SYNTH, load_calibration_set
from rockedge.digest import sha256_file
from rockedge.errors import RockedgeError
from rockedge.onnx_proto import read_info
from rockedge.precision import Precision
from rockedge.spec import METADATA_KEY, PRECISION_KEY, ModelSpec


@dataclass
class PrecisionOutcome:
    """A reduced-precision ONNX: where it landed, its report, and whether it met its budgets."""

    path: Path
    report_path: Path
    passed: bool
    report: dict[str, Any]
    table: str


def precision_path(fp32: Path, precision: Precision, out: Path | None = None) -> Path:
    """``model.onnx`` -> ``model.int8.onnx`` / ``model.fp16.onnx`` beside it (or ``out``)."""
    if out is not None:
        if out.suffix.lower() != ".onnx":
            raise RockedgeError(f"output path must end in .onnx, got {out.name}")
        return out
    return fp32.with_name(f"{fp32.stem}.{precision.value}.onnx")


def report_path_for(model: Path) -> Path:
    return model.with_name(model.stem + ".parity.json")


def read_fp32(onnx: Path) -> tuple[ModelSpec, dict[str, str], str]:
    """The spec, metadata and input name of a rockedge FP32 ONNX; one line for anything else."""
    if not onnx.is_file():
        raise RockedgeError(f"model not found: {onnx}")
    info = read_info(onnx)
    if METADATA_KEY not in info.metadata:
        raise RockedgeError(f"{onnx} carries no rockedge model spec: --half/--int8 start from a checkpoint or an ONNX "
                            "that rockedge exported")
    precision = Precision.parse(info.metadata.get(PRECISION_KEY, "fp32"))
    if precision is not Precision.FP32:
        raise RockedgeError(f"{onnx} is already {precision.value}; --half/--int8 start from the FP32 model")
    return ModelSpec.from_json(info.metadata[METADATA_KEY]), info.metadata, info.inputs[0].name


@contextlib.contextmanager
def labelled_set(data: str | os.PathLike[str] | None, spec: ModelSpec, *, what: str) -> Iterator[tuple[Path, Any]]:
    """(folder, val split) of the labelled set that judges the budget; ``synth`` generates one (40 scenes)."""
    from rockedge.data.datasets import open_dataset

    if data is None:
        raise RockedgeError(f"{what} needs --data DIR, a labelled dataset whose val split holds the model to its "
                            "accuracy budget; --data synth measures it on generated rock scenes")
    if os.fspath(data) == SYNTH:
        from rockedge.data.synth import write_synth_dataset

        with tempfile.TemporaryDirectory(prefix="rockedge-synth-") as tmp:
            root = write_synth_dataset(Path(tmp) / "synth", n=200, size_hw=spec.input_size, seed=1234, progress=False)
            yield root, open_dataset(root, "val")
        return
    root = Path(data)
    try:
        ds = open_dataset(root, "val")
    except RockedgeError as e:
        raise RockedgeError(f"--data {root} is not a labelled dataset ({e}); {what} needs images with masks to "
                            "measure accuracy (or --data synth)") from None
    yield root, ds


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
) -> PrecisionOutcome:
    """Quantize a rockedge FP32 ONNX to Q/DQ INT8 within the accuracy budget (see the module docstring)."""
    import onnx

    from rockedge.calibration.budget import fit_budget
    from rockedge.calibration.qdq import OP_TYPES, TRT_OPTIONS, calibrate
    from rockedge.export.onnx import stamp
    from rockedge.export.parity import ParityBudget
    from rockedge.export.pipeline import verify_backends
    from rockedge.runtime.backends.ort import OrtBackend

    fp32 = Path(fp32)
    spec, meta, input_name = read_fp32(fp32)
    target = precision_path(fp32, Precision.INT8, Path(out) if out else None)
    ensure_writable_dir(target.parent if str(target.parent) else Path("."))
    with OrtBackend(fp32, providers=["cpu"]) as probe:
        size, fixed_batch = probe.fixed_size or spec.input_size, probe.fixed_batch
    with labelled_set(data, spec, what="--int8") as (root, val):
        source = calib_data if calib_data is not None else root  # the train split: never the val images
        cal_set = load_calibration_set(source, spec, n=calib_n, size_hw=size, seed=seed)
        calibration = calibrate(fp32, cal_set, input_name=input_name, fixed_batch=fixed_batch, method=method)
        model, budget = fit_budget(calibration, val, max_drop=max_drop, max_fp32=max_fp32, progress=progress)
        settings = {
            "source": str(fp32), "method": method, "calibration": calibration.to_dict(), "op_types": list(OP_TYPES),
            "options": dict(TRT_OPTIONS), "kept_fp32": budget.kept, "max_drop_points": max_drop,
            "quantizer": f"onnxruntime {__import__('onnxruntime').__version__} QDQ (symmetric int8, per-channel weights)",
        }
        stamp(model, spec, settings, source_sha256=sha256_file(fp32), precision=Precision.INT8)
        final = target if budget.passed else target.with_name(target.stem + ".failed.onnx")
        with atomic_path(final) as tmp:
            onnx.save(model, str(tmp))
        with OrtBackend(fp32, providers=["cpu"]) as ref, OrtBackend(final, providers=["cpu"]) as cand:
            parity = verify_backends(ref, cand, data_dir=root, n=n, seed=seed,
                                     budget=ParityBudget.for_precision(Precision.INT8))
    report = {"model": str(final), "precision": "int8", "budget": budget.to_dict(), "parity": parity.to_dict(),
              "calibration": calibration.to_dict(), "size_bytes": final.stat().st_size,
              "fp32_size_bytes": fp32.stat().st_size}
    rpath = write_json(report_path_for(target), report)
    table = budget.table() + "\n" + parity.table()
    if not parity.passed:
        table += ("\nnote: for INT8 this parity table is informational: the model is held to --max-drop on labelled "
                  f"images (above). `rockedge verify {final.name} --reference {fp32.name}` holds it to the int8 "
                  "parity preset as well.")
    return PrecisionOutcome(final, rpath, budget.passed, report, table)
