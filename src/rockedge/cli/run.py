"""CLI command: ``rockedge run MODEL SOURCE`` (``rockedge run --engine MODEL SOURCE``): a thin client of :mod:`rockedge.runtime`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from rockedge.cli.options import (
    backend_options,
    backend_opts,
    batch_option,
    imgsz_option,
    json_option,
    model_argument,
    quiet_option,
    spec_flags,
    spec_options,
    trust_pickle_option,
)


@click.command("run")
@model_argument(shift="source", help="The model: .onnx, TensorRT .plan/.engine, or a .pt checkpoint (needs torch).")
@click.argument("source", required=False)
@click.option("--out", type=click.Path(path_type=Path), default=None,
              help="Output video (.mp4/.avi/.mkv) for video-like sources, or a directory [default: rockedge-run/].")
@click.option("--save-mask", is_flag=True,
              help="Also write masks: PNGs (pixel = class index) for images, a lossless mask video for videos.")
@click.option("--show", is_flag=True, help="Display the overlay in a window (needs an OpenCV with a GUI).")
@click.option("--alpha", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="Opacity of the class colours in the overlay.")
@click.option("--contours", is_flag=True,
              help="Outline each region in its class colour (with --measure: outline each rock).")
@click.option("--boundaries", is_flag=True,
              help="A model trained with --boundary: paint its rock rims in their own colour (by default rims are shown "
                   "as rock, and --measure splits rocks at them).")
@click.option("--measure", is_flag=True,
              help="Split the rock mask into rocks and measure each: count and P20/P50/P80 per frame in the JSON "
                   "lines, one row per rock in <out>.rocks.csv, the run's %-passing curve in <out>.rocks.png.")
@click.option("--scale", "mm_per_px", type=float, default=None, metavar="MM_PER_PX",
              help="The frame's scale in millimetres per pixel (a fixed camera, or a reference object of known "
                   "size): rock sizes in mm instead of pixels. Needs --measure.")
@backend_options
@imgsz_option("Model input size; must match a fixed-size model [default: the model's own].")
@batch_option("Frames per inference call [default: the model's, or 1].", default=None)
@spec_options
@click.option("--max-frames", type=click.IntRange(min=1), default=None, help="Stop after this many frames.")
@json_option("Also write the run summary as JSON to PATH ('-': stdout); it is always written beside the outputs.")
@trust_pickle_option
@quiet_option
def run_cmd(model: Path, source: str, out: Path | None, save_mask: bool, show: bool, alpha: float, contours: bool,
            boundaries: bool, measure: bool, mm_per_px: float | None, imgsz: tuple[int, int] | None, batch: int | None, max_frames: int | None, json_path: Path | None,
            trust_pickle: bool, quiet: bool, **kw: Any) -> None:
    """Segment SOURCE with MODEL and write an overlay, masks, JSON lines and a summary.

    \b
    SOURCE is an image, a folder or glob of images ('frames/*.jpg'), a video file, a camera
    index (0) or /dev/videoN, an RTSP/HTTP URL, or a GStreamer pipeline ending in appsink.

    \b
    Examples:
      rockedge run --engine model.onnx rocks.mp4 --out overlay.mp4 --save-mask
      rockedge run --engine model.plan 0 --show
      rockedge run model.onnx 'images/*.png' --out overlays/
      rockedge run model.onnx belt.mp4 --measure --scale 1.8 --contours   # rock sizes in mm
      rockedge run torchvision.onnx rocks.mp4 --classes background,rock   # a model without a spec
    """
    from rockedge.cli.options import emit_report
    from rockedge.runtime.run import run_model

    flags = spec_flags(kw, imgsz)
    summary = run_model(model, source, out=out, options=backend_opts(kw, trust_pickle=trust_pickle, flags=flags),
                        imgsz=imgsz, batch=batch, alpha=alpha, contours=contours, measure=measure,
                        mm_per_px=mm_per_px, boundaries=boundaries, save_mask=save_mask, show=show,
                        max_frames=max_frames, progress=not quiet)
    emit_report(summary.table(), summary.to_dict(), json_path)
    summary.raise_for_status()


COMMANDS = [run_cmd]
