#!/usr/bin/env python3
"""Measuring rocks, measured: how well the rocks rockedge finds match the true ones, and what it costs. Not a test.

    .venv/bin/python benchmarks/bench_measure.py --model demo/model.onnx [--n 60 --imgsz 192 --seed 123]

1. Quality. ``rockedge data synth --n N --imgsz S --seed 123`` (scenes the demo never trained on: its data uses seed
   0) and every scene scored as ``rockedge eval --measure`` scores it (instance F1 at IoU >= 0.5, count, P50 and P80
   errors) for:
   * the model's mask, split by rockedge (the default, and the split's threshold either side of it);
   * the model's mask as connected components (what ``rock_count`` reported before: touching rocks merge);
   * the true rock mask split by rockedge: the ceiling of any split of a foreground mask (what is left is rocks
     that touch without a neck, which only a boundary-aware model tells apart).
2. Cost. ``Segmenter.postprocess`` on a 1920x1080 frame with the model's mask at its own size, with and without
   ``measure=True`` (median ms of --runs calls), and the split and the measuring alone.

Prints tables and writes benchmarks/results/<date>-<machine>-measure.json with the machine's CPU and ISA.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def score(name: str, ds, masks, split_fn) -> dict:  # noqa: ANN001
    from rockedge.measure import measure
    from rockedge.measure.match import InstanceScore, drop_small
    from rockedge.measure.split import MIN_AREA_PX

    s = InstanceScore()
    for i, (small, geom_scale) in enumerate(masks):
        truth = ds.instances(i)
        fh, fw = truth.shape
        labels = split_fn(small)
        pred = cv2.resize(labels.astype(np.int32), (fw, fh), interpolation=cv2.INTER_NEAREST)
        truth, dropped = drop_small(truth, MIN_AREA_PX * geom_scale[0] * geom_scale[1])
        s.too_small += dropped
        s.add(truth, pred, pred_rocks=measure(labels, scale=geom_scale))
    d = s.to_dict()
    d.pop("per_image")
    d["method"] = name
    return d


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=ROOT / "demo" / "model.onnx")
    ap.add_argument("--n", type=int, default=60)
    ap.add_argument("--imgsz", type=int, default=192)
    ap.add_argument("--seed", type=int, default=123)
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--scene", choices=("scatter", "pile", "mixed"), default="scatter",
                    help="the generated scenes to score on (data synth --scene)")
    ap.add_argument("--data", type=Path, default=None, help="score this dataset (with instance masks) instead")
    ap.add_argument("--name", default="measure", help="results file name: <date>-<machine>-<name>.json")
    args = ap.parse_args()

    from results import median_ms, results_path

    from rockedge.benchmark import machine_info
    from rockedge.data.datasets import open_dataset
    from rockedge.data.synth import render_scene, write_synth_dataset
    from rockedge.measure import measure, split_rocks
    from rockedge.measure import split as split_mod
    from rockedge.runtime import Segmenter
    from rockedge.runtime.preprocess import content

    if not args.model.is_file():
        raise SystemExit(f"error: {args.model} not found: run bash scripts/demo.sh first, or pass --model")
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or write_synth_dataset(Path(tmp) / "d", n=args.n, size_hw=(args.imgsz, args.imgsz),
                                                seed=args.seed, progress=False, scene=args.scene)
        ds = open_dataset(data, "all")
        rows = []
        with Segmenter(args.model, draw=False) as seg:
            b = seg.spec.boundary_index
            masks, truths = [], []
            for i in range(len(ds)):
                img, cls = ds[i]
                x, geom = seg.prepare_frame(img)
                small = content(seg.infer(seg.collate([x]), 1)[0], geom)
                fh, fw = geom.frame_hw
                masks.append((small, (fw / small.shape[1], fh / small.shape[0])))
                truths.append(((cls == 1).astype(np.uint8), (1.0, 1.0)))
            if b is not None:  # a boundary model: its interiors seed the rocks (what run --measure does) ...
                rows.append(score("boundary model, interiors (default)", ds, masks,
                                  lambda m: split_rocks(m, interior=(m != 0) & (m != b))))
                # ... against the same model's rims counted as rock and split like any rock mask
                rows.append(score("boundary model, rims as rock, distance split", ds, masks,
                                  lambda m: split_rocks((m != 0).astype(np.uint8))))
            else:
                for h in (0.1, split_mod.H_LOG, 0.4):
                    tag = "default" if h == split_mod.H_LOG else f"h={h}"
                    rows.append(score(f"model mask, split ({tag})", ds, masks, lambda m, h=h: split_rocks(m, h=h)))
            rows.append(score("model mask, connected components", ds, masks,
                              lambda m: cv2.connectedComponents((m > 0).astype(np.uint8), connectivity=8)[1]))
            rows.append(score("true mask, split (ceiling)", ds, truths, lambda m: split_rocks(m)))

            frame = cv2.resize(render_scene(np.random.default_rng(7), (540, 960))[0], (1920, 1080), cv2.INTER_LINEAR)
            x, geom = seg.prepare_frame(frame)
            small_mask = seg.infer(seg.collate([x]), 1)[0]
            cost = {"frame": "1920x1080", "model_mask": list(small_mask.shape)}
            cost["postprocess_nodraw_ms"] = median_ms(lambda: seg.postprocess(frame, small_mask, geom), args.runs)
            seg.draw = True
            cost["postprocess_ms"] = median_ms(lambda: seg.postprocess(frame, small_mask, geom), args.runs)
            seg.measure = True
            cost["postprocess_measure_ms"] = median_ms(lambda: seg.postprocess(frame, small_mask, geom), args.runs)
            seg.draw = False
            cost["postprocess_measure_nodraw_ms"] = median_ms(lambda: seg.postprocess(frame, small_mask, geom),
                                                              args.runs)
            seg.draw, seg.contours = True, True
            cost["postprocess_measure_outlines_ms"] = median_ms(lambda: seg.postprocess(frame, small_mask, geom),
                                                                args.runs)
            c = content(small_mask, geom)
            cost["split_ms"] = median_ms(lambda: split_rocks(c), args.runs)
            labels = split_rocks(c)
            cost["measure_ms"] = median_ms(lambda: measure(labels, scale=(1920 / c.shape[1], 1080 / c.shape[0])),
                                           args.runs)
            cost["rocks_in_frame"] = int(labels.max())

    report = {"benchmark": "measure", "machine": machine_info(), "model": str(args.model),
              "data": {"n": args.n, "imgsz": args.imgsz, "seed": args.seed, "scene": args.scene, "images": len(ds),
                       "source": str(args.data) if args.data else "rockedge data synth"},
              "quality": rows, "cost": cost}
    print(f"{'method':<40}{'F1':>7}{'prec':>7}{'recall':>8}{'count err':>11}{'P50 err':>9}{'|P50|':>7}{'P80 err':>9}")
    for r in rows:
        def pct(v):  # noqa: ANN001, ANN202
            return "n/a" if v is None else f"{100 * v:+.1f}"
        print(f"{r['method']:<40}{100 * r['instance_f1']:>7.1f}{100 * r['instance_precision']:>7.1f}"
              f"{100 * r['instance_recall']:>8.1f}{pct(r['count_error']):>11}{pct(r['p50_error']):>9}"
              f"{100 * r['abs_p50_error']:>7.1f}{pct(r['p80_error']):>9}")
    print(f"\n1080p post-process p50 (overlay drawn): {cost['postprocess_ms']} ms, with --measure "
          f"{cost['postprocess_measure_ms']} ms, with --measure --contours {cost['postprocess_measure_outlines_ms']} ms; "
          f"no overlay: {cost['postprocess_nodraw_ms']} ms, with --measure {cost['postprocess_measure_nodraw_ms']} ms "
          f"(split {cost['split_ms']} ms, measure {cost['measure_ms']} ms, {cost['rocks_in_frame']} rocks, mask "
          f"{cost['model_mask']})")
    out = results_path(args.name)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
