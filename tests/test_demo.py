"""`rockedge demo` end to end at a tiny size: every step runs and the log reads top to bottom."""

from __future__ import annotations

import json

from click.testing import CliRunner

from rockedge.cli import main


def test_demo_smoke_at_tiny_size(tmp_path):
    out = tmp_path / "demo"
    # 15 epochs of 40 scenes at 64 px (about 20 s here) is the least that learns rock (from epoch 8 on); the epochs,
    # not the clock, end training, so a loaded machine trains the same model, only slower.
    r = CliRunner().invoke(main, ["demo", "--out", str(out), "--n", "40", "--imgsz", "64", "--epochs", "15",
                                  "--max-minutes", "30", "--video-frames", "4"])
    assert r.exit_code == 0, r.output
    log = r.output
    steps = [ln for ln in log.splitlines() if ln.startswith("[")]
    assert [s.split("]")[0] + "]" for s in steps] == [f"[{i}/7]" for i in range(1, 8)]
    assert "\r" not in log, "progress bars must not flood a log"
    assert "$ rockedge train --data" in log and "$ rockedge export" in log  # the equivalent commands, shown
    for name in ("run/best.pt", "run/best.eval.json", "model.onnx", "model.parity.json", "overlay.mp4",
                 "overlay.summary.json", "run/results.png", "model.int8.parity.json", "benchmark/benchmark.json",
                 "benchmark/benchmark.png"):
        assert (out / name).is_file(), name
    # Parity on a model that paints rock: agreement on a one-class model is 100 % whatever the export does.
    parity = json.loads((out / "model.parity.json").read_text())["parity"]
    assert parity["passed"] is True and parity["warnings"] == []
    assert 0.05 < parity["reference_class_share"]["rock"] < 0.95
    assert 0 < parity["iou"]["rock"] <= 1 and parity["boundary_agreement"] >= 0.999
    # The INT8 budget measures its drop from an FP32 model that finds rock, not from 0 % IoU.
    budget = json.loads((out / "model.int8.parity.json").read_text())["budget"]
    assert budget["fp32"]["iou"] > 0.1
    assert not any("the FP32 model itself scores" in c for c in budget["caveats"])
    assert "paints > 99 % of pixels one class" not in log
    assert "held-out rock IoU" in log and "speed-up" in log and "ceiling = " in log
