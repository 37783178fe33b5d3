"""The thin layer that calls TensorRT to build a plan from a :class:`BuildPlan`.

Everything decided here was decided in :mod:`rockedge.engine.plan` (plain Python, tested on the CPU); this
module only turns names into TensorRT calls, through the tensor-name API that 8.5 introduced and 10/11
kept. Flags are looked up by name on the ``tensorrt`` module in hand (TensorRT 11 renumbered them). It is
type-checked against the TensorRT 10 stubs by ``scripts/check_trt_types.py``; it cannot run without a GPU.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rockedge.engine.plan import BuildPlan
from rockedge.errors import RockedgeError
from rockedge.runtime.backends.trt import dims, import_tensorrt


@dataclass
class BuildResult:
    """What a build produced besides the plan bytes: its tensors, layer precisions, timing, TensorRT's warnings."""

    seconds: float
    inputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    outputs: dict[str, dict[str, Any]] = field(default_factory=dict)
    layer_precisions: dict[str, int] = field(default_factory=dict)  # e.g. {"Int8": 52, "Half": 9}
    messages: list[str] = field(default_factory=list)
    timing_cache_saved: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"seconds": round(self.seconds, 1), "inputs": self.inputs, "outputs": self.outputs,
                "layer_precisions": self.layer_precisions, "messages": self.messages[-20:],
                "timing_cache_saved": self.timing_cache_saved}


def _logger(sink: list[str]) -> Any:
    """A TensorRT logger that keeps warnings and errors (for the report and for failure messages)."""
    trt = import_tensorrt()

    class _Logger(trt.ILogger):
        def __init__(self) -> None:
            trt.ILogger.__init__(self)

        def log(self, severity: Any, msg: str) -> None:
            if severity <= trt.ILogger.Severity.WARNING:
                sink.append(f"{str(severity).rsplit('.', 1)[-1]}: {msg}")

    return _Logger()


def build_serialized(onnx_path: Path, plan: BuildPlan, input_name: str, *, timing_cache: Path | None = None,
                     calibrator: Any = None) -> tuple[bytes, BuildResult]:
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
    cache = None
    if timing_cache is not None:
        old = timing_cache.read_bytes() if timing_cache.is_file() else b""
        cache = config.create_timing_cache(old)
        # ignore_mismatch=False: TensorRT drops a cache from another version or GPU (it logs an ERROR line, and the
        # build goes on without it) instead of tuning with another device's timings.
        config.set_timing_cache(cache, False)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        detail = next((m for m in reversed(messages) if m.startswith("ERROR")), "no detail")
        raise RockedgeError(f"TensorRT could not build {onnx_path.name}: {detail}")
    data = bytes(memoryview(serialized))
    result = BuildResult(seconds=time.perf_counter() - t0, messages=messages)
    if timing_cache is not None:
        from rockedge.atomic import write_bytes

        write_bytes(timing_cache, bytes(memoryview(config.get_timing_cache().serialize())))
        result.timing_cache_saved = True
    _inspect(logger, data, result)
    return data, result


def _inspect(logger: Any, data: bytes, result: BuildResult) -> None:
    """Fill in the engine's I/O tensors and how many layers run in each precision."""
    trt = import_tensorrt()
    runtime = trt.Runtime(logger)
    engine = runtime.deserialize_cuda_engine(data)
    if engine is None:
        raise RockedgeError("TensorRT built a plan it cannot deserialize (out of GPU memory?)")
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
        layers = json.loads(inspector.get_engine_information(trt.LayerInformationFormat.JSON)).get("Layers", [])
    except (ValueError, AttributeError):
        return
    for layer in layers:
        if isinstance(layer, dict):
            for out in layer.get("Outputs", []):
                fmt = str(out.get("Format/Datatype", ""))
                key = next((k for k in ("Int8", "Half", "Float", "Int32") if k in fmt), "other")
                result.layer_precisions[key] = result.layer_precisions.get(key, 0) + 1
                break
