"""Serving layouts: a Triton Inference Server model repository, and a DeepStream nvinfer config.

``rockedge export MODEL --format triton --out REPO`` writes ``REPO/<name>/``::

    config.pbtxt          platform, tensor names/types/dims, max_batch_size, dynamic_batching, instance_group
    1/model.onnx          the ONNX as is (platform onnxruntime_onnx), or 1/model.plan (tensorrt_plan)
    labels.txt            one class name per line
    rockedge_spec.json    the ModelSpec (classes, palette, mean/std, formats) for clients, plus the served tensors

Triton serves the model exactly as rockedge runs it, so the client preprocesses as the spec says (or sends raw
uint8 BGR frames to a model exported with ``--input-format raw``). With ``max_batch_size > 0`` Triton prepends a
batch dimension of its own to ``dims``; that needs a model whose batch dimension is dynamic (``--dynamic``, or an
engine whose profile's batch runs from 1 to at least max_batch_size). ``--max-batch 0`` serves a fixed-shape model
unbatched (``dims`` are then the full shape).

``rockedge export MODEL --format deepstream --out DIR`` writes ``DIR/``::

    <name>.onnx                     the model reshaped for nvinfer (below)
    config_infer_primary_<name>.txt the nvinfer config (network-type=2: semantic segmentation)
    labels.txt, rockedge_spec.json

DeepStream's default segmentation parser reads the *first* output as float C x H x W and marks a pixel -1 unless
some class score exceeds ``segmentation-threshold`` (>= 0); its preprocessing is ``y = net-scale-factor * (x -
offsets[c])`` with a single scalar scale, which cannot express per-channel std. So the DeepStream model is the
rockedge ONNX with normalisation moved into the graph (input: float NCHW RGB in 0..255, ``net-scale-factor=1``,
no offsets, ``model-color-format=0``: one 1x1 Conv, exact) and a Softmax appended (output ``probs``: probabilities
in (0, 1], so a threshold of 0 keeps every pixel's argmax). This is done here, with the ``onnx`` package, on any
rockedge ONNX with float input and logits output (FP32, FP16 or Q/DQ INT8), and checked in ONNX Runtime against
the source model on generated frames preprocessed the way nvinfer does (argmax agreement >= 99.9 %).

Triton needs nothing but the file reader of :mod:`rockedge.onnx_proto` (it runs on a Jetson); DeepStream needs
``onnx`` (and ``onnxruntime`` for the check), i.e. the export extra on a workstation.
"""

from __future__ import annotations

import json
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from rockedge.atomic import staging_dir
from rockedge.errors import RockedgeError
from rockedge.precision import Precision
from rockedge.spec import METADATA_KEY, PRECISION_KEY, ModelSpec

SERVING_FORMATS = ("triton", "deepstream")
SPEC_FILE = "rockedge_spec.json"
LABELS_FILE = "labels.txt"
PLAN_SUFFIXES = (".plan", ".engine")
# Triton's data types by numpy dtype name (model_config.proto DataType).
TRITON_TYPES = {"float32": "TYPE_FP32", "float16": "TYPE_FP16", "float64": "TYPE_FP64", "uint8": "TYPE_UINT8",
                "int8": "TYPE_INT8", "int16": "TYPE_INT16", "int32": "TYPE_INT32", "int64": "TYPE_INT64",
                "bool": "TYPE_BOOL", "uint16": "TYPE_UINT16", "uint32": "TYPE_UINT32", "uint64": "TYPE_UINT64"}
# How long Triton may hold a request to form a larger batch: a fraction of a frame interval.
QUEUE_DELAY_US = 100
# DeepStream
DS_INPUT = "images"
DS_OUTPUT = "probs"
DS_KEY = "rockedge.deepstream"  # ONNX metadata of the DeepStream model (it has no rockedge.spec: see _deepstream_onnx)
DS_NETWORK_MODE = {Precision.FP32: 0, Precision.INT8: 1, Precision.FP16: 2}  # nvinfer network-mode
DS_MIN_AGREEMENT = 0.999
DS_CHECK_FRAMES = 4


@dataclass
class Tensor:
    """A served tensor: name, numpy dtype name, shape (None: dynamic), and Triton's FORMAT_ for images."""

    name: str
    dtype: str
    shape: tuple[int | None, ...]
    format: str | None = None


