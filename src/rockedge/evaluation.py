"""Backend-agnostic evaluation: any :class:`~rockedge.runtime.backends.base.Backend` over any dataset.

Predictions are made at the model's input size and mapped back to each image's own size with
nearest-neighbour, exactly as the runtime does, then scored against the full-resolution mask.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from rockedge.metrics import ConfusionMatrix
from rockedge.runtime.backends.base import Backend
from rockedge.runtime.preprocess import restore_mask, to_masks


def evaluate(
    backend: Backend,
    dataset: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    batch: int = 1,
    size_hw: tuple[int, int] | None = None,
    progress: bool = False,
    desc: str = "eval",
) -> ConfusionMatrix:
    spec = backend.spec
    size = size_hw or backend.fixed_size or spec.input_size
    if backend.fixed_batch:
        batch = backend.fixed_batch
    cm = ConfusionMatrix(spec.num_classes, spec.ignore_index)
    indices = range(len(dataset))
    bar: Any = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=len(dataset), desc=desc, unit="img", leave=False)
    for start in range(0, len(dataset), batch):
        items = [dataset[i] for i in indices[start : start + batch]]
        out, geoms = backend.infer_frames([img for img, _ in items], size)
        for (_, target), m, g in zip(items, to_masks(out, spec), geoms):
            cm.update(target, restore_mask(m, g))
        if bar is not None:
            bar.update(len(items))
    if bar is not None:
        bar.close()
    return cm


def format_report(report: dict[str, Any], title: str = "") -> str:
    """A readable table of an evaluation report (pixel accuracy, mIoU, per-class IoU)."""
    rows = [("pixel accuracy", report["pixel_accuracy"]), ("mIoU", report["miou"])]
    rows += [(f"IoU {name}", v) for name, v in report["iou"].items()]
    width = max(len(r[0]) for r in rows)
    lines = [title] if title else []
    for name, v in rows:
        lines.append(f"  {name:<{width}}  {'n/a' if v is None or v != v else f'{100 * v:6.2f} %'}")
    return "\n".join(lines)
