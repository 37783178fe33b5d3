"""The thin layer that calls TensorRT to build a plan from a :class:`BuildPlan`.

Everything decided here was decided in :mod:`rockedge.engine.plan` (plain Python, tested on the CPU); this
module only turns names into TensorRT calls, through the tensor-name API that 8.5 introduced and 10/11
kept. Flags are looked up by name on the ``tensorrt`` module in hand (TensorRT 11 renumbered them). It is
type-checked against the TensorRT 10 stubs by ``scripts/check_device.py`` and run on the CPU against a
fake ``tensorrt`` that defines exactly the names each version's bindings define (tests/fakes).

What the bindings may return as None is checked where TensorRT documents it (``build_serialized_network``,
``deserialize_cuda_engine``, ``create_engine_inspector``, ``get_timing_cache``), and a built plan is never
lost to a timing-cache problem: that is a warning, the plan is kept.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rockedge.atomic import write_bytes
from rockedge.engine.plan import BuildPlan
from rockedge.errors import RockedgeError
from rockedge.runtime.backends.trt import dims, import_tensorrt

if TYPE_CHECKING:  # the TensorRT 10 stubs (scripts/check_device.py); TensorRT itself is imported when a build runs
    import tensorrt


@dataclass
class BuildResult:
    """What a build produced besides the plan bytes: its tensors, layer precisions, timing, TensorRT's warnings."""

    seconds: float
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    layer_precisions: dict[str, int] = field(default_factory=dict)  # e.g. {"int8": 52, "fp16": 9}
    messages: list[str] = field(default_factory=list)  # TensorRT's warnings and errors
    warnings: list[str] = field(default_factory=list)  # rockedge's own, for the user
    timing_cache_saved: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 1), "inputs": self.inputs, "outputs": self.outputs,
                "layer_precisions": self.layer_precisions, "messages": self.messages[-20:],
                "warnings": self.warnings, "timing_cache_saved": self.timing_cache_saved}


# The engine inspector writes each layer output's "Format/Datatype" in words, e.g. "Channel major FP16 format
# where channel % 8 == 0", "Row major linear FP32", "Row major Int8 format"; compiler-generated layers of newer
# versions say "Half"/"Float". Matched as whole words, case-insensitively (Polygraphy maps the same words).
_PRECISION_WORDS = (
    ("int8", re.compile(r"\bint8\b", re.I)),
    ("fp16", re.compile(r"\b(fp16|half)\b", re.I)),
    ("fp32", re.compile(r"\b(fp32|float)\b", re.I)),
    ("bf16", re.compile(r"\b(bf16|bfloat16)\b", re.I)),
    ("fp8", re.compile(r"\bfp8\b", re.I)),
    ("int32", re.compile(r"\bint32\b", re.I)),
    ("int64", re.compile(r"\bint64\b", re.I)),
    ("bool", re.compile(r"\bbool\b", re.I)),
    ("uint8", re.compile(r"\buint8\b", re.I)),
)


def format_precision(fmt: str) -> str:
    """The precision a layer output's inspector format names: int8, fp16, fp32, ... or "other"."""
    for key, pattern in _PRECISION_WORDS:
        if pattern.search(fmt):
            return key
    return "other"


def count_layer_precisions(layers: Any) -> dict[str, int]:
    """Layers per precision of their first output, from the inspector's JSON "Layers" list."""
    counts: dict[str, int] = {}
    for layer in layers if isinstance(layers, list) else []:
        if not isinstance(layer, dict):
            continue
        outputs = layer.get("Outputs")
        if isinstance(outputs, list) and outputs and isinstance(outputs[0], dict):
            key = format_precision(str(outputs[0].get("Format/Datatype", "")))
            counts[key] = counts.get(key, 0) + 1
    return counts


def _logger(sink: list[str]) -> tensorrt.ILogger:
    """A TensorRT logger that keeps warnings and errors (for the report and for failure messages)."""
    trt = import_tensorrt()

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: tensorrt.ILogger.Severity, msg: str) -> None:
            if severity <= trt.ILogger.Severity.WARNING:
                sink.append(f"{str(severity).rsplit('.', 1)[-1]}: {msg}")

    return _Logger()


