"""CLI command: ``rockedge demo``, the whole pipeline on its embedded default (CPU, ONNX Runtime, synthetic data)."""

from __future__ import annotations

from pathlib import Path

import click

from rockedge.cli.options import (
    IMGSZ,
    batch_option,
    imgsz_option,
    out_option,
    quiet_option,
    seed_option,
)
from rockedge.spec import ARCHITECTURES


@click.command("demo")
@out_option("Working folder.", default=Path("demo"))
@click.option("--arch", type=click.Choice(ARCHITECTURES), default="lraspp_mobilenet_v3_large", show_default=True,
              help="Architecture to train.")
@click.option("--n", "n_scenes", type=click.IntRange(min=10), default=1000, show_default=True,
              help="Synthetic scenes to generate (a fifth are held out).")
@imgsz_option("Scene and model input size.", default="192")
@click.option("--crop", type=IMGSZ, default="128", show_default=True,
              help="Training crop (one integer or HxW), clipped to --imgsz.")
@batch_option("Training batch size.", default=8)
@click.option("--epochs", type=click.IntRange(min=1), default=40, show_default=True,
              help="Upper bound; --max-minutes usually ends training first.")
@click.option("--max-minutes", type=float, default=5.0, show_default=True, help="Training time budget.")
@click.option("--video-frames", type=click.IntRange(min=1), default=90, show_default=True, help="Frames of the demo video.")
@click.option("--scene", type=click.Choice(["scatter", "pile", "mixed"]), default="scatter", show_default=True,
              help="The generated scenes (see data synth --scene); the pile recipe is --scene mixed --boundary.")
@click.option("--boundary", is_flag=True, help="Train with the rock-boundary class (see train --boundary).")
@seed_option()
@quiet_option
def demo_cmd(out: Path, arch: str, n_scenes: int, imgsz: tuple[int, int], crop: tuple[int, int], batch: int, epochs: int, max_minutes: float,
             video_frames: int, scene: str, boundary: bool, seed: int, quiet: bool) -> None:
    """Generate rock scenes, train a small model on the CPU, evaluate it, export it to ONNX with a
    parity check, and segment a generated rock video with the exported model.

    Everything lands under --out; the last lines say where. Each step prints the rockedge command
    that does the same.
    """
    from rockedge.demo import DemoConfig, run_demo

    def say(kind: str, text: str) -> None:
        if kind == "step":
            click.secho(f"\n{text}", bold=True)
        elif kind == "command":
            click.secho(text, fg="cyan")
        elif kind == "done":
            click.secho(f"\n{text}", bold=True)
        else:
            click.echo(text)

    run_demo(DemoConfig(out=out, arch=arch, n_scenes=n_scenes, imgsz=imgsz, crop=crop, epochs=epochs, max_minutes=max_minutes,
                        batch=batch, video_frames=video_frames, seed=seed, quiet=quiet, scene=scene, boundary=boundary),
             say)


COMMANDS = [demo_cmd]
