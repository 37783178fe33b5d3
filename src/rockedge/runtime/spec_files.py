"""Give a model from elsewhere a spec once (``rockedge spec write``); reading one is
:func:`rockedge.runtime.modelfile.open_model_file`.

Device-safe: ONNX metadata is written with :mod:`rockedge.onnx_proto` (no ``onnx``), a plan's spec goes into
its manifest. Writing checks the spec against the model's tensors (:func:`resolve_io`), so a class list that
does not fit the output is refused here, once, instead of at every run.
"""

from __future__ import annotations

import platform
from dataclasses import replace
from pathlib import Path

from rockedge.console import warn
from rockedge.digest import sha256_file
from rockedge.errors import RockedgeError
from rockedge.onnx_proto import write_metadata
from rockedge.precision import Precision
from rockedge.probes import cuda_gpu, tensorrt
from rockedge.runtime.backends.trt import TrtBackend
from rockedge.runtime.manifest import (
    EngineManifest,
    write_manifest,
)
from rockedge.runtime.modelfile import open_model_file
from rockedge.runtime.modelio import SpecFlags, resolve_io
from rockedge.spec import METADATA_KEY, PRECISION_KEY, ModelSpec, default_palette
from rockedge.tensors import TensorInfo


def _spec_for(where: str, inputs: list[TensorInfo], outputs: list[TensorInfo], embedded: ModelSpec | None,
              flags: SpecFlags) -> ModelSpec:
    """The spec to write: ``flags`` for a model without one; for a model with one, ``--classes`` renames its
    classes on purpose (and ``--palette`` recolours them)."""
    if embedded is not None and flags.classes is not None:
        n = len(flags.classes)
        palette = flags.palette or (embedded.palette if len(embedded.palette) == n else default_palette(n))
        embedded = embedded.replace(classes=tuple(flags.classes), palette=tuple(palette))
        flags = replace(flags, classes=None, palette=None)
    spec, _, _ = resolve_io(where, inputs, outputs, embedded, flags)
    return spec


def write_onnx_spec(model: Path, out: Path, flags: SpecFlags, *,
                    precision: Precision | None = None) -> tuple[Path, ModelSpec]:
    """A copy of ``model`` (``out`` may be ``model``) whose metadata carries a spec built from ``flags``."""
    mf = open_model_file(model)
    spec = _spec_for(str(model), mf.inputs, mf.outputs, mf.spec, flags)
    prec = precision or mf.precision
    return write_metadata(model, out, {METADATA_KEY: spec.to_json(), PRECISION_KEY: prec.value}), spec


def write_plan_manifest(plan: Path, flags: SpecFlags, *, source_onnx: Path | None = None,
                        precision: Precision | None = None, trust_plan_code: bool = False) -> tuple[Path, ModelSpec]:
    """Write the manifest beside a plan built elsewhere (trtexec, DeepStream).

    The spec comes from ``source_onnx``'s metadata (the ONNX the plan was built from) or from ``flags``,
    checked against that ONNX's tensors when given. The TensorRT version, GPU and the engine's input profile are
    recorded when TensorRT and a GPU are present here (write it on the device that built the plan); otherwise the
    version and GPU stay empty (the backend checks the tensors against the engine when it loads it) and the input
    shapes are the ONNX's when it has fixed ones.
    """
    onnx_sha = onnx_prec = None
    if source_onnx is not None:
        mf = open_model_file(source_onnx)
        spec = _spec_for(str(source_onnx), mf.inputs, mf.outputs, mf.spec, flags)
        onnx_sha = sha256_file(source_onnx)
        onnx_prec = mf.precision
    elif flags.classes is None:
        raise RockedgeError(f"describe {plan.name} with --from MODEL.onnx (the ONNX it was built from) or --classes")
    else:
        raw = flags.input_format == "raw"
        image = TensorInfo("input", (None, None, None, 3) if raw else (None, 3, None, None), "uint8" if raw else "float32")
        spec = _spec_for(plan.name, [image], [TensorInfo("output", (None, None, None, None), "float32")], None, flags)
    trt_version, gpu, cc = _here()
    manifest_arch = platform.machine()  # only known to be the builder's when written where TensorRT is
    manifest = EngineManifest(spec=spec, tensorrt_version=trt_version, gpu_name=gpu, compute_capability=cc,
                              precision=precision or onnx_prec or Precision.FP32, onnx_sha256=onnx_sha,
                              onnx_path=str(source_onnx) if source_onnx else None,
                              cpu_arch=manifest_arch if trt_version else "")
    manifest.input_shapes = _input_shapes(plan, manifest, mf.inputs if source_onnx is not None else [],
                                          bool(trt_version), trust_plan_code)
    if not trt_version:
        warn("TensorRT or a GPU is not available here, so the manifest does not record which TensorRT and GPU built "
             f"{plan.name}; write it on the device that built the plan to have rockedge check that")
    return write_manifest(plan, manifest), spec


def _input_shapes(plan: Path, manifest: EngineManifest, onnx_inputs: list[TensorInfo], here: bool,
                  trust_plan_code: bool) -> dict[str, dict[str, list[int]]]:
    """The plan's input shapes (min/opt/max of its profile), which serving (Triton) needs: read from the engine
    when TensorRT and a GPU are here, else taken from the ONNX when its input is fully fixed; else none (with a
    warning saying where to write the manifest instead)."""
    if here:
        try:
            backend = TrtBackend(plan, manifest=manifest, trust_plan_code=trust_plan_code)
            try:
                be = backend.activate()
                fixed = tuple(int(v) for v in be.engine_shape)
                prof = be.profile.to_dict() if be.profile is not None else {k: list(fixed) for k in ("min", "opt", "max")}
                return {be.input_name: prof}
            finally:
                backend.close()
        except RockedgeError as e:
            warn(f"cannot read {plan.name}'s input shapes from the engine ({e}); taking them from the ONNX")
    if len(onnx_inputs) == 1 and all(isinstance(d, int) for d in onnx_inputs[0].shape):
        shape = [int(d) for d in onnx_inputs[0].shape]  # type: ignore[arg-type]
        return {onnx_inputs[0].name: {"min": shape, "opt": shape, "max": shape}}
    warn(f"the manifest does not record {plan.name}'s input shapes (its ONNX has dynamic dimensions and the "
         "profile is only in the engine): write it on the device that built the plan, where TensorRT can read it; "
         "serving it with --format triton needs them")
    return {}


def _here() -> tuple[str, str, str]:
    """(TensorRT version, GPU name, compute capability) of this machine, or empty strings."""

    trt, gpu = tensorrt(), cuda_gpu()
    if not (trt.ok and gpu.ok):
        return "", "", ""
    return str(trt.value), gpu.value["name"], gpu.value["cc"]
