"""ONNX Runtime backend: CPU, CUDA and TensorRT execution providers, chosen automatically.

Reads the ModelSpec from the ONNX file's metadata with :func:`open_model_file` (no ``onnx`` import), so it
runs in a runtime-only install; a model without one is described by :class:`SpecFlags`.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from rockedge.console import note
from rockedge.deps import require
from rockedge.errors import BackendUnavailable, RockedgeError
from rockedge.runtime.backends.base import Backend, BackendInfo
from rockedge.runtime.modelfile import TRT_LAYOUT_ON_CPU, open_model_file
from rockedge.runtime.modelio import NO_FLAGS, SpecFlags, resolve_io
from rockedge.tensors import TensorInfo

# Preference order for "auto": the fastest provider this onnxruntime build offers.
AUTO_ORDER = ("TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider")
PROVIDER_ALIASES = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider", "trt": "TensorrtExecutionProvider",
                    "tensorrt": "TensorrtExecutionProvider"}
# ONNX Runtime's type strings -> numpy dtype names.
ORT_DTYPES = {"tensor(float)": "float32", "tensor(float16)": "float16", "tensor(uint8)": "uint8",
              "tensor(int8)": "int8", "tensor(int32)": "int32", "tensor(int64)": "int64", "tensor(double)": "float64"}


_SAID: set[str] = set()


def _say_once(message: str) -> None:
    """A note said once per process (a benchmark or an INT8 budget opens the same model many times)."""
    if message not in _SAID:
        _SAID.add(message)
        note(message)


def _ort() -> Any:
    return require("onnxruntime", "running .onnx models")


def resolve_providers(requested: Sequence[str] | None) -> list[str]:
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


def _desc(arg: Any) -> TensorInfo:
    shape = tuple(v if isinstance(v, int) and v > 0 else None for v in (arg.shape or ()))
    return TensorInfo(arg.name, shape, ORT_DTYPES.get(arg.type, str(arg.type)))


class OrtBackend(Backend):
    name = "onnxruntime"

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        providers: Sequence[str] | None = None,
        threads: int | None = None,
        spec_flags: SpecFlags = NO_FLAGS,
        layout_note: bool = True,
    ) -> None:
        """``layout_note=False``: no note when a TensorRT-layout INT8 model runs on the CPU provider, for rockedge's
        own checks of a model it is making (the INT8 export's budget and parity), which the user did not run."""
        self.session: Any = None
        ort = _ort()
        path = Path(path)
        if not path.is_file():
            raise RockedgeError(f"model not found: {path}")
        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        # ONNX Runtime's threads spin after each run by default, waiting for the next one: in `rockedge run` the
        # next frame comes from the decode thread, and the spinning cores starve decode, overlay and encode (on 2
        # cores: 185 ms of CPU per 1080p frame spinning, 134 ms not; run 0.41x -> 0.54x of model-only).
        opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
        if threads:
            opts.intra_op_num_threads = threads
        try:
            self.session = ort.InferenceSession(str(path), sess_options=opts, providers=resolve_providers(providers))
        except RockedgeError:
            raise
        except Exception as e:
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise RockedgeError(f"onnxruntime cannot load {path}: {first}") from None
        self.path = path
        mf = open_model_file(path)  # the spec and precision, read as every command reads them
        embedded = mf.spec
        self.precision = mf.precision
        self.int8_target = mf.int8_target
        if layout_note and self.int8_target == "tensorrt" and self.session.get_providers()[0] == "CPUExecutionProvider":
            _say_once(f"{path.name} {TRT_LAYOUT_ON_CPU}")
        self.spec, self.input, self.output = resolve_io(
            str(path), [_desc(a) for a in self.session.get_inputs()], [_desc(a) for a in self.session.get_outputs()],
            embedded, spec_flags,
        )
        self._dtype = np.dtype(self.input.dtype)

    def _infer(self, batch: np.ndarray) -> np.ndarray:
        if batch.dtype != self._dtype:
            if self._dtype == np.float16 and batch.dtype == np.float32:
                batch = batch.astype(np.float16)  # a model with float16 I/O takes the usual float32 batch
            else:
                raise RockedgeError(f"model input is {self._dtype.name}, got {batch.dtype}")
        (out,) = self.session.run([self.output.name], {self.input.name: batch})
        return out.astype(np.float32) if out.dtype == np.float16 else out

    @property
    def info(self) -> BackendInfo:
        providers = tuple(self.session.get_providers()) if self.session is not None else ()
        device = "cuda" if any(p != "CPUExecutionProvider" for p in providers) else "cpu"
        details = {"int8_target": self.int8_target} if self.int8_target else {}
        return BackendInfo(self.name, str(self.path), device, providers, self.precision, details)

    def close(self) -> None:
        self.session = None
