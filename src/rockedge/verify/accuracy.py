"""Accuracy on labelled images, and how much of it a candidate loses against its reference.

The INT8 budget (``--max-drop``) and the engine build's INT8 check measure the same thing: the IoU of the class
the budget watches (the rock class of a two-class model, else mIoU), through the same evaluation as
``rockedge eval``, for both models, on the val split of a labelled dataset.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from rockedge.data.datasets import open_dataset
from rockedge.errors import RockedgeError
from rockedge.runtime.backends.base import Backend
from rockedge.spec import ModelSpec
from rockedge.verify.evaluation import boundary_view, evaluate, report_classes


def budget_class(spec: ModelSpec) -> str:
    """The class the budget watches: the rock class of a model with one (besides background and a boundary class),
    else "mIoU"."""
    rocks = spec.rock_classes
    return rocks[0] if len(rocks) == 1 and spec.num_classes - len(rocks) == 1 + (spec.boundary_index is not None) \
        else "mIoU"


# Below these a budget proves little, and the report says so: too few held-out images, too few labelled pixels of
# the class it watches, or an FP32 model that barely finds the class (a drop measured from near zero means nothing).
MIN_IMAGES = 10
MIN_CLASS_PIXELS = 10_000
MIN_FP32_IOU = 0.05


@dataclass
class Scores:
    iou: float  # of the budget class (or mIoU)
    miou: float
    ms_per_image: float  # mean inference time at batch 1 on this machine (ONNX Runtime CPU)
    images: int = 0  # what the score rests on: held-out images, and labelled pixels of the budget class
    class_pixels: int = 0

    def to_dict(self) -> dict[str, float]:
        return {k: (round(v, 6) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def caveats(fp32: Scores, cls: str) -> list[str]:
    """Why a score comparison on this basis proves little (empty when it is a fair basis)."""
    out = []
    basis = f"{fp32.images} held-out image{'s' if fp32.images != 1 else ''}, {fp32.class_pixels} labelled {cls} pixels"
    if fp32.images < MIN_IMAGES or fp32.class_pixels < MIN_CLASS_PIXELS:
        out.append(f"the budget rests on {basis}: too few to tell a real loss from chance; use a labelled val split "
                   f"of at least {MIN_IMAGES} images")
    if fp32.iou < MIN_FP32_IOU:
        out.append(f"the FP32 model itself scores {100 * fp32.iou:.1f} % {cls} IoU on them: a drop measured from there "
                   "means nothing (train further, or check the labels and classes with rockedge eval)")
    return out


def score(backend: Backend, dataset: Any, cls: str) -> Scores:
    """Evaluate ``backend`` on ``dataset``; time each image's inference."""
    times: list[float] = []
    cm = evaluate(backend, dataset, batch=1, timings=times)
    rep = cm.report(report_classes(backend.spec, cm))
    iou = rep["miou"] if cls == "mIoU" else rep["iou"].get(cls)
    if iou is None or not np.isfinite(iou):
        raise RockedgeError(f"the held-out set has no {cls!r} pixels to measure the budget on; use a set that has them")
    k = list(report_classes(backend.spec, cm)).index(cls) if cls != "mIoU" else None
    class_pixels = int(cm.mat[k].sum()) if k is not None else int(cm.mat.sum())
    return Scores(float(iou), float(rep["miou"]), 1e3 * float(np.median(times[1:] or times)), images=len(dataset),
                  class_pixels=class_pixels)


def accuracy_drop(reference: Backend, candidate: Backend, data_dir: Any) -> dict[str, Any]:
    """Budget-class IoU of both models on the val split of ``data_dir`` and the drop in points."""

    ds = boundary_view(reference.spec, open_dataset(data_dir, "val"))
    cls = budget_class(reference.spec)
    a, b = score(reference, ds, cls), score(candidate, ds, cls)
    return {"class": cls, "reference": a.to_dict(), "candidate": b.to_dict(), "drop_points": 100 * (a.iou - b.iou),
            "images": len(ds), "class_pixels": a.class_pixels, "caveats": caveats(a, cls)}
