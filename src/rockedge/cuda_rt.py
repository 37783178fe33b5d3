"""The few CUDA runtime calls the TensorRT backend needs, through cuda-python.

cuda-python >= 12.6 (and 13) exposes ``cuda.bindings.runtime``; the releases on JetPack 5/6
images expose ``cuda.cudart``. Both return ``(err, value...)`` tuples; :func:`check` turns a
failing one into a single line. cuda-python <= 12.6 raises ``RuntimeError("Failed to dlopen
libcuda.so.1")`` instead when there is no driver at all; :func:`call` turns that into the same
"no usable CUDA GPU" line. Imported lazily: nothing here loads unless a plan is run. :class:`CudaRuntime` declares
every name rockedge uses of the module, for the type gate and for the per-release name check of the tests.

The cuda-python release must match the driver's CUDA major version: cuda-python 13 needs a CUDA 13
driver (JetPack 7), JetPack 6's CUDA 12.6 needs 12.x, JetPack 5's CUDA 11.4 needs 11.8 (the last
release with Python 3.8 wheels for the Jetson is 11.8.2). :func:`cuda_python_pin` says which; the "no usable CUDA
GPU: cudaErrorInsufficientDriver" error and ``rockedge doctor`` both print it when a driver is there.
"""

from __future__ import annotations

import ctypes
import importlib
from typing import Any, Callable, Optional, Protocol, TypeVar, cast

import numpy as np

from rockedge.errors import BackendUnavailable, RockedgeError

T = TypeVar("T")


class _ErrorCodes(Protocol):
    """The members of ``cudaError_t`` rockedge compares against."""

    cudaSuccess: Any
    cudaErrorInsufficientDriver: Any


class _CopyKinds(Protocol):
    cudaMemcpyHostToDevice: Any
    cudaMemcpyDeviceToHost: Any


class DeviceProp(Protocol):
    """What rockedge reads of a ``cudaDeviceProp``."""

    name: bytes
    major: int
    minor: int


class CudaRuntime(Protocol):
    """Every name rockedge uses of cuda-python's runtime module (``cuda.bindings.runtime`` / ``cuda.cudart``).

    cuda-python ships no type stubs, so this is the one declaration the type gate checks rockedge's calls against;
    tests/test_trt_api.py checks each name here (and every ``rt.cuda*`` attribute the code touches) against the
    names each release defines (tests/data/tensorrt_api/cuda_python_api.json: 11.8.2 for JetPack 5, 12.x, 13.x).
    Every call returns a tuple whose first item is a ``cudaError_t``; a value is None when the call failed.
    """

    cudaError_t: _ErrorCodes
    cudaMemcpyKind: _CopyKinds
    cudaGetDeviceCount: Callable[[], tuple[Any, Optional[int]]]
    cudaGetDeviceProperties: Callable[[int], tuple[Any, Optional[DeviceProp]]]
    cudaSetDevice: Callable[[int], tuple[Any]]
    cudaMemGetInfo: Callable[[], tuple[Any, int, int]]
    cudaDriverGetVersion: Callable[[], tuple[Any, int]]
    cudaRuntimeGetVersion: Callable[[], tuple[Any, int]]
    cudaStreamCreate: Callable[[], tuple[Any, Any]]
    cudaStreamSynchronize: Callable[[Any], tuple[Any]]
    cudaStreamDestroy: Callable[[Any], tuple[Any]]
    cudaMallocHost: Callable[[int], tuple[Any, int]]
    cudaMalloc: Callable[[int], tuple[Any, int]]
    cudaFreeHost: Callable[[int], tuple[Any]]
    cudaFree: Callable[[int], tuple[Any]]
    cudaMemcpy: Callable[[int, int, int, Any], tuple[Any]]
    cudaMemcpyAsync: Callable[[int, int, int, Any, Any], tuple[Any]]


_CUDART: Optional[CudaRuntime] = None
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


def cudart() -> CudaRuntime:
    """The cuda-python runtime module (new or old layout), or one line saying it is missing."""
    global _CUDART
    if _CUDART is None:
        for name in CUDART_MODULES:
            try:
                _CUDART = cast(CudaRuntime, importlib.import_module(name))
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


def call(fn: Callable[..., T], *args: Any) -> T:
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


def cuda_version(v: int) -> str:
    """CUDA's integer version (12060) as "12.6"."""
    return f"{v // 1000}.{v % 1000 // 10}"


def cuda_versions() -> tuple[int | None, int | None]:
    """(the driver's CUDA version, cuda-python's runtime version) as CUDA integers; 0 driver = no NVIDIA driver;
    None where cuda-python is missing or the call fails (cuda-python <= 12.6 raises when there is no driver)."""
    try:
        rt = cudart()
    except Exception:  # noqa: BLE001 - no (or a broken) cuda-python: the caller reports that itself
        return None, None
    out: list[int | None] = []
    for fn in (rt.cudaDriverGetVersion, rt.cudaRuntimeGetVersion):
        try:
            err, v = fn()
            out.append(int(v) if err == rt.cudaError_t.cudaSuccess else None)
        except Exception:  # noqa: BLE001 - a version is extra detail, never a failure
            out.append(None)
    return out[0], out[1]


def no_gpu_reason(err: Any) -> str:
    """What a failing ``cudaGetDeviceCount`` means, for the parentheses of the one-line error. For
    cudaErrorInsufficientDriver it asks the driver's CUDA version: 0 is no driver at all; a driver older than this
    cuda-python's runtime (cuda-python 13 on JetPack 6's CUDA 12.6) gets the pip pin of the release it runs."""
    if err != cudart().cudaError_t.cudaErrorInsufficientDriver:
        return NO_GPU
    driver, runtime = cuda_versions()
    if driver == 0:
        return "no NVIDIA driver on this machine; the TensorRT backend needs an NVIDIA GPU and its driver"
    if not driver:
        return NO_GPU
    return pin_advice(driver, runtime)


def pin_advice(driver: int, runtime: int | None) -> str:
    """The cuda-python release to install for a driver of CUDA ``driver`` (the error above and doctor's hint). Within
    one major version (12.9 wheels, a 12.2 driver) it is a release no newer than the driver's minor version."""
    pin = cuda_python_pin(driver)
    major, minor = driver // 1000, driver % 1000 // 10
    if runtime and runtime // 1000 == major >= 12 and runtime > driver:
        pin = f"cuda-python>={major},<{major}.{minor + 1}"
    if runtime:
        said = f"this cuda-python is built for CUDA {cuda_version(runtime)} but the driver supports"
    else:
        said = "this cuda-python's CUDA runtime is newer than the driver, which supports"
    return f"{said} {cuda_version(driver)}: pip install '{pin}'"


def require_gpu(device: int = 0) -> tuple[str, str]:
    """(GPU name, compute capability "M.m") of ``device``, or one line saying why there is none."""
    rt = cudart()
    err, count = call(rt.cudaGetDeviceCount)
    if err != rt.cudaError_t.cudaSuccess or count is None:
        raise BackendUnavailable(f"no usable CUDA GPU: {error_name(err)} ({no_gpu_reason(err)})")
    if count <= device:
        raise BackendUnavailable(f"no CUDA device {device} (this machine has {count})")
    props: DeviceProp = check(call(rt.cudaGetDeviceProperties, device), "cudaGetDeviceProperties")
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
