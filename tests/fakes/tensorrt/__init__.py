"""A fake ``tensorrt`` that defines exactly the names one TensorRT version's Python bindings define.

TensorRT cannot be installed on a machine without an NVIDIA GPU, so rockedge's TensorRT code runs here against
this module instead. It is a fake, not a model of TensorRT's numerics; what makes it worth running against is
that it carries TensorRT's own facts rather than rockedge's beliefs:

* **Names**: every class, member, property and enum value comes from the version's list in
  tests/data/tensorrt_api/<version>.json (parsed from NVIDIA's pyCore.cpp / pyInt8.cpp / pyOnnx.cpp /
  pyFoundationalTypes.cpp at the release tag). A member the fake implements but that version lacks raises
  AttributeError, as it would there (``engine_host_code_allowed`` on 8.5, ``BuilderFlag.FP16`` or
  ``IInt8EntropyCalibrator2`` on 11, ``NetworkDefinitionCreationFlag.EXPLICIT_BATCH`` on 11).
* **None returns** the bindings document: ``build_serialized_network`` (a null pointer), ``deserialize_cuda_engine``
  ("or None if it could not be deserialized"), ``get_timing_cache`` ("or None if no timing cache is set"),
  ``create_timing_cache``; ``set_timing_cache`` returns a bool.
* **Strings**: the engine inspector's "Format/Datatype" sentences of real engines (trt-engine-explorer's example
  graphs), calibration-cache headers ``TRT-<code>-EntropyCalibration2`` with TensorRT's version code
  (8.6.1 -> 8601, 10.3.0 -> 100300), and pyInt8.cpp's handling of an exception in ``get_batch`` (printed, then
  calibration ends as if the data had run out).
* **Refusals**: a version-compatible plan is not deserialized unless ``engine_host_code_allowed`` was set; a plan
  from another version (unless version-compatible and built by an older one) is refused; 8.5/8.6's ONNX parser
  needs an EXPLICIT_BATCH network.

What is the fake's own: a plan is a small JSON document, and "running" an engine runs its ONNX with ONNX Runtime
on the bytes at the (host-memory) addresses rockedge bound, so verification compares real outputs. Messages that
are TensorRT's own are quoted as such; others say they are the fake's.
"""

from __future__ import annotations

import ctypes
import json
import sys
from pathlib import Path
from typing import Any

import _trt_api
import numpy as np

_NAMES = _trt_api.names()
_SCENARIO = _trt_api.scenario()
__version__ = _NAMES["version"]
_V = tuple(int(p) for p in __version__.split("."))
_PLAN_MAGIC = b"FAKE-TRT-PLAN\n"


def _allowed(cls_name: str) -> set[str]:
    return set(_NAMES["classes"].get(cls_name, ())) | set((_NAMES.get("properties") or {}).get(cls_name, ()))


class _Strict:
    """Base of the fake classes: a public member the fake defines but this version lacks is an AttributeError."""

    _trt_name = ""

    def __getattribute__(self, name: str) -> Any:
        if not name.startswith("_"):
            owner = _fake_owner(type(self), name)
            if owner is not None and name not in _allowed(owner._trt_name):
                raise AttributeError(f"'tensorrt.{owner._trt_name}' object has no attribute '{name}' "
                                     f"(TensorRT {__version__})")
        return object.__getattribute__(self, name)

    def __setattr__(self, name: str, value: Any) -> None:
        if not name.startswith("_"):
            owner = _fake_owner(type(self), name)
            fake_cls = next((c for c in type(self).__mro__ if c.__dict__.get("_fake")), None)
            if owner is None and fake_cls is type(self):
                raise AttributeError(f"'tensorrt.{type(self)._trt_name}' object has no attribute '{name}'")
            if owner is not None and name not in _allowed(owner._trt_name):
                raise AttributeError(f"'tensorrt.{owner._trt_name}' object has no attribute '{name}' "
                                     f"(TensorRT {__version__})")
        object.__setattr__(self, name, value)


