"""Split a rock mask into individual rocks: markers, then a flood from them down the distance map.

A foreground mask merges touching rocks into one region. The classic split (a watershed on the distance
transform) is done here with numpy and OpenCV alone, so it runs on a Jetson:

1. ``dist``: each rock pixel's distance to the nearest non-rock pixel. A rock is a dome of it; two touching
   rocks are two domes joined by a saddle at their contact (the neck).
2. Markers: the top of every dome whose height above its saddle (its *dynamic*) is at least ``h`` pixels
   (:func:`markers`). A pixel belongs to a top when nothing within a window around it is more than ``h`` higher;
   the window grows with the dome (a quarter of its distance value, at least 2 px), so a big rock's bumpy outline
   does not become several rocks while two touching pebbles still do. With a boundary class (a model that
   paints the rim of each rock, see :func:`split_rocks`) the markers are the rock interiors instead.
3. Flood (:func:`flood`): regions grow from their markers level by level down ``dist``, as water rising in the
   inverted map, so the line between two rocks lands on the saddle (their contact) whatever their sizes, not
   half-way between the markers. Regions holding one marker are taken whole (most rocks, no flooding).

Everything works on ``uint8``/``float32`` maps at whatever resolution it is given: the runtime gives it the
model-resolution mask (cheap), evaluation the same.
"""

from __future__ import annotations

import cv2
import numpy as np

H_LOG = 0.25  # a dome is a rock of its own when (peak + C_PX) / (saddle + C_PX) >= e^H_LOG
C_PX = 2.0
# A boundary model's interiors are split with a lower threshold: the rims it paints already cut most contacts, and
# what is left joined are interiors its broken rims did not quite separate (measured: benchmarks/bench_measure.py).
H_INTERIOR = 0.1
MIN_AREA_PX = 4  # smaller regions are noise, not rocks (at model resolution)


def distance(fg: np.ndarray) -> np.ndarray:
    """Euclidean distance of every foreground pixel to the background (0 outside); the frame's edge is not a
    boundary (a rock cut by the frame is not split at the edge)."""
    padded = cv2.copyMakeBorder(fg.view(np.uint8) if fg.dtype == np.bool_ else fg.astype(np.uint8, copy=False),
                                1, 1, 1, 1, cv2.BORDER_REPLICATE)
    return cv2.distanceTransform(padded, cv2.DIST_L2, cv2.DIST_MASK_PRECISE)[1:-1, 1:-1]


def _reconstruct(marker: np.ndarray, limit: np.ndarray) -> np.ndarray:
    """Morphological reconstruction by dilation of ``marker`` under ``limit`` (both float32, marker <= limit)."""
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
    rec = marker
    while True:
        nxt = rec
        for _ in range(8):
            nxt = np.minimum(cv2.dilate(nxt, k), limit)
        if np.array_equal(nxt, rec):
            return rec
        rec = nxt


def markers(dist: np.ndarray, region: np.ndarray, h: float = H_LOG, c: float = C_PX) -> np.ndarray:
    """The tops of the domes of ``dist`` inside ``region`` that stand out: int32 labels (0 = none).

    The extended maxima (h-maxima) of ``g = log(dist + c)``: a dome is a rock of its own when its peak p and the
    saddle s joining it to a higher dome satisfy ``(p + c) / (s + c) >= e^h``: relative for big rocks (a bumpy
    outline is not several rocks), nearly absolute for small ones (``c`` px)."""
    g = np.where(region, np.log(dist + c), 0.0).astype(np.float32)
    rec = _reconstruct(np.where(region, g - h, 0.0).astype(np.float32), g)
    cap = g - rec
    n, comp = cv2.connectedComponents((cap > 1e-4).view(np.uint8), connectivity=8)
    lab = np.asarray(comp, np.int32)
    if n <= 1:
        return np.zeros(dist.shape, np.int32)
    top = np.zeros(n, np.float32)
    np.maximum.at(top, lab.ravel(), cap.ravel())
    keep = top >= h - 1e-4
    keep[0] = False
    ids = np.zeros(n, np.int32)
    ids[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return ids[lab]


# the 8 neighbours, for the steepest ascent
_STEPS = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dy or dx]


