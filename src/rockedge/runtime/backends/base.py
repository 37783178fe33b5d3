"""The one backend interface every model format answers.

A backend owns a loaded model and does one thing: ``infer(batch) -> output``, where ``batch`` is
what the model's :class:`ModelSpec` asks for (see :func:`rockedge.runtime.preprocess.prepare`) and
the output is float logits ``(N, C, H, W)`` or a uint8/int mask ``(N, H, W)``, as ``spec.output_format``
says. PyTorch (export side), ONNX Runtime and TensorRT all look the same from outside, which is what
makes parity checks and evaluation backend-agnostic.
"""

from __future__ import annotations

import abc
from typing import Any

import numpy as np

from rockedge.runtime.preprocess import Geometry, prepare
from rockedge.spec import ModelSpec


class Backend(abc.ABC):
    name: str = "backend"

    def __init__(self, spec: ModelSpec) -> None:
        self.spec = spec

    @abc.abstractmethod
    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on a prepared batch; returns logits or a mask as ``spec.output_format`` says."""

    def infer_frames(
        self, frames: list[np.ndarray], size_hw: tuple[int, int] | None = None
    ) -> tuple[np.ndarray, list[Geometry]]:
        """BGR frames -> outputs for exactly those frames, plus their geometries.

        A fixed-batch model gets its batch filled by repeating the last frame; the padding is dropped.
        """
        n = len(frames)
        fixed = self.fixed_batch
        if fixed is not None and n > fixed:
            raise ValueError(f"{n} frames for a model built for batch {fixed}")
        padded = list(frames) + [frames[-1]] * ((fixed or n) - n)
        x, geoms = prepare(padded, self.spec, size_hw)
        return np.asarray(self.infer(x))[:n], geoms[:n]

    @property
    def fixed_batch(self) -> int | None:
        """The batch size the model was built for, or None when any batch size works."""
        return None

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """The (height, width) the model was built for, or None when any size works."""
        return self.spec.input_size

    def describe(self) -> dict[str, Any]:
        """A short description for reports (backend, device, providers...)."""
        return {"backend": self.name}

    def close(self) -> None:
        """Release the model and device memory."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
