"""`rockedge demo` end to end at a tiny size: every step runs and the log reads top to bottom."""

from __future__ import annotations

import json

from click.testing import CliRunner

from rockedge.cli import main


def test_demo_smoke_at_tiny_size(tmp_path):
    out = tmp_path / "demo"
    r = CliRunner().invoke(main, ["demo", "--out", str(out), "--n", "12", "--imgsz", "48", "--epochs", "1",
                                  "--max-minutes", "0.1", "--video-frames", "4"])
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
    assert json.loads((out / "model.parity.json").read_text())["parity"]["passed"] is True
    assert "held-out rock IoU" in log and "speed-up" in log and "ceiling = " in log
