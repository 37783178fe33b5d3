"""ONNX Runtime backend: CPU, CUDA and TensorRT execution providers, chosen automatically.

Reads the ModelSpec from the ONNX file's metadata through onnxruntime alone (no ``onnx`` import),
so it runs in a runtime-only install.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from rockedge.errors import BackendUnavailable, RockedgeError
from rockedge.runtime.backends.base import Backend
from rockedge.spec import METADATA_KEY, ModelSpec

# Preference order for "auto": the fastest provider this onnxruntime build offers.
AUTO_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
PROVIDER_ALIASES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "trt": "TensorrtExecutionProvider",
                    "tensorrt": "TensorrtExecutionProvider"}


def _ort() -> Any:
    try:
        import onnxruntime as ort
    except ImportError:
        raise BackendUnavailable(
            "onnxruntime is not installed: pip install 'rockedge[ort]' (on a Jetson, NVIDIA's onnxruntime-gpu wheel)"
        ) from None
    return ort


def resolve_providers(requested: list[str] | tuple[str, ...] | None) -> list[str]:
    """Map user names (cpu, cuda, trt or full provider names) to available providers, in order."""
    available = _ort().get_available_providers()
    if not requested:
        return [p for p in AUTO_ORDER if p in available] or list(available)
    out = []
    for name in requested:
        full = PROVIDER_ALIASES.get(name.lower(), name)
        if full not in available:
            raise BackendUnavailable(
                f"execution provider {name!r} is not available in this onnxruntime build "
                f"(available: {', '.join(available)})"
            )
        out.append(full)
    return out


def read_spec(session: Any, path: Path) -> ModelSpec:
    meta = session.get_modelmeta().custom_metadata_map
    if METADATA_KEY not in meta:
        raise RockedgeError(f"{path} has no rockedge model spec in its metadata; export it with `rockedge export`")
    return ModelSpec.from_json(meta[METADATA_KEY])


class OrtBackend(Backend):
    name = "onnxruntime"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        providers: list[str] | tuple[str, ...] | None = None,
        threads: int | None = None,
    ) -> None:
        ort = _ort()
        path = Path(path)
        if not path.is_file():
            raise RockedgeError(f"model not found: {path}")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=resolve_providers(providers))
        except RockedgeError:
            raise
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise RockedgeError(f"onnxruntime cannot load {path}: {first}") from None
        super().__init__(read_spec(self.session, path))
        self.path = path
        inp = self.session.get_inputs()
        if len(inp) != 1:
            raise RockedgeError(f"{path} has {len(inp)} inputs; rockedge models take exactly one")
        self.input_name = inp[0].name
        self.input_shape = list(inp[0].shape)
        self.output_name = self.session.get_outputs()[0].name
        self._dtype = np.uint8 if self.spec.input_format == "raw" else np.float32

    @property
    def fixed_batch(self) -> int | None:
        b = self.input_shape[0]
        return b if isinstance(b, int) else None

    @property
    def fixed_size(self) -> tuple[int, int] | None:
        hw = self.input_shape[1:3] if self.spec.input_layout == "NHWC" else self.input_shape[2:4]
        return (hw[0], hw[1]) if all(isinstance(v, int) for v in hw) else None

    def infer(self, batch: np.ndarray) -> np.ndarray:
        if batch.dtype != self._dtype:
            raise RockedgeError(f"model input is {np.dtype(self._dtype).name}, got {batch.dtype}")
        (out,) = self.session.run([self.output_name], {self.input_name: batch})
        return out

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "providers": self.session.get_providers(), "model": str(self.path)}

    def close(self) -> None:
        self.session = None  # type: ignore[assignment]
