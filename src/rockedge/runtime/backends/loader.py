"""Open any model file rockedge understands as a :class:`Backend`: a table from file kind
(:data:`rockedge.runtime.modelfile.FILE_KINDS`) to backend.

Each backend module is imported only when its row is used, so a runtime-only install opens ``.onnx``
without torch, and a Jetson opens ``.plan`` without onnxruntime.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rockedge.errors import RockedgeError
from rockedge.precision import Precision
from rockedge.runtime.backends.base import Backend
from rockedge.runtime.backends.trt import require_tensorrt
from rockedge.runtime.modelfile import file_kind
from rockedge.runtime.modelio import NO_FLAGS, SpecFlags


@dataclass(frozen=True)
class BackendRow:
    module: str
    cls: str
    kinds: tuple[str, ...]


BACKEND_TABLE: dict[str, BackendRow] = {
    "ort": BackendRow("rockedge.runtime.backends.ort", "OrtBackend", ("onnx",)),
    "trt": BackendRow("rockedge.runtime.backends.trt", "TrtBackend", ("engine",)),
    "torch": BackendRow("rockedge.runtime.backends.pytorch", "TorchBackend", ("checkpoint",)),
}
BACKENDS = ("auto", *BACKEND_TABLE)


@dataclass(frozen=True)
class BackendOptions:
    """Everything a command line can say about how to open a model; each backend takes what applies to it."""

    backend: str = "auto"
    providers: tuple[str, ...] | None = None  # ONNX Runtime execution providers
    threads: int | None = None  # ONNX Runtime intra-op threads
    device: str | None = None  # PyTorch device ("cpu", "cuda:0")
    precision: Precision = Precision.FP32  # PyTorch: fp16 runs under CUDA autocast
    trust_pickle: bool = False  # checkpoints that pickle whole modules
    spec_flags: SpecFlags = NO_FLAGS
    trust_plan_code: bool = False  # version-compatible TensorRT plans built elsewhere (rockedge.plan_trust)

    def kwargs_for(self, backend: str) -> dict[str, Any]:
        if backend == "ort":
            return {"providers": self.providers, "threads": self.threads, "spec_flags": self.spec_flags}
        if backend == "trt":
            return {"spec_flags": self.spec_flags, "trust_plan_code": self.trust_plan_code,
                    "device": gpu_index(self.device)}
        return {"device": self.device, "trust_pickle": self.trust_pickle, "spec_flags": self.spec_flags,
                "precision": self.precision}


def gpu_index(device: str | None) -> int:
    """The GPU of a TensorRT plan from --device: "1", "cuda:1" -> 1; None or "cuda" -> 0."""
    if not device or device == "cuda":
        return 0
    text = device.split(":", 1)[1] if device.startswith("cuda:") else device
    if not text.isdigit():
        raise RockedgeError(f"--device {device!r}: a TensorRT plan runs on a GPU: give its index (0, 1 or cuda:1)")
    return int(text)


def open_backend(model: str | os.PathLike[str], options: BackendOptions | None = None, **kw: Any) -> Backend:
    """Open ``model`` with the backend its file type calls for (or ``options.backend``).

    Keyword arguments are shorthand for :class:`BackendOptions` fields.
    """
    options = options or BackendOptions(**kw)
    path = Path(model)
    if options.backend not in BACKENDS:
        raise RockedgeError(f"unknown backend {options.backend!r}; choose one of {', '.join(BACKENDS)}")
    if not path.exists():
        raise RockedgeError(f"model not found: {path}")
    fmt = file_kind(path)
    name = fmt.default_backend if options.backend == "auto" else options.backend
    row = BACKEND_TABLE[name]
    if fmt.name not in row.kinds:
        if fmt.name == "onnx" and name == "trt":
            # Say what is missing first (TensorRT, a GPU), then how to get an engine from this file.

            require_tensorrt()
            raise RockedgeError(
                f"--backend trt runs a TensorRT engine, not {path.name}: build one on this device first "
                f"(rockedge export {path.name} --format engine), or run the ONNX through TensorRT with "
                "--backend ort --providers trt"
            )
        raise RockedgeError(f"backend {name!r} cannot run a {fmt.name} file ({path.name})")
    cls = getattr(importlib.import_module(row.module), row.cls)
    # Constructing checks the file; activating loads the runtime and the model, so a missing library or GPU is
    # reported here, before a command opens its sources.
    return cls(path, **options.kwargs_for(name)).activate()


def parse_providers(text: str | Sequence[str] | None) -> tuple[str, ...] | None:
    """``"cuda, cpu"`` -> ("cuda", "cpu"); empty entries dropped; None or empty -> None (automatic)."""
    if text is None:
        return None
    items = text.split(",") if isinstance(text, str) else list(text)
    out = tuple(p.strip() for p in items if p and p.strip())
    return out or None
