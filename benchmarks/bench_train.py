"""Training benchmark: how good a model gets on synthetic rock scenes within a CPU time budget.

Generates N synthetic scenes (default 240 at 256x256, 80/20 split), trains each architecture with a
wall-clock budget (the LR schedule is fitted to it), and reports held-out rock IoU, mIoU and time.
Prints a table and writes JSON (default benchmarks/results/<date>-<machine>-train.json), with the machine it ran on
(CPU, cores and ISA extensions: rockedge.benchmark.machine_info()).

    python benchmarks/bench_train.py                      # MobileNetV3 10 min + ResNet-50 short run
    python benchmarks/bench_train.py --arch deeplabv3_mobilenet_v3_large --minutes 5
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

from rockedge.atomic import write_json
from rockedge.benchmark import machine_info
from rockedge.data.synth import write_synth_dataset
from rockedge.models.checkpoint import load_checkpoint
from rockedge.train.loop import TrainConfig, train

DEFAULT_RUNS = (("deeplabv3_mobilenet_v3_large", 10.0), ("deeplabv3_resnet50", 6.0))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", type=Path, default=Path(".bench/train"))
    ap.add_argument("--n", type=int, default=240)
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--arch", action="append", help="architecture (repeatable); default: both")
    ap.add_argument("--minutes", type=float, help="budget per architecture (default: 10 MobileNetV3, 6 ResNet-50)")
    ap.add_argument("--epochs", type=int, default=40, help="upper bound; the budget usually ends training first")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--lr", type=float, default=5e-3)
    ap.add_argument("--json", type=Path, default=None,
                    help="output [default: benchmarks/results/<date>-<machine>-train.json]")
    args = ap.parse_args()
    if args.json is None:
        sys.path.insert(0, str(Path(__file__).resolve().parent))
        from results import results_path

        args.json = results_path("train")

    runs = [(a, args.minutes or dict(DEFAULT_RUNS).get(a, 10.0)) for a in args.arch] if args.arch else list(DEFAULT_RUNS)
    data = args.work / f"synth_{args.n}_{args.size}"
    if not (data / "synth.json").is_file():
        write_synth_dataset(data, n=args.n, size_hw=(args.size, args.size), seed=0, overwrite=True)
    results = []
    for arch, minutes in runs:
        out = args.work / f"run_{arch}"
        t0 = time.monotonic()
        best = train(TrainConfig(data=str(data), out=str(out), arch=arch, epochs=args.epochs, batch=args.batch,
                                 imgsz=(args.size, args.size), lr=args.lr, max_minutes=minutes, seed=0))
        wall = time.monotonic() - t0
        ck = load_checkpoint(best)
        history = json.loads((out / "metrics.json").read_text())
        results.append({
            "arch": arch, "budget_min": minutes, "wall_min": wall / 60, "epochs": len(history),
            "best_epoch": ck.epoch, "val_rock_iou": ck.metrics["iou"]["rock"], "val_miou": ck.metrics["miou"],
            "val_pixel_accuracy": ck.metrics["pixel_accuracy"],
            "history": [{k: h[k] for k in ("epoch", "train_loss", "val_miou", "val_iou_rock", "epoch_seconds")} for h in history],
        })
    machine = machine_info()  # CPU model, cores, ISA extensions (AVX2, AVX-512 VNNI, AMX, NEON, ...), GPU
    meta = {"n_scenes": args.n, "size": args.size, "batch": args.batch, "lr": args.lr, "cpus": os.cpu_count(),
            "arch": platform.machine(), "python": platform.python_version()}
    import torch

    meta["torch"] = torch.__version__
    meta["torch_threads"] = torch.get_num_threads()
    print(f"\ntraining on {args.n} synthetic scenes at {args.size}px, held-out split = 20 %, on {machine['summary']}")
    print(f"{'arch':<30} {'budget':>7} {'wall':>7} {'epochs':>6} {'rock IoU':>9} {'mIoU':>7} {'pix acc':>8}")
    for r in results:
        print(f"{r['arch']:<30} {r['budget_min']:>6.1f}m {r['wall_min']:>6.1f}m {r['epochs']:>6} "
              f"{r['val_rock_iou']:>9.4f} {r['val_miou']:>7.4f} {r['val_pixel_accuracy']:>8.4f}")
    write_json(args.json, {"machine": machine, "meta": meta, "results": results})
    print(f"json: {args.json}")


if __name__ == "__main__":
    main()
