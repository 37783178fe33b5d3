"""TensorRT backend: a plain serialized plan + its manifest, run through cuda-python.

Uses only the tensor-name API that TensorRT 8.5 introduced and 10/11 kept (``num_io_tensors``,
``get_tensor_name``, ``get_tensor_mode``, ``set_input_shape``, ``set_tensor_address``,
``execute_async_v3``): one CUDA stream, pinned host buffers, buffers reallocated only when a shape
needs more memory. ``tensorrt`` and cuda-python are imported when a plan is opened, never before.
This module is type-checked against the TensorRT 10 stubs (scripts/check_device.py); it
cannot run on a machine without an NVIDIA GPU.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from rockedge.console import warn
from rockedge.cuda_rt import Stream, require_gpu, use_device
from rockedge.deps import load_failure, not_installed
from rockedge.errors import BackendUnavailable, RockedgeError
from rockedge.plan_trust import host_code_allowed
from rockedge.precision import Precision
from rockedge.runtime.backends.base import Backend, BackendInfo
from rockedge.runtime.backends.trt_io import (
    BufferSet,
    Profile,
    TensorPlan,
    dtype_of,
    output_shape,
    resolve_input_shape,
    trt_api,
)
from rockedge.runtime.manifest import (
    EngineManifest,
    check_manifest,
    check_plan_file,
    read_manifest,
)
from rockedge.runtime.modelfile import open_model_file
from rockedge.runtime.modelio import NO_FLAGS, SpecFlags, resolve_io
from rockedge.spec import ModelSpec
from rockedge.tensors import TensorInfo

MISSING_TRT = (
    "TensorRT's Python package (tensorrt) is not importable here; on a Jetson it comes with JetPack "
    "(sudo apt install python3-libnvinfer, and use the system Python or a venv with --system-site-packages), "
    "elsewhere install it from NVIDIA's index; or run the .onnx with --backend ort"
)


def import_tensorrt():  # noqa: ANN201 - the module type is what pyright checks calls against
    """``import tensorrt``, or one line saying how to get it. Type stubs alone are not TensorRT."""
    try:
        import tensorrt as trt
    except ImportError as e:
        if not not_installed(e, "tensorrt"):  # e.g. libnvinfer.so.10 missing: installing the wheel is not the fix
            raise BackendUnavailable(load_failure(e, "tensorrt")) from None
        raise BackendUnavailable(MISSING_TRT) from None
    if not hasattr(trt, "Runtime"):  # tensorrt-stubs installs a stub-only 'tensorrt' namespace package
        raise BackendUnavailable(MISSING_TRT)
    return trt


def dims(d: Any) -> tuple[int, ...]:
    """TensorRT Dims -> tuple (Dims indexes and has a length; the stubs do not declare iteration)."""
    return tuple(int(d[i]) for i in range(len(d)))


class TrtBackend(Backend):
    """Runs a ``.plan``; its manifest (``model.plan.json``) supplies the ModelSpec, or :class:`SpecFlags` for a
    plan built elsewhere (trtexec, DeepStream) that has none.

    Construction reads and checks the manifest only (no TensorRT, no GPU), so a wrong file fails the same way
    on every machine; TensorRT, the GPU and the engine are loaded on first use (:meth:`activate`), as
    Polygraphy's runners do, and a load that fails half-way releases what it had taken."""

    name = "tensorrt"

    def __init__(self, path: str | os.PathLike[str], *, device: int = 0, spec_flags: SpecFlags = NO_FLAGS,
                 manifest: EngineManifest | None = None, trust_plan_code: bool = False) -> None:
        """``manifest``: use this one instead of the file beside the plan (the engine builder checks a plan
        before it writes its manifest). ``trust_plan_code``: allow a version-compatible plan's embedded lean
        runtime (host code) to run; see :func:`rockedge.plan_trust.host_code_allowed`."""
        path = Path(path)
        if not path.is_file():
            raise RockedgeError(f"engine not found: {path}")
        if manifest is None:
            manifest = open_model_file(path).manifest
        if manifest is None and spec_flags.classes is None:
            read_manifest(path)  # raises the one-line "no manifest beside it" error with the fix
        if manifest is not None:
            check_plan_file(manifest, path)  # the wrong file fails here, before TensorRT or a GPU is asked
        self.path = path
        self.manifest = manifest
        self.device = int(device)
        self.spec_flags = spec_flags
        self.precision = manifest.precision if manifest is not None else Precision.FP32
        self.host_code = host_code_allowed(path, manifest, trust_plan_code)
        self._active = False
        self.buffers: BufferSet | None = None
        self.stream: Stream | None = None

    # -- loading -----------------------------------------------------------------------------------
    def activate(self) -> "TrtBackend":
        """Import TensorRT, pick the GPU, deserialize the plan and plan its I/O (once)."""
        if not self._active:
            try:
                self._load()
            except BaseException:
                self.close()
                raise
            self._active = True
        return self

    def _load(self) -> None:
        trt = import_tensorrt()
        self.api = trt_api(trt.__version__)
        gpu_name, cc = use_device(self.device)
        manifest = self.manifest
        if manifest is not None:
            for w in check_manifest(manifest, self.path, tensorrt_version=trt.__version__, gpu_name=gpu_name,
                                    compute_capability=cc, plan_checked=True):
                warn(w)
        self.gpu = {"name": gpu_name, "compute_capability": cc}
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        if self.host_code and self.api.version_compatible_engines:
            # A version-compatible plan embeds its lean runtime; TensorRT runs it only when allowed.
            self._runtime.engine_host_code_allowed = True
        dla_core = (manifest.build.get("dla_core") if manifest is not None else None)
        if dla_core is not None:
            # A DLA plan is deserialized onto the core it was built for (the runtime's default is core 0).
            self._runtime.DLA_core = int(dla_core)
        engine = self._runtime.deserialize_cuda_engine(self.path.read_bytes())
        if engine is None:
            raise RockedgeError(
                f"TensorRT {trt.__version__} could not deserialize {self.path.name} (corrupt, or built by another "
                "TensorRT/GPU despite its manifest); rebuild it on this device"
            )
        self.engine = engine
        context = engine.create_execution_context()
        if context is None:
            raise RockedgeError(f"TensorRT could not create an execution context for {self.path.name} "
                                "(out of GPU memory?)")
        self.context = context
        self.stream = Stream()
        self.buffers = BufferSet(self.stream.alloc_host, self.stream.alloc_device, self.stream.free_host,
                                 self.stream.free_device, Stream.host_array)
        inputs: list[TensorInfo] = []
        outputs: list[TensorInfo] = []
        self.dtypes: dict[str, np.dtype[Any]] = {}
        for i in range(engine.num_io_tensors):
            tname = engine.get_tensor_name(i)
            self.dtypes[tname] = dtype_of(engine.get_tensor_dtype(tname), self.api, tensor=tname)
            shape = tuple(None if v < 0 else v for v in dims(engine.get_tensor_shape(tname)))
            desc = TensorInfo(tname, shape, self.dtypes[tname].name)
            (inputs if engine.get_tensor_mode(tname) == trt.TensorIOMode.INPUT else outputs).append(desc)
        if len(inputs) != 1:
            raise RockedgeError(f"{self.path.name} has {len(inputs)} inputs; rockedge feeds models with one image input")
        self._spec, self._input, self._output = resolve_io(
            self.path.name, inputs, outputs, manifest.spec if manifest is not None else None, self.spec_flags)
        self.input_name, self.output_name = self._input.name, self._output.name
        # Every output needs a buffer and an address even when only one is read.
        self.outputs = [t.name for t in outputs]
        self.engine_shape = dims(engine.get_tensor_shape(self.input_name))
        self.profile: Profile | None = None
        if -1 in self.engine_shape:
            lo, opt, hi = engine.get_tensor_profile_shape(self.input_name, 0)
            self.profile = Profile(dims(lo), dims(opt), dims(hi))
        self._shape: tuple[int, ...] | None = None

    @property
    def spec(self) -> ModelSpec:  # type: ignore[override]
        return self.activate()._spec

    @property
    def input(self) -> TensorInfo:  # type: ignore[override]
        return self.activate()._input

    @property
    def output(self) -> TensorInfo:  # type: ignore[override]
        return self.activate()._output

    # -- shape handling ------------------------------------------------------------------------
    def _set_shape(self, shape: tuple[int, ...]) -> None:
        assert self.buffers is not None
        shape = resolve_input_shape(self.input_name, self.engine_shape, shape, self.profile)
        if not self.context.set_input_shape(self.input_name, shape):
            raise RockedgeError(f"TensorRT rejected input shape {shape} for {self.path.name}")
        plans = [TensorPlan(self.input_name, True, self.dtypes[self.input_name], shape)]
        for name in self.outputs:
            plans.append(TensorPlan(name, False, self.dtypes[name],
                                    output_shape(name, dims(self.context.get_tensor_shape(name)))))
        moved = self.buffers.ensure(plans)
        # Addresses are set once per (re)allocation, not per call.
        for name in moved:
            if not self.context.set_tensor_address(name, self.buffers.device[name]):
                raise RockedgeError(f"TensorRT rejected the buffer address of {name}")
        self._shape = shape

    # -- inference ---------------------------------------------------------------------------------
    def _infer(self, batch: np.ndarray) -> np.ndarray:
        self.activate()
        assert self.buffers is not None and self.stream is not None
        want = self.dtypes[self.input_name]
        if batch.dtype != want:
            raise RockedgeError(f"engine input is {want.name}, got {batch.dtype}")
        if tuple(batch.shape) != self._shape:
            self._set_shape(tuple(batch.shape))
        host_in = self.buffers.host_view(self.input_name)
        np.copyto(host_in, batch)
        plan_in = self.buffers.plans[self.input_name]
        self.stream.to_device(self.buffers.device[self.input_name], self.buffers.host[self.input_name], plan_in.nbytes)
        if not self.context.execute_async_v3(self.stream.ptr):
            raise RockedgeError(f"TensorRT execution failed for {self.path.name}")
        for name in self.outputs:
            self.stream.to_host(self.buffers.host[name], self.buffers.device[name], self.buffers.plans[name].nbytes)
        self.stream.synchronize()
        return self.buffers.host_view(self.output_name).copy()

    @property
    def info(self) -> BackendInfo:
        self.activate()
        return BackendInfo(self.name, str(self.path), self.gpu["name"], (), self.precision,
                           {"tensorrt": self.api.label, "compute_capability": self.gpu["compute_capability"]})

    def close(self) -> None:
        if self.buffers is not None:
            self.buffers.close()
            self.buffers = None
        if self.stream is not None:
            self.stream.close()
            self.stream = None
        for attr in ("context", "engine", "_runtime"):
            if hasattr(self, attr):
                delattr(self, attr)
        self._active = False


def require_tensorrt() -> str:
    """TensorRT's version and the GPU, or one line saying which of the two is missing."""
    trt = import_tensorrt()
    require_gpu()
    return str(trt.__version__)
