"""Each rock's size, and the size distribution a fragmentation survey reports.

A rock is one label of an instance map (see :mod:`rockedge.measure.split`). Its measures, in frame pixels (or
millimetres with ``mm_per_px``), taking the map's own pixels to frame pixels by ``scale`` (sx, sy): the runtime
measures at model resolution and scales, which is exact for areas up to the rounding of the mask and close for
lengths.

* ``area``: pixels x sx x sy (x mm_per_px^2);
* ``diameter``: the equivalent-circle diameter, sqrt(4 area / pi): the size the distribution is of;
* ``short``, ``long``: the sides of the minimum-area rectangle around the rock (a sieve passes a rock by about its
  short side; ``long`` / ``short`` says how elongated it is);
* ``cx``, ``cy``: the centroid, in frame pixels whatever the unit (where it is in the picture).

The distribution is **% passing by area** against diameter: for each size d, the share of the total rock area in
rocks with a diameter <= d. In an image, area is the stand-in for mass that sieve curves use (WipFrag and
Split-Desktop weigh by a volume estimate from the area in the same way), so P50 is the size below which half the
rock area lies, dominated by the big rocks a camera sees well. Counts (``count``) and by-number percentiles
(``p50_count``) are reported too.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import cv2
import numpy as np

PERCENTILES = (20, 50, 80)


@dataclass(frozen=True)
class Rock:
    id: int
    area: float
    diameter: float
    short: float
    long: float
    cx: float
    cy: float

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def passing(sizes: np.ndarray, weights: np.ndarray, q: float) -> float | None:
    """The size below which ``q`` % of the weight lies: the cumulative weight curve read at q, interpolated
    linearly between rocks (the smallest rock's size below its own share)."""
    if not len(sizes) or float(weights.sum()) <= 0:
        return None
    order = np.argsort(sizes, kind="stable")
    s, w = sizes[order].astype(np.float64), weights[order].astype(np.float64)
    cum = np.cumsum(w) / w.sum() * 100
    return float(np.interp(q, cum, s))


@dataclass
class Rocks:
    """The rocks of one frame (or of a whole run, concatenated), with the unit their sizes are in."""

    rocks: list[Rock] = field(default_factory=list)
    unit: str = "px"

    def __len__(self) -> int:
        return len(self.rocks)

    def __iter__(self) -> Any:
        return iter(self.rocks)

    def extend(self, other: "Rocks") -> None:
        self.rocks.extend(other.rocks)

    @property
    def diameters(self) -> np.ndarray:
        return np.asarray([r.diameter for r in self.rocks], np.float64)

    @property
    def areas(self) -> np.ndarray:
        return np.asarray([r.area for r in self.rocks], np.float64)

    def distribution(self) -> dict[str, Any]:
        """count, P20/P50/P80 by area, max diameter, P50 by number, in ``unit``."""
        d, a = self.diameters, self.areas

        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 3)

        out: dict[str, Any] = {"count": len(self.rocks), "unit": self.unit}
        for q in PERCENTILES:
            out[f"p{q}"] = r(passing(d, a, q))
        out["max"] = r(float(d.max())) if len(d) else None
        out["p50_count"] = r(passing(d, np.ones_like(d), 50))
        return out

    def curve(self, points: int = 64) -> list[tuple[float, float]]:
        """(diameter, % passing by area) at ``points`` sizes spread logarithmically over the rocks' range."""
        d, a = self.diameters, self.areas
        if not len(d) or float(a.sum()) <= 0:
            return []
        lo, hi = max(float(d.min()), 1e-6), float(d.max())
        sizes = np.geomspace(lo, hi, points) if hi > lo else np.asarray([hi])
        order = np.argsort(d)
        cum = np.cumsum(a[order]) / a.sum() * 100
        idx = np.searchsorted(d[order], sizes, side="right")
        return [(float(s), float(cum[i - 1]) if i else 0.0) for s, i in zip(sizes, idx)]


