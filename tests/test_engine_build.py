"""The engine build job without TensorRT: what a machine without it says, the child process that reports an
OOM kill, naming, and what it reads from the ONNX (no onnx package)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from rockedge.cli import main
from rockedge.engine.build import engine_path, onnx_facts, run_worker
from rockedge.engine.plan import BuildOptions, DeviceFacts, OnnxFacts, plan_build
from rockedge.errors import RockedgeError
from rockedge.precision import Precision
from rockedge.probes import tensorrt_available

MNV3 = "deeplabv3_mobilenet_v3_large"


@pytest.fixture(scope="module")
def onnx_model(trained_ckpt, tmp_path_factory) -> Path:
    from rockedge.export.onnx import export_onnx

    return export_onnx(trained_ckpt(), tmp_path_factory.mktemp("eng") / "m.onnx", progress=False).path


def _request(tmp_path: Path) -> dict:
    plan = plan_build("10.3.0", BuildOptions(precision=Precision.INT8), OnnxFacts("images", (1, 3, 64, 64), Precision.FP32),
                      DeviceFacts("Orin", (8, 7), 8 << 30, is_jetson=True), default_hw=(64, 64))
    return {"plan": plan.to_dict(), "device": {"gpu_name": "Orin", "compute_capability": [8, 7],
                                               "total_memory": 8 << 30, "dla_cores": 0, "is_jetson": True},
            "staging": str(tmp_path / "x.plan")}


def test_export_engine_without_tensorrt_is_one_line_and_writes_nothing(onnx_model, tmp_path):
    if tensorrt_available():
        pytest.skip("a real TensorRT is installed here")
    out = tmp_path / "out" / "m.plan"
    r = CliRunner().invoke(main, ["export", str(onnx_model), "--format", "engine", "--half", "--out", str(out)])
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and "TensorRT's Python package (tensorrt) is not importable here" in lines[0]
    assert "JetPack" in lines[0] and "Traceback" not in r.output
    assert not out.exists() and not list(tmp_path.rglob("*.plan*"))


def test_a_build_killed_by_the_kernel_says_what_to_do(tmp_path):
    # A real child process killed by SIGKILL, as the OOM killer does on a Jetson with too little memory.
    killer = [sys.executable, "-c", "import os, signal, sys; os.kill(os.getpid(), signal.SIGKILL)"]
    with pytest.raises(RockedgeError) as e:
        run_worker(_request(tmp_path), command=killer)
    msg = str(e.value)
    assert msg.startswith("the engine build was killed (out of memory?)") and "(signal 9)" in msg
    assert "--workspace 0.25" in msg and "stop the desktop" in msg and "Q/DQ ONNX" in msg
    assert msg.endswith("nothing was written") and "\n" not in msg


def test_a_build_that_fails_reports_the_child_error(tmp_path):
    writer = [sys.executable, "-c",
              "import json, sys, pathlib; p = pathlib.Path(sys.argv[1]);"
              "p.with_name('request.result.json').write_text(json.dumps({'ok': False, 'error': "
              "'TensorRT could not build m.onnx: ERROR: Error Code 2: OutOfMemory'})); sys.exit(1)"]
    with pytest.raises(RockedgeError, match=r"Error Code 2: OutOfMemory; the engine build failed; try a smaller "
                                            r"workspace.*nothing was written"):
        run_worker(_request(tmp_path), command=writer)
    crasher = [sys.executable, "-c", "import sys; sys.stderr.write('Segmentation fault in libnvinfer\\n'); sys.exit(3)"]
    with pytest.raises(RockedgeError, match="Segmentation fault in libnvinfer; nothing was written"):
        run_worker(_request(tmp_path), command=crasher)


def test_plan_names_carry_the_precision():
    assert engine_path(Path("m.onnx"), Precision.FP32, None) == Path("m.plan")
    assert engine_path(Path("m.onnx"), Precision.FP16, None) == Path("m.fp16.plan")
    assert engine_path(Path("m.int8.onnx"), Precision.INT8, None) == Path("m.int8.plan")
    assert engine_path(Path("m.onnx"), Precision.FP16, Path("x.engine")) == Path("x.engine")
    with pytest.raises(RockedgeError, match="must end in .plan, .engine, .trt"):
        engine_path(Path("m.onnx"), Precision.FP16, Path("x.onnx"))


def test_onnx_facts_read_without_onnx(onnx_model, tmp_path):
    facts, spec = onnx_facts(onnx_model)
    assert facts.input_name == "images" and facts.input_shape == (1, 3, 64, 64)
    assert facts.precision is Precision.FP32 and not facts.has_qdq and facts.opset == 17
    assert spec.arch == "lraspp_mobilenet_v3_large"
    bare = tmp_path / "bare.onnx"
    import onnx

    m = onnx.load(str(onnx_model))
    del m.metadata_props[:]
    onnx.save(m, str(bare))
    with pytest.raises(RockedgeError, match="carries no rockedge model spec"):
        onnx_facts(bare)


def test_worker_protocol_reports_its_own_failures(tmp_path):
    from rockedge import child
    from rockedge.engine import worker

    req = tmp_path / "request.json"
    req.write_text(json.dumps({**_request(tmp_path), "onnx": str(tmp_path / "m.onnx"), "input_name": "images",
                               "spec": {"arch": MNV3}, "calib_n": 2, "onnx_sha256": "0" * 64}))
    assert worker.main(["worker", str(req)]) == 1
    result = json.loads(child.result_path(req).read_text())
    assert result["ok"] is False and "TensorRT" in result["error"] and "\n" not in result["error"].strip()


def test_a_build_or_probe_that_hangs_is_stopped_in_one_line(tmp_path, monkeypatch):
    """A real child that never answers: the build child is stopped at ROCKEDGE_BUILD_TIMEOUT, the probe child at its
    own shorter limit, each with one line (run_worker's timeout, child.py's TimeoutExpired)."""
    import time

    from rockedge.engine import build

    hang = [sys.executable, "-c", "import time; time.sleep(120)"]
    monkeypatch.setenv("ROCKEDGE_BUILD_TIMEOUT", "1.5")
    t0 = time.monotonic()
    with pytest.raises(RockedgeError) as e:
        run_worker(_request(tmp_path), command=hang)
    assert time.monotonic() - t0 < 60
    assert str(e.value) == ("the engine build did not finish in 2 s and was stopped (set ROCKEDGE_BUILD_TIMEOUT to "
                            "allow longer); nothing was written")
    monkeypatch.setattr(build, "PROBE_TIMEOUT_S", 1.0)
    with pytest.raises(RockedgeError, match=r"^the TensorRT probe \(import TensorRT, open the GPU\) did not finish in "
                                            r"1 s and was stopped: is the GPU driver hung\?"):
        run_worker({"probe": True}, command=hang)
    monkeypatch.setenv("ROCKEDGE_BUILD_TIMEOUT", "soon")
    with pytest.raises(RockedgeError, match="ROCKEDGE_BUILD_TIMEOUT must be a number of seconds > 0, got 'soon'"):
        run_worker(_request(tmp_path), command=hang)
    monkeypatch.delenv("ROCKEDGE_BUILD_TIMEOUT")
    assert build.build_timeout() == 3 * 3600