def _fake_owner(cls: type, name: str) -> Any:
    """The fake class in ``cls``'s MRO that defines ``name`` (None when a user subclass or nobody does)."""
    for c in cls.__mro__:
        if name in c.__dict__:
            return c if c.__dict__.get("_fake") else None
    return None


def _fake(name: str) -> Any:
    def deco(cls: type) -> type:
        cls._trt_name = name  # type: ignore[attr-defined]
        cls._fake = True  # type: ignore[attr-defined]
        return cls
    return deco


# -- enums ------------------------------------------------------------------------------------------------------

class _EnumValue(int):
    def __new__(cls, enum: str, name: str, value: int) -> "_EnumValue":
        obj = int.__new__(cls, value)
        obj._enum, obj._name = enum, name  # type: ignore[attr-defined]
        return obj

    @property
    def name(self) -> str:
        return self._name  # type: ignore[attr-defined]

    @property
    def value(self) -> int:
        return int(self)

    def __str__(self) -> str:  # pybind11 enums print as "DataType.FLOAT"
        return f"{self._enum}.{self._name}"  # type: ignore[attr-defined]

    __repr__ = __str__
    __hash__ = int.__hash__


class _Enum:
    def __init__(self, name: str, members: list[str]) -> None:
        self._short = name.rsplit(".", 1)[-1]
        self.__members__ = {m: _EnumValue(self._short, m, i) for i, m in enumerate(members)}

    def __getattr__(self, name: str) -> Any:
        members = self.__dict__.get("__members__", {})
        if name in members:
            return members[name]
        raise AttributeError(f"type object 'tensorrt.{self.__dict__.get('_short')}' has no attribute '{name}' "
                             f"(TensorRT {__version__})")


_ENUMS = {name: _Enum(name, members) for name, members in _NAMES["enums"].items()}
for _name, _enum in _ENUMS.items():
    if "." not in _name:
        globals()[_name] = _enum


# -- foundational types ------------------------------------------------------------------------------------------

@_fake("Dims")
class Dims(_Strict):
    def __init__(self, shape: Any = ()) -> None:
        self._v = [int(v) for v in shape]

    def __len__(self) -> int:
        return len(self._v)

    def __getitem__(self, i: int) -> int:
        return self._v[i]

    def __eq__(self, other: object) -> bool:
        return list(self) == list(other) if hasattr(other, "__len__") else NotImplemented  # type: ignore[arg-type]

    def __str__(self) -> str:
        return f"({', '.join(map(str, self._v))})"


@_fake("IHostMemory")
class IHostMemory(bytes):
    """Supports the buffer protocol, as TensorRT's does (rockedge reads it with memoryview)."""

    @property
    def nbytes(self) -> int:
        return len(self)


# -- logging -----------------------------------------------------------------------------------------------------

@_fake("ILogger")
class ILogger(_Strict):
    def __init__(self) -> None:
        pass

    def log(self, severity: Any, msg: str) -> None:  # overridden by subclasses
        pass


ILogger.Severity = _ENUMS["ILogger.Severity"]  # type: ignore[attr-defined]
for _m, _v in ILogger.Severity.__members__.items():  # type: ignore[attr-defined]
    setattr(ILogger, _m, _v)  # export_values()


@_fake("Logger")
class Logger(ILogger):
    def __init__(self, min_severity: Any = None) -> None:
        self._min = min_severity

    def log(self, severity: Any, msg: str) -> None:
        if self._min is None or severity <= self._min:
            print(f"[TRT] [{str(severity).rsplit('.', 1)[-1][0]}] {msg}", file=sys.stderr)


# The package __init__.py of every version sets these (python_package in the name lists).
Logger.Severity = ILogger.Severity  # type: ignore[attr-defined]
for _m, _v in ILogger.Severity.__members__.items():  # type: ignore[attr-defined]
    setattr(Logger, _m, _v)


