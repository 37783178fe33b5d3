"""CLI command: ``rockedge export MODEL [--format onnx|engine|triton|deepstream] [--half | --int8]``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rockedge.cli.options import (
    NamesType,
    batch_option,
    budget_args,
    budget_options,
    data_option,
    emit_report,
    given_options,
    imgsz_option,
    json_option,
    model_argument,
    out_option,
    quiet_option,
    seed_option,
    trust_pickle_option,
)
from rockedge.console import warn
from rockedge.errors import RockedgeError
from rockedge.jobs.formats import FORMAT_NAMES
from rockedge.spec import INPUT_FORMATS, INT8_TARGETS, OUTPUT_FORMATS


@click.command("export")
@model_argument(help="A checkpoint (.pt: rockedge's or the original project's state_dict) or a rockedge .onnx.")
@click.option("--format", "fmt", type=click.Choice(list(FORMAT_NAMES)), default="onnx",
              show_default=True, help="onnx; engine: a TensorRT plan built on this device; triton: a model repository; "
                                      "deepstream: an nvinfer config.")
@out_option("Output path: the .onnx, .plan, or the serving folder [default: beside MODEL, precision in the name].")
@click.option("--half", is_flag=True, help="FP16: an FP16 ONNX (I/O stays float32), or an FP16 engine.")
@click.option("--int8", is_flag=True, help="INT8: a Q/DQ ONNX held to --max-drop on --data, or an engine (Q/DQ ONNX "
                                           "as MODEL, or TensorRT's entropy calibration on 8.5-10).")
@imgsz_option("Input size baked into the graph [default: the checkpoint's].")
@batch_option("Batch size baked into a static graph (and the engine profile's opt batch).")
@click.option("--dynamic", is_flag=True, help="Symbolic batch/height/width (TensorRT then needs a profile).")
@click.option("--opset", type=int, default=17, show_default=True, help="ONNX opset (17 suits TensorRT 8.5+).")
@click.option("--simplify/--no-simplify", default=True, show_default=True, help="Run onnxsim.")
@click.option("--input-format", type=click.Choice(INPUT_FORMATS), default="float", show_default=True,
              help="float: normalised NCHW RGB; raw: uint8 NHWC BGR frames, normalised inside the graph.")
@click.option("--output-format", type=click.Choice(OUTPUT_FORMATS), default="logits", show_default=True,
              help="logits: float (N,C,H,W); mask: int32 (N,H,W) class indices (ArgMax in the graph).")
@click.option("--classes", type=NamesType(), default=None,
              help="Class names for a plain state_dict, which has none [default: from --data, else background,rock].")
@data_option("Labelled dataset: its val split checks parity and holds --int8 to --max-drop ('synth': generated scenes).")
@click.option("--target", type=click.Choice(INT8_TARGETS), default="tensorrt", show_default=True,
              help="INT8 layout: tensorrt (symmetric Q/DQ that TensorRT fuses; slower than FP32 on ONNX Runtime's CPU) or "
                   "cpu (ONNX Runtime's own QDQ, run as int8 kernels on CPUs; TensorRT cannot parse it).")
@click.option("--calib-data", default=None,
              help="INT8 calibration frames: an image folder, a labelled dataset, a video, or 'synth' "
                   "[default: the --data train split].")
@click.option("--calib-n", type=click.IntRange(min=1), default=64, show_default=True, help="Calibration frames.")
@click.option("--calib-method", type=click.Choice(["minmax", "percentile", "entropy"]), default="minmax",
              show_default=True, help="How activation ranges are chosen: minmax; percentile (99.99 %, clips "
                                      "outliers); entropy (TensorRT's, 2048 bins: minutes).")
@click.option("--max-drop", type=float, default=1.0, show_default=True,
              help="INT8 accuracy budget: points of rock IoU (mIoU with more classes) the INT8 model may lose.")
@click.option("--max-fp32", type=click.IntRange(min=0), default=None,
              help="INT8: at most this many layers kept in FP32 to meet --max-drop [default: half of them].")
@click.option("--workspace", type=float, default=None,
              help="Engine: TensorRT workspace in GB [default: 0.25 on 4 GB boards, 0.5 up to 8 GB, 1 up to 16, else 2].")
@click.option("--timing-cache", type=click.Path(path_type=Path), default=None,
              help="Engine: TensorRT timing cache file, read if present and updated (rebuilds get faster).")
@click.option("--calib-cache", type=click.Path(path_type=Path), default=None,
              help="Engine: INT8 calibration cache, reused when it came from the same frames [default: MODEL.calib.cache].")
@click.option("--dla-core", type=click.IntRange(min=0), default=None,
              help="Engine: run on this DLA core (AGX Orin/Orin NX), with GPU fallback; needs --half or --int8.")
@click.option("--version-compatible", is_flag=True, help="Engine: loadable by later TensorRT versions (>= 8.6).")
@click.option("--hardware-compatible", is_flag=True, help="Engine: loadable on any Ampere-or-newer GPU (>= 8.6).")
@click.option("--min-shape", default=None, help="Engine, dynamic ONNX: smallest input shape, trtexec style (1x3x256x256).")
@click.option("--opt-shape", default=None, help="Engine, dynamic ONNX: the shape to tune for [default: --batch at --imgsz].")
@click.option("--max-shape", default=None, help="Engine, dynamic ONNX: largest input shape [default: the opt shape].")
@click.option("--strongly-typed", is_flag=True, help="Engine (TensorRT 10): build the ONNX's own types; implied on 11.")
@click.option("--optimization-level", type=click.IntRange(0, 5), default=None,
              help="Engine (TensorRT >= 8.6): builder optimisation level [default: TensorRT's, 3].")
@click.option("--max-batch", type=click.IntRange(min=0), default=8, show_default=True,
              help="Triton: max_batch_size of the model configuration, with dynamic batching (needs a dynamic batch "
                   "dimension; 0: serve a fixed-batch model unbatched). DeepStream: nvinfer's batch-size.")
@click.option("--instances", type=click.IntRange(min=1), default=1, show_default=True,
              help="Triton: model instances per GPU (instance_group count).")
@budget_options
@seed_option("Seed for generated parity frames.")
@json_option("Also write the reports of every step as JSON to PATH ('-': stdout).")
@trust_pickle_option
@quiet_option
def export_cmd(model: Path, fmt: str, out: Path | None, half: bool, int8: bool, imgsz: tuple[int, int] | None,
               batch: int, dynamic: bool, opset: int, simplify: bool, input_format: str, output_format: str,
               classes: tuple[str, ...] | None, data: Path | None, target: str, calib_data: str | None, calib_n: int,
               calib_method: str, max_drop: float, max_fp32: int | None, workspace: float | None, timing_cache: Path | None,
               calib_cache: Path | None, dla_core: int | None, version_compatible: bool, hardware_compatible: bool,
               min_shape: str | None, opt_shape: str | None, max_shape: str | None, strongly_typed: bool,
               optimization_level: int | None, max_batch: int, instances: int, n: int, seed: int,
               json_path: Path | None, trust_pickle: bool, quiet: bool, **kw: Any) -> None:
    """Export MODEL: a checkpoint to ONNX (linted for TensorRT, parity-checked against PyTorch), an FP32 ONNX to
    FP16 or INT8, or either to a TensorRT engine, a Triton repository or a DeepStream config.

    \b
    Examples:
      rockedge export runs/m/best.pt --imgsz 512                      # runs/m/best.onnx + parity report
      rockedge export best.pt --int8 --data data/rocks                # best.onnx, best.int8.onnx (Q/DQ for TensorRT)
      rockedge export best.onnx --int8 --target cpu --data data/rocks # best.int8.onnx for ONNX Runtime on CPUs
      rockedge export best.onnx --half                                # best.fp16.onnx
      rockedge export best.int8.onnx --format engine                  # on the Jetson: best.int8.plan + manifest
      rockedge export best.onnx --format engine --half --workspace 0.5
      rockedge export best.pt --format triton --out models --max-batch 8    # Triton repository models/best/
      rockedge export best.pt --format deepstream --out ds                  # nvinfer config + model in ds/

    Each artifact is checked in segmentation terms; one over budget is kept as <stem>.failed.<ext> with its
    report, and the command exits 1.
    """
    from rockedge.engine.plan import BuildOptions, parse_shape
    from rockedge.jobs.export import ExportRequest, export_model
    from rockedge.precision import Precision
    from rockedge.verify.parity import ParityBudget

    if half and int8:
        raise RockedgeError("--half and --int8 are two precisions; choose one")
    if "target" in given_options() and not int8:
        raise RockedgeError("--target is the layout of an INT8 model: add --int8")
    precision = Precision.INT8 if int8 else Precision.FP16 if half else Precision.FP32
    preset, overrides = budget_args(kw)
    engine = BuildOptions(precision=precision, workspace_gb=workspace, dla_core=dla_core,
                          version_compatible=version_compatible, hardware_compatible=hardware_compatible,
                          min_shape=parse_shape(min_shape), opt_shape=parse_shape(opt_shape),
                          max_shape=parse_shape(max_shape), strongly_typed=strongly_typed,
                          optimization_level=optimization_level)
    req = ExportRequest(
        model=model, out=out, format=fmt, precision=precision, classes=classes, trust_pickle=trust_pickle,
        onnx_options=dict(imgsz=imgsz, batch=batch, dynamic=dynamic, opset=opset, simplify=simplify,
                          input_format=input_format, output_format=output_format),
        data=data, int8_target=target, calib_data=calib_data, calib_n=calib_n, calib_method=calib_method,
        max_drop=max_drop,
        max_fp32=max_fp32,
        budget=ParityBudget.for_precision(preset or "fp32", **overrides), n=n, seed=seed, progress=not quiet,
        engine_options=engine, timing_cache=timing_cache, calib_cache=calib_cache,
        serving_options={"max_batch": max_batch, "instances": instances}, given=given_options(),
    )
    steps = export_model(req)
    for s in steps:
        for text in s.warnings:
            warn(text)
    text = "\n\n".join(s.text for s in steps)
    text += "".join(f"\n{s.kind} report: {s.report_path}" for s in steps if s.report_path is not None)
    emit_report(text, {s.kind: {"path": str(s.path), "passed": s.passed, **s.report} for s in steps}, json_path)
    failed = [s for s in steps if not s.passed]
    if failed:
        s = failed[0]
        raise RockedgeError(f"the {s.kind} step is over its budget; kept as {s.path} for inspection, report in "
                            f"{s.report_path}")


COMMANDS = [export_cmd]
