"""The Python API under ``rockedge run``: ``Segmenter(model).predict(frame) -> Result``.

A Segmenter owns one backend and the ModelSpec that came with the model file, and splits the work
into the stages the pipeline overlaps: :meth:`prepare_frame`, :meth:`infer`, :meth:`postprocess`.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from rockedge.console import warn
from rockedge.errors import RockedgeError
from rockedge.measure import Rocks, measure_mask
from rockedge.runtime.backends.base import Backend
from rockedge.runtime.backends.loader import BackendOptions, open_backend
from rockedge.runtime.batching import collate, count_nonfinite
from rockedge.runtime.overlay import (
    colorize,
    draw_outlines,
    draw_overlay,
    mask_stats,
    palette_lut,
    scratch,
)
from rockedge.runtime.preprocess import (
    Geometry,
    content,
    fold_boundary,
    prepare,
    restore_mask,
    to_masks,
)
from rockedge.sizes import format_hw
from rockedge.spec import ModelSpec


@dataclass
class Result:
    """One frame's answer: class-index ``mask`` (frame size), BGR ``overlay`` (None when not drawn), ``stats``."""

    mask: np.ndarray
    overlay: np.ndarray | None
    stats: dict[str, Any]
    timings_ms: dict[str, float] = field(default_factory=dict)
    rocks: Rocks | None = None  # with ``measure=True``: every rock of the frame, sizes in frame px (or mm)
    labels: np.ndarray | None = None  # with ``measure=True``: the rocks as an instance map at model resolution


