"""The one contract every inference backend answers, in the spirit of Polygraphy's runners.

A backend owns one loaded model and does one thing: ``infer(batch) -> output`` on a prepared tensor
(what :func:`rockedge.runtime.preprocess.prepare` makes from BGR frames for the model's
:class:`ModelSpec`). It describes its I/O (:class:`TensorInfo`: name, shape with ``None`` for dynamic
axes, dtype, layout) and itself (:class:`BackendInfo`: backend, device, providers, precision, model
path), and remembers how long its last call took. PyTorch, ONNX Runtime and TensorRT all look the
same from outside, which is what makes evaluation, parity and benchmarks backend-agnostic.

Loading is lazy (a backend module imports its library when a model is opened) and :meth:`close` is
safe on an object whose ``__init__`` failed half-way.
"""

from __future__ import annotations

import abc
import time
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import numpy as np

from rockedge.precision import Precision
from rockedge.spec import ModelSpec
from rockedge.tensors import TensorInfo


@dataclass(frozen=True)
class BackendInfo:
    """Which runtime runs the model, where, and in what precision (for reports and benchmarks)."""

    backend: str  # onnxruntime | tensorrt | torch
    model: str  # path of the model file, or a description of an in-memory model
    device: str = "cpu"
    providers: tuple[str, ...] = ()
    precision: Precision = Precision.FP32
    details: dict[str, Any] = field(default_factory=dict)  # e.g. TensorRT version, GPU

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["providers"] = list(self.providers)
        d["precision"] = self.precision.value
        d.update(d.pop("details"))
        return d


class Backend(abc.ABC):
    """A loaded model behind ``infer(batch) -> logits (N, C, H, W) | mask (N, H, W)``, as ``spec.output_format`` says."""

    name: ClassVar[str] = "backend"
    spec: ModelSpec
    input: TensorInfo
    output: TensorInfo
    last_infer_s: float = float("nan")  # wall time of the last infer() call, seconds

    def infer(self, batch: np.ndarray) -> np.ndarray:
        """Run the model on a prepared batch and time the call."""
        t0 = time.perf_counter()
        out = self._infer(batch)
        self.last_infer_s = time.perf_counter() - t0
        return out

    @abc.abstractmethod
    def _infer(self, batch: np.ndarray) -> np.ndarray:
        """The backend's own inference call."""

    @property
    @abc.abstractmethod
    def info(self) -> BackendInfo:
        """Backend, device, providers, precision and model path."""

    @property
    def fixed_batch(self) -> int | None:
        """The batch size the model was built for, or None when any batch size works."""
        return self.input.batch

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        """The (height, width) the model was built for, or None when any size works."""
        return self.input.size_hw

    def describe(self) -> dict[str, Any]:
        """The backend info as a plain dict, for JSON reports."""
        return self.info.to_dict()

    def activate(self) -> "Backend":
        """Load what inference needs, if the constructor deferred it (TensorRT does); returns self."""
        return self

    def close(self) -> None:
        """Release the model and device memory; safe to call twice or on a half-built object."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
