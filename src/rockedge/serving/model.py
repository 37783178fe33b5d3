"""What a serving layout needs to know about the model it serves (a rockedge ONNX, or for Triton a plan with
its manifest), and the files every layout writes beside it (labels, the spec for clients).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rockedge.errors import RockedgeError
from rockedge.precision import Precision
from rockedge.runtime.manifest import EngineManifest, read_manifest
from rockedge.runtime.modelfile import ENGINE_SUFFIXES, open_model_file
from rockedge.spec import INPUT_NAME, MASK_DTYPE, OUTPUT_NAMES, ModelSpec
from rockedge.tensors import TensorInfo

SERVING_FORMATS = ("triton", "deepstream")
SPEC_FILE = "rockedge_spec.json"
LABELS_FILE = "labels.txt"
# DeepStream
DS_INPUT = "images"
DS_OUTPUT = "probs"
DS_KEY = "rockedge.deepstream"  # ONNX metadata of the DeepStream model (it has no rockedge.spec: see serving.graph)


@dataclass
class Source:
    """What a serving layout needs to know about the model file. Tensor shapes are the served ones: symbolic
    height/width filled in from the spec, the batch dimension None when dynamic."""

    path: Path
    kind: str  # onnx | plan
    spec: ModelSpec
    precision: Precision
    input: TensorInfo
    outputs: list[TensorInfo]
    opset: int = 0
    manifest: dict[str, Any] = field(default_factory=dict)
    int8_target: str | None = None  # an INT8 ONNX's layout (tensorrt | cpu)

    @property
    def batch_dynamic(self) -> bool:
        return self.input.shape[0] is None


def model_name(path: Path) -> str:
    """A Triton/DeepStream-safe model name from the file name: ``best.int8.onnx`` -> ``best_int8``."""
    stem = path.name
    for suffix in (".onnx", *ENGINE_SUFFIXES):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")
    return name or "model"


def read_source(path: Path) -> Source:
    mf = open_model_file(path)
    if mf.kind == "engine":
        return _plan_source(path, mf.manifest)
    if mf.kind != "onnx":
        raise RockedgeError(f"a serving layout starts from a rockedge .onnx (or, for Triton, a TensorRT plan), got "
                            f"{path.name}")
    if mf.spec is None:
        hint = " (a DeepStream model written by rockedge: serve its source ONNX instead)" if DS_KEY in mf.metadata else ""
        raise RockedgeError(f"{path.name} carries no rockedge spec{hint}; give it one first: rockedge spec write "
                            f"{path.name} --classes ...")
    spec = mf.spec
    if len(mf.inputs) != 1 or not mf.outputs:
        raise RockedgeError(f"{path.name} has {len(mf.inputs)} inputs and {len(mf.outputs)} outputs; "
                            "a rockedge model has one input and one output")
    i = mf.inputs[0]
    inp = TensorInfo(i.name, _fill(i.shape, _input_shape(spec)), i.dtype, spec.input_layout)
    outs = [TensorInfo(o.name, _fill(o.shape, _output_shape(spec)), o.dtype,
                       "NHW" if spec.output_format == "mask" else "NCHW") for o in mf.outputs]
    return Source(path, "onnx", spec, mf.precision, inp, outs, opset=mf.opset, int8_target=mf.int8_target)


def _input_shape(spec: ModelSpec) -> tuple[int, ...]:
    return (spec.height, spec.width, 3) if spec.input_format == "raw" else (3, spec.height, spec.width)


def _output_shape(spec: ModelSpec) -> tuple[int, ...]:
    return (spec.height, spec.width) if spec.output_format == "mask" else (spec.num_classes, spec.height, spec.width)


def _fill(shape: tuple[int | None, ...], per_item: tuple[int, ...]) -> tuple[int | None, ...]:
    """The model's shape with symbolic non-batch dims taken from the spec (a dynamic-size export is served at the
    size it was exported for); the batch dim stays None when symbolic."""
    if len(shape) != len(per_item) + 1:
        raise RockedgeError(f"tensor shape {list(shape)} does not match the spec's {['N', *per_item]}")
    return (shape[0], *(s if s is not None else p for s, p in zip(shape[1:], per_item)))


def _plan_source(path: Path, m: EngineManifest | None) -> Source:
    m = m or read_manifest(path)  # without one: the one-line "no manifest beside it" error with the fix
    spec = m.spec
    if len(m.input_shapes) > 1:
        raise RockedgeError(f"{path.name}'s manifest lists {len(m.input_shapes)} inputs; a rockedge engine has one")
    name, shapes = next(iter(m.input_shapes.items()), (INPUT_NAME, {}))
    if not shapes or not {"min", "max"} <= set(shapes):
        raise RockedgeError(f"{path.name}'s manifest does not record the engine's input shapes (min/opt/max); "
                            f"rebuild it with rockedge export MODEL.onnx --format engine")
    lo, hi = shapes["min"], shapes["max"]
    per_item = _input_shape(spec)
    if list(hi[1:]) != list(lo[1:]) and not all(a <= s <= b for a, s, b in zip(lo[1:], per_item, hi[1:])):
        raise RockedgeError(f"{path.name}'s profile {lo}..{hi} does not cover the spec's input {list(per_item)}")
    batch: int | None = None if lo[0] != hi[0] else int(lo[0])
    inp = TensorInfo(name, (batch, *per_item), "uint8" if spec.input_format == "raw" else "float32", spec.input_layout)
    out_dtype = MASK_DTYPE if spec.output_format == "mask" else "float32"
    out = TensorInfo(OUTPUT_NAMES[spec.output_format], (batch, *_output_shape(spec)), out_dtype,
                     "NHW" if spec.output_format == "mask" else "NCHW")
    return Source(path, "plan", spec, m.precision, inp, [out],
                  manifest={**m.to_dict(), "profile_batch": [int(lo[0]), int(hi[0])]})


def _tensor_dict(t: TensorInfo) -> dict[str, Any]:
    return {"name": t.name, "dtype": t.dtype, "shape": [-1 if d is None else d for d in t.shape]}


def _write_client_files(folder: Path, spec: ModelSpec, served: dict[str, Any]) -> None:
    (folder / LABELS_FILE).write_text("".join(f"{c}\n" for c in spec.classes))
    # The spec's own keys (ModelSpec.from_dict reads this file as is; it ignores "serving").
    (folder / SPEC_FILE).write_text(json.dumps({**spec.to_dict(), "serving": served}, indent=2) + "\n")


def _check_replaceable(target: Path) -> None:
    """Only an empty folder or an earlier rockedge serving export is replaced."""
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not (target / SPEC_FILE).is_file())):
        raise RockedgeError(f"{target} exists and is not a rockedge serving export; choose another --out")
