#!/usr/bin/env python3
"""The main job, measured: runs ``rockedge demo`` with its defaults and keeps what it produced. Not a test.

    .venv/bin/python benchmarks/bench_demo.py                  # rockedge demo --out <temp folder>, then collect
    .venv/bin/python benchmarks/bench_demo.py --out demo       # the same, into demo/ (kept)
    .venv/bin/python benchmarks/bench_demo.py --from demo      # collect an existing demo folder, run nothing

Arguments after ``--`` go to ``rockedge demo`` (e.g. ``-- --max-minutes 2``) and are recorded in the file.
Collected: the held-out evaluation (run/best.eval.json), the training history (run/metrics.json) and config, the
dataset's counts (data/synth.json), the ONNX parity report (model.parity.json), the INT8 budget and parity report
(model.int8.parity.json, calibration indices left out), the video run's summary (overlay.summary.json), the
benchmark the demo ends with (benchmark/benchmark.json) and the demo's wall seconds (the whole ``rockedge demo``
process; null with ``--from``). Writes benchmarks/results/<date>-<machine>-demo.json, whose machine info lists
the CPU's ISA extensions (VNNI/AMX decide what INT8 buys).
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


def _read(path: Path) -> dict | list | None:
    return json.loads(path.read_text()) if path.is_file() else None


def rockedge_cmd() -> list[str]:
    exe = Path(sys.executable).with_name("rockedge")
    return [str(exe)] if exe.is_file() else [sys.executable, "-m", "rockedge"]


def collect(folder: Path) -> dict:
    """What a finished demo folder holds, in the shape of the 2026-11-24 demo results (eval, training_history,
    run_summary, int8_budget, benchmark) plus the parity reports, training config and dataset counts."""
    run = folder / "run"
    missing = [p for p in ("run/best.eval.json", "run/metrics.json", "model.parity.json", "model.int8.parity.json",
                           "overlay.summary.json", "benchmark/benchmark.json") if not (folder / p).is_file()]
    if missing:
        raise SystemExit(f"error: {folder} is not a finished demo folder: missing {', '.join(missing)}")
    int8 = _read(folder / "model.int8.parity.json")
    calib = dict(int8.get("calibration") or {})
    calib.pop("indices", None)  # 64 image indices: not a measurement
    calib.pop("sha256", None)
    int8 = {**int8, "calibration": calib}
    parity = _read(folder / "model.parity.json")
    synth = _read(folder / "data" / "synth.json") or {}
    history = _read(run / "metrics.json")
    return {
        "eval": _read(run / "best.eval.json"),
        "training_config": _read(run / "config.json"),
        "dataset": {k: synth.get(k) for k in ("n", "size_hw", "val_fraction", "counts", "seed")},
        "epochs": len(history),
        "train_seconds": round(sum(h.get("epoch_seconds", 0.0) for h in history), 1),
        "training_history": history,
        "parity": parity.get("parity"),
        "export": {k: (parity.get("export") or {}).get(k) for k in ("size_bytes", "input", "output", "settings")},
        "int8_budget": int8.get("budget"),
        "int8": {k: v for k, v in int8.items() if k != "budget"},
        "run_summary": _read(folder / "overlay.summary.json"),
        "benchmark": _read(folder / "benchmark" / "benchmark.json"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = ap.add_mutually_exclusive_group()
    where.add_argument("--out", type=Path, metavar="DIR", help="demo folder to run into and keep (default: a temporary folder)")
    where.add_argument("--from", dest="from_", type=Path, metavar="DIR", help="collect this finished demo folder; run nothing")
    ap.add_argument("demo_args", nargs="*", help="arguments for rockedge demo, after --")
    args = ap.parse_args()

    from results import results_path

    from rockedge.benchmark import machine_info

    tmp = None
    wall = None
    command = None
    if args.from_:
        folder = args.from_
    else:
        if args.out:
            folder = args.out
        else:
            tmp = tempfile.mkdtemp(prefix="rockedge-bench-demo-")
            folder = Path(tmp) / "demo"
        cmd = [*rockedge_cmd(), "demo", "--out", str(folder), *args.demo_args]
        command = shlex.join(["rockedge", "demo", "--out", "DIR" if tmp else str(folder), *args.demo_args])
        print(f"$ {shlex.join(cmd)}", file=sys.stderr, flush=True)
        t0 = time.monotonic()
        rc = subprocess.run(cmd, check=False).returncode
        wall = round(time.monotonic() - t0, 1)
        if rc:
            if tmp:
                shutil.rmtree(tmp, ignore_errors=True)
            print(f"error: rockedge demo exited {rc} after {wall} s; nothing written", file=sys.stderr)
            return rc
    try:
        doc = {"script": "benchmarks/bench_demo.py", "command": command,
               "collected_from": None if command else str(folder), "wall_seconds": wall, "machine": machine_info(),
               **collect(folder)}
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
    path = results_path("demo")
    path.write_text(json.dumps(doc, indent=2) + "\n")
    ev, b, rs = doc["eval"], doc["int8_budget"], doc["run_summary"]
    drop = b["steps"][b["chosen_step"]]["drop_points"]
    print(f"wall {wall} s, {doc['epochs']} epochs; rock IoU {ev['iou']['rock']:.3f} (mIoU {ev['miou']:.3f}); "
          f"INT8 drop {drop} points; run {rs['fps']:.1f} frames/s")
    print(f"machine: {doc['machine']['summary']}")
    print(f"written {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
