"""CLI commands: ``rockedge data synth | synth-video | info``.

Thin: parse, call one function of :mod:`rockedge.data`, print a summary. numpy/OpenCV load inside the
commands so ``rockedge --help`` stays instant.
"""

from __future__ import annotations

from pathlib import Path

import click

from rockedge.cli.options import (
    IMGSZ,
    RESOLUTION,
    emit_report,
    json_option,
    out_option,
    quiet_option,
    seed_option,
)


@click.group("data")
def data() -> None:
    """Datasets: generate synthetic rock scenes and videos, inspect a dataset folder."""


@data.command("synth")
@out_option("Output folder (must be new or empty).", required=True)
@click.option("--n", "n", type=int, default=200, show_default=True, help="Number of scenes.")
@click.option("--imgsz", type=IMGSZ, default="256", show_default=True,
              help="Scene size: one integer for a square (256) or HxW (192x320); each side >= 32.")
@seed_option("Scene i depends only on (seed, i).")
@click.option("--val-frac", "val_frac", type=float, default=0.2, show_default=True, help="Share of scenes in val/.")
@click.option("--overwrite", is_flag=True, help="Replace an existing non-empty --out folder.")
@click.option("--scene", type=click.Choice(["scatter", "pile", "mixed"]), default="scatter", show_default=True,
              help="scatter: rocks on ground; pile: rock fills the frame (a muck pile, a belt), faceted rocks under a "
                   "low sun, sometimes a scale frame or ball; mixed: half and half.")
@quiet_option
def synth(out: Path, n: int, imgsz: tuple[int, int], seed: int, val_frac: float, overwrite: bool, scene: str,
          quiet: bool) -> None:
    """Render N procedural rock scenes with exact masks into OUT.

    \b
    Layout: OUT/{train,val}/{images/*.jpg, masks/*.png, instances/*.png} (masks hold class
    indices: 0 background, 1 rock; instances are 16-bit rock ids), OUT/labelmap.txt,
    OUT/synth.json. Scatter scenes: irregular rocks from a few boulders to dense gravel on
    soil, sand, gravel or regolith, lit by one sun with shading and cast shadows, varied
    colours, exposure and blur. Pile scenes: rock from edge to edge, sizes over 1-2 orders
    of magnitude, granite/sandstone/limestone facets, hard shadows in the gaps, dust.
    --n 10 is a prefix of --n 20.

    \b
    Example:
      rockedge data synth --out data/synth --n 200 --imgsz 256 --seed 0
    """
    import json
    import time

    from rockedge.data.synth import write_synth_dataset

    t0 = time.perf_counter()
    write_synth_dataset(out, n=n, size_hw=imgsz, seed=seed, val_fraction=val_frac, progress=not quiet, overwrite=overwrite,
                        scene=scene)
    meta = json.loads((out / "synth.json").read_text())
    dt = time.perf_counter() - t0
    click.echo(
        f"wrote {n} scenes ({meta['counts']['train']} train, {meta['counts']['val']} val) of {imgsz[0]}x{imgsz[1]} "
        f"(HxW) to {out} in {dt:.1f} s; rocks cover {meta['mean_rock_fraction']:.1%} of pixels on average"
    )


@data.command("synth-video")
@out_option("Output video, .mp4 (codec mp4v).", required=True)
@click.option("--frames", type=int, default=150, show_default=True, help="Number of frames.")
@click.option("--resolution", type=RESOLUTION, default="1280x720", show_default=True,
              help="Frame size WxH, as ffmpeg and cameras write it (1920x1080); each side >= 32.")
@click.option("--fps", type=float, default=30.0, show_default=True, help="Frame rate stored in the file (29.97 stays 29.97).")
@seed_option("Random seed of the scene and camera path.")
@click.option(
    "--masks",
    "masks",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder for per-frame index masks 000000.png... [default: <video stem>_masks/ beside the video]",
)
@quiet_option
def synth_video(out: Path, frames: int, resolution: tuple[int, int], fps: float, seed: int, masks: Path | None,
                quiet: bool) -> None:
    """Write an .mp4 of a camera panning over one large synthetic rock scene, plus per-frame masks.

    \b
    The scene is rendered once at twice the frame size; the camera pans with a slight zoom
    and roll. Useful for demos and for testing video paths end to end (e.g. `rockedge run`),
    with exact ground truth for every frame.

    \b
    Example:
      rockedge data synth-video --out demo.mp4 --frames 150 --resolution 1920x1080 --fps 29.97
    """
    import time

    from rockedge.data.synth import write_synth_video

    t0 = time.perf_counter()
    write_synth_video(out, frames=frames, size_hw=resolution, fps=fps, seed=seed, masks_dir=masks, progress=not quiet)
    masks = masks if masks is not None else out.with_name(f"{out.stem}_masks")
    click.echo(
        f"wrote {out} ({frames} frames, {resolution[1]}x{resolution[0]} @ {fps:g} fps) and masks in {masks} "
        f"in {time.perf_counter() - t0:.1f} s"
    )


@data.command("info")
@click.argument("root", type=click.Path(path_type=Path))
@json_option()
def info(root: Path, json_path: Path | None) -> None:
    """Summarise the dataset in ROOT: per split, image count, classes, rock-pixel fraction, and the rock count of
    its instance masks where it has them.

    Decodes every mask, so colour or size problems show up here rather than mid-training.
    """
    from rockedge.data.datasets import open_dataset, summarize
    from rockedge.errors import RockedgeError

    summaries = []
    for split in ("train", "val"):
        try:
            ds = open_dataset(root, split)
        except RockedgeError as e:
            if "has no samples" in str(e) or f"no {split}/images" in str(e):
                continue  # a dataset may have only one split
            raise
        summaries.append((ds, summarize(ds)))
    if not summaries:
        raise RockedgeError(f"{root}: no samples in its train or val split")
    ds0 = summaries[0][0]
    lines = [f"{root} ({ds0.layout} layout), classes: {', '.join(ds0.classes)}"]
    for _, s in summaries:
        fracs = ", ".join(f"{name} {frac:.2%}" for name, frac in s.class_fractions.items())
        sizes = ", ".join(f"{h}x{w}" for h, w in s.sizes[:3]) + (" ..." if len(s.sizes) > 3 else "")
        ignored = f", ignored {s.ignored_fraction:.2%}" if s.ignored_fraction else ""
        rocks = f"  {s.rocks} rocks (instance masks)" if s.rocks is not None else ""
        lines.append(f"  {s.split:<5} {s.images:>6} images  {fracs}{ignored}  [HxW {sizes}]{rocks}")
    emit_report("\n".join(lines), {"root": str(root), "splits": [s.to_dict() for _, s in summaries]}, json_path)


COMMANDS = [data]
