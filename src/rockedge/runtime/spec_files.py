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
                        precision: Precision | None = None) -> tuple[Path, ModelSpec]:
    """Write the manifest beside a plan built elsewhere (trtexec, DeepStream).

    The spec comes from ``source_onnx``'s metadata (the ONNX the plan was built from) or from ``flags``,
    checked against that ONNX's tensors when given. The TensorRT version and GPU are recorded when TensorRT
    and a GPU are present here (write it on the device that built the plan); otherwise they stay empty and
    the backend checks the tensors against the engine when it loads it.
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
    if not trt_version:
        warn("TensorRT or a GPU is not available here, so the manifest does not record which TensorRT and GPU built "
             f"{plan.name}; write it on the device that built the plan to have rockedge check that")
    return write_manifest(plan, manifest), spec


def _here() -> tuple[str, str, str]:
    """(TensorRT version, GPU name, compute capability) of this machine, or empty strings."""

    trt, gpu = tensorrt(), cuda_gpu()
    if not (trt.ok and gpu.ok):
        return "", "", ""
    return str(trt.value), gpu.value["name"], gpu.value["cc"]
