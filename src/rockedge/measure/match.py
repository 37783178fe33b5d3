"""Predicted rocks against true rocks: one-to-one matching at IoU >= 0.5, and what a survey cares about.

Two instance maps of the same size (int, 0 = no rock). A predicted rock matches a true rock when their
intersection over union is at least 0.5; above 0.5 a rock can overlap only one other that much, so the matching
is unique without any assignment search (the greedy pass by IoU also settles exact ties at 0.5).

Per image: true positives, false positives (predicted rocks matching none), false negatives (true rocks nobody
matched), the counts, and P50/P80 of both size distributions. :class:`InstanceScore` sums them over a dataset:
instance F1 from the summed counts, the count and P50/P80 errors relative and signed (prediction minus truth,
over truth), averaged over the images that have true rocks. With ``sparse=True`` (labels that paint only a few of
the rocks, like the original project's photos) only recall means anything: each labelled rock is found or not,
and unlabelled pixels are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from rockedge.measure.rocks import Rocks, measure

IOU = 0.5


@dataclass
class Match:
    """One image's matching."""

    tp: int
    fp: int
    fn: int
    pairs: list[tuple[int, int, float]]  # (true id, predicted id, IoU) of the matches

    @property
    def found(self) -> set[int]:
        return {t for t, _, _ in self.pairs}


