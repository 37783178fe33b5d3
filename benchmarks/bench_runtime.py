#!/usr/bin/env python3
"""Benchmark `rockedge run` (ONNX Runtime, CPU) against the model alone and against a per-frame
PyTorch-eager loop in the style of the original project. Not a test: run it by hand.

    .venv/bin/python benchmarks/bench_runtime.py [--frames 30] [--imgsz 512 512] [--archs ...]

For each architecture (untrained weights: speed does not depend on them) it exports an ONNX model
at the stated input size, renders a synthetic 1080p video, then measures
  model-only   OrtBackend.infer on already-prepared inputs, one frame per call (the ceiling);
  rockedge run the CLI end to end in a child process (decode, preprocess, infer, overlay, encode),
               throughput from its summary, peak RSS from getrusage of that child;
  eager loop   PyTorch eager, PIL conversions, fp32, one frame at a time, overlay + mp4 writing.
Prints a table and writes .bench/bench_runtime.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / ".bench"
ARCHS = ("deeplabv3_mobilenet_v3_large", "deeplabv3_resnet50")


def make_model(arch: str, imgsz: tuple[int, int]) -> tuple[Path, Path]:
    import torch

    from rockedge.export.onnx import export_onnx
    from rockedge.spec import ModelSpec
    from rockedge.models.checkpoint import Checkpoint, save_checkpoint
    from rockedge.models.zoo import build_model

    torch.manual_seed(0)
    spec = ModelSpec(arch=arch, input_size=imgsz)
    ckpt = OUT / f"{arch}_{imgsz[0]}x{imgsz[1]}.pt"
    onnx = ckpt.with_suffix(".onnx")
    if not onnx.is_file():
        save_checkpoint(ckpt, Checkpoint(spec=spec, state_dict=build_model(arch=arch, num_classes=2).state_dict()))
        export_onnx(ckpt, onnx, progress=False)
    return ckpt, onnx


def make_video(frames: int) -> Path:
    video = OUT / f"synth_1080p_{frames}.mp4"
    if not video.is_file():
        from rockedge.data.synth import write_synth_video

        write_synth_video(video, frames=frames, size_hw=(1080, 1920), fps=29.97, progress=False)
    return video


def model_only(onnx: Path, video: Path, frames: int) -> float:
    import cv2

    from rockedge.runtime.backends.ort import OrtBackend
    from rockedge.runtime.preprocess import prepare

    cap = cv2.VideoCapture(str(video))
    ok, frame = cap.read()
    cap.release()
    be = OrtBackend(onnx, providers=["cpu"])
    x, _ = prepare([frame], be.spec)
    be.infer(x)  # warm-up
    t0 = time.perf_counter()
    for _ in range(frames):
        be.infer(x)
    return frames / (time.perf_counter() - t0)


CHILD = textwrap.dedent(
    """
    import json, resource, subprocess, sys
    p = subprocess.run(sys.argv[1:], capture_output=True, text=True)
    if p.returncode:
        sys.exit(p.stderr[-2000:])
    print(json.dumps({"peak_rss_mb": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024}))
    """
)


def rockedge_run(onnx: Path, video: Path) -> dict[str, float]:
    out = OUT / f"{onnx.stem}_overlay.mp4"
    cmd = [sys.executable, "-m", "rockedge", "run", "--engine", str(onnx), str(video), "--out", str(out),
           "-q"]
    p = subprocess.run([sys.executable, "-c", CHILD, *cmd], capture_output=True, text=True, check=True)
    rss = json.loads(p.stdout.strip().splitlines()[-1])["peak_rss_mb"]
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    return {"fps": summary["fps"], "peak_rss_mb": rss, "frames": summary["frames"],
            "stage_ms": {k: v["mean"] for k, v in summary["stage_ms"].items()}}


def eager_loop(ckpt: Path, video: Path, imgsz: tuple[int, int]) -> float:
    """What the original project did: PIL + torchvision transforms, fp32 eager, one frame at a time."""
    import cv2
    import torch
    from PIL import Image
    from torchvision import transforms

    from rockedge.models.checkpoint import load_checkpoint

    model = load_checkpoint(ckpt).build().eval()
    tf = transforms.Compose([transforms.Resize(imgsz), transforms.ToTensor(),
                             transforms.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    cap = cv2.VideoCapture(str(video))
    fps_in = cap.get(cv2.CAP_PROP_FPS)
    writer = None
    n = 0
    t0 = time.perf_counter()
    with torch.no_grad():
        while True:
            ok, frame = cap.read()
            if not ok:
                break
            img = Image.fromarray(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
            out = model(tf(img).unsqueeze(0))["out"][0].argmax(0).byte().numpy()
            mask = np.array(Image.fromarray(out).resize(img.size, Image.NEAREST))
            rgb = np.array(img).astype(np.float32)
            rgb[mask == 1] = 0.5 * rgb[mask == 1] + 0.5 * np.array([250, 50, 83], np.float32)
            bgr = cv2.cvtColor(rgb.astype(np.uint8), cv2.COLOR_RGB2BGR)
            if writer is None:
                writer = cv2.VideoWriter(str(OUT / "eager.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), fps_in,
                                         (bgr.shape[1], bgr.shape[0]))
            writer.write(bgr)
            n += 1
    if writer is not None:
        writer.release()
    return n / (time.perf_counter() - t0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=24, help="frames of synthetic 1080p video (default 24)")
    ap.add_argument("--resnet-frames", type=int, default=8, help="frames used for ResNet-50 (slow on CPU)")
    ap.add_argument("--imgsz", type=int, nargs=2, default=(512, 512), metavar=("H", "W"))
    ap.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    imgsz = (args.imgsz[0], args.imgsz[1])
    rows = []
    for arch in args.archs:
        n = args.resnet_frames if "resnet" in arch else args.frames
        print(f"{arch}: {n} frames of 1080p at model input {imgsz[0]}x{imgsz[1]} ...", file=sys.stderr)
        ckpt, onnx = make_model(arch, imgsz)
        video = make_video(n)
        mo = model_only(onnx, video, n)
        rr = rockedge_run(onnx, video)
        eg = eager_loop(ckpt, video, imgsz)
        rows.append({"arch": arch, "frames": n, "input_size": list(imgsz), "video": "1920x1080 @ 29.97",
                     "model_only_fps": round(mo, 3), "run_fps": round(rr["fps"], 3),
                     "run_vs_model_only": round(rr["fps"] / mo, 3), "eager_fps": round(eg, 3),
                     "run_vs_eager": round(rr["fps"] / eg, 3), "run_peak_rss_mb": round(rr["peak_rss_mb"], 1),
                     "run_stage_ms": rr["stage_ms"], "cpu_count": os.cpu_count(),
                     "load_avg_1m": round(os.getloadavg()[0], 2)})
    hdr = f"{'arch':<30}{'model-only':>12}{'run':>9}{'run/model':>11}{'eager':>9}{'run/eager':>11}{'peak RSS':>10}"
    print(hdr)
    for r in rows:
        print(f"{r['arch']:<30}{r['model_only_fps']:>10.2f}/s{r['run_fps']:>7.2f}/s{r['run_vs_model_only']:>10.2f}x"
              f"{r['eager_fps']:>7.2f}/s{r['run_vs_eager']:>10.2f}x{r['run_peak_rss_mb']:>7.0f} MB")
    (OUT / "bench_runtime.json").write_text(json.dumps(rows, indent=2) + "\n")
    print(f"written {OUT / 'bench_runtime.json'}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
