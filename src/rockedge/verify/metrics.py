"""Segmentation metrics in numpy: a confusion matrix for accuracy/IoU, and mask-vs-mask agreement.

Used by training evaluation, ``rockedge eval``, export parity and ``rockedge verify`` alike, so a
number means the same thing everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rockedge.spec import IGNORE_INDEX


class ConfusionMatrix:
    """Accumulates ``target x prediction`` counts; pixels equal to ``ignore_index`` are skipped."""

    def __init__(self, num_classes: int, ignore_index: int = IGNORE_INDEX) -> None:
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.mat = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, target: np.ndarray, pred: np.ndarray) -> None:
        target = np.asarray(target).reshape(-1).astype(np.int64)
        pred = np.asarray(pred).reshape(-1).astype(np.int64)
        if target.shape != pred.shape:
            raise ValueError(f"target and prediction sizes differ: {target.shape} vs {pred.shape}")
        keep = (target != self.ignore_index) & (target >= 0) & (target < self.num_classes)
        idx = target[keep] * self.num_classes + np.clip(pred[keep], 0, self.num_classes - 1)
        self.mat += np.bincount(idx, minlength=self.num_classes**2).reshape(self.num_classes, self.num_classes)

    def merge(self, other: "ConfusionMatrix") -> None:
        self.mat += other.mat

    @property
    def pixel_accuracy(self) -> float:
        total = self.mat.sum()
        return float(np.diag(self.mat).sum() / total) if total else float("nan")

    @property
    def iou(self) -> np.ndarray:
        """Per-class IoU; NaN for a class absent from both target and prediction."""
        tp = np.diag(self.mat).astype(np.float64)
        union = self.mat.sum(0) + self.mat.sum(1) - tp
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(union > 0, tp / np.maximum(union, 1), np.nan)

    @property
    def miou(self) -> float:
        iou = self.iou
        return float(np.nanmean(iou)) if np.isfinite(iou).any() else float("nan")

    def report(self, classes: tuple[str, ...] | list[str]) -> dict:
        iou = self.iou
        return {
            "pixel_accuracy": self.pixel_accuracy,
            "miou": self.miou,
            "iou": {name: (None if np.isnan(v) else float(v)) for name, v in zip(classes, iou)},
            "pixels": int(self.mat.sum()),
        }


def boundary_band(mask: np.ndarray, width: int) -> np.ndarray:
    """Boolean map of pixels within ``width`` pixels of a class change (4-connected)."""
    m = np.asarray(mask)
    edge = np.zeros(m.shape, dtype=bool)
    edge[..., 1:, :] |= m[..., 1:, :] != m[..., :-1, :]
    edge[..., :-1, :] |= m[..., 1:, :] != m[..., :-1, :]
    edge[..., :, 1:] |= m[..., :, 1:] != m[..., :, :-1]
    edge[..., :, :-1] |= m[..., :, 1:] != m[..., :, :-1]
    band = edge.copy()
    for _ in range(max(0, width - 1)):
        grown = band.copy()
        grown[..., 1:, :] |= band[..., :-1, :]
        grown[..., :-1, :] |= band[..., 1:, :]
        grown[..., :, 1:] |= band[..., :, :-1]
        grown[..., :, :-1] |= band[..., :, 1:]
        band = grown
    return band


@dataclass
class MaskAgreement:
    """How far two models' masks agree, accumulated over batches (reference ``a``, candidate ``b``)."""

    num_classes: int
    boundary_width: int = 2
    pixels: int = 0
    same: int = 0
    boundary_pixels: int = 0
    boundary_same: int = 0
    cm: ConfusionMatrix = field(init=False)

    def __post_init__(self) -> None:
        self.cm = ConfusionMatrix(self.num_classes, ignore_index=-1)

    def update(self, a: np.ndarray, b: np.ndarray) -> None:
        a = np.asarray(a)
        b = np.asarray(b)
        if a.shape != b.shape:
            raise ValueError(f"mask shapes differ: {a.shape} vs {b.shape}")
        eq = a == b
        self.pixels += eq.size
        self.same += int(eq.sum())
        # Boundary band of either mask: where disagreements from precision loss concentrate.
        band = boundary_band(a, self.boundary_width) | boundary_band(b, self.boundary_width)
        self.boundary_pixels += int(band.sum())
        self.boundary_same += int(eq[band].sum())
        self.cm.update(a, b)

    @property
    def agreement(self) -> float:
        return self.same / self.pixels if self.pixels else float("nan")

    @property
    def boundary_agreement(self) -> float:
        # No boundary at all means nothing there to disagree on.
        return self.boundary_same / self.boundary_pixels if self.boundary_pixels else 1.0

    def iou(self) -> np.ndarray:
        """Per-class IoU between the two masks (1.0 where a class appears in neither)."""
        return np.nan_to_num(self.cm.iou, nan=1.0)
