"""Rocks, one by one: split a rock mask into rocks, measure each, and the size distribution a survey reports.

numpy + OpenCV only (it runs on a Jetson, beside the runtime)::

    from rockedge.measure import measure_mask
    labels, rocks = measure_mask(result.mask, mm_per_px=2.0)
    rocks.distribution()   # {'count': 41, 'p20': ..., 'p50': ..., 'p80': ..., 'max': ..., 'unit': 'mm'}

:mod:`~rockedge.measure.split` tells touching rocks apart, :mod:`~rockedge.measure.rocks` measures them,
:mod:`~rockedge.measure.match` scores predicted rocks against true ones, :mod:`~rockedge.measure.curve` draws the
% passing curve.
"""

from __future__ import annotations

import numpy as np

from rockedge.measure.rocks import Rock, Rocks, measure, passing
from rockedge.measure.split import split_rocks

__all__ = ["Rock", "Rocks", "measure", "measure_mask", "passing", "split_rocks"]


def measure_mask(mask: np.ndarray, *, mm_per_px: float | None = None, scale: tuple[float, float] = (1.0, 1.0),
                 interior: np.ndarray | None = None) -> tuple[np.ndarray, Rocks]:
    """Split a rock mask (non-zero = rock) into rocks and measure them: (int32 instance map, :class:`Rocks`).
    ``scale``: frame pixels per mask pixel (sx, sy) when the mask is at model resolution; ``interior``: the rock
    interiors of a model with a boundary class."""
    labels = split_rocks(mask, interior=interior)
    return labels, measure(labels, scale=scale, mm_per_px=mm_per_px)
