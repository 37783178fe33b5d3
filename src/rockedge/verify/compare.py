"""Run two backends on the same frames, then score them (:mod:`rockedge.verify.parity`).

The frames are real images from a dataset's val split, or generated rock scenes; never random noise, which an
untrained model maps to one class and so "agrees" perfectly. Each backend prepares the same BGR frames according
to its own spec, so a ``raw``-input ONNX is compared with a float-input checkpoint exactly as each would be fed.
Any backend can be either side: a checkpoint, an ONNX model in any precision, a TensorRT engine.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rockedge.data.datasets import open_dataset
from rockedge.data.synth import render_scene
from rockedge.errors import RockedgeError
from rockedge.runtime.backends.base import Backend
from rockedge.runtime.backends.loader import BackendOptions, open_backend
from rockedge.runtime.batching import (
    batch_size_for,
    chunks,
    count_nonfinite,
    infer_frames,
)
from rockedge.sizes import format_hw
from rockedge.verify.parity import BackendRun, ParityBudget, ParityReport, score


def size_for(reference: Backend, candidate: Backend, size_hw: tuple[int, int] | None) -> tuple[int, int]:
    """The comparison size: the fixed size of either model, else ``size_hw``, else the candidate's spec."""
    sizes = {b.fixed_size for b in (reference, candidate) if b.fixed_size}
    if len(sizes) > 1:
        raise RockedgeError(
            f"the two models were built for different input sizes ({', '.join(format_hw(s) for s in sizes)}); "
            "re-export one of them with --imgsz, or with --dynamic"
        )
    if size_hw is not None:
        size_hw = (int(size_hw[0]), int(size_hw[1]))
        if sizes and size_hw not in sizes:
            (fixed,) = sizes
            raise RockedgeError(f"--imgsz {format_hw(size_hw)} does not fit a model built for {format_hw(fixed)}")
        return size_hw
    if sizes:
        return next(iter(sizes))
    return candidate.spec.input_size


def run_backend(backend: Backend, frames: Sequence[np.ndarray], size: tuple[int, int], batch: int = 1) -> BackendRun:
    """Outputs per frame, in batches of ``batch`` (or the model's fixed batch size)."""
    outs: list[np.ndarray] = []
    t = time.perf_counter()
    for chunk in chunks(list(frames), batch_size_for(backend, batch)):
        outs.extend(infer_frames(backend, chunk, size)[0])
    seconds = time.perf_counter() - t
    return BackendRun(backend.describe(), backend.spec, outs, seconds, sum(count_nonfinite(o) for o in outs))


def compare(
    reference: Backend,
    candidate: Backend,
    frames: Sequence[np.ndarray],
    *,
    budget: ParityBudget | None = None,
    batch: int = 1,
    size_hw: tuple[int, int] | None = None,
    frame_source: str = "",
) -> ParityReport:
    """Run both backends on the same BGR ``frames`` and measure how far their outputs and masks agree."""
    if not frames:
        raise RockedgeError("parity needs at least one frame")
    if reference.spec.num_classes != candidate.spec.num_classes:
        raise RockedgeError(
            f"the models predict different classes: {list(reference.spec.classes)} vs {list(candidate.spec.classes)}"
        )
    size = size_for(reference, candidate, size_hw)
    ref = run_backend(reference, frames, size, batch)
    cand = run_backend(candidate, frames, size, batch)
    return score(ref, cand, budget=budget or ParityBudget.for_precision("fp32"), size=size, batch=batch,
                 frame_source=frame_source)


def default_frames(
    n: int, size_hw: tuple[int, int], data_dir: str | Path | None = None, seed: int = 0
) -> list[np.ndarray]:
    """``n`` BGR frames: real images from the dataset's val split when ``data_dir`` is given, else generated
    rock scenes. Never random noise, which an untrained model maps to one class and so "agrees" perfectly."""
    frames, _ = frames_with_source(n, size_hw, data_dir, seed)
    return frames


def frames_with_source(
    n: int, size_hw: tuple[int, int], data_dir: str | os.PathLike[str] | None = None, seed: int = 0
) -> tuple[list[np.ndarray], str]:
    """Like :func:`default_frames`, also saying where the frames came from (for the report)."""
    if n < 1:
        raise RockedgeError(f"--n must be >= 1, got {n}")
    if data_dir is not None:
        ds = open_dataset(Path(data_dir), "val")
        # Spread the picks over the split rather than taking the first n near-duplicates of one sequence.
        idx = np.unique(np.linspace(0, len(ds) - 1, num=min(n, len(ds))).round().astype(int))
        return [np.ascontiguousarray(ds[int(i)][0]) for i in idx], f"{data_dir} (val, {len(idx)} of {len(ds)})"

    rng = np.random.default_rng(seed)
    return [render_scene(rng, (int(size_hw[0]), int(size_hw[1])))[0] for _ in range(n)], "generated rock scenes"


def verify_backends(ref: Backend, cand: Backend, *, data_dir: str | os.PathLike[str] | None = None, n: int = 8,
                    imgsz: tuple[int, int] | None = None, batch: int = 1, budget: ParityBudget | None = None,
                    seed: int = 0) -> ParityReport:
    """Compare two open backends on ``n`` frames (dataset images or generated scenes)."""
    size = size_for(ref, cand, imgsz)
    frames, source = frames_with_source(n, size, data_dir, seed)
    return compare(ref, cand, frames, budget=budget, batch=batch, size_hw=size, frame_source=source)


def verify_models(
    model: str | os.PathLike[str],
    reference: str | os.PathLike[str],
    *,
    options: BackendOptions | None = None,
    reference_options: BackendOptions | None = None,
    preset: str | None = None,
    overrides: dict[str, float | None] | None = None,
    **kw: Any,
) -> ParityReport:
    """Check that ``model`` segments like ``reference``; each is anything :func:`open_backend` opens.

    The budget is ``preset`` (default: the precision ``model`` runs in) with ``overrides``.
    """
    with open_backend(reference, reference_options or BackendOptions()) as ref, \
            open_backend(model, options or BackendOptions()) as cand:
        budget = ParityBudget.for_precision(preset or cand.info.precision, **(overrides or {}))
        report = verify_backends(ref, cand, budget=budget, **kw)
    report.reference["model"] = str(reference)
    report.candidate["model"] = str(model)
    return report
