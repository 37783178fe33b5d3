"""Export a checkpoint to ONNX, then verify it against PyTorch: the first step of ``rockedge export``.

The model is written to a staging file beside the target and checked with the parity budget before it moves
into place (:mod:`rockedge.steps`): a model over budget never replaces the one at the target path, it is kept
as ``<stem>.failed.onnx`` next to its own ``<stem>.failed.parity.json``. The candidate side of the check is
opened like any model (:func:`open_backend`), as every other producer's is.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rockedge.atomic import ensure_writable_dir
from rockedge.console import note
from rockedge.data.datasets import open_dataset
from rockedge.errors import RockedgeError
from rockedge.export.onnx import ExportResult, export_onnx
from rockedge.runtime.backends.loader import open_backend
from rockedge.runtime.backends.pytorch import TorchBackend
from rockedge.steps import run_step
from rockedge.verify.compare import compare, frames_with_source
from rockedge.verify.parity import ParityBudget, ParityReport


@dataclass
class ExportOutcome:
    """An export plus its parity check; ``export.path`` is where the model ended up (target or ``.failed.onnx``)."""

    export: ExportResult
    parity: ParityReport
    report_path: Path

    @property
    def passed(self) -> bool:
        return self.parity.passed


def load_named_checkpoint(checkpoint: str | os.PathLike[str], *, trust_pickle: bool = False,
                          classes: Sequence[str] | None = None, data_dir: str | os.PathLike[str] | None = None) -> Any:
    """Load a checkpoint; a plain state_dict (no class names of its own) takes them from ``classes``, else from
    the dataset at ``data_dir``, else keeps the assumed ones, saying which in one note."""
    from rockedge.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(checkpoint, trust_pickle=trust_pickle)
    if not ckpt.spec_assumed:
        if classes is not None and tuple(classes) != ckpt.spec.classes:
            raise RockedgeError(
                f"{checkpoint} predicts {', '.join(ckpt.spec.classes)}, not {', '.join(classes)}; drop --classes"
            )
        return ckpt
    n = ckpt.spec.num_classes
    if classes is not None:
        if len(classes) != n:
            raise RockedgeError(f"{checkpoint} predicts {n} classes; --classes names {len(classes)}")
        ckpt.spec = ckpt.spec.replace(classes=tuple(classes))
        ckpt.spec_assumed = False
        return ckpt
    if data_dir is not None:
        ds = open_dataset(data_dir, "val")
        if len(ds.classes) == n:
            ckpt.spec = ckpt.spec.replace(classes=ds.classes, palette=ds.palette)
            ckpt.spec_assumed = False
            note(f"{checkpoint} carries no class names; using the dataset's: {', '.join(ds.classes)}")
            return ckpt
    note(f"{checkpoint} carries no class names; assuming {', '.join(ckpt.spec.classes)} (name them with --classes "
         "or --data)")
    return ckpt


def export_and_verify(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    data_dir: str | os.PathLike[str] | None = None,
    n: int = 8,
    budget: ParityBudget | None = None,
    seed: int = 0,
    trust_pickle: bool = False,
    classes: Sequence[str] | None = None,
    progress: bool = True,
    **export_kwargs: Any,
) -> ExportOutcome:
    """Export ``checkpoint`` to ``out`` and compare it with PyTorch on ``n`` frames (see module docstring)."""

    out = Path(out)
    if out.suffix.lower() != ".onnx":
        raise RockedgeError(f"output path must end in .onnx (rockedge picks the runtime by suffix), got {out.name}")
    if n < 1:
        raise RockedgeError(f"--n must be >= 1, got {n}")
    ensure_writable_dir(out.parent if str(out.parent) else Path("."))
    ckpt = load_named_checkpoint(checkpoint, trust_pickle=trust_pickle, classes=classes, data_dir=data_dir)

    def make(staged: Path) -> tuple[bool, tuple[ExportResult, ParityReport]]:
        result = export_onnx(ckpt, staged, trust_pickle=trust_pickle, progress=progress, **export_kwargs)
        result.report["settings"]["source"] = str(checkpoint)
        frames, source = frames_with_source(n, result.spec.input_size, data_dir, seed)
        with TorchBackend(ckpt) as ref, open_backend(staged) as cand:
            # A dynamic model is checked at the export size and at the batch the user asked for.
            parity = compare(ref, cand, frames, budget=budget, batch=int(export_kwargs.get("batch", 1)),
                             size_hw=result.spec.input_size, frame_source=source)
        return parity.passed, (result, parity)

    def report(final: Path, outcome: tuple[ExportResult, ParityReport]) -> dict[str, Any]:
        result, parity = outcome
        result.path = final
        parity.reference["model"] = str(checkpoint)
        parity.candidate["model"] = str(final)
        result.report["model"] = str(final)
        result.report["size_bytes"] = final.stat().st_size
        result.report["parity"] = {k: parity.to_dict()[k] for k in ("max_abs_diff", "mean_abs_diff", "agreement",
                                                                    "boundary_agreement", "iou", "passed")}
        return {"export": result.report, "parity": parity.to_dict()}

    landed = run_step(out, make, report)
    result, parity = landed.outcome
    return ExportOutcome(export=result, parity=parity, report_path=landed.report_path)
