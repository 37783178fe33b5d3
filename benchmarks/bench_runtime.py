#!/usr/bin/env python3
"""Benchmark `rockedge run` (ONNX Runtime, CPU) against the model alone and against a per-frame
PyTorch-eager loop in the style of the original project, for the FP32 and the INT8 (Q/DQ) ONNX. Not a test.

    .venv/bin/python benchmarks/bench_runtime.py [--frames 24] [--imgsz 512] [--archs ...]

For each architecture it takes the trained checkpoint of benchmarks/bench_precision.py when present (untrained
BatchNorm networks run several times slower on the CPU through denormal numbers, so they would misstate
speed), exports FP32 and INT8 ONNX models at the stated size, renders a synthetic 1080p video, then measures
  model-only   OrtBackend.infer on already-prepared inputs, one frame per call (the ceiling);
  rockedge run the CLI end to end in a child process (decode, preprocess, infer, overlay, encode),
               throughput from its summary, peak RSS from getrusage of that child;
  eager loop   PyTorch eager, PIL conversions, fp32, one frame at a time, overlay + mp4 writing.
Prints a table and writes benchmarks/results/<date>-<machine>-runtime.json.
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
ARCHS = ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "deeplabv3_resnet50")


TRAINED = OUT / "precision"  # checkpoints and data of bench_precision.py


def make_models(arch: str, imgsz: tuple[int, int], checkpoint: Path | None = None,
                data: Path | None = None) -> tuple[Path, Path, Path | None]:
    """(checkpoint, FP32 ONNX, INT8 ONNX for the CPU or None) at ``imgsz``."""
    import torch

    from rockedge.calibration.int8 import export_int8
    from rockedge.export.onnx import export_onnx
    from rockedge.models.checkpoint import Checkpoint, save_checkpoint
    from rockedge.models.zoo import build_model
    from rockedge.spec import ModelSpec

    trained = checkpoint or TRAINED / arch / "run" / "best.pt"
    if trained.is_file():
        ckpt = trained
    else:
        print(f"warning: no trained {arch} in {TRAINED} (run bench_precision.py first): timing untrained weights",
              file=sys.stderr)
        torch.manual_seed(0)
        ckpt = OUT / f"{arch}_untrained.pt"
        save_checkpoint(ckpt, Checkpoint(spec=ModelSpec(arch=arch, input_size=imgsz),
                                         state_dict=build_model(arch=arch, num_classes=2).state_dict()))
    onnx = OUT / f"{arch}_{imgsz[0]}x{imgsz[1]}{'_' + trained.parent.parent.name if checkpoint else ''}.onnx"
    if not onnx.is_file():
        export_onnx(ckpt, onnx, imgsz=imgsz, progress=False)
    int8 = onnx.with_name(onnx.stem + ".cpu.int8.onnx")
    data = data or TRAINED / "data"
    if not int8.is_file() and data.is_dir():
        # The CPU layout (--target cpu): what this benchmark's CPU runs as int8 kernels. For speed only: any accuracy
        # is kept (bench_int8_cpu.py holds the demo model to its budget).
        export_int8(onnx, int8, data=data, max_drop=100.0, progress=False, target="cpu")
    return ckpt, onnx, int8 if int8.is_file() else None


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
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    print(json.dumps({"peak_rss_mb": ru.ru_maxrss / 1024, "cpu_s": ru.ru_utime + ru.ru_stime}))
    """
)


def startup_cpu_s(onnx: Path) -> float:
    """CPU seconds of a `rockedge run` on one frame: the start-up and model load to subtract from a full run."""
    one = OUT / "one_frame.png"
    if not one.is_file():
        import cv2

        from rockedge.data.synth import render_scene

        cv2.imwrite(str(one), render_scene(np.random.default_rng(0), (1080, 1920))[0])
    cmd = [sys.executable, "-m", "rockedge", "run", "--engine", str(onnx), str(one), "--out", str(OUT / "one_out"), "-q"]
    p = subprocess.run([sys.executable, "-c", CHILD, *cmd], capture_output=True, text=True, check=True)
    return float(json.loads(p.stdout.strip().splitlines()[-1])["cpu_s"])


