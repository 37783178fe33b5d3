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
from rockedge.verify.evaluation import evaluate


def budget_class(spec: ModelSpec) -> str:
    """The class the budget watches: the rock (second) class of a two-class model, else "mIoU"."""
    return spec.classes[1] if spec.num_classes == 2 else "mIoU"


@dataclass
class Scores:
    iou: float  # of the budget class (or mIoU)
    miou: float
    ms_per_image: float  # mean inference time at batch 1 on this machine (ONNX Runtime CPU)

    def to_dict(self) -> dict[str, float]:
        return {k: round(v, 6) for k, v in asdict(self).items()}


def score(backend: Backend, dataset: Any, cls: str) -> Scores:
    """Evaluate ``backend`` on ``dataset``; time each image's inference."""
    times: list[float] = []
    cm = evaluate(backend, dataset, batch=1, timings=times)
    rep = cm.report(backend.spec.classes)
    iou = rep["miou"] if cls == "mIoU" else rep["iou"].get(cls)
    if iou is None or not np.isfinite(iou):
        raise RockedgeError(f"the held-out set has no {cls!r} pixels to measure the budget on; use a set that has them")
    return Scores(float(iou), float(rep["miou"]), 1e3 * float(np.median(times[1:] or times)))


def accuracy_drop(reference: Backend, candidate: Backend, data_dir: Any) -> dict[str, Any]:
    """Budget-class IoU of both models on the val split of ``data_dir`` and the drop in points."""

    ds = open_dataset(data_dir, "val")
    cls = budget_class(reference.spec)
    a, b = score(reference, ds, cls), score(candidate, ds, cls)
    return {"class": cls, "reference": a.to_dict(), "candidate": b.to_dict(), "drop_points": 100 * (a.iou - b.iou),
            "images": len(ds)}
