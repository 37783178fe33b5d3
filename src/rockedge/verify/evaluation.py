"""Backend-agnostic evaluation: any :class:`~rockedge.runtime.backends.base.Backend` over any dataset.

Predictions are made at the model's input size and mapped back to each image's own size with
nearest-neighbour, exactly as the runtime does, then scored against the full-resolution mask.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from rockedge.console import note
from rockedge.console import progress as console_progress
from rockedge.data.boundary import BoundaryTargets
from rockedge.data.datasets import open_dataset
from rockedge.errors import NonFiniteOutput, RockedgeError
from rockedge.measure import measure_mask
from rockedge.measure.match import InstanceScore, drop_small
from rockedge.measure.split import MIN_AREA_PX
from rockedge.runtime.backends.base import Backend
from rockedge.runtime.backends.loader import BackendOptions, open_backend
from rockedge.runtime.batching import (
    batch_size_for,
    chunks,
    count_nonfinite,
    infer_frames,
)
from rockedge.runtime.preprocess import Geometry, content, fold_boundary, restore_mask, to_masks
from rockedge.sizes import format_hw
from rockedge.spec import BOUNDARY, ModelSpec
from rockedge.verify.metrics import ConfusionMatrix


def evaluate(
    backend: Backend,
    dataset: Sequence[tuple[np.ndarray, np.ndarray]],
    *,
    batch: int = 1,
    size_hw: tuple[int, int] | None = None,
    progress: bool = False,
    desc: str = "eval",
    timings: list[float] | None = None,
    rocks: InstanceScore | None = None,
) -> ConfusionMatrix:
    """Score ``backend`` on ``(BGR image, index mask)`` pairs; refuses a model that emits NaN/Inf.

    ``timings``, when given, receives the inference time of every batch (seconds). ``rocks``, when given, also
    scores the rocks one by one against the dataset's instance masks (``dataset.instances(i)``): the predicted
    mask is split and measured at model resolution as ``rockedge run --measure`` does (:func:`score_rocks`)."""
    spec = backend.spec
    size = size_hw or backend.fixed_size or spec.input_size
    b = spec.boundary_index
    # a boundary model scored on masks without the boundary class (no instance masks to draw it from): its rims are
    # rock, and the scores are over the dataset's classes
    fold = b is not None and getattr(dataset, "boundary", None) != b
    cm = ConfusionMatrix(spec.num_classes - 1 if fold else spec.num_classes, spec.ignore_index)
    indices = list(range(len(dataset)))
    with console_progress(total=len(dataset), desc=desc, unit="img", enabled=progress) as bar:
        for idx in chunks(indices, batch_size_for(backend, batch)):
            items = [dataset[i] for i in idx]
            out, geoms = infer_frames(backend, [img for img, _ in items], size)
            if timings is not None:
                timings.append(backend.last_infer_s)
            bad = count_nonfinite(out)
            if bad:
                raise NonFiniteOutput(
                    f"the model emitted {bad} non-finite logits (NaN/Inf) on image {idx[0]} of the set; its scores "
                    "would be meaningless: the weights diverged or the file is damaged (check it with rockedge verify)"
                )
            for i, (_, target), m, g in zip(idx, items, to_masks(out, spec), geoms):
                cm.update(target, restore_mask(fold_boundary(m, b) if fold and b is not None else m, g))
                if rocks is not None:
                    score_rocks(rocks, dataset, i, target, m, g, boundary=b)
            bar.update(len(items))
    return cm


def score_rocks(rocks: InstanceScore, dataset: Any, i: int, target: np.ndarray, small_mask: np.ndarray,
                geom: Geometry, boundary: int | None = None) -> None:
    """One image's rocks: the model-resolution mask split and measured (sizes in frame pixels), its instances
    restored to the frame with nearest-neighbour and matched against the dataset's true rocks there. True rocks
    smaller than the smallest rock the split keeps (``MIN_AREA_PX`` at model resolution, scaled to the frame) are
    below what the model resolves and are left out (counted as ``too_small``)."""
    truth = dataset.instances(i)
    if truth.shape != target.shape:
        raise RockedgeError(f"instance mask of {dataset.samples[i][1].name} is {truth.shape[0]}x{truth.shape[1]} "
                            f"(HxW) but its mask is {target.shape[0]}x{target.shape[1]}; they must match")
    small = content(small_mask, geom)
    fh, fw = geom.frame_hw
    scale = (fw / small.shape[1], fh / small.shape[0])
    interior = None if boundary is None else ((small != 0) & (small != boundary)).view(np.uint8)
    labels, measured = measure_mask(small, scale=scale, interior=interior)
    pred = cv2.resize(labels, (fw, fh), interpolation=cv2.INTER_NEAREST) if labels.shape != (fh, fw) else labels
    truth, dropped = drop_small(truth, MIN_AREA_PX * scale[0] * scale[1])
    rocks.too_small += dropped
    rocks.add(truth, pred, name=dataset.samples[i][0].name, pred_rocks=measured)


def evaluate_model(model: str | os.PathLike[str], data: str | os.PathLike[str], *, split: str = "val", batch: int = 4,
                   imgsz: tuple[int, int] | None = None, options: BackendOptions | None = None,
                   progress: bool = True, measure: bool = False, sparse: bool = False) -> tuple[dict[str, Any], str]:
    """``rockedge eval``: score a model file on a dataset split; returns the report and its table.

    ``measure``: also score rock by rock against the dataset's instance masks (report key ``measure``);
    ``sparse``: the instance masks label only some rocks (recall only, unlabelled pixels ignored)."""

    with open_backend(model, options) as be:
        ds: Any = open_dataset(data, split)
        ds = boundary_view(be.spec, ds)
        adopt_dataset_classes(be, ds.classes, ds.palette, str(model), assumed=getattr(be, "spec_assumed", False))
        if imgsz and be.fixed_size and tuple(imgsz) != be.fixed_size:
            raise RockedgeError(f"--imgsz {format_hw(imgsz)}: {Path(model).name} was built for {format_hw(be.fixed_size)}")
        rocks = None
        if measure or sparse:
            missing = next((ds.samples[i][1].name for i in range(len(ds)) if ds.instance_path(i) is None), None)
            if missing is not None:
                raise RockedgeError(f"--measure scores rocks one by one and needs an instance mask per image; "
                                    f"{missing} has none (instances/<name>.png beside masks/, or VOC's "
                                    "SegmentationObject/; rockedge data synth writes them)")
            rocks = InstanceScore(sparse=sparse)
        cm = evaluate(be, ds, batch=batch, size_hw=imgsz, progress=progress, rocks=rocks)
        report = {"model": str(model), "data": str(data), "split": split, "images": len(ds), **be.describe(),
                  "input_size": list(imgsz or be.fixed_size or be.spec.input_size),
                  **cm.report(report_classes(be.spec, cm))}
        if rocks is not None:
            report["measure"] = rocks.to_dict()
    table = format_report(report, f"{Path(model).name} on {data} [{split}, {len(ds)} images]")
    if rocks is not None:
        table += "\n" + rocks.table()
    return report, table


def report_classes(spec: ModelSpec, cm: ConfusionMatrix) -> tuple[str, ...]:
    """The class names a confusion matrix from :func:`evaluate` is over: the model's, or the model's without its
    boundary class when the rims were scored as rock."""
    if cm.mat.shape[0] == spec.num_classes:
        return tuple(spec.classes)
    return tuple(c for c in spec.classes if c != BOUNDARY)


def boundary_view(spec: ModelSpec, ds: Any) -> Any:
    """What a model with a rock-boundary class is scored against: the dataset with the boundary class drawn from its
    instance masks (:class:`~rockedge.data.boundary.BoundaryTargets`); a dataset without instance masks as it is
    (:func:`evaluate` then shows the rims as rock, and scores over the dataset's classes)."""
    b = spec.boundary_index
    if b is None or tuple(ds.classes) != tuple(c for c in spec.classes if c != BOUNDARY):
        return ds
    if not ds.has_instances:
        return ds
    return BoundaryTargets(ds, b)


def adopt_dataset_classes(backend: Backend, classes: Sequence[str], palette: Sequence[tuple[int, int, int]],
                          where: str, *, assumed: bool) -> None:
    """Make the model's class names those of the dataset it is scored on, or explain why they differ.

    A plain state_dict carries no names (``assumed``): it takes the dataset's when the counts agree,
    with one note. Two artifacts that both name their classes must agree.
    """
    mine = tuple(backend.spec.classes)
    theirs = tuple(classes)
    if mine == theirs or tuple(c for c in mine if c != BOUNDARY) == theirs:  # a boundary model on rock masks
        return
    if assumed and len(mine) == len(theirs):
        backend.spec = backend.spec.replace(classes=theirs, palette=tuple(palette))
        note(f"{where} carries no class names; using the dataset's: {', '.join(theirs)}")
        return
    if len(mine) != len(theirs):
        raise RockedgeError(
            f"{where} predicts {len(mine)} classes ({', '.join(mine)}) but the dataset has {len(theirs)} "
            f"({', '.join(theirs)}): they cannot be scored against each other"
        )
    raise RockedgeError(
        f"dataset classes {list(theirs)} differ from the model's {list(mine)}; if they are the same classes under "
        f"other names, rename them in the dataset's labelmap.txt or rewrite the model's spec "
        f"(rockedge spec write MODEL --classes {','.join(theirs)})"
    )


def format_report(report: dict[str, Any], title: str = "") -> str:
    """A readable table of an evaluation report (pixel accuracy, mIoU, per-class IoU)."""
    rows = [("pixel accuracy", report["pixel_accuracy"]), ("mIoU", report["miou"])]
    rows += [(f"IoU {name}", v) for name, v in report["iou"].items()]
    width = max(len(r[0]) for r in rows)
    lines = [title] if title else []
    for name, v in rows:
        lines.append(f"  {name:<{width}}  {'n/a' if v is None or v != v else f'{100 * v:6.2f} %'}")
    return "\n".join(lines)