class Segmenter:
    """Segment BGR frames with any model rockedge runs (.onnx, TensorRT .plan, checkpoint, or a Backend).

    ``imgsz`` (h, w) and ``batch`` must agree with what a fixed-shape model was built for. How the
    model is opened (backend, providers, a spec for a model without one) is ``options``; keyword
    arguments are shorthand for :class:`BackendOptions` fields. ``measure``: split each frame's rock mask into
    rocks and measure them (:mod:`rockedge.measure`; sizes in mm with ``mm_per_px``, the frame's scale); with
    ``contours`` the overlay then outlines each rock instead of each class region. A model with a rock-boundary
    class (``train --boundary``) shows its rims as rock unless ``boundaries``; ``measure`` splits rocks at them.
    """

    def __init__(
        self,
        model: str | os.PathLike[str] | Backend,
        options: BackendOptions | None = None,
        *,
        imgsz: tuple[int, int] | None = None,
        batch: int | None = None,
        alpha: float = 0.5,
        contours: bool = False,
        draw: bool = True,
        measure: bool = False,
        mm_per_px: float | None = None,
        boundaries: bool = False,
        **backend_kw: Any,
    ) -> None:
        self.backend = model if isinstance(model, Backend) else open_backend(model, options, **backend_kw)
        try:
            self.spec: ModelSpec = self.backend.spec
            self.input_size = self._check_size(imgsz)
            self.batch = self._check_batch(batch)
            if not 0.0 <= alpha <= 1.0:
                raise RockedgeError(f"--alpha must be between 0 and 1, got {alpha}")
            if mm_per_px is not None and not (0 < mm_per_px < float("inf")):
                raise RockedgeError(f"--scale must be a positive number of millimetres per pixel, got {mm_per_px}")
            if mm_per_px is not None and not measure:
                raise RockedgeError("--scale gives rock sizes in millimetres: add --measure")
        except BaseException:
            self.backend.close()
            raise
        self.alpha = alpha
        self.contours = contours
        self.draw = draw
        self.measure = measure
        self.mm_per_px = mm_per_px
        self.boundaries = boundaries
        self.lut = palette_lut(self.spec.palette)
        self._checked_output = False
        self.nonfinite_frames = 0  # frames whose model output held NaN/Inf (the masks are then meaningless)

    # -- checks ------------------------------------------------------------------------------------
    def _check_size(self, imgsz: tuple[int, int] | None) -> tuple[int, int]:
        fixed = self.backend.fixed_size
        if imgsz is None:
            return tuple(fixed or self.spec.input_size)  # type: ignore[return-value]
        imgsz = (int(imgsz[0]), int(imgsz[1]))
        if fixed is not None and imgsz != tuple(fixed):
            raise RockedgeError(
                f"--imgsz {format_hw(imgsz)} disagrees with the model, which takes {format_hw(fixed)}; "
                f"drop --imgsz, or export with --imgsz {format_hw(imgsz)} (or --dynamic)"
            )
        return imgsz

    def _check_batch(self, batch: int | None) -> int:
        fixed = self.backend.fixed_batch
        if batch is None:
            return fixed or 1
        if batch < 1:
            raise RockedgeError(f"--batch must be >= 1, got {batch}")
        if fixed is not None and batch != fixed:
            raise RockedgeError(
                f"--batch {batch} disagrees with the model, which was exported for batch {fixed}; "
                f"use --batch {fixed}, or export with --batch {batch} (or --dynamic)"
            )
        return batch

    def _check_output(self, out: np.ndarray, n: int) -> None:
        spec = self.spec
        if spec.output_format == "logits":
            if out.ndim != 4 or out.shape[0] != n:
                raise RockedgeError(f"the model returned shape {out.shape}; expected logits (N, C, H, W)")
            if out.shape[1] != spec.num_classes:
                raise RockedgeError(
                    f"the model outputs {out.shape[1]} classes but its spec lists {spec.num_classes} "
                    f"({', '.join(spec.classes)}); give one class name per output channel"
                )
        self._checked_output = True

    # -- stages ------------------------------------------------------------------------------------
    def prepare_frame(self, frame: np.ndarray) -> tuple[np.ndarray, Geometry]:
        """One frame -> a ``(1, ...)`` model input and its geometry; the pipeline runs this off the inference thread."""
        x, (geom,) = prepare([frame], self.spec, self.input_size)
        return x, geom

    def preprocess(self, frames: Sequence[np.ndarray]) -> tuple[np.ndarray, list[Geometry]]:
        """Frames -> the model's input batch (padded to a fixed batch by repeating the last frame)."""
        x, geoms = prepare(list(frames), self.spec, self.input_size)
        return self.collate([x]), geoms

    def collate(self, inputs: Sequence[np.ndarray]) -> np.ndarray:
        """Join prepared inputs into one batch, padded to a fixed-batch model's size."""
        return collate(inputs, self.backend.fixed_batch)

    def infer(self, batch: np.ndarray, n: int | None = None) -> np.ndarray:
        """Model input batch -> ``(n, h, w)`` uint8 class masks at model resolution."""
        count = batch.shape[0] if n is None else n
        out = self.backend.infer(batch)
        if not self._checked_output:
            self._check_output(out, batch.shape[0])
        out = out[:count]
        bad = count_nonfinite(out)
        if bad:
            if not self.nonfinite_frames:
                warn(f"the model emitted {bad} non-finite logits (NaN/Inf) in one batch; masks of such frames are "
                     "meaningless (a diverged or damaged model?): counted in the summary, not repeated")
            per_frame = ~np.isfinite(out.reshape(count, -1)).all(axis=1)  # only the frames that hold NaN/Inf
            self.nonfinite_frames += int(per_frame.sum())
        masks = to_masks(out, self.spec)
        if masks.max(initial=0) >= self.spec.num_classes:
            raise RockedgeError(
                f"the model produced class {int(masks.max())} but its spec has {self.spec.num_classes} classes"
            )
        return masks

    def postprocess(self, frame: np.ndarray, small_mask: np.ndarray, geom: Geometry) -> Result:
        """Model-size mask -> frame-size mask, overlay and stats.

        The stats are computed at model resolution (the letterbox cropped off): a nearest-neighbour upscale keeps
        every region's connectivity, so the rock count is exact, and the rock fraction is the same up to the
        rounding of the scale. The overlay's colours are looked up at model resolution too."""
        if small_mask.shape != tuple(self.input_size):  # a model whose output stride is not 1
            small_mask = cv2.resize(small_mask, (self.input_size[1], self.input_size[0]),
                                    interpolation=cv2.INTER_NEAREST)
        b = self.spec.boundary_index
        raw = content(small_mask, geom)
        if b is not None and not self.boundaries:  # a boundary model's rims are rock: show rocks, not rims
            small_mask = fold_boundary(small_mask, b)
        mask = restore_mask(small_mask, geom)
        small = content(small_mask, geom)
        stats = mask_stats(small, num_classes=self.spec.num_classes)
        labels = rocks = None
        if self.measure:
            fh, fw = geom.frame_hw
            interior = None if b is None else ((raw != 0) & (raw != b)).view(np.uint8)
            labels, rocks = measure_mask(small, scale=(fw / small.shape[1], fh / small.shape[0]),
                                         mm_per_px=self.mm_per_px, interior=interior)
            stats["rocks"] = {k: v for k, v in rocks.distribution().items() if k != "p50_count"}
        overlay = None
        if self.draw:
            colour = restore_mask(colorize(small_mask, self.lut), geom, dst=scratch("colour", frame.shape))
            overlay = draw_overlay(frame, mask, self.lut, alpha=self.alpha,
                                   contours=self.contours and labels is None, colour=colour)
            if self.contours and labels is not None:
                draw_outlines(overlay, labels)
        return Result(mask, overlay, stats, rocks=rocks, labels=labels)

    # -- one-call API ------------------------------------------------------------------------------
    def predict(self, frame: np.ndarray) -> Result:
        """Segment one BGR uint8 frame."""
        return self.predict_batch([frame])[0]

    def predict_batch(self, frames: Sequence[np.ndarray]) -> list[Result]:
        """Segment several frames, in chunks of the model's batch size; results keep the input order."""
        if self.closed:
            raise RockedgeError("this Segmenter was closed (its `with` block ended): open a new one, or use it "
                                "inside the block")
        results: list[Result] = []
        for start in range(0, len(frames), self.batch):
            chunk = frames[start : start + self.batch]
            t0 = time.perf_counter()
            batch, geoms = self.preprocess(chunk)
            t1 = time.perf_counter()
            masks = self.infer(batch, len(chunk))
            t2 = time.perf_counter()
            for f, m, g in zip(chunk, masks, geoms):
                t3 = time.perf_counter()
                r = self.postprocess(f, m, g)
                r.timings_ms = {
                    "preprocess": (t1 - t0) * 1e3 / len(chunk),
                    "infer": (t2 - t1) * 1e3 / len(chunk),
                    "postprocess": (time.perf_counter() - t3) * 1e3,
                }
                results.append(r)
        return results

    def describe(self) -> dict[str, Any]:
        return {**self.backend.describe(), "arch": self.spec.arch, "input_size": list(self.input_size),
                "batch": self.batch, "classes": list(self.spec.classes)}

    closed = False

    def close(self) -> None:
        self.backend.close()
        self.closed = True

    def __enter__(self) -> "Segmenter":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
