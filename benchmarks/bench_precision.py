#!/usr/bin/env python3
"""FP32 vs INT8 vs FP16 for the three architectures, trained on synthetic scenes: latency at 512 px on this
machine (ONNX Runtime, CPU), model size, rock-IoU/mIoU drop on held-out scenes, the layers the accuracy budget
kept in FP32, and FP16 parity. Not a test: run it by hand; it trains each model for a few minutes first.

    .venv/bin/python benchmarks/bench_precision.py [--minutes 4] [--archs ...] [--imgsz 512] [--scenes 300]

Writes .bench/precision/<arch>/... and benchmarks/results/<date>-<machine>-precision.json, prints a table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".bench" / "precision"
ARCHS = ("lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large", "deeplabv3_resnet50")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=4.0, help="training budget per architecture")
    ap.add_argument("--archs", nargs="+", default=list(ARCHS), choices=ARCHS)
    ap.add_argument("--imgsz", type=int, default=512, help="export / latency size (square)")
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--scenes", type=int, default=300, help="synthetic scenes at 256 px (a fifth held out)")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from results import results_path

    from rockedge.benchmark import machine_info, run_benchmark
    from rockedge.calibration.fp16 import export_fp16
    from rockedge.calibration.int8 import export_int8
    from rockedge.data.synth import write_synth_dataset
    from rockedge.export.pipeline import export_and_verify
    from rockedge.train.loop import TrainConfig, train

    data = WORK / "data"
    if not (data / "synth.json").is_file():
        write_synth_dataset(data, n=args.scenes, size_hw=(256, 256), seed=0, overwrite=True)
    rows = []
    for arch in args.archs:
        out = WORK / arch
        best = out / "run" / "best.pt"
        if not best.is_file():
            train(TrainConfig(data=str(data), out=str(out / "run"), arch=arch, epochs=100, batch=8, imgsz=(256, 256),
                              crop=(128, 128), lr=1e-2 if "lraspp" in arch else 5e-3, max_minutes=args.minutes))
        onnx = out / f"{arch}.onnx"
        t = time.perf_counter()
        export_and_verify(best, onnx, data_dir=data, imgsz=(args.imgsz, args.imgsz), progress=False)
        t_export = time.perf_counter() - t
        t = time.perf_counter()
        q = export_int8(onnx, data=data, max_drop=1.0, progress=False)
        t_int8 = time.perf_counter() - t
        h = export_fp16(onnx, data=data)
        bench = run_benchmark([onnx, q.path, h.path], data=str(data), runs=args.runs, progress=False)
        by_prec = {r.precision: r for r in bench.rows}
        fp32, int8 = by_prec["fp32"], by_prec["int8"]
        budget = q.report["budget"]
        rows.append({
            "arch": arch, "imgsz": args.imgsz, "train_minutes": args.minutes,
            "fp32": fp32.to_dict(), "int8": int8.to_dict(), "fp16": by_prec["fp16"].to_dict(),
            "int8_speedup": fp32.latency_ms["p50"] / int8.latency_ms["p50"],
            "int8_iou_drop_points": 100 * ((fp32.iou or 0) - (int8.iou or 0)),
            "int8_kept_fp32": budget["kept_fp32"], "int8_budget_steps": budget["steps"],
            "fp16_agreement": h.report["parity"]["agreement"], "fp16_passed": h.passed,
            "seconds": {"export": t_export, "int8": t_int8},
        })
        print(bench.table(), flush=True)
    print(f"\n{'arch':<30}{'fp32 ms':>9}{'int8 ms':>9}{'x':>6}{'fp32 MB':>9}{'int8 MB':>9}{'IoU fp32':>10}"
          f"{'drop':>7}{'kept':>6}{'fp16 agree':>12}")
    for r in rows:
        print(f"{r['arch']:<30}{r['fp32']['latency_ms']['p50']:>9.0f}{r['int8']['latency_ms']['p50']:>9.0f}"
              f"{r['int8_speedup']:>6.2f}{r['fp32']['size_mb']:>9.1f}{r['int8']['size_mb']:>9.1f}"
              f"{100 * (r['fp32']['iou'] or 0):>9.1f}%{r['int8_iou_drop_points']:>6.2f}p{len(r['int8_kept_fp32']):>6}"
              f"{100 * r['fp16_agreement']:>11.3f}%")
    path = results_path("precision")
    path.write_text(json.dumps({"machine": machine_info(), "rows": rows}, indent=2, default=str) + "\n")
    print(f"written {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
