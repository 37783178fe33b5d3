"""Backend-agnostic evaluation: any :class:`~rockedge.runtime.backends.base.Backend` over any dataset.

Predictions are made at the model's input size and mapped back to each image's own size with
nearest-neighbour, exactly as the runtime does, then scored against the full-resolution mask.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rockedge.console import note
from rockedge.console import progress as console_progress
from rockedge.data.datasets import open_dataset
from rockedge.errors import NonFiniteOutput, RockedgeError
from rockedge.runtime.backends.base import Backend
from rockedge.runtime.backends.loader import BackendOptions, open_backend
from rockedge.runtime.batching import (
    batch_size_for,
    chunks,
    count_nonfinite,
    infer_frames,
)
from rockedge.runtime.preprocess import restore_mask, to_masks
from rockedge.sizes import format_hw
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
) -> ConfusionMatrix:
    """Score ``backend`` on ``(BGR image, index mask)`` pairs; refuses a model that emits NaN/Inf.

    ``timings``, when given, receives the inference time of every batch (seconds)."""
    spec = backend.spec
    size = size_hw or backend.fixed_size or spec.input_size
    cm = ConfusionMatrix(spec.num_classes, spec.ignore_index)
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
            for (_, target), m, g in zip(items, to_masks(out, spec), geoms):
                cm.update(target, restore_mask(m, g))
            bar.update(len(items))
    return cm


def evaluate_model(model: str | os.PathLike[str], data: str | os.PathLike[str], *, split: str = "val", batch: int = 4,
                   imgsz: tuple[int, int] | None = None, options: BackendOptions | None = None,
                   progress: bool = True) -> tuple[dict[str, Any], str]:
    """``rockedge eval``: score a model file on a dataset split; returns the report and its table."""

    with open_backend(model, options) as be:
        ds = open_dataset(data, split)
        adopt_dataset_classes(be, ds.classes, ds.palette, str(model), assumed=getattr(be, "spec_assumed", False))
        if imgsz and be.fixed_size and tuple(imgsz) != be.fixed_size:
            raise RockedgeError(f"--imgsz {format_hw(imgsz)}: {Path(model).name} was built for {format_hw(be.fixed_size)}")
        cm = evaluate(be, ds, batch=batch, size_hw=imgsz, progress=progress)
        report = {"model": str(model), "data": str(data), "split": split, "images": len(ds), **be.describe(),
                  "input_size": list(imgsz or be.fixed_size or be.spec.input_size), **cm.report(be.spec.classes)}
    return report, format_report(report, f"{Path(model).name} on {data} [{split}, {len(ds)} images]")


def adopt_dataset_classes(backend: Backend, classes: Sequence[str], palette: Sequence[tuple[int, int, int]],
                          where: str, *, assumed: bool) -> None:
    """Make the model's class names those of the dataset it is scored on, or explain why they differ.

    A plain state_dict carries no names (``assumed``): it takes the dataset's when the counts agree,
    with one note. Two artifacts that both name their classes must agree.
    """
    mine = tuple(backend.spec.classes)
    theirs = tuple(classes)
    if mine == theirs:
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
