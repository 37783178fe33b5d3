#!/usr/bin/env python3
"""Real piles: the original project's photos as the check, and a before/after picture on a generated pile. Not a test.

    .venv/bin/python benchmarks/bench_piles.py --before demo/model.onnx --after demo-piles/model.onnx

1. Recall on the original project's four photos (imharshanand/deeplabv3; read from ../shared/data/seed-rocks, never
   copied into the repository): ``rockedge eval MODEL --data PHOTOS --split all --sparse`` for each model, on a
   temporary copy whose labelmap names the class ``rock`` (the photos' labelmap says ``rocks``). Each painted rock
   is found (one predicted rock at IoU >= 0.5) or not; unpainted pixels are ignored. Skipped, and said so, when the
   photos are absent.
2. ``docs/img_pile_before_after.png``: a generated pile scene, what each model paints, and the rocks each finds
   (``run --measure --contours``), side by side.

Writes benchmarks/results/<date>-<machine>-piles.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
PHOTOS = ROOT.parent / "shared" / "data" / "seed-rocks"


def recall_on_photos(model: Path, photos: Path) -> dict:
    from rockedge.verify.evaluation import evaluate_model

    with tempfile.TemporaryDirectory() as tmp:
        data = Path(shutil.copytree(photos, Path(tmp) / "photos"))
        lm = data / "labelmap.txt"
        lm.write_text(lm.read_text().replace("rocks:", "rock:"))
        report, _ = evaluate_model(model, data, split="all", progress=False, sparse=True)
    m = report["measure"]
    return {"model": str(model), "images": m["images"], "labelled_rocks": m["true_rocks"] + m["too_small"],
            "found": m["matched"], "too_small": m["too_small"], "instance_recall": m["instance_recall"],
            "rock_iou_on_painted_pixels": report["iou"].get("rock"),
            "per_image": [{k: r[k] for k in ("name", "true", "tp")} for r in m["per_image"]]}


def figure(models: dict[str, Path], out: Path, seed: int) -> dict:
    """One generated pile, each model's overlay and its measured rocks, in a row."""
    from rockedge.data.synth import render_scene_instances
    from rockedge.runtime import Segmenter

    img, _, inst = render_scene_instances(np.random.default_rng([seed, 7]), (360, 640), "pile")
    tiles, found = [cv2.putText(img.copy(), f"generated pile: {int(inst.max())} rocks", (10, 28),
                                cv2.FONT_HERSHEY_SIMPLEX, 0.8, (255, 255, 255), 2, cv2.LINE_AA)], {}
    for name, model in models.items():
        with Segmenter(model, measure=True, contours=True, alpha=0.45) as seg:
            r = seg.predict(img)
        found[name] = len(r.rocks or [])
        cv2.putText(r.overlay, f"{name}: {found[name]} rocks", (10, 28), cv2.FONT_HERSHEY_SIMPLEX, 0.8,
                    (255, 255, 255), 2, cv2.LINE_AA)
        tiles.append(r.overlay)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), cv2.resize(np.hstack(tiles), None, fx=0.75, fy=0.75, interpolation=cv2.INTER_AREA))
    return {"image": str(out.relative_to(ROOT)), "true_rocks": int(inst.max()), "found": found}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--before", type=Path, default=ROOT / "demo" / "model.onnx")
    ap.add_argument("--after", type=Path, default=ROOT / "demo-piles" / "model.onnx")
    ap.add_argument("--photos", type=Path, default=PHOTOS)
    ap.add_argument("--seed", type=int, default=123)
    args = ap.parse_args()

    from results import results_path

    from rockedge.benchmark import machine_info

    models = {"before (demo)": args.before, "after (pile recipe)": args.after}
    for m in models.values():
        if not m.is_file():
            raise SystemExit(f"error: {m} not found: run bash scripts/demo.sh and rockedge demo --scene mixed "
                             "--boundary --out demo-piles first")
    report: dict = {"benchmark": "piles", "machine": machine_info(), "models": {k: str(v) for k, v in models.items()}}
    if args.photos.is_dir():
        report["photos"] = {name: recall_on_photos(m, args.photos) for name, m in models.items()}
        for name, r in report["photos"].items():
            print(f"{name:<22} {r['found']} of {r['labelled_rocks']} painted rocks found as single rocks "
                  f"(recall {r['instance_recall']}, {r['too_small']} too small for the model)")
    else:
        report["photos"] = None
        print(f"the original project's photos are not at {args.photos}: recall not measured")
    report["figure"] = figure(models, ROOT / "docs" / "img_pile_before_after.png", args.seed)
    print(f"figure: {report['figure']}")
    out = results_path("piles")
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