def _say(logger: Any, severity: str, msg: str) -> None:
    logger.log(getattr(ILogger.Severity, severity), msg)  # type: ignore[attr-defined]


# -- network, parser, profile -------------------------------------------------------------------------------------

@_fake("INetworkDefinition")
class INetworkDefinition(_Strict):
    def __init__(self, flags: int) -> None:
        self._flags = flags
        self._onnx: Path | None = None
        self._info: Any = None

    def _has(self, flag: str) -> bool:
        members = _NAMES["enums"]["NetworkDefinitionCreationFlag"]
        return flag in members and bool(self._flags & (1 << members.index(flag)))


@_fake("ParserError")
class ParserError(_Strict):
    def __init__(self, desc: str) -> None:
        self._desc = desc

    def desc(self) -> str:  # a method in every version's pyOnnx.cpp
        return self._desc

    def __str__(self) -> str:
        return self._desc


@_fake("OnnxParser")
class OnnxParser(_Strict):
    def __init__(self, network: INetworkDefinition, logger: Any) -> None:
        self._network, self._logger, self._errors = network, logger, []

    def parse_from_file(self, model: str) -> bool:
        from rockedge.onnx_proto import (
            read_info,  # the device-side reader: the worker imports no onnx
        )

        self._errors = [ParserError(e) for e in _SCENARIO["parser_errors"]]
        if _V[0] < 10 and not self._network._has("EXPLICIT_BATCH"):
            # The fake's wording: TensorRT 8.x's ONNX parser only parses into explicit-batch networks.
            self._errors.append(ParserError("the network was not created with EXPLICIT_BATCH (fake TensorRT 8.x)"))
        self._network._onnx = Path(model)
        self._network._info = read_info(Path(model))
        return not self._errors

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def get_error(self, index: int) -> ParserError:
        return self._errors[index]


@_fake("IOptimizationProfile")
class IOptimizationProfile(_Strict):
    def __init__(self) -> None:
        self._shapes: dict[str, tuple[list[int], list[int], list[int]]] = {}

    def set_shape(self, input: str, min: Any, opt: Any, max: Any) -> None:  # noqa: A002 - TensorRT's names
        self._shapes[input] = (list(min), list(opt), list(max))


@_fake("ITimingCache")
class ITimingCache(_Strict):
    def __init__(self, data: bytes) -> None:
        self._data = data

    def serialize(self) -> Any:
        if _SCENARIO["timing_cache"] == "serialize_not_buffer":  # the fake's own: memoryview() of it is a TypeError
            return object()
        return IHostMemory(b"FAKE-TIMING-CACHE " + __version__.encode())


# -- builder ------------------------------------------------------------------------------------------------------

@_fake("IBuilderConfig")
class IBuilderConfig(_Strict):
    def __init__(self) -> None:
        self._flags: set[str] = set()
        self._pools: dict[str, int] = {}
        self._profiles: list[IOptimizationProfile] = []
        self._timing_cache: ITimingCache | None = None
        self._props: dict[str, Any] = {}

    def set_memory_pool_limit(self, pool: Any, pool_size: int) -> None:
        self._pools[pool.name] = int(pool_size)

    def set_flag(self, flag: Any) -> None:
        self._flags.add(flag.name)

    def add_optimization_profile(self, profile: IOptimizationProfile) -> int:
        self._profiles.append(profile)
        return len(self._profiles) - 1

    def set_calibration_profile(self, profile: IOptimizationProfile) -> bool:
        self._props["calibration_profile"] = profile
        return True

    def create_timing_cache(self, serialized_timing_cache: bytes) -> ITimingCache | None:
        return None if _SCENARIO["timing_cache"] == "create_none" else ITimingCache(bytes(serialized_timing_cache))

    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool:
        if _SCENARIO["timing_cache"] == "set_false":
            return False
        self._timing_cache = cache
        return True

    def get_timing_cache(self) -> ITimingCache | None:
        return None if _SCENARIO["timing_cache"] == "get_none" else self._timing_cache