@dataclass
class Source:
    """What a serving layout needs to know about the model file."""

    path: Path
    kind: str  # onnx | plan
    spec: ModelSpec
    precision: Precision
    input: Tensor
    outputs: list[Tensor]
    opset: int = 0
    manifest: dict[str, Any] = field(default_factory=dict)

    @property
    def batch_dynamic(self) -> bool:
        return self.input.shape[0] is None


def model_name(path: Path) -> str:
    """A Triton/DeepStream-safe model name from the file name: ``best.int8.onnx`` -> ``best_int8``."""
    stem = path.name
    for suffix in (".onnx", *PLAN_SUFFIXES):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    name = re.sub(r"[^A-Za-z0-9_-]+", "_", stem).strip("_")
    return name or "model"


def write_serving(fmt: str, model: str | Path, out: str | Path | None, *, max_batch: int = 8, instances: int = 1,
                  n: int = DS_CHECK_FRAMES, seed: int = 0) -> Any:
    """Write the ``fmt`` (triton | deepstream) layout for ``model`` (a rockedge ONNX, or for Triton a plan with its
    manifest) under ``out``; returns a :class:`rockedge.export.job.Step`."""
    model = Path(model)
    if fmt not in SERVING_FORMATS:
        raise RockedgeError(f"serving format must be one of {', '.join(SERVING_FORMATS)}, got {fmt!r}")
    if max_batch < 0 or instances < 1:
        raise RockedgeError(f"--max-batch must be >= 0 and --instances >= 1, got {max_batch} and {instances}")
    src = read_source(model)
    if fmt == "triton":
        return write_triton(src, Path(out) if out else model.with_name(f"{model_name(model)}.triton"),
                            max_batch=max_batch, instances=instances)
    return write_deepstream(src, Path(out) if out else model.with_name(f"{model_name(model)}.deepstream"),
                            max_batch=max_batch, n=n, seed=seed)


# -- reading the source --------------------------------------------------------------------------------------------


def read_source(path: Path) -> Source:
    if not path.is_file():
        raise RockedgeError(f"model not found: {path}")
    if path.suffix.lower() in PLAN_SUFFIXES:
        return _plan_source(path)
    if path.suffix.lower() != ".onnx":
        raise RockedgeError(f"a serving layout starts from a rockedge .onnx (or, for Triton, a .plan), got {path.name}")
    from rockedge.onnx_proto import read_info

    info = read_info(path)
    if METADATA_KEY not in info.metadata:
        hint = " (a DeepStream model written by rockedge: serve its source ONNX instead)" if DS_KEY in info.metadata else ""
        raise RockedgeError(f"{path.name} carries no rockedge spec{hint}; give it one first: rockedge spec write "
                            f"{path.name} --classes ...")
    spec = ModelSpec.from_json(info.metadata[METADATA_KEY])
    if len(info.inputs) != 1 or not info.outputs:
        raise RockedgeError(f"{path.name} has {len(info.inputs)} inputs and {len(info.outputs)} outputs; "
                            "a rockedge model has one input and one output")
    i = info.inputs[0]
    inp = Tensor(i.name, i.dtype, _fill(i.shape, _input_shape(spec)), "FORMAT_NHWC" if spec.input_format == "raw"
                 else "FORMAT_NCHW")
    outs = [Tensor(o.name, o.dtype, _fill(o.shape, _output_shape(spec))) for o in info.outputs]
    return Source(path, "onnx", spec, Precision.parse(info.metadata.get(PRECISION_KEY, "fp32")), inp, outs,
                  opset=info.opset)


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


def _plan_source(path: Path) -> Source:
    from rockedge.export.onnx import INPUT_NAME, MASK_DTYPE, OUTPUT_NAMES
    from rockedge.runtime.manifest import read_manifest

    m = read_manifest(path)
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
    inp = Tensor(name, "uint8" if spec.input_format == "raw" else "float32", (batch, *per_item),
                 "FORMAT_NHWC" if spec.input_format == "raw" else "FORMAT_NCHW")
    out_dtype = np.dtype(MASK_DTYPE).name if spec.output_format == "mask" else "float32"
    out = Tensor(OUTPUT_NAMES[spec.output_format], out_dtype, (batch, *_output_shape(spec)))
    return Source(path, "plan", spec, m.precision, inp, [out],
                  manifest={**m.to_dict(), "profile_batch": [int(lo[0]), int(hi[0])]})


