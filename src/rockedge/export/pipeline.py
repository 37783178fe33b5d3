"""The two user-facing jobs: export-then-verify, and verify any two models.

Export writes the model to a staging file beside the target, checks it against PyTorch, and only then moves
it into place. A model over budget never replaces the one at the target path: it is kept as
``<stem>.failed.onnx`` next to its ``<stem>.parity.json`` so the failure can be inspected.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rockedge.atomic import ensure_writable_dir, write_json
from rockedge.errors import RockedgeError
from rockedge.export.onnx import ExportResult, export_onnx
from rockedge.export.parity import ParityBudget, ParityReport, compare, frames_with_source


def parity_path(model: str | os.PathLike[str]) -> Path:
    """``model.onnx`` -> ``model.parity.json`` beside it."""
    p = Path(model)
    return p.with_name(p.stem + ".parity.json")


def failed_path(model: str | os.PathLike[str]) -> Path:
    p = Path(model)
    return p.with_name(p.stem + ".failed" + p.suffix)


@dataclass
class ExportOutcome:
    """An export plus its parity check; ``path`` is where the model ended up (target or ``.failed.onnx``)."""

    export: ExportResult
    parity: ParityReport
    report_path: Path

    @property
    def passed(self) -> bool:
        return self.parity.passed


def export_and_verify(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    data_dir: str | os.PathLike[str] | None = None,
    n: int = 8,
    budget: ParityBudget | None = None,
    seed: int = 0,
    trust_pickle: bool = False,
    progress: bool = True,
    **export_kwargs: Any,
) -> ExportOutcome:
    """Export ``checkpoint`` to ``out`` and compare it with PyTorch on ``n`` frames (see module docstring)."""
    from rockedge.export.torch_backend import TorchBackend
    from rockedge.runtime.backends.ort import OrtBackend
    from rockedge.train.checkpoint import load_checkpoint

    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise RockedgeError(f"output path must end in .onnx (rockedge picks the runtime by suffix), got {out.name}")
    if n < 1:
        raise RockedgeError(f"--n must be >= 1, got {n}")
    ensure_writable_dir(out.parent if str(out.parent) else Path("."))
    ckpt = load_checkpoint(checkpoint, trust_pickle=trust_pickle)
    fd, tmp = tempfile.mkstemp(prefix=f".{out.stem}.", suffix=".staging.onnx", dir=out.parent)
    os.close(fd)
    staging = Path(tmp)
    try:
        result = export_onnx(ckpt, staging, trust_pickle=trust_pickle, progress=progress, **export_kwargs)
        result.report["settings"]["source"] = str(checkpoint)
        batch = int(export_kwargs.get("batch", 1))
        frames, source = frames_with_source(n, result.spec.input_size, data_dir, seed)
        with TorchBackend(ckpt) as ref, OrtBackend(staging) as cand:
            # A dynamic model is checked at the export size and at the batch the user asked for.
            parity = compare(ref, cand, frames, budget=budget, batch=batch, size_hw=result.spec.input_size,
                             frame_source=source)
        final = out if parity.passed else failed_path(out)
        os.replace(staging, final)
    finally:
        with contextlib.suppress(OSError):
            staging.unlink()
    result.path = final
    parity.reference["model"] = str(checkpoint)
    parity.candidate["model"] = str(final)
    result.report["model"] = str(final)
    result.report["size_bytes"] = final.stat().st_size
    result.report["parity"] = {
        k: parity.to_dict()[k] for k in ("max_abs_diff", "mean_abs_diff", "agreement", "boundary_agreement", "iou", "passed")
    }
    report_path = write_json(parity_path(out), {"export": result.report, "parity": parity.to_dict()})
    return ExportOutcome(export=result, parity=parity, report_path=report_path)


def verify_models(
    a: str | os.PathLike[str],
    b: str | os.PathLike[str],
    *,
    data_dir: str | os.PathLike[str] | None = None,
    n: int = 8,
    imgsz: tuple[int, int] | None = None,
    batch: int = 1,
    budget: ParityBudget | None = None,
    seed: int = 0,
    trust_pickle: bool = False,
) -> ParityReport:
    """Compare any two models :func:`open_backend` can open; ``a`` is the reference."""
    from rockedge.export.onnx import check_imgsz
    from rockedge.export.parity import _size_for
    from rockedge.runtime.backends.loader import open_backend

    size = check_imgsz(imgsz)
    with open_backend(a, trust_pickle=trust_pickle) as ref, open_backend(b, trust_pickle=trust_pickle) as cand:
        size = _size_for(ref, cand, size)
        frames, source = frames_with_source(n, size, data_dir, seed)
        report = compare(ref, cand, frames, budget=budget, batch=batch, size_hw=size, frame_source=source)
    for side, path in (("reference", a), ("candidate", b)):
        getattr(report, side)["model"] = str(path)
    return report
