"""What a reduced-precision step starts from: a rockedge FP32 ONNX, where its result goes, and the labelled set
that judges it (the val split of ``--data``, or generated scenes for ``--data synth``)."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rockedge.calibration.reader import SYNTH
from rockedge.data.datasets import open_dataset
from rockedge.data.synth import write_synth_dataset
from rockedge.errors import RockedgeError
from rockedge.precision import Precision
from rockedge.runtime.modelfile import ModelFile, open_model_file
from rockedge.spec import ModelSpec
from rockedge.verify.evaluation import boundary_view


def precision_path(fp32: Path, precision: Precision, out: Path | None = None) -> Path:
    """``model.onnx`` -> ``model.int8.onnx`` / ``model.fp16.onnx`` beside it (or ``out``)."""
    if out is not None:
        if out.suffix.lower() != ".onnx":
            raise RockedgeError(f"output path must end in .onnx, got {out.name}")
        return out
    return fp32.with_name(f"{fp32.stem}.{precision.value}.onnx")


def read_fp32(onnx: Path) -> tuple[ModelSpec, ModelFile]:
    """The spec and file facts of a rockedge FP32 ONNX; one line for anything else."""
    mf = open_model_file(onnx)
    if mf.kind != "onnx":
        raise RockedgeError(f"--half/--int8 start from a checkpoint or an ONNX model, got {onnx.name}")
    spec = mf.require_spec("--half/--int8 start from a checkpoint or an ONNX that rockedge exported")
    if mf.precision is not Precision.FP32:
        raise RockedgeError(f"{onnx} is already {mf.precision.value}; --half/--int8 start from the FP32 model")
    mf.single_input()
    return spec, mf


@contextlib.contextmanager
def labelled_set(data: str | os.PathLike[str] | None, spec: ModelSpec, *, what: str) -> Iterator[tuple[Path, Any]]:
    """(folder, val split) of the labelled set that judges the budget; ``synth`` generates one (40 scenes)."""
    if data is None:
        raise RockedgeError(f"{what} needs --data DIR, a labelled dataset whose val split holds the model to its "
                            "accuracy budget; --data synth measures it on generated rock scenes")
    if os.fspath(data) == SYNTH:
        with tempfile.TemporaryDirectory(prefix="rockedge-synth-") as tmp:
            root = write_synth_dataset(Path(tmp) / "synth", n=200, size_hw=spec.input_size, seed=1234, progress=False)
            yield root, boundary_view(spec, open_dataset(root, "val"))
        return
    root = Path(data)
    try:
        ds = open_dataset(root, "val")
    except RockedgeError as e:
        raise RockedgeError(f"--data {root} is not a labelled dataset ({e}); {what} needs images with masks to "
                            "measure accuracy (or --data synth)") from None
    yield root, boundary_view(spec, ds)
