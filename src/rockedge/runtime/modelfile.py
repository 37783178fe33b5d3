"""The one way to open a model file and read what it is: kind, spec, precision, inputs and outputs.

Every command and producer opens a model through :func:`open_model_file`: the ONNX Runtime backend, ``spec
show``/``spec write``, the engine build, the serving layouts and the FP16/INT8 steps. The file types and their
suffixes live in :data:`FILE_KINDS` and nowhere else (a TensorRT plan is ``.plan``, ``.engine`` or ``.trt``
everywhere). Device-safe: ONNX is read with :mod:`rockedge.onnx_proto` (no ``onnx``), a plan's spec comes from its
manifest, and only a checkpoint needs torch, imported when one is opened.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from rockedge.deps import require
from rockedge.errors import RockedgeError
from rockedge.onnx_proto import read_info
from rockedge.precision import Precision
from rockedge.runtime.manifest import EngineManifest, find_manifest, read_manifest
from rockedge.spec import INT8_TARGET_KEY, METADATA_KEY, PRECISION_KEY, ModelSpec
from rockedge.tensors import TensorInfo


@dataclass(frozen=True)
class FileKind:
    name: str  # onnx | engine | checkpoint
    suffixes: tuple[str, ...]
    default_backend: str


FILE_KINDS = (
    FileKind("onnx", (".onnx",), "ort"),
    FileKind("engine", (".plan", ".engine", ".trt"), "trt"),
    FileKind("checkpoint", (".pt", ".pth", ".ckpt"), "torch"),
)
ENGINE_SUFFIXES = FILE_KINDS[1].suffixes
CHECKPOINT_SUFFIXES = FILE_KINDS[2].suffixes
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})


def cpu_layout_refusal(name: str, consumer: str = "TensorRT") -> str:
    """Why a ``--target cpu`` INT8 model cannot go to TensorRT, and what to use instead."""
    return (f"{name} is INT8 laid out for ONNX Runtime's CPU provider (uint8 activations with zero points), which "
            f"{consumer} cannot parse (it takes symmetric int8 Q/DQ only): build from the FP32 ONNX (TensorRT "
            "calibrates it), or quantize for TensorRT with rockedge export MODEL.onnx --int8 --target tensorrt")


TRT_LAYOUT_ON_CPU = ("is INT8 laid out for TensorRT (symmetric Q/DQ on Conv/Add inputs): ONNX Runtime's CPU provider "
                     "cannot fuse it into int8 kernels and runs it slower than the FP32 model; for the CPU quantize with "
                     "rockedge export MODEL.onnx --int8 --target cpu")


def file_kind(path: str | os.PathLike[str]) -> FileKind:
    """The kind of model file ``path`` names, by suffix; one line for anything else."""
    suffix = Path(path).suffix.lower()
    for k in FILE_KINDS:
        if suffix in k.suffixes:
            return k
    raise RockedgeError(f"cannot tell the model type of {Path(path).name}: expected .onnx, a TensorRT "
                        f".plan/.engine/.trt, or a .pt checkpoint")


@dataclass
class ModelFile:
    """What a model file says about itself. ``spec`` is None for a model from elsewhere without one."""

    path: Path
    kind: str
    spec: ModelSpec | None
    spec_source: str  # "onnx metadata", "manifest <name>", "checkpoint", "assumed (plain state_dict)", "none"
    precision: Precision = Precision.FP32
    inputs: list[TensorInfo] = field(default_factory=list)
    outputs: list[TensorInfo] = field(default_factory=list)
    metadata: dict[str, str] = field(default_factory=dict)  # ONNX metadata_props
    opset: int = 0
    producer: str = ""
    op_types: set[str] = field(default_factory=set)
    manifest: EngineManifest | None = None

    @property
    def has_qdq(self) -> bool:
        """Explicit INT8: the graph carries QuantizeLinear/DequantizeLinear nodes."""
        return bool(self.op_types & QDQ_OPS)

    @property
    def int8_target(self) -> str | None:
        """An INT8 ONNX's layout: "tensorrt" or "cpu" (:data:`rockedge.spec.INT8_TARGET_KEY`); None otherwise."""
        if self.precision is not Precision.INT8 or self.kind != "onnx":
            return None
        return self.metadata.get(INT8_TARGET_KEY) or "tensorrt"

    def require_spec(self, why: str) -> ModelSpec:
        """The spec, or one line saying this file has none and how to give it one."""
        if self.spec is None:
            raise RockedgeError(f"{self.path.name} carries no rockedge model spec ({why}): export it with rockedge, "
                                f"or write one first: rockedge spec write {self.path.name} --classes ...")
        return self.spec

    def details(self) -> dict[str, object]:
        """What ``rockedge spec show`` lists besides the spec."""
        if self.kind == "onnx":
            d: dict[str, object] = {"opset": self.opset, "producer": self.producer,
                                    "inputs": [t.describe() for t in self.inputs],
                                    "outputs": [t.describe() for t in self.outputs]}
            if self.int8_target:
                d["int8_target"] = self.int8_target
            return d
        if self.manifest is not None:
            m = self.manifest
            return {"tensorrt": m.tensorrt_version, "gpu": m.gpu_name, "compute_capability": m.compute_capability}
        return {}

    def single_input(self) -> TensorInfo:
        if len(self.inputs) != 1:
            raise RockedgeError(f"{self.path.name} has {len(self.inputs)} inputs; rockedge runs models with one image "
                                "input")
        return self.inputs[0]


def open_model_file(path: str | os.PathLike[str], *, trust_pickle: bool = False) -> ModelFile:
    """Read ``path`` (see the module docstring); raises one line for a missing, unknown or malformed file."""
    path = Path(path)
    if not path.exists():
        raise RockedgeError(f"model not found: {path}")
    if path.is_dir():
        raise RockedgeError(f"{path} is a folder, not a model file")
    kind = file_kind(path).name
    if kind == "onnx":
        return _onnx(path)
    if kind == "engine":
        return _engine(path)
    return _checkpoint(path, trust_pickle)


def _onnx(path: Path) -> ModelFile:
    info = read_info(path)
    spec = None
    if METADATA_KEY in info.metadata:
        spec = ModelSpec.from_json(info.metadata[METADATA_KEY], f"{path.name} (ONNX metadata {METADATA_KEY})")
    precision = Precision.parse(info.metadata.get(PRECISION_KEY, "fp32"))
    return ModelFile(path, "onnx", spec, "onnx metadata" if spec else "none", precision, list(info.inputs),
                     list(info.outputs), dict(info.metadata), info.opset, info.producer, set(info.op_types))


def _engine(path: Path) -> ModelFile:
    where = find_manifest(path)
    if where is None:
        return ModelFile(path, "engine", None, "none")
    m = read_manifest(path)
    inputs = [TensorInfo(name, tuple(None if lo != hi else lo for lo, hi in zip(p["min"], p["max"])),
                         "uint8" if m.spec.input_format == "raw" else "float32")
              for name, p in m.input_shapes.items() if "min" in p and "max" in p]
    return ModelFile(path, "engine", m.spec, f"manifest {where.name}", m.precision, inputs, manifest=m)


def _checkpoint(path: Path, trust_pickle: bool) -> ModelFile:
    require("torch", "reading a .pt checkpoint")
    from rockedge.models.checkpoint import (
        load_checkpoint,  # torch: only when a checkpoint is opened
    )

    ckpt = load_checkpoint(path, trust_pickle=trust_pickle)
    return ModelFile(path, "checkpoint", ckpt.spec, "assumed (plain state_dict)" if ckpt.spec_assumed else "checkpoint")
