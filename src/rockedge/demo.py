"""The whole pipeline on its embedded default: CPU, ONNX Runtime, data it generates itself.

Each step calls the Python API and says the command a user would type for it, so the demo doubles as a
worked example and its log reads top to bottom. What it says goes to ``say(kind, text)`` (kind: step, command,
text, done); the CLI prints it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from rockedge.atomic import write_json
from rockedge.benchmark import plot, run_benchmark
from rockedge.calibration.int8 import export_int8
from rockedge.data.synth import write_synth_dataset, write_synth_video
from rockedge.errors import RockedgeError
from rockedge.export.pipeline import export_and_verify
from rockedge.probes import cuda_gpu
from rockedge.runtime.run import run_model
from rockedge.sizes import format_hw
from rockedge.verify.evaluation import evaluate_model
from rockedge.verify.parity import ParityBudget


@dataclass(frozen=True)
class DemoConfig:
    out: Path = Path("demo")
    arch: str = "lraspp_mobilenet_v3_large"
    # Tuned on this 2-core CPU for held-out rock IoU within the 5-minute budget (docs/benchmarks.md): more varied
    # scenes beat more epochs on few scenes, 128 px crops of 192 px scenes give 4x the steps of full frames, and
    # light augmentation suits 1000 scenes.
    n_scenes: int = 1000
    imgsz: tuple[int, int] = (192, 192)
    crop: tuple[int, int] = (128, 128)
    augment: str = "light"
    epochs: int = 40
    max_minutes: float = 5.0
    batch: int = 8
    lr: float = 1e-2
    video_frames: int = 90
    seed: int = 0
    quiet: bool = False
    # The pile recipe (docs/measure.md): pile scenes among the scatter ones and the rock-boundary class, for a model
    # that tells touching rocks apart.
    scene: str = "scatter"
    boundary: bool = False


def video_model_size(imgsz: tuple[int, int]) -> tuple[int, int]:
    """A 16:9-ish model input with about the training crop's height, in multiples of 16."""
    h = imgsz[0]
    return h, (h * 16 // 9 + 15) // 16 * 16


Say = Callable[[str, str], None]


class _Steps:
    def __init__(self, total: int, say: Say) -> None:
        self.total, self.n, self.say = total, 0, say

    def __call__(self, text: str, command: str) -> None:
        self.n += 1
        self.say("step", f"[{self.n}/{self.total}] {text}")
        self.say("command", f"$ rockedge {command}")


def run_demo(cfg: DemoConfig, say: Say) -> None:
    from rockedge.train.loop import TrainConfig, train
    from rockedge.train.transforms import AUGMENT_PRESETS

    t0 = time.monotonic()
    step = _Steps(7, say)
    echo = lambda text: say("text", text)  # noqa: E731
    out, data, run_dir = cfg.out, cfg.out / "data", cfg.out / "run"
    sz = format_hw(cfg.imgsz)
    crop = (min(cfg.crop[0], cfg.imgsz[0]), min(cfg.crop[1], cfg.imgsz[1]))
    progress = not cfg.quiet

    scene = f" --scene {cfg.scene}" if cfg.scene != "scatter" else ""
    step(f"generating {cfg.n_scenes} synthetic rock scenes at {sz}",
         f"data synth --out {data} --n {cfg.n_scenes} --imgsz {sz} --seed {cfg.seed}{scene} --overwrite")
    write_synth_dataset(data, n=cfg.n_scenes, size_hw=cfg.imgsz, seed=cfg.seed, overwrite=True, progress=progress,
                        scene=cfg.scene)

    step(f"training {cfg.arch} on the CPU (<= {cfg.epochs} epochs, <= {cfg.max_minutes:g} min)",
         f"train --data {data} --arch {cfg.arch} --imgsz {sz} --crop {format_hw(crop)} --augment {cfg.augment} "
         f"--batch {cfg.batch} --lr {cfg.lr:g} "
         f"--epochs {cfg.epochs} --max-minutes {cfg.max_minutes:g}{' --boundary' if cfg.boundary else ''} "
         f"--out {run_dir}")
    best = train(TrainConfig(data=str(data), out=str(run_dir), arch=cfg.arch, epochs=cfg.epochs, batch=cfg.batch,
                             imgsz=cfg.imgsz, crop=crop, lr=cfg.lr, seed=cfg.seed, boundary=cfg.boundary,
                             augment=AUGMENT_PRESETS[cfg.augment], max_minutes=cfg.max_minutes, progress=progress,
                             log=echo))

    eval_json = run_dir / "best.eval.json"
    step("evaluating the best checkpoint on the held-out split, pixel by pixel and rock by rock",
         f"eval {best} --data {data} --measure --json {eval_json}")
    evaluation, table = evaluate_model(best, data, progress=progress, measure=True)
    write_json(eval_json, evaluation)
    echo(table)

    onnx = out / "model.onnx"
    h, w = video_model_size(cfg.imgsz)
    step(f"exporting to ONNX at {h}x{w} and checking parity with PyTorch on held-out images",
         f"export {best} --out {onnx} --imgsz {h}x{w} --data {data}")
    outcome = export_and_verify(best, onnx, data_dir=data, imgsz=(h, w), budget=ParityBudget.for_precision("fp32"),
                                progress=progress)
    echo(outcome.parity.table())
    if not outcome.passed:
        raise RockedgeError(f"parity failed: {'; '.join(outcome.parity.failures)}")

    int8 = out / "model.int8.onnx"
    # INT8 in the layout of where it will run: no GPU here, so ONNX Runtime's CPU layout (TensorRT's layout runs
    # slower than FP32 on the CPU); with a GPU, TensorRT's, for the engine build on the device.
    target = "tensorrt" if cuda_gpu().ok else "cpu"
    why = "for TensorRT" if target == "tensorrt" else "for this CPU: no GPU here, so ONNX Runtime's int8 kernels"
    step(f"quantizing to INT8 ({why}) within 1 point of rock IoU on the held-out images",
         f"export {onnx} --int8 --target {target} --data {data} --max-drop 1")

    q = export_int8(onnx, int8, data=data, max_drop=1.0, progress=progress, target=target)
    echo(q.text)
    if not q.passed:
        raise RockedgeError(f"INT8 did not meet its budget; report in {q.report_path}")

    video, overlay = out / "rocks.mp4", out / "overlay.mp4"
    step("segmenting a generated rock video with the exported model (ONNX Runtime, no torch)",
         f"data synth-video --out {video} --frames {cfg.video_frames} --resolution 960x540 --fps 29.97 && "
         f"rockedge run --engine {onnx} {video} --out {overlay} --save-mask --measure")
    write_synth_video(video, frames=cfg.video_frames, size_hw=(540, 960), fps=29.97, seed=cfg.seed, progress=progress)
    summary = run_model(onnx, video, out=overlay, save_mask=True, measure=True, progress=progress)
    echo(summary.table())
    summary.raise_for_status()

    bench = out / "benchmark"
    step("benchmarking every model it made on this machine (speed, memory, accuracy, share of the ceiling)",
         f"benchmark {best} {onnx} {int8} --data {data} --out {bench}")

    report = run_benchmark([best, onnx, int8], data=str(data), progress=progress)
    write_json(bench / "benchmark.json", report.to_dict())
    plot(report, bench / "benchmark.png")
    echo(report.table())

    say("done", f"done in {(time.monotonic() - t0) / 60:.1f} min")
    iou = evaluation["iou"].get(report_fg(evaluation))
    echo(f"  checkpoint : {best}  (held-out rock IoU {100 * (iou or 0):.1f} %, mIoU {100 * evaluation['miou']:.1f} %; "
               f"curves {run_dir / 'results.png'})")
    echo(f"  onnx model : {onnx}  (parity report {outcome.report_path})")
    echo(f"  int8 model : {int8}  (budget and parity report {q.report_path})")
    echo(f"  overlay    : {overlay}  ({summary.fps:.1f} frames/s; per-frame stats, rocks.csv, the size curve and "
         "summary beside it)")
    echo(f"  benchmark  : {bench / 'benchmark.json'} and {bench / 'benchmark.png'}")


def report_fg(report: dict) -> str:
    """The foreground class of a two-class report (the second name)."""
    return list(report["iou"])[1]
