"""Read the spec a model file carries, and give one to a model that has none (``rockedge spec``).

Device-safe: ONNX metadata is read and written with :mod:`rockedge.onnx_proto` (no ``onnx``), a plan's
spec lives in its manifest, and only a checkpoint needs torch. Writing checks the spec against the
model's tensors (:func:`resolve_io`), so a class list that does not fit the output is refused here,
once, instead of at every run.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from rockedge.console import warn
from rockedge.digest import sha256_file
from rockedge.errors import RockedgeError
from rockedge.onnx_proto import OnnxInfo, read_info, write_metadata
from rockedge.precision import Precision
from rockedge.runtime.backends.loader import model_format
from rockedge.runtime.manifest import EngineManifest, find_manifest, read_manifest, write_manifest
from rockedge.runtime.modelio import SpecFlags, TensorDesc, resolve_io
from rockedge.spec import METADATA_KEY, PRECISION_KEY, ModelSpec, default_palette


@dataclass
class SpecRecord:
    """A model's spec, where it was found, and the artifact's precision."""

    spec: ModelSpec | None
    source: str  # "onnx metadata", "manifest <path>", "checkpoint", "none"
    precision: Precision = Precision.FP32
    details: dict[str, Any] | None = None


def _tensors(info: OnnxInfo) -> tuple[list[TensorDesc], list[TensorDesc]]:
    return ([TensorDesc(t.name, t.shape, t.dtype) for t in info.inputs],
            [TensorDesc(t.name, t.shape, t.dtype) for t in info.outputs])


def read_spec(model: str | os.PathLike[str], *, trust_pickle: bool = False) -> SpecRecord:
    """The spec ``model`` carries (``spec`` None when it has none)."""
    path = Path(model)
    if not path.is_file():
        raise RockedgeError(f"model not found: {path}")
    kind = model_format(path).kind
    if kind == "onnx":
        info = read_info(path)
        spec = _embedded(info)
        details = {"opset": info.opset, "producer": info.producer,
                   "inputs": [f"{t.name} {list(t.shape)} {t.dtype}" for t in info.inputs],
                   "outputs": [f"{t.name} {list(t.shape)} {t.dtype}" for t in info.outputs]}
        return SpecRecord(spec, "onnx metadata" if spec else "none",
                          Precision.parse(info.metadata.get(PRECISION_KEY, "fp32")), details)
    if kind == "engine":
        mpath = find_manifest(path)
        if mpath is None:
            return SpecRecord(None, "none")
        m = read_manifest(path)
        return SpecRecord(m.spec, f"manifest {mpath.name}", m.precision,
                          {"tensorrt": m.tensorrt_version, "gpu": m.gpu_name, "compute_capability": m.compute_capability})
    from rockedge.models.checkpoint import load_checkpoint

    ckpt = load_checkpoint(path, trust_pickle=trust_pickle)
    return SpecRecord(ckpt.spec, "assumed (plain state_dict)" if ckpt.spec_assumed else "checkpoint")


def _spec_for(where: str, inputs: list[TensorDesc], outputs: list[TensorDesc], embedded: ModelSpec | None,
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


def _embedded(info: OnnxInfo) -> ModelSpec | None:
    return ModelSpec.from_json(info.metadata[METADATA_KEY]) if METADATA_KEY in info.metadata else None


def write_onnx_spec(model: Path, out: Path, flags: SpecFlags, *,
                    precision: Precision | None = None) -> tuple[Path, ModelSpec]:
    """A copy of ``model`` (``out`` may be ``model``) whose metadata carries a spec built from ``flags``."""
    info = read_info(model)
    spec = _spec_for(str(model), *_tensors(info), _embedded(info), flags)
    prec = precision or Precision.parse(info.metadata.get(PRECISION_KEY, "fp32"))
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
        info = read_info(source_onnx)
        spec = _spec_for(str(source_onnx), *_tensors(info), _embedded(info), flags)
        onnx_sha = sha256_file(source_onnx)
        onnx_prec = Precision.parse(info.metadata.get(PRECISION_KEY, "fp32"))
    elif flags.classes is None:
        raise RockedgeError(f"describe {plan.name} with --from MODEL.onnx (the ONNX it was built from) or --classes")
    else:
        raw = flags.input_format == "raw"
        image = TensorDesc("input", (None, None, None, 3) if raw else (None, 3, None, None), "uint8" if raw else "float32")
        spec = _spec_for(plan.name, [image], [TensorDesc("output", (None, None, None, None), "float32")], None, flags)
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
    from rockedge.probes import cuda_gpu, tensorrt

    trt, gpu = tensorrt(), cuda_gpu()
    if not (trt.ok and gpu.ok):
        return "", "", ""
    return str(trt.value), gpu.value["name"], gpu.value["cc"]