def measure(labels: np.ndarray, *, scale: tuple[float, float] = (1.0, 1.0), mm_per_px: float | None = None,
            offset: tuple[float, float] = (0.0, 0.0)) -> Rocks:
    """Measure every rock of an instance map (int, 0 = no rock). ``scale`` = (sx, sy) frame pixels per map pixel,
    ``offset`` = where the map's (0, 0) lies in the frame (a letterbox's padding, in map pixels), ``mm_per_px`` the
    frame's scale (sizes in mm; pixels otherwise)."""
    if mm_per_px is not None and not (mm_per_px > 0 and math.isfinite(mm_per_px)):
        raise ValueError(f"mm_per_px must be a positive number, got {mm_per_px}")
    sx, sy = float(scale[0]), float(scale[1])
    unit = mm_per_px if mm_per_px is not None else 1.0
    lab = labels.astype(np.int32, copy=False)
    out = Rocks(unit="mm" if mm_per_px is not None else "px")
    if not lab.any():
        return out
    ys, xs = np.nonzero(lab)
    ids = lab[ys, xs]
    order = np.argsort(ids, kind="stable")
    ids, ys, xs = ids[order], ys[order], xs[order]
    present, start, count = np.unique(ids, return_index=True, return_counts=True)
    y0, y1 = np.minimum.reduceat(ys, start), np.maximum.reduceat(ys, start)
    x0, x1 = np.minimum.reduceat(xs, start), np.maximum.reduceat(xs, start)
    cy = np.add.reduceat(ys.astype(np.float64), start) / count
    cx = np.add.reduceat(xs.astype(np.float64), start) / count
    s_mm = np.array([sx * unit, sy * unit], np.float32)
    pad = float(s_mm.mean())  # contour points are pixel centres: each side gains one pixel's extent
    for i, k in enumerate(present.tolist()):
        area = float(count[i]) * sx * sy * unit * unit
        crop = (lab[y0[i]:y1[i] + 1, x0[i]:x1[i] + 1] == k).view(np.uint8)
        contours, _ = cv2.findContours(crop, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        pts = np.concatenate(contours).reshape(-1, 2).astype(np.float32)
        (_, _), (w, h), _ = cv2.minAreaRect(pts * s_mm)
        w, h = w + pad, h + pad
        out.rocks.append(Rock(
            id=int(k), area=area, diameter=math.sqrt(4 * area / math.pi), short=float(min(w, h)), long=float(max(w, h)),
            cx=(float(cx[i]) + 0.5 - offset[0]) * sx, cy=(float(cy[i]) + 0.5 - offset[1]) * sy))
    return out



class SizeHistogram:
    """A run's size distribution in constant memory: rock areas summed into log-spaced diameter bins (1/128 of a
    decade each, 1.8 % wide, so a percentile read from it is within 2 % of the exact one), and rock counts likewise. A camera
    that runs for days measures millions of rocks; their distribution is this, not a list."""

    BINS_PER_DECADE = 128
    LO, HI = 1e-3, 1e7  # diameters outside are clamped into the end bins

    def __init__(self, unit: str = "px") -> None:
        self.unit = unit
        n = int(round(math.log10(self.HI / self.LO) * self.BINS_PER_DECADE))
        self.edges = np.geomspace(self.LO, self.HI, n + 1)
        self.area = np.zeros(n, np.float64)
        self.count = np.zeros(n, np.int64)
        self.max = 0.0

    def add(self, rocks: Rocks) -> None:
        if not len(rocks):
            return
        d, a = rocks.diameters, rocks.areas
        idx = np.clip(np.searchsorted(self.edges, d, side="right") - 1, 0, len(self.area) - 1)
        np.add.at(self.area, idx, a)
        np.add.at(self.count, idx, 1)
        self.max = max(self.max, float(d.max()))

    @property
    def total(self) -> int:
        return int(self.count.sum())

    def _passing(self, weights: np.ndarray, q: float) -> float | None:
        total = float(weights.sum())
        if total <= 0:
            return None
        cum = np.concatenate([[0.0], np.cumsum(weights)]) / total * 100  # at the bins' edges
        return float(np.exp(np.interp(q, cum, np.log(self.edges))))  # log-linear within a bin

    def distribution(self) -> dict[str, Any]:
        def r(v: float | None) -> float | None:
            return None if v is None else round(v, 3)

        out: dict[str, Any] = {"count": self.total, "unit": self.unit}
        for q in PERCENTILES:
            out[f"p{q}"] = r(self._passing(self.area, q))
        out["max"] = r(self.max) if self.total else None
        out["p50_count"] = r(self._passing(self.count.astype(np.float64), 50))
        return out

    def curve(self) -> list[tuple[float, float]]:
        """(diameter, % passing by area) at the upper edge of every bin from the first to the last occupied."""
        if self.total == 0 or float(self.area.sum()) <= 0:
            return []
        nz = np.flatnonzero(self.count)
        cum = np.cumsum(self.area) / self.area.sum() * 100
        lo, hi = int(nz[0]), int(nz[-1])
        return [(float(self.edges[lo]), 0.0)] + [(float(self.edges[i + 1]), float(cum[i])) for i in range(lo, hi + 1)]
