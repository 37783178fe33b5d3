"""A fake ``cuda.bindings.runtime`` (cuda-python 12.6+/13 layout) with "device" memory in host RAM.

It answers as cuda-python does: every call returns a tuple whose first item is a ``cudaError_t`` (``(err,)`` when
there is nothing else); with no usable driver 12.9/13 return ``(cudaErrorInsufficientDriver, None)`` for the device
count, 12.6 raises ``RuntimeError("Failed to dlopen libcuda.so.1")`` (both measured here, see
tests/data/tensorrt_api/cuda_python.md). The scenario's ``driver`` switch picks which. Enum values are cuda-python's.
"""

from __future__ import annotations

import ctypes
import enum
from typing import Any

import _trt_api

_S = _trt_api.scenario()
_BUFFERS: dict[int, Any] = {}
_current = {"device": 0}


class cudaError_t(enum.IntEnum):
    cudaSuccess = 0
    cudaErrorInvalidValue = 1
    cudaErrorMemoryAllocation = 2
    cudaErrorInitializationError = 3
    cudaErrorInsufficientDriver = 35
    cudaErrorNoDevice = 100
    cudaErrorInvalidDevice = 101


class cudaMemcpyKind(enum.IntEnum):
    cudaMemcpyHostToHost = 0
    cudaMemcpyHostToDevice = 1
    cudaMemcpyDeviceToHost = 2
    cudaMemcpyDeviceToDevice = 3


class cudaDeviceProp:
    def __init__(self, name: str, major: int, minor: int) -> None:
        self.name = name.encode() + b"\x00" * (256 - len(name))
        self.major, self.minor = major, minor


class cudaStream_t:
    _next = 1

    def __init__(self) -> None:
        self._h = cudaStream_t._next
        cudaStream_t._next += 1

    def __int__(self) -> int:
        return self._h


OK = cudaError_t.cudaSuccess


def _driver() -> None:
    if _S["driver"] == "dlopen":
        raise RuntimeError("Failed to dlopen libcuda.so.1")


def cudaGetDeviceCount() -> tuple[Any, Any]:
    _driver()
    if _S["driver"] == "insufficient":
        return cudaError_t.cudaErrorInsufficientDriver, None
    return OK, len(_S["gpus"])


def cudaGetDeviceProperties(device: int) -> tuple[Any, Any]:
    _driver()
    if not 0 <= device < len(_S["gpus"]):
        return cudaError_t.cudaErrorInvalidDevice, None
    if _S["properties_error"]:
        return cudaError_t[_S["properties_error"]], None
    g = _S["gpus"][device]
    return OK, cudaDeviceProp(g["name"], g["major"], g["minor"])


def cudaSetDevice(device: int) -> tuple[Any]:
    _driver()
    if not 0 <= device < len(_S["gpus"]):
        return (cudaError_t.cudaErrorInvalidDevice,)
    _current["device"] = device
    _trt_api.log("cudaSetDevice", device=device)
    return (OK,)


def cudaMemGetInfo() -> tuple[Any, int, int]:
    _driver()
    if _S["mem_info_error"]:
        return cudaError_t[_S["mem_info_error"]], None, None  # type: ignore[return-value]
    return OK, int(_S["free_memory"]), int(_S["total_memory"])


def cudaDriverGetVersion() -> tuple[Any, int]:
    if _S["driver"] == "dlopen":  # 12.6 after a failed dlopen, measured (cuda_python.md)
        raise RuntimeError('Function "cuDriverGetVersion" not found')
    return OK, int(_S["driver_cuda"])


def cudaRuntimeGetVersion() -> tuple[Any, int]:
    return OK, int(_S["runtime_cuda"])


def cudaStreamCreate() -> tuple[Any, cudaStream_t]:
    _driver()
    stream = cudaStream_t()
    _trt_api.log("cudaStreamCreate", stream=int(stream))
    return OK, stream


def cudaStreamSynchronize(stream: Any) -> tuple[Any]:
    return (OK,)


def cudaStreamDestroy(stream: Any) -> tuple[Any]:
    _trt_api.log("cudaStreamDestroy", stream=int(stream))
    return (OK,)


def _alloc(nbytes: int) -> tuple[Any, int]:
    buf = ctypes.create_string_buffer(max(1, int(nbytes)))
    ptr = ctypes.addressof(buf)
    _BUFFERS[ptr] = buf
    return OK, ptr


def cudaMalloc(size: int) -> tuple[Any, int]:
    return _alloc(size)


def cudaMallocHost(size: int) -> tuple[Any, int]:
    return _alloc(size)


def _free(ptr: int) -> tuple[Any]:
    return (OK,) if _BUFFERS.pop(int(ptr), None) is not None else (cudaError_t.cudaErrorInvalidValue,)


def cudaFree(devPtr: int) -> tuple[Any]:
    return _free(devPtr)


def cudaFreeHost(ptr: int) -> tuple[Any]:
    return _free(ptr)


def cudaMemcpy(dst: int, src: int, count: int, kind: Any) -> tuple[Any]:
    ctypes.memmove(int(dst), int(src), int(count))
    return (OK,)


def cudaMemcpyAsync(dst: int, src: int, count: int, kind: Any, stream: Any) -> tuple[Any]:
    ctypes.memmove(int(dst), int(src), int(count))
    return (OK,)