def _prop(name: str) -> property:
    return property(lambda self: self._props.get(name), lambda self, v: self._props.__setitem__(name, v))


for _p in ("default_device_type", "DLA_core", "hardware_compatibility_level", "builder_optimization_level",
           "profiling_verbosity", "int8_calibrator"):
    setattr(IBuilderConfig, _p, _prop(_p))


def version_code() -> str:
    """The version code of calibration-cache headers: 8.x MAJOR*1000+MINOR*100+PATCH, 10+ MAJOR*10000+..."""
    major, minor, patch = (_V + (0, 0, 0))[:3]
    return str(major * 1000 + minor * 100 + patch if major < 10 else major * 10000 + minor * 100 + patch)


@_fake("Builder")
class Builder(_Strict):
    def __init__(self, logger: Any) -> None:
        self._logger = logger
        _trt_api.log("builder", version=__version__)

    def create_network(self, flags: int = 0) -> INetworkDefinition:
        return INetworkDefinition(int(flags))

    def create_builder_config(self) -> IBuilderConfig:
        return IBuilderConfig()

    def create_optimization_profile(self) -> IOptimizationProfile:
        return IOptimizationProfile()

    @property
    def num_DLA_cores(self) -> int:
        return int(_SCENARIO["dla_cores"])

    def build_serialized_network(self, network: INetworkDefinition, config: IBuilderConfig) -> IHostMemory | None:
        if _SCENARIO["oom_warning"]:
            _say(self._logger, "WARNING", "Requested amount of GPU memory (1073741824 bytes) could not be allocated. "
                                          "There may not be enough free memory for allocation to succeed.")
        if _SCENARIO["build_returns_none"]:
            _say(self._logger, "ERROR", "[fake] the build failed")
            return None
        info = network._info
        precision = _engine_precision(network, config, info)
        calibrated = None
        calibrator = config._props.get("int8_calibrator")
        if calibrator is not None and "INT8" in config._flags:
            calibrated = _calibrate(calibrator, info)
        plan = {"version": __version__, "onnx": str(network._onnx), "precision": precision,
                "version_compatible": "VERSION_COMPATIBLE" in config._flags,
                "dla_core": config._props.get("DLA_core") if getattr(config._props.get("default_device_type"), "name",
                                                                      None) == "DLA" else None,
                "flags": sorted(config._flags), "calibrated_batches": calibrated,
                "profiles": [p._shapes for p in config._profiles]}
        _trt_api.log("build", **plan, workspace=config._pools.get("WORKSPACE"),
                     hardware_compatibility_level=str(config._props.get("hardware_compatibility_level")),
                     optimization_level=config._props.get("builder_optimization_level"))
        return IHostMemory(_PLAN_MAGIC + json.dumps(plan).encode())


def _engine_precision(network: INetworkDefinition, config: IBuilderConfig, info: Any) -> str:
    """What the layers would run in: the flags on weakly typed networks, the ONNX's own types when strongly typed."""
    if _SCENARIO["ignore_precision_flags"]:
        return "fp32"
    qdq = bool(info.op_types & {"QuantizeLinear", "DequantizeLinear"})
    fp16_onnx = info.metadata.get("rockedge.precision") == "fp16"
    if _V[0] >= 11 or network._has("STRONGLY_TYPED"):
        return "int8" if qdq else "fp16" if fp16_onnx else "fp32"
    if "INT8" in config._flags and (qdq or config._props.get("int8_calibrator") is not None):
        return "int8"
    return "fp16" if "FP16" in config._flags else "fp32"