def build_serialized(onnx_path: Path, plan: BuildPlan, input_name: str, *, timing_cache: Path | None = None,
                     calibrator: tensorrt.IInt8Calibrator | None = None) -> tuple[bytes, BuildResult]:
    """Parse ``onnx_path`` and build it as ``plan`` says; returns the plan bytes and what TensorRT reported."""
    trt = import_tensorrt()
    messages: list[str] = []
    logger = _logger(messages)
    t0 = time.perf_counter()
    builder = trt.Builder(logger)
    flags = 0
    for name in plan.network_flags:
        flags |= 1 << int(getattr(trt.NetworkDefinitionCreationFlag, name))
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    # parse_from_file (not parse(bytes)) so weights stored as external data are found; errors can be recorded
    # even when it returns True, which Polygraphy also treats as a failure.
    ok = parser.parse_from_file(str(onnx_path))
    if not ok or parser.num_errors:
        errors = [str(parser.get_error(i).desc()) for i in range(parser.num_errors)]
        raise RockedgeError(f"TensorRT's ONNX parser rejected {onnx_path.name}: {'; '.join(errors[:3]) or 'no detail'}"
                            " (rockedge lint MODEL.onnx lists what TensorRT cannot parse)")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, plan.workspace_bytes)
    for name in plan.builder_flags:
        config.set_flag(getattr(trt.BuilderFlag, name))
    if plan.dla_core is not None:
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = plan.dla_core
    if plan.hardware_compatibility == "ampere_plus":
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    if plan.optimization_level is not None:
        config.builder_optimization_level = plan.optimization_level
    config.profiling_verbosity = trt.ProfilingVerbosity.DETAILED  # layer precisions for the report
    profile = builder.create_optimization_profile()
    profile.set_shape(input_name, trt.Dims(list(plan.shapes.min)), trt.Dims(list(plan.shapes.opt)),
                      trt.Dims(list(plan.shapes.max)))
    config.add_optimization_profile(profile)
    if calibrator is not None:
        config.int8_calibrator = calibrator
        config.set_calibration_profile(profile)
    result = BuildResult(seconds=0.0, messages=messages)
    cache_in_use = timing_cache is not None and _use_timing_cache(config, timing_cache, result)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        detail = next((m for m in reversed(messages) if m.startswith("ERROR")), "no detail")
        raise RockedgeError(f"TensorRT could not build {onnx_path.name}: {detail}")
    data = bytes(memoryview(serialized))
    result.seconds = time.perf_counter() - t0
    if cache_in_use and timing_cache is not None:
        _save_timing_cache(config, timing_cache, result)
    _inspect(logger, data, result, host_code_allowed=plan.version_compatible)
    return data, result


def _use_timing_cache(config: tensorrt.IBuilderConfig, path: Path, result: BuildResult) -> bool:
    """Load ``path`` (or start an empty cache) into ``config``; a problem is a warning and the build goes on."""
    try:
        old = path.read_bytes() if path.is_file() else b""
        cache = config.create_timing_cache(old)
        # ignore_mismatch=False: TensorRT drops a cache from another version or GPU (it logs an ERROR line, and the
        # build goes on without it) instead of tuning with another device's timings.
        if cache is None or not config.set_timing_cache(cache, False):
            result.warnings.append(f"TensorRT did not accept the timing cache {path.name} (another TensorRT or GPU?); "
                                   "building without it")
            return False
    except (OSError, RuntimeError, TypeError) as e:
        result.warnings.append(f"cannot use the timing cache {path}: {e}; building without it")
        return False
    return True


def _save_timing_cache(config: tensorrt.IBuilderConfig, path: Path, result: BuildResult) -> None:
    """Write the updated timing cache; a problem never costs the plan that was just built."""

    try:
        cache = config.get_timing_cache()
        if cache is None:
            result.warnings.append(f"TensorRT returned no timing cache after the build; {path.name} was not updated")
            return
        write_bytes(path, bytes(memoryview(cache.serialize())))
        result.timing_cache_saved = True
    except Exception as e:  # noqa: BLE001 - whatever the cache does (a TypeError from serialize()...), keep the plan
        result.warnings.append(f"the engine was built, but the timing cache {path} could not be written: "
                               f"{type(e).__name__}: {e}")


def _inspect(logger: tensorrt.ILogger, data: bytes, result: BuildResult, *, host_code_allowed: bool = False) -> None:
    """Fill in the engine's I/O tensors and how many layers run in each precision.

    A version-compatible plan embeds TensorRT's lean runtime (host code); TensorRT deserializes it only with
    ``engine_host_code_allowed`` set, as trtexec and Polygraphy do. The plan was built by this process a moment
    ago, so it is trusted here."""
    trt = import_tensorrt()
    runtime = trt.Runtime(logger)
    if host_code_allowed:
        runtime.engine_host_code_allowed = True
    engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        detail = next((m for m in reversed(result.messages) if m.startswith("ERROR")), "")
        raise RockedgeError("TensorRT built a plan it cannot deserialize" + (f": {detail}" if detail else
                                                                             " (out of GPU memory?)"))
    for i in range(engine.num_io_tensors):
        name = engine.get_tensor_name(i)
        info = {"shape": list(dims(engine.get_tensor_shape(name))),
                "dtype": str(engine.get_tensor_dtype(name)).rsplit(".", 1)[-1]}
        if engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
            result.inputs[name] = info
        else:
            result.outputs[name] = info
    inspector = engine.create_engine_inspector()
    if inspector is None:
        return
    try:
        info = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON))
    except (ValueError, TypeError):
        return
    result.layer_precisions = count_layer_precisions(info.get("Layers") if isinstance(info, dict) else None)