def rockedge_run(onnx: Path, video: Path) -> dict[str, float]:
    out = OUT / f"{onnx.stem}_overlay.mp4"
    cmd = [sys.executable, "-m", "rockedge", "run", "--engine", str(onnx), str(video), "--out", str(out),
           "-q"]
    p = subprocess.run([sys.executable, "-c", CHILD, *cmd], capture_output=True, text=True, check=True)
    usage = json.loads(p.stdout.strip().splitlines()[-1])
    rss = usage["peak_rss_mb"]
    summary = json.loads(out.with_suffix(".summary.json").read_text())
    # CPU time per frame of the whole run (every thread, ONNX Runtime's included), less what starting up costs.
    start_cpu = startup_cpu_s(onnx)
    cpu_ms = 1e3 * max(0.0, usage["cpu_s"] - start_cpu) / max(1, summary["frames"])
    return {"fps": summary["fps"], "peak_rss_mb": rss, "frames": summary["frames"], "cpu_ms_per_frame": cpu_ms,
            "stage_ms": {k: v["mean"] for k, v in summary["stage_ms"].items()}}


def eager_loop(ckpt: Path, video: Path, imgsz: tuple[int, int]) -> float:
    """What the original project did: PIL + torchvision transforms, fp32 eager, one frame at a time."""
    import cv2
    import torch
    from PIL import Image
    from torchvision import transforms

    from rockedge.models.checkpoint import load_checkpoint

    model = load_checkpoint(ckpt).build().eval()  # the original project: eager fp32, PIL, one frame at a time
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
    ap.add_argument("--imgsz", type=int, default=512, help="model input size (square)")
    ap.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    ap.add_argument("--checkpoint", type=Path, default=None,
                    help="a trained checkpoint to use for the (single) architecture, e.g. demo/run/best.pt")
    ap.add_argument("--data", type=Path, default=None, help="calibration data for the INT8 model, e.g. demo/data")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    imgsz = (args.imgsz, args.imgsz)
    rows = []
    for arch in args.archs:
        n = args.resnet_frames if "resnet" in arch else args.frames
        print(f"{arch}: {n} frames of 1080p at model input {imgsz[0]}x{imgsz[1]} ...", file=sys.stderr)
        ckpt, onnx, int8 = make_models(arch, imgsz, args.checkpoint, args.data)
        video = make_video(n)
        eg = eager_loop(ckpt, video, imgsz)
        for precision, model in (("fp32", onnx), ("int8/cpu", int8)):
            if model is None:
                continue
            mo = model_only(model, video, n)
            rr = rockedge_run(model, video)
            # What sharing the cores allows: all the CPU time a frame costs (decode, preprocess, inference on ONNX
            # Runtime's threads, postprocess, encode) has to fit on os.cpu_count() cores, so `run` can reach at most
            # model-only x cores / (CPU time per frame) of model-only throughput.
            cpu_ms = rr["cpu_ms_per_frame"]
            ceiling = min(1.0, (1000.0 / mo) * (os.cpu_count() or 1) / cpu_ms) if cpu_ms else None
            rows.append({"arch": arch, "precision": precision, "trained": "untrained" not in ckpt.name, "frames": n,
                         "input_size": list(imgsz), "video": "1920x1080 @ 29.97",
                         "model_only_fps": round(mo, 3), "run_fps": round(rr["fps"], 3),
                         "run_vs_model_only": round(rr["fps"] / mo, 3), "eager_fps": round(eg, 3),
                         "run_vs_eager": round(rr["fps"] / eg, 3), "run_peak_rss_mb": round(rr["peak_rss_mb"], 1),
                         "run_stage_ms": rr["stage_ms"], "cpu_count": os.cpu_count(),
                         "cpu_ms_per_frame": round(rr["cpu_ms_per_frame"], 2),
                         "ceiling_vs_model_only": round(ceiling, 3) if ceiling else None,
                         "run_share_of_ceiling": round(rr["fps"] / mo / ceiling, 3) if ceiling else None,
                         "load_avg_1m": round(os.getloadavg()[0], 2)})
    hdr = (f"{'arch':<30}{'prec':<6}{'model-only':>12}{'run':>9}{'run/model':>11}{'ceiling':>9}{'eager':>9}"
           f"{'run/eager':>11}{'peak RSS':>10}")
    print(hdr)
    for r in rows:
        print(f"{r['arch']:<30}{r['precision']:<6}{r['model_only_fps']:>10.2f}/s{r['run_fps']:>7.2f}/s"
              f"{r['run_vs_model_only']:>10.2f}x{(r['ceiling_vs_model_only'] or 0):>8.2f}x{r['eager_fps']:>7.2f}/s"
              f"{r['run_vs_eager']:>10.2f}x"
              f"{r['run_peak_rss_mb']:>7.0f} MB")
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from results import results_path

    from rockedge.benchmark import machine_info

    path = results_path("runtime")
    path.write_text(json.dumps({"machine": machine_info(), "rows": rows}, indent=2) + "\n")
    print(f"written {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
