"""``rockedge export MODEL --format triton --out REPO`` writes ``REPO/<name>/``::

    config.pbtxt          platform, tensor names/types/dims, max_batch_size, dynamic_batching, instance_group
    1/model.onnx          the ONNX as is (platform onnxruntime_onnx), or 1/model.plan (tensorrt_plan)
    labels.txt            one class name per line
    rockedge_spec.json    the ModelSpec (classes, palette, mean/std, formats) for clients, plus the served tensors

Triton serves the model exactly as rockedge runs it, so the client preprocesses as the spec says (or sends raw
uint8 BGR frames to a model exported with ``--input-format raw``). With ``max_batch_size > 0`` Triton prepends a
batch dimension of its own to ``dims``; that needs a model whose batch dimension is dynamic (``--dynamic``, or an
engine whose profile's batch runs from 1 to at least max_batch_size). ``--max-batch 0`` serves a fixed-shape model
unbatched (``dims`` are then the full shape).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from rockedge.atomic import staging_dir
from rockedge.errors import RockedgeError
from rockedge.serving.model import (
    SPEC_FILE,
    Source,
    _check_replaceable,
    _tensor_dict,
    _write_client_files,
    model_name,
)
from rockedge.spec import ModelSpec
from rockedge.steps import Step
from rockedge.tensors import TensorInfo

# Triton's data types by numpy dtype name (model_config.proto DataType).
TRITON_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "float64": "TYPE_FP64", "uint8": "TYPE_UINT8",
                "int8": "TYPE_INT8", "int16": "TYPE_INT16", "int32": "TYPE_INT32", "int64": "TYPE_INT64",
                "bool": "TYPE_BOOL", "uint16": "TYPE_UINT16", "uint32": "TYPE_UINT32", "uint64": "TYPE_UINT64"}

# How long Triton may hold a request to form a larger batch: a fraction of a frame interval.
QUEUE_DELAY_US = 100

def triton_config(src: Source, name: str, *, max_batch: int, instances: int) -> str:
    """The ``config.pbtxt`` text (protobuf text format of Triton's ``inference.ModelConfig``)."""
    if max_batch > 0:
        _check_batchable(src, max_batch)
    platform = "tensorrt_plan" if src.kind == "plan" else "onnxruntime_onnx"

    def dims(t: TensorInfo) -> str:
        shape = t.shape[1:] if max_batch > 0 else t.shape
        return ", ".join(str(-1 if d is None else d) for d in shape)

    def tensor(t: TensorInfo, is_input: bool) -> str:
        if t.dtype not in TRITON_TYPES:
            raise RockedgeError(f"tensor {t.name} has type {t.dtype}, which Triton cannot serve")
        # Triton's format applies to 3-dim (batched) image inputs only.
        fmt = f"\n    format: FORMAT_{t.layout}" if is_input and t.layout in ("NCHW", "NHWC") and max_batch > 0 else ""
        return f"  {{\n    name: \"{t.name}\"\n    data_type: {TRITON_TYPES[t.dtype]}{fmt}\n    dims: [ {dims(t)} ]\n  }}"

    s = src.spec
    lines = [
        f"# Written by rockedge from {src.path.name}: {s.arch}, {s.num_classes} classes ({', '.join(s.classes)}),",
        f"# {s.input_format} input ({_input_doc(s)}), {s.output_format} output, {src.precision.value}.",
        f"# Classes, palette and preprocessing for clients: {SPEC_FILE} beside this file.",
        f"name: \"{name}\"",
        f"platform: \"{platform}\"",
        f"max_batch_size: {max_batch}",
        "input [\n" + tensor(src.input, True) + "\n]",
        "output [\n" + ",\n".join(tensor(o, False) for o in src.outputs) + "\n]",
    ]
    if max_batch > 0:
        lines.append(f"dynamic_batching {{\n  max_queue_delay_microseconds: {QUEUE_DELAY_US}\n}}")
    lines.append(f"instance_group [\n  {{\n    count: {instances}\n    kind: KIND_GPU\n  }}\n]")
    return "\n".join(lines) + "\n"

def _input_doc(s: ModelSpec) -> str:
    if s.input_format == "raw":
        return f"uint8 NHWC BGR {s.height}x{s.width} frames, normalised in the graph"
    return f"float32 NCHW RGB {s.height}x{s.width}, (x/255 - mean)/std, mean {list(s.mean)}, std {list(s.std)}"

def _check_batchable(src: Source, max_batch: int) -> None:
    hint = ("re-export it with --dynamic (a checkpoint as MODEL does that for you), or serve it unbatched "
            "with --max-batch 0")
    if src.kind == "plan":
        lo, hi = src.manifest["profile_batch"]
        if lo == hi:
            raise RockedgeError(f"{src.path.name} was built for a fixed batch of {lo}; Triton's batching "
                                f"(--max-batch {max_batch}) needs a dynamic batch: rebuild it from a --dynamic ONNX "
                                f"with --min-shape/--max-shape, or serve it unbatched with --max-batch 0")
        if lo > 1 or hi < max_batch:
            raise RockedgeError(f"{src.path.name}'s profile batch runs {lo}..{hi}; Triton sends batches of 1.."
                                f"{max_batch}: rebuild with min batch 1 and max batch >= {max_batch}, or lower "
                                f"--max-batch to {hi}")
        return
    fixed = [t.name for t in (src.input, *src.outputs) if t.shape[0] is not None]
    if fixed:
        raise RockedgeError(f"{src.path.name} has a fixed batch dimension ({', '.join(fixed)}: batch "
                            f"{src.input.shape[0]}); Triton's dynamic batching (--max-batch {max_batch}) needs a "
                            f"dynamic one: {hint}")

def write_triton(src: Source, repo: Path, *, max_batch: int, instances: int) -> Step:
    name = model_name(src.path)
    config = triton_config(src, name, max_batch=max_batch, instances=instances)
    target = repo / name
    _check_replaceable(target)
    filename = "model.plan" if src.kind == "plan" else "model.onnx"
    served = {"format": "triton", "model_name": name, "platform": "tensorrt_plan" if src.kind == "plan"
              else "onnxruntime_onnx", "max_batch_size": max_batch, "instances": instances,
              "precision": src.precision.value, "source": str(src.path),
              "input": _tensor_dict(src.input), "outputs": [_tensor_dict(o) for o in src.outputs]}
    with staging_dir(target, overwrite=True) as tmp:
        (tmp / "1").mkdir()
        shutil.copyfile(src.path, tmp / "1" / filename)
        (tmp / "config.pbtxt").write_text(config)
        _write_client_files(tmp, src.spec, served)
        if src.kind == "plan":
            (tmp / "rockedge_manifest.json").write_text(json.dumps(src.manifest, indent=2, default=str) + "\n")
    notes = []
    if src.kind == "plan":
        notes.append(f"note: {src.path.name} runs only under TensorRT {src.manifest.get('tensorrt_version') or '?'} "
                     f"on compute capability {src.manifest.get('compute_capability') or '?'}: Triton's TensorRT must match")
    platform = "tensorrt_plan" if src.kind == "plan" else "onnxruntime_onnx"
    batching = " with dynamic batching" if max_batch else ""
    text = "\n".join([*notes, f"triton -> {target}",
                      f"  {filename} ({platform}), max_batch_size {max_batch}{batching}, {instances} instance(s) per GPU",
                      f"  serve: tritonserver --model-repository {repo}"])
    return Step("triton", target, True, None, text, {**served, "repository": str(repo), "config": config})
