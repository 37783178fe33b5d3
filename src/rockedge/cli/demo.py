"""CLI command: ``rockedge demo``, the whole pipeline on its embedded default (CPU, ONNX Runtime, synthetic data)."""

from __future__ import annotations

import time
from pathlib import Path

import click


def _step(n: int, total: int, text: str) -> None:
    click.secho(f"\n[{n}/{total}] {text}", bold=True)


@click.command("demo")
@click.option("--out", type=click.Path(path_type=Path), default=Path("demo"), show_default=True, help="Working folder.")
@click.option("--arch", default="deeplabv3_mobilenet_v3_large", show_default=True, help="Architecture to train.")
@click.option("--n", "n_scenes", type=int, default=200, show_default=True, help="Synthetic scenes to generate.")
@click.option("--imgsz", type=int, default=192, show_default=True, help="Square training/model size.")
@click.option("--epochs", type=int, default=25, show_default=True, help="Upper bound; --max-minutes usually ends training first.")
@click.option("--max-minutes", type=float, default=7.0, show_default=True, help="Training time budget.")
@click.option("--seed", type=int, default=0, show_default=True)
def demo_cmd(out: Path, arch: str, n_scenes: int, imgsz: int, epochs: int, max_minutes: float, seed: int) -> None:
    """Generate rock scenes, train a small model on the CPU, evaluate it, export it to ONNX with a
    parity check, and segment a generated rock video with the exported model.

    Everything lands under --out; the last lines say where.
    """
    from rockedge.data.synth import write_synth_dataset
    from rockedge.train.engine import TrainConfig, train

    total = 5
    t0 = time.monotonic()
    data = out / "data"
    _step(1, total, f"generating {n_scenes} synthetic rock scenes at {imgsz}x{imgsz} -> {data}")
    write_synth_dataset(data, n=n_scenes, size_hw=(imgsz, imgsz), seed=seed, overwrite=True)

    _step(2, total, f"training {arch} on the CPU (<= {epochs} epochs, <= {max_minutes:g} min)")
    run_dir = out / "run"
    cfg = TrainConfig(data=str(data), out=str(run_dir), arch=arch, epochs=epochs, batch=8, imgsz=(imgsz, imgsz),
                      lr=5e-3, seed=seed, max_minutes=max_minutes)
    best = train(cfg)

    _step(3, total, "evaluating the best checkpoint on the held-out split")
    _cli("eval", "--model", best, "--data", data, "--json", run_dir / "best.eval.json")

    onnx = out / "model.onnx"
    h, w = video_model_size(imgsz)
    _step(4, total, f"exporting to ONNX at {h}x{w} and checking parity with PyTorch on held-out images")
    _cli("export", best, "--out", onnx, "--imgsz", h, w, "--data", data)

    video, overlay = out / "rocks.mp4", out / "overlay.mp4"
    _step(5, total, "segmenting a generated rock video with the exported model (ONNX Runtime, no torch)")
    _cli("data", "synth-video", "--out", video, "--frames", 90, "--size", "960x540", "--fps", 29.97, "--seed", seed)
    _cli("run", "--engine", onnx, video, "--out", overlay, "--save-mask")

    click.secho(f"\ndone in {(time.monotonic() - t0) / 60:.1f} min", bold=True)
    click.echo(f"  checkpoint : {best}  (metrics {run_dir / 'metrics.csv'}, plot {run_dir / 'results.png'})")
    click.echo(f"  onnx model : {onnx}  (parity report {onnx.with_suffix('.parity.json')})")
    click.echo(f"  overlay    : {overlay}  (per-frame stats and summary beside it)")


def video_model_size(imgsz: int) -> tuple[int, int]:
    """A 16:9-ish model input with about the training crop's height, in multiples of 16."""
    return imgsz, (imgsz * 16 // 9 + 15) // 16 * 16


def _cli(*args: object) -> None:
    """Run one rockedge command exactly as a user would type it (errors propagate as one line)."""
    from rockedge.cli import main

    argv = [str(a) for a in args]
    click.secho("$ rockedge " + " ".join(argv), fg="cyan")
    code = main.main(args=argv, prog_name="rockedge", standalone_mode=False)
    if code:  # a command that reports failure by exit code (e.g. parity over budget)
        raise click.exceptions.Exit(code)


def register(group: click.Group) -> None:
    """Add this module's commands to ``group``."""
    group.add_command(demo_cmd)
