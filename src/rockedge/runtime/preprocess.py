"""Pre- and post-processing driven by the ModelSpec (numpy + OpenCV only).

Every frame in rockedge is a BGR uint8 ``HxWx3`` array, as OpenCV delivers it. :func:`prepare`
turns frames into the batch a model's spec asks for; :func:`to_masks` turns its output into class
index masks; :func:`restore_mask` maps a model-sized mask back onto the frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from rockedge.errors import RockedgeError
from rockedge.spec import ModelSpec

LETTERBOX_FILL = (114, 114, 114)  # BGR grey, the usual letterbox value


@dataclass(frozen=True)
class Geometry:
    """Where the frame landed inside the model input: ``(top, left, height, width)`` of the content."""

    frame_hw: tuple[int, int]
    content: tuple[int, int, int, int]


def fit(frame: np.ndarray, size_hw: tuple[int, int], mode: str = "resize") -> tuple[np.ndarray, Geometry]:
    """Resize (or letterbox) a BGR frame to ``size_hw``."""
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise RockedgeError(f"expected a BGR uint8 HxWx3 frame, got {frame.dtype} {frame.shape}")
    h, w = frame.shape[:2]
    th, tw = size_hw
    if mode == "resize" or (h, w) == (th, tw):
        out = frame if (h, w) == (th, tw) else cv2.resize(frame, (tw, th), interpolation=cv2.INTER_LINEAR)
        return out, Geometry((h, w), (0, 0, th, tw))
    scale = min(th / h, tw / w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    top, left = (th - nh) // 2, (tw - nw) // 2
    out = np.empty((th, tw, 3), dtype=np.uint8)
    out[...] = LETTERBOX_FILL
    out[top : top + nh, left : left + nw] = cv2.resize(frame, (nw, nh), interpolation=cv2.INTER_LINEAR)
    return out, Geometry((h, w), (top, left, nh, nw))


def normalize(batch_bgr: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """``(N, H, W, 3)`` BGR uint8 -> ``(N, 3, H, W)`` float32 RGB normalised with the spec's mean/std."""
    # One fused multiply per channel plane, written straight into the NCHW output: 20x faster than
    # flip + astype + subtract + transpose (0.6 vs 12 ms for a 512x512 frame here), which matters
    # because preprocessing shares 2 CPU cores with inference.
    n, h, w, _ = batch_bgr.shape
    scale = 1.0 / (np.asarray(spec.std, dtype=np.float32) * 255.0)
    offset = -np.asarray(spec.mean, dtype=np.float32) / np.asarray(spec.std, dtype=np.float32)
    out = np.empty((n, 3, h, w), dtype=np.float32)
    for c, src in enumerate((2, 1, 0)):  # RGB planes from BGR channels
        np.multiply(batch_bgr[..., src], scale[c], out=out[:, c], dtype=np.float32)
        out[:, c] += offset[c]
    return out


def prepare(
    frames: list[np.ndarray], spec: ModelSpec, size_hw: tuple[int, int] | None = None
) -> tuple[np.ndarray, list[Geometry]]:
    """Frames -> the batch this spec's model takes (float NCHW or raw uint8 NHWC), plus geometries."""
    size = size_hw or spec.input_size
    fitted, geoms = zip(*(fit(f, size, spec.resize) for f in frames)) if frames else ((), ())
    batch = np.stack(fitted) if fitted else np.zeros((0, *size, 3), np.uint8)
    if spec.input_format == "raw":
        return np.ascontiguousarray(batch), list(geoms)
    return normalize(batch, spec), list(geoms)


def to_masks(output: np.ndarray, spec: ModelSpec) -> np.ndarray:
    """Model output -> ``(N, H, W)`` uint8 class indices (argmax over logits, or the mask as is)."""
    if spec.output_format == "mask":
        if output.ndim == 4 and output.shape[1] == 1:
            output = output[:, 0]
        return output.astype(np.uint8, copy=False)
    if output.ndim != 4:
        raise RockedgeError(f"expected logits of shape (N, C, H, W), got {output.shape}")
    return output.argmax(axis=1).astype(np.uint8)


def fold_boundary(mask: np.ndarray, boundary: int, rock: int = 1) -> np.ndarray:
    """A boundary model's mask with its rim class shown as rock (class ``rock``): what a frame's rocks look like."""
    if not (mask == boundary).any():
        return mask
    out = mask.copy()
    out[mask == boundary] = rock
    return out


def content(mask: np.ndarray, geom: Geometry) -> np.ndarray:
    """The part of a model-sized mask (or image) that shows the frame: the letterbox bars cropped off."""
    top, left, h, w = geom.content
    return mask[top : top + h, left : left + w]


def restore_mask(mask: np.ndarray, geom: Geometry, dst: np.ndarray | None = None) -> np.ndarray:
    """Crop the letterbox and resize a model-sized mask (or an ``HxWx3`` image made from it) to the frame with
    nearest-neighbour; ``dst`` receives it when it has the frame's shape (no new frame-sized allocation)."""
    m = content(mask, geom)
    fh, fw = geom.frame_hw
    if m.shape[:2] != (fh, fw):
        if dst is not None and dst.shape[:2] == (fh, fw) and dst.shape[2:] == m.shape[2:] and dst.dtype == m.dtype:
            return cv2.resize(m, (fw, fh), dst=dst, interpolation=cv2.INTER_NEAREST)
        m = cv2.resize(m, (fw, fh), interpolation=cv2.INTER_NEAREST)
    return m