# -- Triton --------------------------------------------------------------------------------------------------------


def triton_config(src: Source, name: str, *, max_batch: int, instances: int) -> str:
    """The ``config.pbtxt`` text (protobuf text format of Triton's ``inference.ModelConfig``)."""
    if max_batch > 0:
        _check_batchable(src, max_batch)
    platform = "tensorrt_plan" if src.kind == "plan" else "onnxruntime_onnx"

    def dims(t: Tensor) -> str:
        shape = t.shape[1:] if max_batch > 0 else t.shape
        return ", ".join(str(-1 if d is None else d) for d in shape)

    def tensor(t: Tensor, is_input: bool) -> str:
        if t.dtype not in TRITON_TYPES:
            raise RockedgeError(f"tensor {t.name} has type {t.dtype}, which Triton cannot serve")
        fmt = f"\n    format: {t.format}" if is_input and t.format and max_batch > 0 else ""
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


def write_triton(src: Source, repo: Path, *, max_batch: int, instances: int) -> Any:
    from rockedge.export.job import Step

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


def _tensor_dict(t: Tensor) -> dict[str, Any]:
    return {"name": t.name, "dtype": t.dtype, "shape": [-1 if d is None else d for d in t.shape]}


def _write_client_files(folder: Path, spec: ModelSpec, served: dict[str, Any]) -> None:
    (folder / LABELS_FILE).write_text("".join(f"{c}\n" for c in spec.classes))
    # The spec's own keys (ModelSpec.from_dict reads this file as is; it ignores "serving").
    (folder / SPEC_FILE).write_text(json.dumps({**spec.to_dict(), "serving": served}, indent=2) + "\n")


def _check_replaceable(target: Path) -> None:
    """Only an empty folder or an earlier rockedge serving export is replaced."""
    if target.exists() and (not target.is_dir() or (any(target.iterdir()) and not (target / SPEC_FILE).is_file())):
        raise RockedgeError(f"{target} exists and is not a rockedge serving export; choose another --out")


# -- DeepStream ----------------------------------------------------------------------------------------------------


def nvinfer_config(src: Source, name: str, onnx_file: str, *, batch: int) -> dict[str, str]:
    """The ``[property]`` keys of the nvinfer config, in order (values as nvinfer reads them)."""
    s = src.spec
    mode = DS_NETWORK_MODE[src.precision]
    return {
        "gpu-id": "0",
        "gie-unique-id": "1",
        "process-mode": "1",  # primary: the whole frame
        "interval": "0",
        # Normalisation lives in the graph: nvinfer hands over RGB planes in 0..255 unchanged.
        "net-scale-factor": "1.0",
        "offsets": "0.0;0.0;0.0",
        "model-color-format": "0",  # RGB
        "onnx-file": onnx_file,
        # The name nvinfer gives the engine it builds from onnx-file (and reuses from then on).
        "model-engine-file": f"{onnx_file}_b{batch}_gpu0_{('fp32', 'int8', 'fp16')[mode]}.engine",
        "labelfile-path": LABELS_FILE,
        "infer-dims": f"3;{s.height};{s.width}",
        "batch-size": str(batch),
        "network-mode": str(mode),  # 0 FP32, 1 INT8, 2 FP16
        "network-type": "2",  # semantic segmentation
        "num-detected-classes": str(s.num_classes),
        "output-blob-names": DS_OUTPUT,
        "segmentation-threshold": "0.0",
        "segmentation-output-order": "0",  # NCHW
        "maintain-aspect-ratio": "1" if s.resize == "letterbox" else "0",
        "symmetric-padding": "1" if s.resize == "letterbox" else "0",
        "scaling-filter": "1",  # bilinear, as rockedge resizes
        "output-tensor-meta": "0",
    }


