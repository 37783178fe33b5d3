"""Drawing and measuring a class mask on its frame (numpy + OpenCV only).

Everything here is OpenCV calls on whole arrays (they release the GIL), so the post-processing
thread of the pipeline runs beside inference instead of competing with it for the interpreter.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np

from rockedge.errors import RockedgeError


def palette_lut(palette_rgb: tuple[tuple[int, int, int], ...] | list[tuple[int, int, int]]) -> np.ndarray:
    """A ``(1, 256, 3)`` BGR lookup table for :func:`cv2.LUT`: class index -> palette colour (unknown -> black)."""
    lut = np.zeros((1, 256, 3), np.uint8)
    for i, (r, g, b) in enumerate(palette_rgb[:256]):
        lut[0, i] = (b, g, r)
    return lut


def colorize(mask: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """Class-index mask -> BGR image in palette colours."""
    return cv2.LUT(cv2.cvtColor(mask, cv2.COLOR_GRAY2BGR), lut)


def draw_overlay(
    frame: np.ndarray,
    mask: np.ndarray,
    lut: np.ndarray,
    *,
    alpha: float = 0.5,
    contours: bool = False,
    background: int = 0,
) -> np.ndarray:
    """Blend each class's palette colour over the frame where the mask has that class.

    The background class is left untouched, so the overlay is the frame itself wherever nothing
    was found; ``contours`` also outlines each region in its full colour.
    """
    if frame.shape[:2] != mask.shape[:2]:
        raise RockedgeError(f"mask {mask.shape[:2]} does not match frame {frame.shape[:2]}")
    if not 0.0 <= alpha <= 1.0:
        raise RockedgeError(f"--alpha must be between 0 and 1, got {alpha}")
    painted = (mask != background).view(np.uint8)
    out = frame.copy()
    if not painted.any():
        return out
    colour = colorize(mask, lut)
    blended = cv2.addWeighted(frame, 1.0 - alpha, colour, alpha, 0.0)
    cv2.copyTo(blended, painted, out)
    if contours:
        thickness = max(1, round(max(frame.shape[:2]) / 640))
        for cls in np.unique(mask):
            if cls == background:
                continue
            cs, _ = cv2.findContours((mask == cls).view(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            cv2.drawContours(out, cs, -1, tuple(int(v) for v in lut[0, int(cls)]), thickness, cv2.LINE_AA)
    return out


def mask_stats(mask: np.ndarray, *, num_classes: int, background: int = 0) -> dict[str, Any]:
    """Rock area fraction (every non-background class counts as rock), rock count from 8-connected
    components, and per-class area fractions when there are more than two classes."""
    total = mask.size
    fg = (mask != background).view(np.uint8)
    n_fg = int(cv2.countNonZero(fg))
    count = 0
    if n_fg:
        count = int(cv2.connectedComponents(fg, connectivity=8)[0]) - 1
    stats: dict[str, Any] = {"rock_fraction": round(n_fg / total, 6) if total else 0.0, "rock_count": count}
    if num_classes > 2:
        hist = np.bincount(mask.ravel(), minlength=num_classes)[:num_classes]
        stats["class_fractions"] = [round(float(v) / total, 6) for v in hist]
    return stats
