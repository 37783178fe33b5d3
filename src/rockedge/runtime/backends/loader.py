"""Open any model file rockedge understands as a :class:`Backend`, chosen by file type."""

from __future__ import annotations

import os
from pathlib import Path

from rockedge.errors import RockedgeError
from rockedge.runtime.backends.base import Backend

ONNX_SUFFIXES = (".onnx",)
ENGINE_SUFFIXES = (".plan", ".engine", ".trt")
CHECKPOINT_SUFFIXES = (".pt", ".pth", ".ckpt")
BACKENDS = ("auto", "ort", "trt", "torch")


def model_kind(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix in ONNX_SUFFIXES:
        return "onnx"
    if suffix in ENGINE_SUFFIXES:
        return "engine"
    if suffix in CHECKPOINT_SUFFIXES:
        return "checkpoint"
    raise RockedgeError(
        f"cannot tell the model type of {path.name}: expected .onnx, a TensorRT .plan/.engine, or a .pt checkpoint"
    )


def open_backend(
    model: str | os.PathLike[str],
    *,
    backend: str = "auto",
    providers: list[str] | tuple[str, ...] | None = None,
    trust_pickle: bool = False,
    device: str = "cpu",
) -> Backend:
    """``.onnx`` -> ONNX Runtime (or TensorRT via its execution provider with ``providers``), ``.plan`` ->
    TensorRT, checkpoint -> PyTorch (needs torch; convenience for comparisons)."""
    path = Path(model)
    if backend not in BACKENDS:
        raise RockedgeError(f"unknown backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if not path.exists():
        raise RockedgeError(f"model not found: {path}")
    kind = model_kind(path)
    if kind == "onnx" and backend in ("auto", "ort"):
        from rockedge.runtime.backends.ort import OrtBackend

        return OrtBackend(path, providers=providers)
    if kind == "engine" and backend in ("auto", "trt"):
        from rockedge.runtime.backends.trt import TrtBackend

        return TrtBackend(path)
    if kind == "checkpoint" and backend in ("auto", "torch"):
        try:
            from rockedge.export.torch_backend import TorchBackend
        except ImportError as e:
            raise RockedgeError(
                f"running a checkpoint needs torch ({e.name} is missing): pip install 'rockedge[train]', "
                "or export it to ONNX first"
            ) from None
        return TorchBackend(path, trust_pickle=trust_pickle, device=device)
    if kind == "onnx" and backend == "trt":
        # Say what is missing first (TensorRT, a GPU), then how to get an engine from this file.
        from rockedge.runtime.backends.trt import require_tensorrt

        require_tensorrt()
        raise RockedgeError(
            f"--backend trt runs a TensorRT engine, not {path.name}: build one on this device first "
            f"(trtexec --onnx={path.name} --saveEngine={path.stem}.plan, then its manifest), "
            "or run the ONNX through TensorRT with --backend ort --providers trt"
        )
    raise RockedgeError(f"backend {backend!r} cannot run a {kind} file ({path.name})")
