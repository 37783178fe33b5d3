"""``rockedge run`` as one function: open the source, the model and the outputs, run, close what was opened."""

from __future__ import annotations

import os
from typing import Any

from rockedge.runtime.backends.loader import BackendOptions
from rockedge.runtime.outputs import RunOutputs
from rockedge.runtime.pipeline import Summary, run_pipeline
from rockedge.runtime.segmenter import Segmenter
from rockedge.runtime.sources import open_source


def run_model(
    model: str | os.PathLike[str],
    source: Any,
    *,
    out: str | os.PathLike[str] | None = None,
    options: BackendOptions | None = None,
    imgsz: tuple[int, int] | None = None,
    batch: int | None = None,
    alpha: float = 0.5,
    contours: bool = False,
    measure: bool = False,
    mm_per_px: float | None = None,
    boundaries: bool = False,
    save_mask: bool = False,
    show: bool = False,
    max_frames: int | None = None,
    progress: bool = True,
) -> Summary:
    """Segment ``source`` (path, camera index, URL, pipeline or iterable of frames) with ``model`` into ``out``.

    The source is opened first, so a missing file fails before a model loads or anything is created.
    Returns the summary (also written as JSON beside the outputs); :meth:`Summary.raise_for_status`
    turns an interrupted, broken or non-finite run into the matching error. ``measure`` splits and measures the
    rocks of every frame (sizes in mm with ``mm_per_px``): ``rocks`` in each JSON line and the summary, one row per
    rock in ``<out>.rocks.csv`` and the % passing curve in ``<out>.rocks.png``.
    """
    with open_source(source) as src:
        with Segmenter(model, options, imgsz=imgsz, batch=batch, alpha=alpha, contours=contours, measure=measure,
                       mm_per_px=mm_per_px, boundaries=boundaries) as seg:
            unit = ("mm" if mm_per_px is not None else "px") if measure else None
            outputs = RunOutputs(src, out, save_mask=save_mask, num_classes=seg.spec.num_classes, rocks_unit=unit)
            return run_pipeline(seg, src, outputs, progress=progress, show=show, max_frames=max_frames)
