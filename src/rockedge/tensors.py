"""One description of a tensor and one of an optimisation profile, for every layer that talks about either.

A model file's inputs and outputs (read from ONNX without the onnx package, from a TensorRT engine, from ONNX
Runtime or PyTorch), what a backend feeds and returns, what a serving layout declares: all are
:class:`TensorInfo`. What TensorRT builds for and checks shapes against is a :class:`Profile`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Tuple

# NCHW, NHWC (images, logits) or NHW (class-index masks); "" where the role is not known yet (a file's raw I/O).
LAYOUTS = ("NCHW", "NHWC", "NHW", "")


@dataclass(frozen=True)
class TensorInfo:
    """A model input or output: ``shape`` holds ``None`` for dynamic axes; ``dtype`` is numpy's name."""

    name: str
    shape: Tuple[Optional[int], ...]
    dtype: str  # float32, float16, uint8, int8, int32, int64, bool
    layout: str = ""

    @property
    def batch(self) -> int | None:
        return self.shape[0] if self.shape else None

    @property
    def size_hw(self) -> tuple[int, int] | None:
        """(height, width) when both are fixed and the layout says where they are."""
        axes = {"NCHW": (2, 3), "NHWC": (1, 2), "NHW": (1, 2)}.get(self.layout)
        if axes is None or len(self.shape) <= max(axes):
            return None
        h, w = self.shape[axes[0]], self.shape[axes[1]]
        return (h, w) if h is not None and w is not None else None

    @property
    def channels(self) -> int | None:
        axis = {"NCHW": 1, "NHWC": 3}.get(self.layout)
        return self.shape[axis] if axis is not None and len(self.shape) > axis else None

    def with_layout(self, layout: str) -> "TensorInfo":
        return TensorInfo(self.name, self.shape, self.dtype, layout)

    def describe(self) -> str:
        """``images 1x3x512x512 float32`` (``?`` for dynamic axes)."""
        return f"{self.name} {format_shape(self.shape)} {self.dtype}"


@dataclass(frozen=True)
class Profile:
    """One input's optimisation profile: inclusive shape bounds and the shape TensorRT tunes for."""

    min: Tuple[int, ...]
    opt: Tuple[int, ...]
    max: Tuple[int, ...]

    def to_dict(self) -> dict[str, list[int]]:
        return {"min": list(self.min), "opt": list(self.opt), "max": list(self.max)}

    @classmethod
    def from_dict(cls, d: dict[str, list[int]]) -> "Profile":
        return cls(tuple(int(v) for v in d["min"]), tuple(int(v) for v in d["opt"]), tuple(int(v) for v in d["max"]))


def format_shape(shape: "tuple[int | None, ...] | list[int | None]") -> str:
    """``(1, 3, None, None)`` -> ``1x3x?x?``; -1 counts as dynamic too."""
    return "x".join("?" if v is None or v == -1 else str(v) for v in shape)
