"""The one home of frame batching: evaluation, parity, benchmarks and the run pipeline all use it.

Frames become a model input with :func:`rockedge.runtime.preprocess.prepare`; a model built for a
fixed batch gets its batch filled by repeating the last frame (:func:`collate`), and the padding is
dropped from the output. Non-finite outputs are counted here too, so every caller can refuse them.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TypeVar

import numpy as np

from rockedge.errors import RockedgeError
from rockedge.runtime.backends.base import Backend
from rockedge.runtime.preprocess import Geometry, prepare

T = TypeVar("T")


def collate(inputs: Sequence[np.ndarray], fixed_batch: int | None) -> np.ndarray:
    """Join prepared inputs into one batch, padded to ``fixed_batch`` by repeating the last frame."""
    batch = inputs[0] if len(inputs) == 1 else np.concatenate(inputs)
    if fixed_batch is not None:
        if batch.shape[0] > fixed_batch:
            raise RockedgeError(f"{batch.shape[0]} frames for a model built for batch {fixed_batch}")
        if batch.shape[0] < fixed_batch:
            batch = np.concatenate([batch, np.repeat(batch[-1:], fixed_batch - batch.shape[0], axis=0)])
    return batch


def batch_size_for(backend: Backend, wanted: int = 1) -> int:
    """The batch to feed: the model's fixed batch, else ``wanted``."""
    if wanted < 1:
        raise RockedgeError(f"--batch must be >= 1, got {wanted}")
    return backend.fixed_batch or wanted


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def infer_frames(
    backend: Backend, frames: Sequence[np.ndarray], size_hw: tuple[int, int] | None = None
) -> tuple[np.ndarray, list[Geometry]]:
    """BGR frames -> outputs for exactly those frames, plus where each frame landed in the model input."""
    x, geoms = prepare(list(frames), backend.spec, size_hw)
    out = np.asarray(backend.infer(collate([x], backend.fixed_batch)))
    return out[: len(frames)], geoms


def count_nonfinite(out: np.ndarray) -> int:
    """NaN/Inf values in a model output (0 for integer masks)."""
    if not np.issubdtype(out.dtype, np.floating):
        return 0
    return int(out.size - np.count_nonzero(np.isfinite(out)))
