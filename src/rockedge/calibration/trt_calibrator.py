"""TensorRT's implicit INT8 calibration (TensorRT 8.5-10) over the calibration reader.

:class:`BatchFeeder` is the TensorRT-free core: it walks a :class:`CalibrationSet` batch by batch and
copies each batch into one device buffer through injected allocation/copy functions (cuda-python on the
device, plain numpy in the CPU tests). :func:`make_calibrator` wraps it in a subclass of TensorRT's
``IInt8EntropyCalibrator2``, created only when called, so importing this module needs no TensorRT.
TensorRT 11 removed calibrators: asking for one there is one line pointing at the Q/DQ route.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from rockedge.calibration.cache import ENTROPY2, CacheFile, cache_identity
from rockedge.calibration.reader import CalibrationSet
from rockedge.cuda_rt import Stream
from rockedge.errors import RockedgeError
from rockedge.runtime.backends.trt import import_tensorrt


class BatchFeeder:
    """Feeds ``calibration`` into one device buffer, ``batch`` frames at a time (the last batch padded)."""

    def __init__(self, calibration: CalibrationSet, batch: int, *, alloc: Callable[[int], Any],
                 to_device: Callable[[Any, np.ndarray], None], free: Callable[[Any], None]) -> None:
        if batch < 1:
            raise RockedgeError(f"calibration batch must be >= 1, got {batch}")
        self.calibration = calibration
        self.batch = batch
        self._free = free
        self._to_device = to_device
        self._iter = calibration.batches(batch, fixed_batch=batch)
        first = next(calibration.batches(1, fixed_batch=1))
        self.sample_shape = first.shape[1:]
        self.dtype = first.dtype
        self.nbytes = int(np.prod((batch, *self.sample_shape))) * first.dtype.itemsize
        self.buffer: Any = alloc(self.nbytes)
        self.fed = 0  # batches handed to TensorRT

    def next_pointer(self) -> Any | None:
        """The device buffer holding the next batch, or None when the set is exhausted."""
        x = next(self._iter, None)
        if x is None:
            return None
        self._to_device(self.buffer, np.ascontiguousarray(x))
        self.fed += 1
        return self.buffer

    def close(self) -> None:
        if self.buffer is not None:
            self._free(self.buffer)
            self.buffer = None


def calibrator_base(trt: Any) -> Any:
    """TensorRT's entropy calibrator class, or one line where the version has none (TensorRT 11)."""
    base = getattr(trt, "IInt8EntropyCalibrator2", None)
    if base is None:
        raise RockedgeError(
            f"TensorRT {getattr(trt, '__version__', '?')} has no INT8 calibrators (removed in 11): quantize on the "
            "workstation (rockedge export MODEL --int8 --data DIR) and build from the Q/DQ MODEL.int8.onnx"
        )
    return base


def make_calibrator(calibration: CalibrationSet, *, batch: int, cache: CacheFile | None, onnx_sha256: str) -> Any:
    """An ``IInt8EntropyCalibrator2`` that reads frames from ``calibration`` (cuda-python device memory) and reuses
    ``cache`` only when it was computed from the same calibration set, network and TensorRT version."""

    trt = import_tensorrt()
    calibrator_base(trt)
    if calibration.spec.input_format == "raw":
        raise RockedgeError("TensorRT's calibrator feeds float32 inputs; a raw-input (uint8) model is quantized on the "
                            "workstation instead: rockedge export MODEL --int8 --data DIR")

    stream = Stream()

    def to_device(ptr: int, host: np.ndarray) -> None:
        stream.to_device_array(ptr, host)

    feeder = BatchFeeder(calibration, batch, alloc=stream.alloc_device, to_device=to_device, free=stream.free_device)
    identity = cache_identity(calibration, ENTROPY2, onnx_sha256=onnx_sha256, tensorrt_version=str(trt.__version__))

    class _EntropyCalibrator(trt.IInt8EntropyCalibrator2):
        def __init__(self) -> None:
            trt.IInt8EntropyCalibrator2.__init__(self)  # TensorRT's Python calibrators must call the base initialiser
            self.feeder = feeder
            self.stream = stream
            self.cache_hit = False

        def get_batch_size(self) -> int:
            return batch

        def get_batch(self, names: list[str]) -> list[int] | None:
            # TensorRT swallows exceptions raised here (and ends calibration): report them before it does.
            try:
                ptr = feeder.next_pointer()
            except Exception as e:
                print(f"error: calibration batch {feeder.fed + 1} failed: {type(e).__name__}: {e}", file=sys.stderr)
                raise
            return None if ptr is None else [int(ptr)]

        def read_calibration_cache(self) -> bytes | None:
            data = cache.load(identity) if cache is not None else None
            self.cache_hit = data is not None
            return data

        def write_calibration_cache(self, data: Any) -> None:
            if cache is not None:
                cache.save(bytes(memoryview(data)), identity)

        def close(self) -> None:
            feeder.close()
            stream.close()

    return _EntropyCalibrator()
