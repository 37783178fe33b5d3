"""CLI command: ``rockedge run --engine MODEL SOURCE`` (a thin client of :mod:`rockedge.runtime`)."""

from __future__ import annotations

import click


@click.command("run")
@click.option("--engine", "model", required=True, type=click.Path(dir_okay=False),
              help="Model: .onnx, TensorRT .plan/.engine (manifest beside it), or a .pt checkpoint (needs torch).")
@click.argument("source")
@click.option("--out", type=click.Path(), default=None,
              help="Output video (.mp4/.avi/.mkv) for video-like sources, or a directory (default: rockedge-run/).")
@click.option("--save-mask", is_flag=True,
              help="Also write masks: PNGs (pixel = class index) for images, a lossless mask video for videos.")
@click.option("--show", is_flag=True, help="Display the overlay in a window (needs an OpenCV with a GUI).")
@click.option("--alpha", type=click.FloatRange(0.0, 1.0), default=0.5, show_default=True,
              help="Opacity of the class colours in the overlay.")
@click.option("--contours", is_flag=True, help="Outline each region in its class colour.")
@click.option("--backend", type=click.Choice(["auto", "ort", "trt", "torch"]), default="auto", show_default=True,
              help="Inference backend; auto picks by model file type.")
@click.option("--providers", default=None,
              help="ONNX Runtime execution providers in order, comma-separated (cpu, cuda, trt or full names).")
@click.option("--imgsz", nargs=2, type=int, default=None, metavar="H W",
              help="Model input size; must match a fixed-size model (default: the model's own).")
@click.option("--batch", type=int, default=None, help="Frames per inference call (default: the model's, or 1).")
@click.option("--classes", default=None,
              help="Expected class names, comma-separated; the run stops if the model disagrees.")
@click.option("--no-progress", is_flag=True, help="No progress bar.")
@click.option("--max-frames", type=int, default=None, help="Stop after this many frames.")
@click.option("--trust-pickle", is_flag=True, help="Allow a checkpoint that pickles a whole model (runs code from it).")
def run_cmd(
    model: str,
    source: str,
    out: str | None,
    save_mask: bool,
    show: bool,
    alpha: float,
    contours: bool,
    backend: str,
    providers: str | None,
    imgsz: tuple[int, int] | None,
    batch: int | None,
    classes: str | None,
    no_progress: bool,
    max_frames: int | None,
    trust_pickle: bool,
) -> None:
    """Segment SOURCE with MODEL and write an overlay, masks, JSON lines and a summary.

    \b
    SOURCE is an image, a folder or glob of images ('frames/*.jpg'), a video file, a camera
    index (0) or /dev/videoN, an RTSP/HTTP URL, or a GStreamer pipeline ending in appsink.

    \b
    Examples:
      rockedge run --engine model.onnx rocks.mp4 --out overlay.mp4 --save-mask
      rockedge run --engine model.plan 0 --show
      rockedge run --engine model.onnx 'images/*.png' --out overlays/
    """
    import sys

    from rockedge.atomic import write_json
    from rockedge.runtime.outputs import RunOutputs
    from rockedge.runtime.pipeline import run_pipeline
    from rockedge.runtime.segmenter import Segmenter
    from rockedge.runtime.sources import open_source

    # Open the source first: a missing file fails before a model loads or anything is created.
    src = open_source(source)
    try:
        with Segmenter(
            model,
            backend=backend,
            providers=[p.strip() for p in providers.split(",") if p.strip()] if providers else None,
            imgsz=tuple(imgsz) if imgsz else None,
            batch=batch,
            trust_pickle=trust_pickle,
            alpha=alpha,
            contours=contours,
            classes=[c.strip() for c in classes.split(",")] if classes else None,
        ) as seg:
            outputs = RunOutputs(src, out, save_mask=save_mask, num_classes=seg.spec.num_classes)
            summary = run_pipeline(seg, src, outputs, progress=not no_progress, show=show, max_frames=max_frames)
    finally:
        src.close()
    summary.outputs["summary"] = str(outputs.summary_path)
    write_json(outputs.summary_path, summary.to_dict())
    click.echo(summary.table())
    if summary.stopped == "interrupted":
        click.echo("interrupted: the output written so far is complete and playable", err=True)
        sys.exit(130)
    if summary.stopped == "broken":
        click.secho(f"error: {summary.reason}; partial output kept", fg="red", err=True)
        sys.exit(1)


def register(group: click.Group) -> None:
    """Add this module's commands to group."""
    group.add_command(run_cmd)
