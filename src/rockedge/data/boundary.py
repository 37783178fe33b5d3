"""Rock boundaries as a class: the target that teaches a model where one rock ends and the next begins.

A rock mask cannot tell two touching rocks apart; the three-class formulation used for touching cells in microscopy
can: background, rock interior, and rock boundary (each rock's outermost pixels, so two touching rocks are
separated by a line of boundary on both sides of their contact). It is derived from instance masks (``data synth``
writes them; CVAT's ``SegmentationObject`` holds them), after the training augmentation has scaled and cropped
them, so the line is ``width`` pixels at the model's resolution whatever the source resolution.

A model trained so has a class named :data:`BOUNDARY` after the dataset's own classes. The runtime counts it as
rock (masks, overlays and stats show rocks, not rims, unless asked), and ``--measure`` splits rocks at it: each
connected interior is a rock, the rims go to the nearest interior (:func:`rockedge.measure.split.split_rocks`).
numpy + OpenCV only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

from rockedge.errors import RockedgeError
from rockedge.spec import BOUNDARY, IGNORE_INDEX

BOUNDARY_RGB = (255, 255, 255)  # the boundary class's palette colour
WIDTH_PX = 1


def boundary_map(instances: np.ndarray, width: int = WIDTH_PX) -> np.ndarray:
    """bool map of rock pixels within ``width`` px of another label (another rock, or no rock)."""
    lab = instances.astype(np.float32)
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (2 * width + 1, 2 * width + 1))
    return (instances > 0) & ((cv2.dilate(lab, k) != lab) | (cv2.erode(lab, k) != lab))


def with_boundary(mask: np.ndarray, instances: np.ndarray, index: int, width: int = WIDTH_PX) -> np.ndarray:
    """``mask`` (class indices) with the rims of ``instances`` set to class ``index``; ignored pixels stay ignored."""
    out = mask.copy()
    out[boundary_map(instances, width) & (mask != IGNORE_INDEX)] = index
    return out


def pack(mask: np.ndarray, instances: np.ndarray) -> np.ndarray:
    """One int32 map holding both (instances << 8 | mask), so one nearest-neighbour transform moves them together
    (the augmentation pads masks with the ignore index, 255: an instance id of 0 there)."""
    return (instances.astype(np.int32) << 8) | mask.astype(np.int32)


def unpack(packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (packed & 255).astype(np.uint8), (packed >> 8).astype(np.int32)


class BoundaryTargets(Sequence):
    """A dataset view whose masks carry the boundary class (``index``) derived from the dataset's instance masks:
    what a boundary model is scored against."""

    def __init__(self, ds: Any, index: int, width: int = WIDTH_PX) -> None:
        self.ds, self.boundary, self.width = ds, index, width
        self.samples = ds.samples
        self.classes, self.palette = boundary_classes(ds.classes, ds.palette)

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:  # type: ignore[override]
        image, mask = self.ds[i]
        return image, with_boundary(mask, self.ds.instances(i), self.boundary, self.width)

    def instances(self, i: int) -> np.ndarray:
        return self.ds.instances(i)

    def instance_path(self, i: int) -> Any:
        return self.ds.instance_path(i)


def boundary_classes(classes: Sequence[str], palette: Sequence[tuple[int, int, int]]) -> tuple[tuple[str, ...], tuple[tuple[int, int, int], ...]]:
    """A dataset's classes and palette plus the boundary class."""
    if BOUNDARY in classes:
        raise RockedgeError(f"the dataset already has a class named {BOUNDARY!r}; rename it to train with --boundary")
    return (*classes, BOUNDARY), (*palette, BOUNDARY_RGB)