def _calibrate(calibrator: Any, info: Any) -> int:
    """TensorRT's implicit calibration as pyInt8.cpp drives a Python calibrator: the cache first, else batches until
    get_batch returns None; an exception in get_batch is caught, printed, and ends calibration."""
    cache = calibrator.read_calibration_cache()
    if cache:
        return 0
    names = [t.name for t in info.inputs]
    n = 0
    while True:
        try:
            if _SCENARIO["get_batch_raises_at"] is not None and n == int(_SCENARIO["get_batch_raises_at"]):
                raise ValueError("fake: the calibration data failed")
            ptrs = calibrator.get_batch(names)
        except Exception as e:  # pyInt8.cpp: catch, print, return false ("no more batches")
            print(f"[ERROR] Exception caught in get_batch(): {e}", file=sys.stderr)
            break
        if not ptrs:
            break
        n += 1
    lines = [f"TRT-{version_code()}-EntropyCalibration2"] + [f"{name}: 3c010a14" for name in names]
    calibrator.write_calibration_cache(IHostMemory(("\n".join(lines) + "\n").encode()))
    return n


# -- runtime and engine --------------------------------------------------------------------------------------------

_DTYPES = {"float32": "FLOAT", "float16": "HALF", "int8": "INT8", "int32": "INT32", "int64": "INT64", "bool": "BOOL",
           "uint8": "UINT8"}
# Real "Format/Datatype" strings of engines (tests/data/tensorrt_api/inspector_formats.json).
_FORMATS = {"int8": "Thirty-two wide channel vectorized row major Int8 format",
            "fp16": "Channel major FP16 format where channel % 8 == 0", "fp32": "Row major linear FP32"}


@_fake("Runtime")
class Runtime(_Strict):
    def __init__(self, logger: Any) -> None:
        self._logger = logger
        self._props: dict[str, Any] = {"engine_host_code_allowed": False, "DLA_core": 0}

    def deserialize_cuda_engine(self, serialized_engine: bytes) -> "ICudaEngine | None":
        data = bytes(serialized_engine)
        if not data.startswith(_PLAN_MAGIC):
            _say(self._logger, "ERROR", "[fake] Serialization assertion failed: Magic tag does not match")
            return None
        plan = json.loads(data[len(_PLAN_MAGIC):])
        built = tuple(int(p) for p in plan["version"].split("."))
        if built != _V and not (plan["version_compatible"] and built < _V):
            _say(self._logger, "ERROR", "[fake] Serialization assertion failed: Version tag does not match")
            return None
        if plan["version_compatible"] and not self._props["engine_host_code_allowed"]:
            _say(self._logger, "ERROR", "[fake] the plan contains host code, which engine_host_code_allowed forbids")
            return None
        _trt_api.log("deserialize", version=__version__, dla_core=self._props["DLA_core"], plan=plan)
        return ICudaEngine(plan)


for _p in ("engine_host_code_allowed", "DLA_core"):
    setattr(Runtime, _p, _prop(_p))


@_fake("EngineInspector")
class EngineInspector(_Strict):
    def __init__(self, precision: str) -> None:
        self._precision = precision

    def get_engine_information(self, format: Any) -> str:  # noqa: A002 - TensorRT's name
        main = _FORMATS[self._precision]
        layers = [{"Name": "conv1", "LayerType": "CaskConvolution", "Outputs": [{"Format/Datatype": main}]},
                  {"Name": "conv2", "LayerType": "CaskConvolution", "Outputs": [{"Format/Datatype": main}]},
                  {"Name": "Resize", "LayerType": "Resize", "Outputs": [{"Format/Datatype": _FORMATS["fp32"]}]}]
        return json.dumps({"Layers": layers, "Bindings": []})