def write_deepstream(src: Source, out: Path, *, max_batch: int, n: int = DS_CHECK_FRAMES, seed: int = 0) -> Any:
    from rockedge.export.job import Step

    if src.kind == "plan":
        raise RockedgeError(
            f"DeepStream needs the model reshaped for nvinfer (normalisation in the graph, probabilities out), which "
            f"{src.path.name}, a rockedge engine, is not; export the ONNX it was built from with --format deepstream "
            f"(nvinfer builds and caches its own engine from it)")
    s = src.spec
    if s.input_format != "float" or s.output_format != "logits":
        raise RockedgeError(
            f"{src.path.name} takes {s.input_format} input and gives {s.output_format} output; DeepStream's "
            f"segmentation parser needs float scores, and nvinfer feeds float RGB planes: export it with "
            f"--input-format float --output-format logits (the defaults)")
    if src.outputs[0].dtype != "float32" or src.input.dtype != "float32":
        raise RockedgeError(f"{src.path.name}'s input/output are {src.input.dtype}/{src.outputs[0].dtype}; nvinfer "
                            "needs float32 at both ends")
    name = model_name(src.path)
    notes: list[str] = []
    if src.batch_dynamic:
        batch = max(1, max_batch)
    else:
        batch = int(src.input.shape[0] or 1)
        if max_batch > batch:
            notes.append(f"note: {src.path.name} has a fixed batch of {batch}, so nvinfer's batch-size is {batch}; "
                         f"re-export with --dynamic to infer {max_batch} cameras per batch")
    if src.precision is Precision.INT8:
        notes.append("note: nvinfer builds network-mode=1 only with an int8-calib-file and otherwise falls back to "
                     "FP16; for this Q/DQ model build the engine yourself (command in the config) at "
                     "model-engine-file")
    if s.resize == "letterbox":
        notes.append("note: nvinfer pads letterboxed frames with black, rockedge with grey (114): border pixels may "
                     "differ")
    onnx_file = f"{name}.onnx"
    props = nvinfer_config(src, name, onnx_file, batch=batch)
    config = _ini(src, props)
    model = deepstream_model(src)
    check = check_deepstream(src, model.SerializeToString(), props, n=n, seed=seed)
    passed = check.get("agreement", 1.0) >= DS_MIN_AGREEMENT
    target = out if passed else out.with_name(out.name + ".failed")
    _check_replaceable(target)
    served = {"format": "deepstream", "model_name": name, "onnx": onnx_file, "config": f"config_infer_primary_{name}.txt",
              "batch_size": batch, "precision": src.precision.value, "source": str(src.path),
              "input": {"name": DS_INPUT, "dtype": "float32", "shape": [-1 if src.batch_dynamic else batch, 3, s.height,
                                                                          s.width], "range": "0..255 RGB"},
              "outputs": [{"name": DS_OUTPUT, "dtype": "float32", "shape": [-1 if src.batch_dynamic else batch,
                                                                          s.num_classes, s.height, s.width],
                           "meaning": "softmax probabilities"}],
              "check": check}
    onnx = _onnx()
    with staging_dir(target, overwrite=True) as tmp:
        onnx.save(model, str(tmp / onnx_file))
        (tmp / served["config"]).write_text(config)
        _write_client_files(tmp, s, served)
    if "agreement" in check:
        line = (f"  checked in ONNX Runtime on {check['frames']} {check['frames_source']}, preprocessed as nvinfer does: "
                f"argmax agreement {check['agreement']:.4%} with {src.path.name} (budget >= {DS_MIN_AGREEMENT:.1%}), "
                f"{check['unassigned']:.2%} pixels class -1")
    else:
        line = f"  not checked: {check['skipped']}"
    text = "\n".join([*notes, f"deepstream -> {target}",
                      f"  {onnx_file} (float RGB 0..255 in, probabilities out), {served['config']}, {LABELS_FILE}",
                      line, f"  run: ... ! nvinfer config-file-path={target / served['config']} ! ... (docs/serving.md)"])
    return Step("deepstream", target, passed, None, text, {**served, "nvinfer": props, "notes": notes})


def _onnx() -> Any:
    from rockedge.deps import require

    return require("onnx", "--format deepstream")


def _rename_inputs(graph: Any, old: str, new: str) -> None:
    """Point every node input named ``old`` at ``new`` (subgraphs of If/Loop included)."""
    for node in graph.node:
        for i, name in enumerate(node.input):
            if name == old:
                node.input[i] = new
        for attr in node.attribute:
            if attr.HasField("g"):
                _rename_inputs(attr.g, old, new)
            for g in attr.graphs:
                _rename_inputs(g, old, new)


