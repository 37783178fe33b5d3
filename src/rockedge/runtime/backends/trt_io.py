"""Everything about running a TensorRT engine that does not need TensorRT: which API a version
offers, tensor dtypes, resolving dynamic shapes against the optimisation profile, and planning
and reusing I/O buffers. :mod:`rockedge.runtime.backends.trt` feeds it what the engine reports,
and the CPU test suite feeds it the same plain values.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from rockedge.errors import BackendUnavailable, RockedgeError
from rockedge.runtime.manifest import parse_version
from rockedge.tensors import Profile

MIN_VERSION = (8, 5)  # first release with the tensor-name API and execute_async_v3

# TensorRT DataType names -> numpy. BF16/FP8/INT4 have no numpy dtype: such I/O is refused.
DTYPES: dict[str, Any] = {
    "FLOAT": np.float32,
    "HALF": np.float16,
    "INT8": np.int8,
    "INT32": np.int32,
    "INT64": np.int64,
    "BOOL": np.bool_,
    "UINT8": np.uint8,
}


@dataclass(frozen=True)
class TrtApi:
    """What the running TensorRT version offers, decided once from its version string. (UINT8 network I/O, what a
    ``raw``-input model needs, is in every version rockedge supports: ``DataType.UINT8`` is bound from 8.5 on,
    tests/data/tensorrt_api/8.5.2.json.)"""

    version: tuple[int, ...]
    int64_io: bool  # INT64 tensors (ArgMax outputs without a cast): TensorRT >= 10
    version_compatible_engines: bool  # lean runtime inside the plan: TensorRT >= 8.6
    v2_device_memory: bool  # device_memory_size_v2 / weight streaming: TensorRT >= 10

    @property
    def label(self) -> str:
        return ".".join(str(v) for v in self.version)


def trt_api(version: str) -> TrtApi:
    """Feature flags for a TensorRT version; refuses anything older than 8.5."""
    v = parse_version(version)
    if v[:2] < MIN_VERSION:
        raise BackendUnavailable(
            f"TensorRT {version} is too old: rockedge needs 8.5 or newer (JetPack 5.1+) for the tensor-name API "
            "and execute_async_v3"
        )
    return TrtApi(
        version=v,
        int64_io=v[0] >= 10,
        version_compatible_engines=v[:2] >= (8, 6),
        v2_device_memory=v[0] >= 10,
    )


def dtype_of(trt_dtype: Any, api: TrtApi | None = None, *, tensor: str = "") -> np.dtype[Any]:
    """TensorRT DataType (or its name) -> numpy dtype; one line for types rockedge cannot feed."""
    name = str(getattr(trt_dtype, "name", trt_dtype)).rsplit(".", 1)[-1].upper()
    if name not in DTYPES:
        raise RockedgeError(
            f"tensor {tensor or '?'} has TensorRT type {name}, which numpy cannot hold; build the engine with "
            "float32/float16/int32/uint8 inputs and outputs"
        )
    return np.dtype(DTYPES[name])


def resolve_input_shape(
    name: str,
    engine_shape: Sequence[int],
    wanted: Sequence[int],
    profile: Profile | None,
) -> tuple[int, ...]:
    """Check a batch shape against the engine's shape (-1 = dynamic) and its profile; returns it."""
    wanted = tuple(int(v) for v in wanted)
    engine_shape = tuple(int(v) for v in engine_shape)
    if len(wanted) != len(engine_shape):
        raise RockedgeError(f"input {name} has rank {len(engine_shape)} {engine_shape}, got {wanted}")
    for axis, (e, w) in enumerate(zip(engine_shape, wanted)):
        if e != -1 and e != w:
            raise RockedgeError(
                f"input {name} is fixed at {_fmt(engine_shape)}, got {_fmt(wanted)} (axis {axis}); "
                "use the engine's batch/size or rebuild it with a profile covering this shape"
            )
    if profile is not None and any(-1 == e for e in engine_shape):
        if not all(lo <= w <= hi for lo, w, hi in zip(profile.min, wanted, profile.max)):
            raise RockedgeError(
                f"input {name} shape {_fmt(wanted)} is outside the engine's profile "
                f"{_fmt(profile.min)} .. {_fmt(profile.max)}; rebuild the engine with a wider profile"
            )
    return wanted


def _fmt(shape: Sequence[int]) -> str:
    return "x".join("?" if v == -1 else str(v) for v in shape)


def output_shape(name: str, reported: Sequence[int]) -> tuple[int, ...]:
    """An output shape after the input shapes are set: must be fully known."""
    shape = tuple(int(v) for v in reported)
    if any(v < 0 for v in shape):
        raise RockedgeError(f"output {name} still has unknown dims {_fmt(shape)} after setting input shapes "
                            "(data-dependent outputs are not supported)")
    return shape


@dataclass(frozen=True)
class TensorPlan:
    name: str
    is_input: bool
    dtype: np.dtype[Any]
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        n = 1
        for v in self.shape:
            n *= v
        return n * self.dtype.itemsize


class BufferSet:
    """Host (pinned) and device buffers per tensor, reused across calls.

    A tensor's memory is reallocated only when its shape changes *and* needs more bytes than it
    holds; a smaller shape reuses the block through a view. Allocation is injected, so the CUDA
    version (cudaMallocHost/cudaMalloc) and the CPU tests share this logic.
    """

    def __init__(
        self,
        alloc_host: Callable[[int], Any],
        alloc_device: Callable[[int], Any],
        free_host: Callable[[Any], None],
        free_device: Callable[[Any], None],
        host_array: Callable[[Any, int], np.ndarray],
    ) -> None:
        self._alloc_host, self._alloc_device = alloc_host, alloc_device
        self._free_host, self._free_device = free_host, free_device
        self._host_array = host_array
        self.capacity: dict[str, int] = {}
        self.host: dict[str, Any] = {}
        self.device: dict[str, Any] = {}
        self.plans: dict[str, TensorPlan] = {}
        self.allocations = 0

    def ensure(self, plans: Sequence[TensorPlan]) -> list[str]:
        """Make buffers fit ``plans``; returns the names whose device address changed."""
        moved = []
        for p in plans:
            need = max(p.nbytes, 1)
            if self.capacity.get(p.name, 0) < need:
                self._release(p.name)
                self.host[p.name] = self._alloc_host(need)
                self.device[p.name] = self._alloc_device(need)
                self.capacity[p.name] = need
                self.allocations += 1
                moved.append(p.name)
            self.plans[p.name] = p
        return moved

    def host_view(self, name: str) -> np.ndarray:
        """The pinned host block of ``name`` as an array of its current dtype and shape."""
        p = self.plans[name]
        raw = self._host_array(self.host[name], self.capacity[name])
        return raw[: p.nbytes].view(p.dtype).reshape(p.shape)

    def _release(self, name: str) -> None:
        if name in self.host:
            self._free_host(self.host.pop(name))
        if name in self.device:
            self._free_device(self.device.pop(name))
        self.capacity.pop(name, None)

    def close(self) -> None:
        for name in list(self.capacity):
            self._release(name)
        self.plans.clear()