@_fake("ICudaEngine")
class ICudaEngine(_Strict):
    def __init__(self, plan: dict[str, Any]) -> None:
        from rockedge.onnx_proto import read_info

        self._plan = plan
        info = read_info(Path(plan["onnx"]))
        self._io = [(t, True) for t in info.inputs] + [(t, False) for t in info.outputs]

    @property
    def num_io_tensors(self) -> int:
        return len(self._io)

    def get_tensor_name(self, index: int) -> str:
        return self._io[index][0].name

    def _t(self, name: str) -> Any:
        return next(t for t in self._io if t[0].name == name)

    def get_tensor_mode(self, name: str) -> Any:
        return TensorIOMode.INPUT if self._t(name)[1] else TensorIOMode.OUTPUT  # type: ignore[name-defined]  # noqa: F821

    def get_tensor_shape(self, name: str) -> Dims:
        return Dims([-1 if v is None else v for v in self._t(name)[0].shape])

    def get_tensor_dtype(self, name: str) -> Any:
        return getattr(DataType, _DTYPES[self._t(name)[0].dtype])  # type: ignore[name-defined]  # noqa: F821

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[Dims]:
        lo, opt, hi = self._plan["profiles"][profile_index][name]
        return [Dims(lo), Dims(opt), Dims(hi)]

    def create_execution_context(self) -> "IExecutionContext":
        return IExecutionContext(self)

    def create_engine_inspector(self) -> EngineInspector:
        return EngineInspector(self._plan["precision"])


@_fake("IExecutionContext")
class IExecutionContext(_Strict):
    def __init__(self, engine: ICudaEngine) -> None:
        import onnxruntime as ort

        self._engine = engine
        self._session = ort.InferenceSession(engine._plan["onnx"], providers=["CPUExecutionProvider"])
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._addresses: dict[str, int] = {}

    def set_input_shape(self, name: str, shape: Any) -> bool:
        shape = tuple(int(v) for v in shape)
        t = self._engine._t(name)[0]
        if len(shape) != len(t.shape) or any(f is not None and f != s for f, s in zip(t.shape, shape)):
            return False
        self._shapes[name] = shape
        dtype = np.dtype(t.dtype)
        outs = self._session.run(None, {name: np.zeros(shape, dtype)})
        for (o, _), value in zip([x for x in self._engine._io if not x[1]], outs):
            self._shapes[o.name] = tuple(value.shape)
        return True

    def get_tensor_shape(self, name: str) -> Dims:
        return Dims(self._shapes.get(name, ()))

    def set_tensor_address(self, name: str, memory: int) -> bool:
        self._addresses[name] = int(memory)
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        ins = {t.name: t for t, is_in in self._engine._io if is_in}
        feeds = {}
        for name, t in ins.items():
            dtype, shape = np.dtype(t.dtype), self._shapes[name]
            nbytes = int(np.prod(shape)) * dtype.itemsize
            raw = (ctypes.c_uint8 * nbytes).from_address(self._addresses[name])
            feeds[name] = np.frombuffer(raw, dtype).reshape(shape).copy()
        outs = self._session.run(None, feeds)
        for (o, _), value in zip([x for x in self._engine._io if not x[1]], outs):
            value = np.ascontiguousarray(value.astype(np.dtype(o.dtype)))
            ctypes.memmove(self._addresses[o.name], value.ctypes.data, value.nbytes)
        return True


# -- INT8 calibrators (absent in TensorRT 11) ----------------------------------------------------------------------

@_fake("IInt8EntropyCalibrator2")
class IInt8EntropyCalibrator2(_Strict):
    def __init__(self) -> None:
        pass


# -- what this version defines -------------------------------------------------------------------------------------

_DEFINED = {"Dims", "IHostMemory", "ILogger", "Logger", "INetworkDefinition", "ParserError", "OnnxParser",
            "IOptimizationProfile", "ITimingCache", "IBuilderConfig", "Builder", "Runtime", "EngineInspector",
            "ICudaEngine", "IExecutionContext", "IInt8EntropyCalibrator2"}
for _cls in _DEFINED:
    if _cls not in _NAMES["classes"]:
        del globals()[_cls]  # e.g. IInt8EntropyCalibrator2 on TensorRT 11


def __getattr__(name: str) -> Any:
    raise AttributeError(f"module 'tensorrt' has no attribute '{name}' (TensorRT {__version__})")