def assign(dist: np.ndarray, seeds: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Give every ``region`` pixel the label of the seed its steepest ascent up ``dist`` reaches (the
    drainage-basin form of the watershed: basins meet on the saddle lines, where touching rocks meet); pixels
    whose ascent ends on an unmarked top take their neighbours' label. int32, 0 outside ``region``."""
    hgt, wid = dist.shape
    d = np.where(region, dist, -1.0).astype(np.float32)
    # the highest of each pixel's 3x3 neighbourhood, and which neighbour holds it (pixels on the frame's edge look
    # only inside): one dilation, then the 8 neighbours compared with it, whole-image
    k = cv2.getStructuringElement(cv2.MORPH_RECT, (3, 3))
    top = cv2.dilate(d, k, borderType=cv2.BORDER_CONSTANT, borderValue=-1.0)
    pad = np.pad(d, 1, constant_values=-1.0)
    step = np.zeros((hgt, wid), np.int32)
    todo = region & (top > d)  # pixels with a higher neighbour: they step up to it
    for dy, dx in _STEPS:
        hit = todo & (pad[1 + dy:1 + dy + hgt, 1 + dx:1 + dx + wid] == top)
        step[hit] = dy * wid + dx
        todo &= ~hit
    ptr = np.arange(hgt * wid, dtype=np.int32) + step.ravel()
    lab = seeds.ravel().astype(np.int32)
    marked = np.flatnonzero(lab > 0)
    ptr[marked] = marked  # a seed ends every ascent that reaches it
    for _ in range(64):  # pointer jumping: 2^k steps of ascent per round
        nxt = ptr[ptr]
        if np.array_equal(nxt, ptr):
            break
        ptr = nxt
    out = lab[ptr].reshape(hgt, wid)
    out[~region] = 0
    left = region & (out == 0)
    if left.any():  # unmarked tops and their slopes: grown into from the labelled pixels around them
        ys, xs = np.nonzero(left)
        sl = (slice(max(0, ys.min() - 1), ys.max() + 2), slice(max(0, xs.min() - 1), xs.max() + 2))
        sub, todo_sub = out[sl].astype(np.float32), left[sl]
        while todo_sub.any():
            grown = cv2.dilate(sub, k)
            take = todo_sub & (grown > 0)
            if not take.any():
                break
            sub[take] = grown[take]
            todo_sub &= ~take
        out[sl] = sub.astype(np.int32)
    return out


def assign_nearest(seeds: np.ndarray, region: np.ndarray) -> np.ndarray:
    """Give every ``region`` pixel the label of the nearest seed pixel (a rim painted around rock interiors belongs
    to the interior it surrounds). int32, 0 outside ``region``."""
    free = (seeds == 0).view(np.uint8) if seeds.dtype == np.bool_ else (seeds == 0).astype(np.uint8)
    _, nearest = cv2.distanceTransformWithLabels(free, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    # DIST_LABEL_PIXEL numbers the seed pixels 1..m in raster order: map each to its seed's label
    ys, xs = np.nonzero(free == 0)
    lut = np.zeros(len(ys) + 1, np.int32)
    lut[1:] = seeds[ys, xs]
    out = lut[nearest]
    out[~region] = 0
    return out


def split_rocks(mask: np.ndarray, *, interior: np.ndarray | None = None, h: float = H_LOG, c: float = C_PX,
                min_area: int = MIN_AREA_PX) -> np.ndarray:
    """Label each rock of a rock mask: int32 map, 0 = not rock, 1..n = rocks in raster order of their first pixel.

    ``mask``: non-zero = rock (every non-background class). ``interior``: optional map of rock interiors (a
    model with a boundary class paints them apart, which tells touching rocks apart where the distance map
    cannot): the interiors are split as a rock mask is (threshold ``H_INTERIOR``), each part seeds one rock, and
    the rims go to the nearest seed. Rocks smaller than ``min_area`` pixels are dropped."""
    fg = (mask != 0).view(np.uint8) if mask.dtype == np.uint8 else (mask != 0).astype(np.uint8)
    if not fg.any():
        return np.zeros(mask.shape, np.int32)
    region = fg.astype(bool)
    dist = None
    if interior is not None:  # the interiors, split like a rock mask (a model's rims are often broken), seed the rocks
        inner = ((interior != 0) & region).view(np.uint8)
        seeds = split_rocks(inner, h=H_INTERIOR, c=c, min_area=1) if inner.any() else np.zeros(mask.shape, np.int32)
    else:
        dist = distance(fg)
        seeds = markers(dist, region, h, c)
    # every region needs a seed: one without any (a sliver below every top, a boundary-only blob) is one rock
    n, comp = cv2.connectedComponents(fg, connectivity=8)
    seeded = np.zeros(n, bool)
    seeded[comp[seeds > 0]] = True
    orphan = region & ~seeded[comp]
    if orphan.any():
        seeds = seeds.copy()
        seeds[orphan] = comp[orphan] + int(seeds.max())
    labels = assign(dist, seeds, region) if dist is not None else assign_nearest(seeds, region)
    if min_area > 1:
        sizes = np.bincount(labels.ravel())
        small = sizes < min_area
        small[0] = False
        if small.any():
            labels[small[labels]] = 0
    return _renumber(labels)


def _renumber(labels: np.ndarray) -> np.ndarray:
    """Consecutive ids 1..n in raster order of each rock's first pixel (deterministic, independent of how it was
    split)."""
    flat = labels.ravel()
    nz = np.flatnonzero(flat)
    if not nz.size:
        return labels
    ids, first = np.unique(flat[nz], return_index=True)
    order = np.argsort(first)
    remap = np.zeros(int(ids.max()) + 1, np.int32)
    remap[ids[order]] = np.arange(1, len(ids) + 1, dtype=np.int32)
    return remap[labels]