def overlaps(truth: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(true ids, predicted ids, intersection matrix, union matrix) of two instance maps."""
    if truth.shape != pred.shape:
        raise ValueError(f"instance maps differ in size: {truth.shape} vs {pred.shape}")
    t = truth.ravel().astype(np.int64)
    p = pred.ravel().astype(np.int64)
    t_ids = np.unique(t[t > 0])
    p_ids = np.unique(p[p > 0])
    ti = np.zeros(int(t.max(initial=0)) + 1, np.int64)
    pi = np.zeros(int(p.max(initial=0)) + 1, np.int64)
    ti[t_ids] = np.arange(1, len(t_ids) + 1)
    pi[p_ids] = np.arange(1, len(p_ids) + 1)
    both = (t > 0) & (p > 0)
    inter = np.zeros((len(t_ids) + 1, len(p_ids) + 1), np.int64)
    np.add.at(inter, (ti[t[both]], pi[p[both]]), 1)
    t_area = np.bincount(ti[t], minlength=len(t_ids) + 1)
    p_area = np.bincount(pi[p], minlength=len(p_ids) + 1)
    union = t_area[:, None] + p_area[None, :] - inter
    return t_ids, p_ids, inter[1:, 1:], union[1:, 1:]


def match(truth: np.ndarray, pred: np.ndarray, *, iou: float = IOU, sparse: bool = False) -> Match:
    """Match ``pred`` rocks to ``truth`` rocks one-to-one at IoU >= ``iou``.

    ``sparse``: ``truth`` labels only some rocks, and every unlabelled pixel is ignored: predicted rocks are only
    judged against the labelled ones (no false positives are counted), and a predicted rock's pixels off every
    labelled rock do not count against it (they may be an unlabelled part of the same rock). A predicted rock that
    merges two labelled rocks still fails both."""
    t_ids, p_ids, inter, union = overlaps(truth, pred)
    if sparse and len(t_ids) and len(p_ids):
        t_area = np.bincount(truth.ravel().astype(np.int64), minlength=int(t_ids.max()) + 1)[t_ids][:, None]
        on_labels = inter.sum(axis=0, keepdims=True)  # each predicted rock's pixels that lie on some labelled rock
        union = t_area + on_labels - inter
    scores = np.where(union > 0, inter / np.maximum(union, 1), 0.0)
    pairs: list[tuple[int, int, float]] = []
    used_t: set[int] = set()
    used_p: set[int] = set()
    for flat in np.argsort(-scores, axis=None, kind="stable"):
        i, j = divmod(int(flat), scores.shape[1])
        s = float(scores[i, j])
        if s < iou:
            break
        if i in used_t or j in used_p:
            continue
        used_t.add(i)
        used_p.add(j)
        pairs.append((int(t_ids[i]), int(p_ids[j]), round(s, 4)))
    tp = len(pairs)
    fp = 0 if sparse else len(p_ids) - tp
    return Match(tp, fp, len(t_ids) - tp, pairs)


def drop_small(instances: np.ndarray, min_area: float) -> tuple[np.ndarray, int]:
    """``instances`` without the rocks smaller than ``min_area`` pixels, and how many were dropped."""
    if min_area <= 1:
        return instances, 0
    sizes = np.bincount(instances.ravel().astype(np.int64))
    small = sizes < min_area
    small[0] = False
    small &= sizes > 0
    if not small.any():
        return instances, 0
    out = instances.copy()
    out[small[instances]] = 0
    return out, int(small.sum())


def _rel(pred: float | None, true: float | None) -> float | None:
    if pred is None or true is None or true <= 0:
        return None
    return (pred - true) / true


@dataclass
class InstanceScore:
    """Sums of :class:`Match` over a dataset, and the relative count / P50 / P80 errors per image."""

    sparse: bool = False
    too_small: int = 0  # true rocks below what the model resolves, left out of the scores
    tp: int = 0
    fp: int = 0
    fn: int = 0
    images: int = 0
    count_errors: list[float] = field(default_factory=list)
    p50_errors: list[float] = field(default_factory=list)
    p80_errors: list[float] = field(default_factory=list)
    per_image: list[dict[str, Any]] = field(default_factory=list)

    def add(self, truth: np.ndarray, pred: np.ndarray, *, name: str = "", scale: tuple[float, float] = (1.0, 1.0),
            pred_rocks: Rocks | None = None) -> Match:
        """Score one image: ``truth`` and ``pred`` instance maps of the same size; ``pred_rocks`` when the
        predicted sizes were measured elsewhere (at model resolution, as the runtime does)."""
        m = match(truth, pred, sparse=self.sparse)
        self.tp, self.fp, self.fn, self.images = self.tp + m.tp, self.fp + m.fp, self.fn + m.fn, self.images + 1
        row: dict[str, Any] = {"name": name, "true": m.tp + m.fn, "tp": m.tp, "fp": m.fp, "fn": m.fn}
        if not self.sparse:
            t = measure(truth, scale=scale)
            p = pred_rocks if pred_rocks is not None else measure(pred, scale=scale)
            td, pd = t.distribution(), p.distribution()
            row.update(predicted=len(p), p50_true=td["p50"], p50_pred=pd["p50"], p80_true=td["p80"],
                       p80_pred=pd["p80"])
            for errs, e in ((self.count_errors, _rel(len(p), len(t) or None)),
                            (self.p50_errors, _rel(pd["p50"], td["p50"])),
                            (self.p80_errors, _rel(pd["p80"], td["p80"]))):
                if e is not None:
                    errs.append(e)
        self.per_image.append(row)
        return m

    @property
    def precision(self) -> float | None:
        return None if self.sparse or self.tp + self.fp == 0 else self.tp / (self.tp + self.fp)

    @property
    def recall(self) -> float | None:
        return None if self.tp + self.fn == 0 else self.tp / (self.tp + self.fn)

    @property
    def f1(self) -> float | None:
        if self.sparse:
            return None
        d = 2 * self.tp + self.fp + self.fn
        return None if d == 0 else 2 * self.tp / d

    def to_dict(self) -> dict[str, Any]:
        def mean(v: list[float]) -> float | None:
            return round(float(np.mean(v)), 4) if v else None

        out: dict[str, Any] = {"iou_threshold": IOU, "images": self.images, "sparse_labels": self.sparse,
                               "true_rocks": self.tp + self.fn, "matched": self.tp, "too_small": self.too_small,
                               "instance_recall": None if self.recall is None else round(self.recall, 4)}
        if not self.sparse:
            out.update(predicted_rocks=self.tp + self.fp,
                       instance_precision=None if self.precision is None else round(self.precision, 4),
                       instance_f1=None if self.f1 is None else round(self.f1, 4),
                       count_error=mean(self.count_errors), p50_error=mean(self.p50_errors),
                       p80_error=mean(self.p80_errors),
                       abs_count_error=mean([abs(e) for e in self.count_errors]),
                       abs_p50_error=mean([abs(e) for e in self.p50_errors]))
        out["per_image"] = self.per_image
        return out

    def table(self) -> str:
        d = self.to_dict()

        def pct(v: float | None, signed: bool = False) -> str:
            return "n/a" if v is None else (f"{100 * v:+.1f} %" if signed else f"{100 * v:.1f} %")

        lines = [f"rocks (instances at IoU >= {IOU}, {self.images} images, {d['true_rocks']} true rocks"
                 + (", sparse labels: recall only)" if self.sparse else ")")]
        lines.append(f"  instance recall     {pct(d['instance_recall'])}  ({self.tp} of {d['true_rocks']} found as "
                     "single rocks)")
        if not self.sparse:
            lines.append(f"  instance precision  {pct(d['instance_precision'])}")
            lines.append(f"  instance F1         {pct(d['instance_f1'])}")
            lines.append(f"  count error         {pct(d['count_error'], True)}  (mean |.| {pct(d['abs_count_error'])})")
            lines.append(f"  P50 error           {pct(d['p50_error'], True)}  (mean |.| {pct(d['abs_p50_error'])})")
            lines.append(f"  P80 error           {pct(d['p80_error'], True)}")
        return "\n".join(lines)
