#!/usr/bin/env python3
"""INT8 on the CPU: FP32 vs the two INT8 layouts (``--target tensorrt`` and ``--target cpu``) on ONNX Runtime's CPU
provider, with the accuracy each loses. Not a test.

    .venv/bin/python benchmarks/bench_int8_cpu.py [--data demo/data] [--model demo/run/best.pt] [--runs 40]

Rows:
  the demo's LR-ASPP at 192x352 (its trained checkpoint, held to the accuracy budget on the dataset's val split),
  DeepLabV3-ResNet50 at 160x160 (the original project's model; speed only: torchvision's initialisation).
Each variant is timed in a process of its own with ONNX Runtime's default threading (2 intra-op threads), the
variants taking turns over 3 rounds (FP32, TRT-layout, CPU-layout, repeat) so a ratio is measured within one run
on the same load: median over rounds of the median of --runs calls, batch 1. Every variant flushes denormals to
zero (an untrained network's FP32 speed is otherwise skewed by denormal arithmetic). Prints a table and writes benchmarks/results/<date>-<machine>-int8-cpu.json, whose machine
info lists the CPU's ISA extensions (VNNI/AMX decide what int8 buys).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))


CHILD = """
import json, sys, time
import numpy as np, onnxruntime as ort
path, runs = sys.argv[1], int(sys.argv[2])
shape = tuple(json.loads(sys.argv[3]))
opts = ort.SessionOptions()
opts.intra_op_num_threads = 2
opts.log_severity_level = 3
opts.add_session_config_entry("session.set_denormal_as_zero", "1")
s = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
feed = {s.get_inputs()[0].name: np.random.default_rng(0).standard_normal(shape).astype(np.float32)}
for _ in range(5):
    s.run(None, feed)
t = []
for _ in range(runs):
    t0 = time.perf_counter(); s.run(None, feed); t.append(time.perf_counter() - t0)
print(json.dumps(1e3 * float(np.median(t))))
"""


def timed(paths: dict[str, Path], shape: tuple[int, ...], runs: int, rounds: int = 3) -> dict[str, float]:
    """Median ms per call of each model: each variant in a process of its own (ONNX Runtime's default threading,
    as a user runs it), the variants taking turns for ``rounds`` rounds so every one sees the same machine load."""
    import subprocess

    got: dict[str, list[float]] = {k: [] for k in paths}
    for _ in range(rounds):
        for k, path in paths.items():
            out = subprocess.run([sys.executable, "-c", CHILD, str(path), str(runs), json.dumps(list(shape))],
                                 capture_output=True, text=True, check=True).stdout
            got[k].append(float(out.strip().splitlines()[-1]))
    return {k: float(np.median(v)) for k, v in got.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, default=ROOT / "demo" / "data", help="labelled dataset (the demo's)")
    ap.add_argument("--model", type=Path, default=ROOT / "demo" / "run" / "best.pt", help="trained LR-ASPP checkpoint")
    ap.add_argument("--runs", type=int, default=40)
    ap.add_argument("--calib-n", type=int, default=64)
    args = ap.parse_args()

    from results import results_path

    from rockedge.benchmark import machine_info
    from rockedge.calibration.int8 import export_int8
    from rockedge.export.onnx import export_onnx
    from rockedge.models.checkpoint import Checkpoint, save_checkpoint
    from rockedge.models.zoo import build_model
    from rockedge.spec import ModelSpec

    rows = []
    with tempfile.TemporaryDirectory(prefix="rockedge-int8cpu-") as tmp:
        d = Path(tmp)
        cases = []
        if args.model.is_file() and args.data.is_dir():
            cases.append(("lraspp_mobilenet_v3_large (demo, trained)", args.model, (192, 352), args.data, True))
        else:
            print(f"warning: no trained demo model at {args.model} (run bash scripts/demo.sh): LR-ASPP row skipped",
                  file=sys.stderr)
        r50 = d / "r50.pt"
        save_checkpoint(r50, Checkpoint(spec=ModelSpec(arch="deeplabv3_resnet50", input_size=(160, 160)),
                                        state_dict=build_model(arch="deeplabv3_resnet50", num_classes=2).state_dict()))
        cases.append(("deeplabv3_resnet50 (initialised, speed only)", r50, (160, 160), "synth", False))
        for name, ckpt, hw, data, scored in cases:
            print(f"{name}: exporting and quantizing at {hw[0]}x{hw[1]} ...", file=sys.stderr, flush=True)
            fp32 = Path(export_onnx(ckpt, d / f"{ckpt.stem}.onnx", imgsz=hw, progress=False).path)
            variants = {"fp32": fp32}
            drops = {}
            for target in ("tensorrt", "cpu"):
                out = d / f"{ckpt.stem}.{target}.int8.onnx"
                # Speed rows of an untrained model use any accuracy (--max-drop 100); the trained one is held to 1 point.
                step = export_int8(fp32, out, data=data, calib_n=args.calib_n, max_drop=1.0 if scored else 100.0,
                                   progress=False, target=target)
                variants[target] = step.path
                b = step.report["budget"]
                chosen = b["steps"][b["chosen_step"]]
                drops[target] = {"drop_points": chosen["drop_points"], "kept_fp32": chosen["kept_fp32"],
                                 "passed": b["passed"], "fp32_iou": b["fp32"]["iou"], "int8_iou": chosen["iou"]}
            ms = timed(variants, (1, 3, *hw), args.runs)
            rows.append({"model": name, "input_hw": list(hw), "ms": {k: round(v, 2) for k, v in ms.items()},
                         "speedup_vs_fp32": {k: round(ms["fp32"] / ms[k], 2) for k in ("tensorrt", "cpu")},
                         "accuracy": drops if scored else None, "runs": args.runs})
    print(f"{'model':<46}{'size':>9}{'FP32 ms':>9}{'TRT-layout':>18}{'CPU-layout':>18}{'drop (cpu)':>12}")
    for r in rows:
        ms, sp = r["ms"], r["speedup_vs_fp32"]
        drop = f"{r['accuracy']['cpu']['drop_points']:.2f} p" if r["accuracy"] else "-"
        print(f"{r['model']:<46}{r['input_hw'][0]:>5}x{r['input_hw'][1]:<3}{ms['fp32']:>9.1f}"
              f"{ms['tensorrt']:>10.1f} ({sp['tensorrt']:.2f}x){ms['cpu']:>10.1f} ({sp['cpu']:.2f}x){drop:>12}")
    machine = machine_info()
    print(f"machine: {machine['summary']}")
    path = results_path("int8-cpu")
    path.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2) + "\n")
    print(f"written {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
