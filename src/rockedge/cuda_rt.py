"""The few CUDA runtime calls the TensorRT backend needs, through cuda-python.

cuda-python >= 12.6 (and 13) exposes ``cuda.bindings.runtime``; the releases on JetPack 5/6
images expose ``cuda.cudart``. Both return ``(err, value...)`` tuples; :func:`check` turns a
failing one into a single line. cuda-python <= 12.6 raises ``RuntimeError("Failed to dlopen
libcuda.so.1")`` instead when there is no driver at all; :func:`call` turns that into the same
"no usable CUDA GPU" line. Imported lazily: nothing here loads unless a plan is run.

The cuda-python release must match the driver's CUDA major version: cuda-python 13 needs a CUDA 13
driver (JetPack 7), JetPack 6's CUDA 12.6 needs 12.x, JetPack 5's CUDA 11.4 needs 11.8 (the last
release with Python 3.8 wheels for the Jetson is 11.8.2). :func:`cuda_python_pin` says which.
"""

from __future__ import annotations

import ctypes
import importlib
from typing import Any, Callable

import numpy as np

from rockedge.errors import BackendUnavailable, RockedgeError

_CUDART: Any = None
# The module paths of the runtime bindings, newest layout first (cuda-python 12.6+ / 13, then <= 12.x and 11.8).
CUDART_MODULES = ("cuda.bindings.runtime", "cuda.cudart")
NO_GPU = ("no NVIDIA GPU, or its driver is missing or older than this cuda-python's CUDA runtime; the TensorRT "
          "backend needs one")


def cuda_python_pin(driver_version: int) -> str:
    """The pip requirement of the cuda-python release that a driver of CUDA ``driver_version`` (12060) runs."""
    major = driver_version // 1000
    if major <= 11:
        return "cuda-python>=11.8,<11.8.3"
    return f"cuda-python>={major},<{major + 1}"


def cudart() -> Any:
    """The cuda-python runtime module (new or old layout), or one line saying it is missing."""
    global _CUDART
    if _CUDART is None:
        for name in CUDART_MODULES:
            try:
                _CUDART = importlib.import_module(name)
                break
            except ImportError:
                continue
        else:
            raise BackendUnavailable(
                "cuda-python is not installed: pip install 'rockedge[trt]' (it picks the release that matches "
                "JetPack's CUDA: 11.8 on JetPack 5, 12.x on JetPack 6, 13 on JetPack 7)"
            )
    return _CUDART


def error_name(err: Any) -> str:
    name = getattr(err, "name", None)
    return str(name) if name else str(err)


def call(fn: Callable[..., Any], *args: Any) -> Any:
    """``fn(*args)`` of the runtime bindings; a RuntimeError (old cuda-python without a driver) becomes one line."""
    try:
        return fn(*args)
    except RuntimeError as e:
        raise BackendUnavailable(f"no usable CUDA GPU: {str(e).strip() or type(e).__name__} ({NO_GPU})") from None


def check(result: Any, what: str) -> Any:
    """Unwrap a cuda-python ``(err, value...)`` tuple; raise one line on failure."""
    rt = cudart()
    err, *values = result if isinstance(result, tuple) else (result,)
    if err != rt.cudaError_t.cudaSuccess:
        raise RockedgeError(f"CUDA {what} failed: {error_name(err)}")
    if not values:
        return None
    return values[0] if len(values) == 1 else tuple(values)


def require_gpu(device: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability "M.m") of ``device``, or one line saying why there is none."""
    rt = cudart()
    err, count = call(rt.cudaGetDeviceCount)
    if err != rt.cudaError_t.cudaSuccess:
        raise BackendUnavailable(f"no usable CUDA GPU: {error_name(err)} ({NO_GPU})")
    if count <= device:
        raise BackendUnavailable(f"no CUDA device {device} (this machine has {count})")
    props = check(call(rt.cudaGetDeviceProperties, device), "cudaGetDeviceProperties")
    raw = props.name
    name = raw.decode(errors="replace") if isinstance(raw, (bytes, bytearray)) else str(raw)
    return name.split("\x00", 1)[0].strip(), f"{props.major}.{props.minor}"


def use_device(device: int) -> tuple[str, str]:
    """Make ``device`` the current GPU of this thread (cudaSetDevice) and return its name and capability."""
    name, cc = require_gpu(device)
    check(call(cudart().cudaSetDevice, device), f"cudaSetDevice({device})")
    return name, cc


def memory_info() -> tuple[int, int]:
    """(free, total) bytes of the current GPU; creates a CUDA context, so only the build child calls it."""
    free, total = check(call(cudart().cudaMemGetInfo), "cudaMemGetInfo")
    return int(free), int(total)


class Stream:
    """One CUDA stream, with the pinned-host and device allocators the buffer set uses."""

    def __init__(self) -> None:
        rt = cudart()
        self.rt = rt
        self.handle: Any = check(call(rt.cudaStreamCreate), "cudaStreamCreate")

    @property
    def ptr(self) -> int:
        """The raw cudaStream_t, as TensorRT's execute_async_v3 takes it."""
        if self.handle is None:
            raise RockedgeError("the CUDA stream was closed")
        return int(self.handle)

    def alloc_host(self, nbytes: int) -> int:
        return int(check(self.rt.cudaMallocHost(nbytes), "cudaMallocHost"))

    def alloc_device(self, nbytes: int) -> int:
        return int(check(self.rt.cudaMalloc(nbytes), "cudaMalloc"))

    def free_host(self, ptr: int) -> None:
        check(self.rt.cudaFreeHost(ptr), "cudaFreeHost")

    def free_device(self, ptr: int) -> None:
        check(self.rt.cudaFree(ptr), "cudaFree")

    @staticmethod
    def host_array(ptr: int, nbytes: int) -> np.ndarray:
        """A numpy view of a pinned host block (no copy)."""
        return np.ctypeslib.as_array((ctypes.c_uint8 * nbytes).from_address(ptr))

    def to_device(self, dst: int, src: int, nbytes: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        check(self.rt.cudaMemcpyAsync(dst, src, nbytes, kind, self.handle), "cudaMemcpyAsync (to device)")

    def to_device_array(self, dst: int, host: np.ndarray) -> None:
        """Synchronous copy of a (pageable) numpy array into device memory, e.g. one calibration batch."""
        host = np.ascontiguousarray(host)
        kind = self.rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        check(self.rt.cudaMemcpy(dst, host.ctypes.data, host.nbytes, kind), "cudaMemcpy (to device)")

    def to_host(self, dst: int, src: int, nbytes: int) -> None:
        kind = self.rt.cudaMemcpyKind.cudaMemcpyDeviceToHost
        check(self.rt.cudaMemcpyAsync(dst, src, nbytes, kind, self.handle), "cudaMemcpyAsync (to host)")

    def synchronize(self) -> None:
        check(self.rt.cudaStreamSynchronize(self.handle), "cudaStreamSynchronize")

    def close(self) -> None:
        if self.handle is not None:
            self.rt.cudaStreamDestroy(self.handle)
            self.handle = None
