"""The % passing curve as a PNG, drawn with OpenCV (the device has no matplotlib): cumulative share of rock area
against diameter on a log axis, P20/P50/P80 marked, the way sieve and fragmentation reports draw it."""

from __future__ import annotations

import math
from typing import Any

import cv2
import numpy as np

W, H = 900, 560
LEFT, RIGHT, TOP, BOTTOM = 80, 30, 50, 70
INK = (40, 40, 40)
GRID = (225, 225, 225)
CURVE = (180, 90, 20)  # BGR
MARK = (60, 60, 200)


def _fmt(v: float) -> str:
    return f"{v:.3g}"


def draw_curve(points: list[tuple[float, float]], dist: dict[str, Any], title: str = "") -> np.ndarray:
    """A BGR image of the curve ``points`` [(diameter, % passing)] with ``dist``'s P20/P50/P80 marked."""
    img = np.full((H, W, 3), 255, np.uint8)
    font = cv2.FONT_HERSHEY_SIMPLEX
    unit = dist.get("unit", "px")
    head = title or "rock size distribution"
    head += f"  ({dist.get('count', 0)} rocks)"
    cv2.putText(img, head, (LEFT, 22), font, 0.6, INK, 1, cv2.LINE_AA)
    x0, x1, y0, y1 = LEFT, W - RIGHT, H - BOTTOM, TOP
    if not points:
        cv2.putText(img, "no rocks measured", (W // 2 - 90, H // 2), font, 0.6, INK, 1, cv2.LINE_AA)
        return img
    ds = np.asarray([p[0] for p in points], np.float64)
    lo = 10 ** math.floor(math.log10(max(float(ds.min()), 1e-6)))
    hi = 10 ** math.ceil(math.log10(max(float(ds.max()), lo * 10)))

    def px(d: float) -> int:
        return int(round(x0 + (math.log10(max(d, lo)) - math.log10(lo)) / (math.log10(hi) - math.log10(lo)) * (x1 - x0)))

    def py(p: float) -> int:
        return int(round(y0 - p / 100 * (y0 - y1)))

    for p in range(0, 101, 20):  # horizontal grid
        cv2.line(img, (x0, py(p)), (x1, py(p)), GRID, 1)
        cv2.putText(img, f"{p}", (x0 - 35, py(p) + 5), font, 0.45, INK, 1, cv2.LINE_AA)
    decade = lo
    while decade <= hi * 1.0001:  # vertical grid at each decade, minor lines at 2..9
        cv2.line(img, (px(decade), y0), (px(decade), y1), (200, 200, 200), 1)
        cv2.putText(img, _fmt(decade), (px(decade) - 12, y0 + 20), font, 0.45, INK, 1, cv2.LINE_AA)
        for k in range(2, 10):
            if decade * k < hi:
                cv2.line(img, (px(decade * k), y0), (px(decade * k), y1), GRID, 1)
        decade *= 10
    cv2.rectangle(img, (x0, y1), (x1, y0), INK, 1)
    cv2.putText(img, f"equivalent diameter ({unit})", (W // 2 - 90, H - 20), font, 0.5, INK, 1, cv2.LINE_AA)
    cv2.putText(img, "% passing (by area)", (8, TOP - 6), font, 0.45, INK, 1, cv2.LINE_AA)
    pts = np.asarray([[px(d), py(p)] for d, p in points], np.int32)
    cv2.polylines(img, [pts], False, CURVE, 2, cv2.LINE_AA)
    for q in (20, 50, 80):
        v = dist.get(f"p{q}")
        if v is None:
            continue
        x, y = px(v), py(q)
        for xs in range(x0, x, 8):  # dashed guide from the axis to the curve, then down
            cv2.line(img, (xs, y), (min(xs + 4, x), y), MARK, 1)
        for ys in range(y, y0, 8):
            cv2.line(img, (x, ys), (x, min(ys + 4, y0)), MARK, 1)
        cv2.circle(img, (x, y), 4, MARK, -1, cv2.LINE_AA)
        cv2.putText(img, f"P{q} {_fmt(v)} {unit}", (x + 8, y - 8), font, 0.5, MARK, 1, cv2.LINE_AA)
    return img
