"""Checkpoint -> ONNX: export with the TorchScript exporter, check, simplify, lint, stamp metadata, write atomically.

The ONNX file is the hub every deployment path starts from, so it carries everything the runtime needs:
the :class:`ModelSpec` (under :data:`rockedge.spec.METADATA_KEY`), the source checkpoint's sha256 and the
export settings. ``rockedge run model.onnx`` needs nothing else.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import time
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rockedge._version import __version__
from rockedge.atomic import atomic_path
from rockedge.console import progress as console_progress
from rockedge.deps import require
from rockedge.errors import RockedgeError
from rockedge.export.lint import lint_model
from rockedge.flops import FLOPS_KEY, count_flops
from rockedge.precision import Precision
from rockedge.sizes import parse_size
from rockedge.spec import (
    INPUT_FORMATS,
    INPUT_NAME,
    INT8_TARGET_KEY,
    METADATA_KEY,
    OUTPUT_FORMATS,
    OUTPUT_NAMES,
    PRECISION_KEY,
    ModelSpec,
)

EXPORT_KEY = "rockedge.export"
SOURCE_SHA_KEY = "rockedge.source_sha256"
ROCKEDGE_KEYS = (METADATA_KEY, EXPORT_KEY, SOURCE_SHA_KEY, PRECISION_KEY, INT8_TARGET_KEY, "rockedge.flops")
# TensorRT 8.5 (JetPack 5) parses up to opset 17, TensorRT 10 up to 20; below 13 Resize/Squeeze differ.
OPSET_RANGE = (13, 20)


@dataclass
class ExportResult:
    """What :func:`export_onnx` produced: the model path, the spec stamped into it, and a report dict."""

    path: Path
    spec: ModelSpec
    report: dict[str, Any] = field(default_factory=dict)


def _torch() -> Any:
    return require("torch", "exporting")


def _onnx() -> Any:
    return require("onnx", "exporting")


def make_export_module(model: Any, spec: ModelSpec, input_format: str, output_format: str) -> Any:
    """Wrap a torchvision segmentation model so the graph takes ``input_format`` and returns ``output_format``."""
    torch = _torch()
    from torch import nn

    from rockedge.models.zoo import main_output

    class ExportModule(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model
            self.raw = input_format == "raw"
            self.mask = output_format == "mask"
            # BGR->RGB, /255 and mean/std folded into one 1x1 convolution: a single TensorRT-native layer
            # that fuses with what follows, no Gather with int64 indices, no broadcasted Sub/Div chain.
            w = torch.zeros(3, 3, 1, 1)
            b = torch.zeros(3)
            for rgb, bgr in enumerate((2, 1, 0)):
                w[rgb, bgr, 0, 0] = 1.0 / (255.0 * spec.std[rgb])
                b[rgb] = -spec.mean[rgb] / spec.std[rgb]
            self.register_buffer("norm_w", w)
            self.register_buffer("norm_b", b)

        def forward(self, x: Any) -> Any:
            if self.raw:
                x = x.permute(0, 3, 1, 2).float()
                x = torch.nn.functional.conv2d(x, self.norm_w, self.norm_b)
            out = main_output(self.model(x))
            if self.mask:
                out = out.argmax(dim=1).to(torch.int32)
            return out

    return ExportModule().eval()


def _io_dims(spec: ModelSpec, batch: int, dynamic: bool) -> tuple[dict[str, Any], list[int]]:
    h, w = spec.input_size
    if spec.input_format == "raw":
        shape = [batch, h, w, 3]
        in_axes = {0: "batch", 1: "height", 2: "width"}
    else:
        shape = [batch, 3, h, w]
        in_axes = {0: "batch", 2: "height", 3: "width"}
    out_axes = {0: "batch", 1: "height", 2: "width"} if spec.output_format == "mask" else {0: "batch", 2: "height", 3: "width"}
    axes = {INPUT_NAME: in_axes, OUTPUT_NAMES[spec.output_format]: out_axes} if dynamic else {}
    return axes, shape


def count_nodes(model: Any) -> int:
    return len(model.graph.node)


class Steps:
    """Named, timed steps of a job with one progress bar; ``times`` holds ``<name>_s`` per step."""

    def __init__(self, total: int, desc: str, progress: bool) -> None:
        self.bar = console_progress(total=total, desc=desc, unit="step", enabled=progress)
        self.times: dict[str, float] = {}
        self.t0 = time.perf_counter()

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[None]:
        self.bar.set_postfix_str(name)
        t = time.perf_counter()
        yield
        self.times[f"{name}_s"] = round(time.perf_counter() - t, 3)
        self.bar.update(1)

    def close(self) -> dict[str, float]:
        self.bar.close()
        self.times["total_s"] = round(time.perf_counter() - self.t0, 3)
        return self.times


def check_export_options(out: Path, input_format: str, output_format: str, batch: int, opset: int) -> None:
    if out.suffix.lower() != ".onnx":
        raise RockedgeError(f"output path must end in .onnx (rockedge picks the runtime by suffix), got {out.name}")
    if input_format not in INPUT_FORMATS:
        raise RockedgeError(f"--input must be one of {', '.join(INPUT_FORMATS)}, got {input_format!r}")
    if output_format not in OUTPUT_FORMATS:
        raise RockedgeError(f"--output must be one of {', '.join(OUTPUT_FORMATS)}, got {output_format!r}")
    if not isinstance(batch, int) or batch < 1:
        raise RockedgeError(f"--batch must be a positive integer, got {batch!r}")
    if not OPSET_RANGE[0] <= int(opset) <= OPSET_RANGE[1]:
        raise RockedgeError(f"--opset {opset} is not supported; use {OPSET_RANGE[0]}..{OPSET_RANGE[1]} (17 suits TensorRT 8.5+)")


def export_onnx(
    checkpoint: Any,
    out: str | os.PathLike[str],
    *,
    imgsz: Any = None,
    batch: int = 1,
    dynamic: bool = False,
    opset: int = 17,
    simplify: bool = True,
    input_format: str = "float",
    output_format: str = "logits",
    trust_pickle: bool = False,
    progress: bool = True,
) -> ExportResult:
    """Export a checkpoint (path or loaded :class:`Checkpoint`) to ONNX at ``out``; see the module docstring."""
    out = Path(out)
    check_export_options(out, input_format, output_format, batch, opset)
    size = parse_size(imgsz)
    from rockedge.models.checkpoint import Checkpoint, load_checkpoint, require_finite

    torch = _torch()
    onnx = _onnx()
    steps = Steps(5, "export", progress)

    with steps.step("load"):
        ckpt = checkpoint if isinstance(checkpoint, Checkpoint) else load_checkpoint(checkpoint, trust_pickle=trust_pickle)
        require_finite(ckpt.state_dict, str(getattr(checkpoint, "name", checkpoint)) if not isinstance(checkpoint, Checkpoint) else "the checkpoint")
        spec = ckpt.spec.replace(
            input_size=size or ckpt.spec.input_size, input_format=input_format, output_format=output_format
        )
        module = make_export_module(ckpt.build(), spec, input_format, output_format)

    with steps.step("export"):
        model = _trace(torch, onnx, module, spec, batch, dynamic, int(opset))
        nodes_before = count_nodes(model)

    with steps.step("simplify"):
        simplified = False
        if simplify:
            model, simplified = _simplify(model)
        nodes_after = count_nodes(model)

    if dynamic:
        _fix_class_dim(model, spec)

    with steps.step("check"):
        try:
            model = onnx.shape_inference.infer_shapes(model, check_type=True, strict_mode=True)
            onnx.checker.check_model(model, full_check=True)
        except Exception as e:
            first = (str(e).strip().splitlines() or [type(e).__name__])[0]
            raise RockedgeError(f"exported graph fails onnx.checker: {first}") from None
        findings = lint_model(model)

    settings = {
        "imgsz": list(spec.input_size),
        "batch": batch,
        "dynamic": dynamic,
        "opset": int(opset),
        "simplify": simplify,
        "input_format": input_format,
        "output_format": output_format,
        "exporter": "torch.onnx.export(dynamo=False)",
        "torch": torch.__version__,
        "onnx": onnx.__version__,
        "source": str(getattr(checkpoint, "name", checkpoint)) if not isinstance(checkpoint, Checkpoint) else "<checkpoint>",
        "source_format": ckpt.source_format,
    }
    stamp(model, spec, settings, source_sha256=ckpt.sha256, precision=Precision.FP32)

    with steps.step("write"):
        with atomic_path(out) as tmp:
            onnx.save(model, str(tmp))
    times = steps.close()

    report = {
        "model": str(out),
        "arch": spec.arch,
        "size_bytes": out.stat().st_size,
        "nodes_before_simplify": nodes_before,
        "nodes_after_simplify": nodes_after,
        "simplified": simplified,
        "input": {"name": INPUT_NAME, "shape": _shape_of(model.graph.input[0]), "format": input_format},
        "output": {"name": OUTPUT_NAMES[output_format], "shape": _shape_of(model.graph.output[0]), "format": output_format},
        "settings": settings,
        "source_sha256": ckpt.sha256,
        "notes": list(ckpt.notes),
        "times": times,
        "lint": [f.to_dict() for f in findings],
    }
    return ExportResult(path=out, spec=spec, report=report)


def _trace(torch: Any, onnx: Any, module: Any, spec: ModelSpec, batch: int, dynamic: bool, opset: int) -> Any:
    """torch.onnx.export with the TorchScript exporter into memory; returns the ModelProto."""
    axes, shape = _io_dims(spec, batch, dynamic)
    dummy = torch.randint(0, 256, shape, dtype=torch.uint8) if spec.input_format == "raw" else torch.randn(*shape)
    buf = io.BytesIO()
    try:
        with torch.inference_mode(False), torch.no_grad(), warnings.catch_warnings():
            # The TorchScript exporter is a deliberate choice (see docs/export.md); its deprecation notice
            # would only alarm users on every export.
            warnings.filterwarnings("ignore", category=DeprecationWarning, message=".*legacy TorchScript-based ONNX export")
            torch.onnx.export(
                module,
                (dummy,),
                buf,
                dynamo=False,  # TorchScript exporter: honours the opset, 1e-5 parity on DeepLabV3
                opset_version=opset,
                input_names=[INPUT_NAME],
                output_names=[OUTPUT_NAMES[spec.output_format]],
                dynamic_axes=axes or None,
                do_constant_folding=True,
            )
    except Exception as e:  # the exporter raises many types; all mean "this graph did not export"
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise RockedgeError(f"torch.onnx.export failed for {spec.arch}: {first}") from None
    return onnx.load_from_string(buf.getvalue())


def _fix_class_dim(model: Any, spec: ModelSpec) -> None:
    """In a dynamic export only batch, height and width vary: the exporter leaves the logits' class dimension
    symbolic too (``Resizelogits_dim_1``), which TensorRT and Triton would take for a dynamic dimension."""
    if spec.output_format != "logits":
        return
    for out in model.graph.output:
        if out.name == OUTPUT_NAMES["logits"]:
            dim = out.type.tensor_type.shape.dim[1]
            dim.Clear()
            dim.dim_value = spec.num_classes


def _simplify(model: Any) -> tuple[Any, bool]:
    """Run onnxsim; a failure stops the export with a hint to retry with --no-simplify."""
    onnxsim = require("onnxsim", "--simplify (or pass --no-simplify)")
    try:
        simplified, ok = onnxsim.simplify(model)
    except Exception as e:
        raise RockedgeError(f"onnxsim failed ({type(e).__name__}: {str(e)[:200]}); retry with --no-simplify") from None
    if not ok:
        raise RockedgeError("onnxsim produced a graph that does not match the original; retry with --no-simplify")
    return simplified, True


def stamp(model: Any, spec: ModelSpec, settings: dict[str, Any], *, source_sha256: str | None,
          precision: Precision, int8_target: str | None = None) -> None:
    """Put spec, precision (and an INT8 model's target layout), source hash and settings into ``metadata_props``
    (replacing earlier rockedge keys)."""
    keep = [p for p in model.metadata_props if p.key not in ROCKEDGE_KEYS]
    del model.metadata_props[:]
    model.metadata_props.extend(keep)

    entries = [(METADATA_KEY, spec.to_json()), (PRECISION_KEY, precision.value),
               (EXPORT_KEY, json.dumps(settings, sort_keys=True, default=str)), (FLOPS_KEY, str(count_flops(model)))]
    if source_sha256:
        entries.append((SOURCE_SHA_KEY, source_sha256))
    if int8_target:
        entries.append((INT8_TARGET_KEY, int8_target))
    for key, value in entries:
        p = model.metadata_props.add()
        p.key, p.value = key, value
    model.producer_name = "rockedge"
    model.producer_version = __version__
    model.doc_string = (f"rockedge {spec.arch} {spec.num_classes}-class segmentation ({spec.input_format} in, "
                        f"{spec.output_format} out, {precision.value})")


def _shape_of(value_info: Any) -> list[int | str]:
    dims = value_info.type.tensor_type.shape.dim
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or "?") for d in dims]
