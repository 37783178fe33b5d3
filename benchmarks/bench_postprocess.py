#!/usr/bin/env python3
"""The CPU side of ``rockedge run`` on 1080p frames: post-processing stage by stage (mask restore, overlay, stats),
``Segmenter.postprocess`` as the runtime calls it, and the per-frame rock measurement. Not a test.

    .venv/bin/python benchmarks/bench_postprocess.py [--runs 60]

Generated 1920x1080 rock scenes with masks at two model sizes (the demo's 192x352 and 512x512). Median ms of --runs
calls on this machine (OpenCV's own threads as configured), and for reference the overlay as it was drawn before
(palette lookup at frame resolution, whole-frame blend, new arrays every call). Prints a table and writes
benchmarks/results/<date>-<machine>-postprocess.json.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def overlay_before(frame: np.ndarray, mask: np.ndarray, lut: np.ndarray) -> np.ndarray:
    """The overlay as rockedge drew it until 2026-12 (colours at frame resolution, whole-frame blend)."""
    from rockedge.runtime.overlay import colorize

    painted = (mask != 0).view(np.uint8)
    out = frame.copy()
    colour = colorize(mask, lut)
    blended = cv2.addWeighted(frame, 0.5, colour, 0.5, 0.0)
    cv2.copyTo(blended, painted, out)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=60)
    args = ap.parse_args()

    from results import median_ms, results_path

    from rockedge.benchmark import machine_info
    from rockedge.measure import measure_mask
    from rockedge.data.synth import render_scene
    from rockedge.runtime.overlay import colorize, draw_overlay, mask_stats, palette_lut, scratch
    from rockedge.runtime.preprocess import content, fit, restore_mask

    lut = palette_lut(((0, 0, 0), (250, 50, 83)))
    frame = cv2.resize(render_scene(np.random.default_rng(0), (540, 960))[0], (1920, 1080), cv2.INTER_LINEAR)
    rows = []
    for hw in ((192, 352), (512, 512)):
        small = (render_scene(np.random.default_rng(1), hw)[1] > 0).astype(np.uint8)
        _, geom = fit(frame, hw)
        mask = restore_mask(small, geom)

        def post() -> None:
            m = restore_mask(small, geom)
            colour = restore_mask(colorize(small, lut), geom, dst=scratch("colour", frame.shape))
            draw_overlay(frame, m, lut, colour=colour)
            mask_stats(content(small, geom), num_classes=2)

        stages = {
            "restore_mask": median_ms(lambda: restore_mask(small, geom), args.runs),
            "colour_at_model_size": median_ms(
                lambda: restore_mask(colorize(small, lut), geom, dst=scratch("colour", frame.shape)), args.runs),
            "overlay": median_ms(lambda: draw_overlay(frame, mask, lut, colour=scratch("colour", frame.shape)),
                                 args.runs),
            "stats_at_model_size": median_ms(lambda: mask_stats(content(small, geom), num_classes=2), args.runs),
            "postprocess_total": median_ms(post, args.runs),
            "before_overlay": median_ms(lambda: overlay_before(frame, mask, lut), args.runs),
            "before_stats_at_frame_size": median_ms(lambda: mask_stats(mask, num_classes=2), args.runs),
        }
        stages["before_total"] = round(stages["restore_mask"] + stages["before_overlay"]
                                       + stages["before_stats_at_frame_size"], 3)
        c = content(small, geom)  # --measure: split and measure the rocks at model resolution, sizes in frame pixels
        stages["measure_rocks"] = median_ms(lambda: measure_mask(c, scale=(1920 / c.shape[1], 1080 / c.shape[0])),
                                            args.runs)
        rows.append({"frame": "1920x1080", "mask_hw": list(hw), "rock_fraction": round(float(small.mean()), 3),
                     "ms": stages, "runs": args.runs, "opencv_threads": cv2.getNumThreads()})
    keys = list(rows[0]["ms"])
    heads = ["{}x{} mask".format(*r["mask_hw"]) for r in rows]
    print(f"{'stage (ms p50, 1080p)':<30}" + "".join(f"{h:>16}" for h in heads))
    for k in keys:
        print(f"{k:<30}" + "".join(f"{r['ms'].get(k, float('nan')):>16.2f}" for r in rows))
    machine = machine_info()
    print(f"machine: {machine['summary']}")
    path = results_path("postprocess")
    path.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    print(f"written {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
