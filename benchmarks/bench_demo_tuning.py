#!/usr/bin/env python3
"""The experiments behind the demo's training defaults: LR-ASPP / DeepLabV3-MobileNetV3 at 192 px on this CPU,
a 5-minute wall-clock budget (or a fixed number of epochs), scored by held-out rock IoU on the 40 val scenes of
the 200-scene set (seed 0; the split is prefix-stable, so those 40 scenes are held out of every larger set too).

    .venv/bin/python benchmarks/bench_demo_tuning.py                 # every variant (about an hour)
    .venv/bin/python benchmarks/bench_demo_tuning.py demo_default    # one or more by name

Appends one row per variant to benchmarks/results/<date>-<machine>-demo-tuning.json and prints it. Time-budgeted
variants are sensitive to other load on the machine (fewer epochs fit); the row records the epochs that ran
and the 1-minute load average; the file records the machine (CPU, cores and ISA extensions:
rockedge.benchmark.machine_info()), which decides how many epochs fit.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / ".bench" / "demo_tuning"
LIGHT = {"scale": (0.75, 1.25), "brightness": 0.15, "contrast": 0.15, "saturation": 0.15, "hue": 3.0, "blur": 0.1}
LR, DL = "lraspp_mobilenet_v3_large", "deeplabv3_mobilenet_v3_large"

# name: (scenes, TrainConfig overrides). Budget 5 min unless "epochs" is fixed with max_minutes None.
VARIANTS: dict[str, tuple[int, dict]] = {
    "old_demo": (200, {"arch": DL, "lr": 5e-3, "crop": None}),
    "lraspp_full": (200, {"lr": 5e-3, "crop": None}),
    "lraspp_bs16": (200, {"batch": 16, "crop": None}),
    "lraspp_crop128_lr5e-3": (200, {"lr": 5e-3}),
    "lraspp_crop128": (200, {}),
    "lraspp_crop96_bs16": (200, {"batch": 16, "crop": (96, 96)}),
    "mbv3_crop128": (200, {"arch": DL, "lr": 5e-3}),
    "lraspp_crop128_lr2e-2": (200, {"lr": 2e-2}),
    "lraspp_crop128_bs4": (200, {"batch": 4}),
    "lraspp_imgsz256": (200, {"imgsz": (256, 256)}),
    "lraspp_light": (200, {"augment": LIGHT}),
    "lraspp_dice1": (200, {"dice_weight": 1.0}),
    "lraspp_1k": (1000, {}),
    "lraspp_1k_13ep": (1000, {"max_minutes": None, "epochs": 13}),
    "demo_default_13ep": (1000, {"max_minutes": None, "epochs": 13, "augment": LIGHT}),
    "lraspp_2k_6ep": (2000, {"max_minutes": None, "epochs": 6}),
    "demo_default": (1000, {"augment": LIGHT}),
}


def run(name: str, scenes: int, overrides: dict) -> dict:
    from rockedge.data.synth import write_synth_dataset
    from rockedge.verify.evaluation import evaluate_model
    from rockedge.train.loop import TrainConfig, train
    from rockedge.train.transforms import AugmentConfig

    size = overrides.get("imgsz", (192, 192))
    data = WORK / f"data{scenes}_{size[0]}"
    if not (data / "synth.json").is_file():
        write_synth_dataset(data, n=scenes, size_hw=size, seed=0, overwrite=True, progress=False)
    held_out = WORK / f"data200_{size[0]}"
    if not (held_out / "synth.json").is_file():
        write_synth_dataset(held_out, n=200, size_hw=size, seed=0, overwrite=True, progress=False)
    kw = dict(overrides)
    aug = AugmentConfig(**kw.pop("augment", {}))
    cfg = TrainConfig(data=str(data), out=str(WORK / name), arch=LR, epochs=200, batch=8, imgsz=(192, 192),
                      crop=(128, 128), lr=1e-2, max_minutes=5, progress=False, augment=aug)
    cfg = replace(cfg, **kw)
    t = time.time()
    best = train(cfg)
    wall = time.time() - t
    report, _ = evaluate_model(best, held_out, progress=False)
    epochs = len(json.loads((WORK / name / "metrics.json").read_text()))
    return {"name": name, "scenes": scenes, "config": cfg.to_dict(), "epochs": epochs, "train_seconds": round(wall),
            "rock_iou": round(report["iou"]["rock"], 4), "miou": round(report["miou"], 4),
            "load_avg_1m": round(os.getloadavg()[0], 2)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="*", choices=[[], *VARIANTS], help="variants to run [default: all]")
    args = ap.parse_args()
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from results import results_path

    from rockedge.benchmark import machine_info

    path = results_path("demo-tuning")
    doc = json.loads(path.read_text()) if path.is_file() else {"rows": []}
    doc = {"machine": doc.get("machine") or machine_info(), **doc}  # the file name's machine tag: one machine
    for name in args.names or list(VARIANTS):
        scenes, overrides = VARIANTS[name]
        row = run(name, scenes, overrides)
        print(f"{name:<26}{scenes:>6} scenes {row['epochs']:>4} epochs {row['train_seconds']:>5}s  "
              f"rock IoU {row['rock_iou']:.3f}  mIoU {row['miou']:.3f}", flush=True)
        doc["rows"].append(row)
        path.write_text(json.dumps(doc, indent=2, default=list) + "\n")
    print(f"written {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