def deepstream_model(src: Source) -> Any:
    """The source ONNX with a normalising 1x1 Conv before it and a Softmax after it (see the module docstring):
    input ``images`` float32 (N, 3, H, W) RGB in 0..255, output ``probs`` float32 (N, C, H, W)."""
    onnx = _onnx()
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load(str(src.path))
    if src.opset < 13:
        raise RockedgeError(f"{src.path.name} has opset {src.opset}; the DeepStream model needs >= 13 (Softmax over axis 1)")
    g = m.graph
    initializers = {t.name for t in g.initializer}
    inputs = [i for i in g.input if i.name not in initializers]
    if len(inputs) != 1 or len(g.output) != 1:
        raise RockedgeError(f"{src.path.name} needs exactly one input and one output for DeepStream")
    inp, out = inputs[0], g.output[0]
    s = src.spec
    used = {x for node in g.node for x in (*node.input, *node.output)} | initializers
    def fresh(base: str) -> str:
        name, k = base, 1
        while name in used:
            name, k = f"{base}_{k}", k + 1
        used.add(name)
        return name

    normalised, w_name, b_name = fresh("rockedge_normalised"), fresh("rockedge_norm_w"), fresh("rockedge_norm_b")
    _rename_inputs(g, inp.name, normalised)
    # (x / 255 - mean) / std per RGB channel as one diagonal 1x1 convolution (as the raw-input export does).
    w = np.zeros((3, 3, 1, 1), np.float32)
    b = np.zeros(3, np.float32)
    for c in range(3):
        w[c, c, 0, 0] = 1.0 / (255.0 * s.std[c])
        b[c] = -s.mean[c] / s.std[c]
    g.initializer.extend([numpy_helper.from_array(w, w_name), numpy_helper.from_array(b, b_name)])
    g.node.insert(0, helper.make_node("Conv", [inp.name, w_name, b_name], [normalised], name="rockedge_normalise",
                                      kernel_shape=[1, 1]))
    if inp.name != DS_INPUT:
        _rename_inputs(g, inp.name, DS_INPUT)
        inp.name = DS_INPUT
    g.node.append(helper.make_node("Softmax", [out.name], [DS_OUTPUT], name="rockedge_probabilities", axis=1))
    batch: int | str = "batch" if src.batch_dynamic else int(src.input.shape[0] or 1)
    del inp.type.tensor_type.shape.dim[:]
    for d in (batch, 3, s.height, s.width):
        dim = inp.type.tensor_type.shape.dim.add()
        if isinstance(d, str):
            dim.dim_param = d
        else:
            dim.dim_value = d
    g.output.remove(out)
    g.output.append(helper.make_tensor_value_info(DS_OUTPUT, TensorProto.FLOAT, [batch, s.num_classes, s.height, s.width]))
    keep = [p for p in m.metadata_props if p.key not in (METADATA_KEY, DS_KEY)]
    del m.metadata_props[:]
    m.metadata_props.extend(keep)
    # No rockedge.spec: this graph takes 0..255 input and gives probabilities, which no rockedge input/output
    # format describes, so rockedge's runtime must not take it for the model it came from.
    entry = m.metadata_props.add()
    entry.key, entry.value = DS_KEY, json.dumps({"spec": s.to_dict(), "source": src.path.name, "input": "float32 NCHW "
                                                 "RGB 0..255", "output": "softmax probabilities", "net-scale-factor": 1.0,
                                                 "offsets": [0.0, 0.0, 0.0]}, sort_keys=True)
    m.doc_string = f"rockedge {s.arch} for DeepStream nvinfer (RGB 0..255 in, probabilities out)"
    try:
        m = onnx.shape_inference.infer_shapes(m, check_type=True, strict_mode=True)
        onnx.checker.check_model(m, full_check=True)
    except Exception as e:  # noqa: BLE001 - onnx raises many types; all mean "this graph is invalid"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise RockedgeError(f"the DeepStream graph made from {src.path.name} fails onnx.checker: {first}") from None
    return m


# -- what nvinfer does, in numpy (for the check; the tests carry their own copy) --------------------------------------


def nvinfer_preprocess(frames_rgb: np.ndarray, scale: float, offsets: tuple[float, ...]) -> np.ndarray:
    """(N, H, W, 3) uint8 RGB at network size -> float32 (N, 3, H, W): ``y = net-scale-factor * (x - offsets[c])``."""
    x = frames_rgb.astype(np.float32).transpose(0, 3, 1, 2)
    return (np.float32(scale) * (x - np.asarray(offsets, np.float32).reshape(1, 3, 1, 1))).astype(np.float32)


def nvinfer_class_map(scores: np.ndarray, threshold: float) -> np.ndarray:
    """DeepStream's default segmentation parser on (N, C, H, W) scores: per pixel the first class with the highest
    score above ``threshold``, else -1."""
    best = scores.argmax(axis=1).astype(np.int32)
    top = np.take_along_axis(scores, best[:, None], axis=1)[:, 0]
    best[~(top > threshold)] = -1
    return best


def check_deepstream(src: Source, model_bytes: bytes, props: dict[str, str], *, n: int, seed: int) -> dict[str, Any]:
    """Argmax agreement of the DeepStream model, fed as nvinfer feeds it, with the source model fed as rockedge does."""
    try:
        import onnxruntime as ort
    except ImportError:
        return {"skipped": "onnxruntime is not installed"}
    from rockedge.export.parity import frames_with_source
    from rockedge.runtime.preprocess import fit, normalize

    s = src.spec
    frames, where = frames_with_source(max(1, n), s.input_size, None, seed)
    fitted = np.stack([fit(f, s.input_size, s.resize)[0] for f in frames])  # BGR uint8 at network size
    opts = ort.SessionOptions()
    opts.log_severity_level = 3
    ref = ort.InferenceSession(str(src.path), opts, providers=["CPUExecutionProvider"])
    ds = ort.InferenceSession(model_bytes, opts, providers=["CPUExecutionProvider"])
    offsets = tuple(float(v) for v in props["offsets"].split(";"))
    threshold = float(props["segmentation-threshold"])
    step = len(fitted) if src.batch_dynamic else int(src.input.shape[0] or 1)
    agree = unassigned = total = 0
    max_sum_err = 0.0
    for i in range(0, len(fitted) - step + 1, step):
        chunk = fitted[i : i + step]
        ref_mask = np.asarray(ref.run(None, {src.input.name: normalize(chunk, s)})[0]).argmax(axis=1)
        x = nvinfer_preprocess(chunk[..., ::-1], float(props["net-scale-factor"]), offsets)  # nvinfer: RGB planes
        probs = np.asarray(ds.run([DS_OUTPUT], {DS_INPUT: x})[0])
        ds_mask = nvinfer_class_map(probs, threshold)
        agree += int((ds_mask == ref_mask).sum())
        unassigned += int((ds_mask < 0).sum())
        total += ds_mask.size
        max_sum_err = max(max_sum_err, float(np.abs(probs.sum(axis=1) - 1.0).max()))
    return {"frames": (len(fitted) // step) * step, "frames_source": where, "agreement": agree / total,
            "unassigned": unassigned / total, "probability_sum_max_error": max_sum_err}


def _ini(src: Source, props: dict[str, str]) -> str:
    s = src.spec
    engine = props["model-engine-file"]
    b = props["batch-size"]
    header = [
        (f"# nvinfer config written by rockedge for {src.path.name}: {s.arch}, {s.num_classes} classes "
         f"({', '.join(s.classes)}), {src.precision.value}."),
        f"# {props['onnx-file']} takes float32 NCHW RGB in 0..255 (normalisation with mean {list(s.mean)} and std",
        (f"# {list(s.std)} is inside the graph) and outputs '{DS_OUTPUT}': softmax probabilities, float32 (N, "
         f"{s.num_classes}, {s.height}, {s.width})."),
        "# segmentation-threshold: a pixel whose best probability is not above it gets class -1 (0 keeps all).",
        "# nvinfer builds the engine on first start and saves it as model-engine-file; to build it beforehand:",
        f"#   trtexec --onnx={props['onnx-file']} --saveEngine={engine}"
        + (f" --minShapes={DS_INPUT}:1x3x{s.height}x{s.width} --optShapes={DS_INPUT}:{b}x3x{s.height}x{s.width} "
           f"--maxShapes={DS_INPUT}:{b}x3x{s.height}x{s.width}" if src.batch_dynamic else "")
        + {"0": "", "1": " --int8 --fp16", "2": " --fp16"}[props["network-mode"]],
        "[property]",
    ]
    return "\n".join(header + [f"{k}={v}" for k, v in props.items()]) + "\n"
