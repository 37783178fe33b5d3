"""The TensorRT paths that run without TensorRT, past what tests/test_trt_api.py's builds reach: the builder's
inspection of a plan (``_inspect``) fed the inspector JSON of real engines, the precision check (``_check_precision``),
``verify_engine`` without ONNX Runtime and at the INT8 accuracy budget's edge, the worker's answer through the real
parent/child handshake, and the TensorRT backend's refusals (a plan it cannot deserialize, a context or an execution
TensorRT refuses, a wrong input type, another GPU).

The fake ``tensorrt`` and its fixtures are test_trt_api.py's (imported, not copied): each call goes against the names
the version's bindings define.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from test_trt_api import DATA, VERSIONS, export, fake_trt, onnx_models  # noqa: F401 - fixtures used by name

from rockedge.errors import BackendUnavailable, RockedgeError
from rockedge.precision import Precision
from rockedge.probes import tensorrt_available

INSPECTOR = json.loads((DATA / "inspector_formats.json").read_text())
RECORDED_LAYERS = [f["layer"] for f in INSPECTOR["fixture_layers"]]  # an FP16 conv, an INT8 conv, an FP16 reformat


def plan_bytes(trt, onnx: Path, *, version_compatible: bool = False) -> bytes:
    """A plan as the fake's Builder writes it (the fake's own format), built by this fake version."""
    plan = {"version": trt.__version__, "onnx": str(onnx), "precision": "fp16",
            "version_compatible": version_compatible, "dla_core": None, "flags": [], "calibrated_batches": None,
            "profiles": []}
    return trt._PLAN_MAGIC + json.dumps(plan).encode()


def inspect(trt, data: bytes, **kw):
    from rockedge.engine import builder

    result = builder.BuildResult(seconds=0.0)
    builder._inspect(builder._logger(result.messages), data, result, **kw)
    return result


# -- _inspect ------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", VERSIONS)
def test_the_builder_reads_a_real_engines_inspector_json(fake_trt, onnx_models, monkeypatch, version):
    """Layers of trt-engine-explorer's example engines, as the inspector wrote them: each counted by the precision
    of its first output, and the engine's I/O read by name."""
    fake_trt(version)
    import tensorrt as trt

    info = json.dumps({"Layers": RECORDED_LAYERS, "Bindings": ["input.1", "output"]})
    monkeypatch.setattr(trt.EngineInspector, "get_engine_information", lambda self, fmt: info)
    result = inspect(trt, plan_bytes(trt, onnx_models["fp32"]))
    assert result.layer_precisions == {"fp16": 2, "int8": 1}
    assert result.inputs == {"images": {"shape": [1, 3, 64, 64], "dtype": "FLOAT"}}
    assert [v["shape"] for v in result.outputs.values()] == [[1, 2, 64, 64]]


@pytest.mark.parametrize("inspector", ["none", "not json", "a list", "no layers"])
def test_an_engine_that_cannot_say_its_layers_still_reports_its_io(fake_trt, onnx_models, monkeypatch, inspector):
    """create_engine_inspector may return None, and the JSON may be unreadable: no layer counts (the precision check
    then has nothing to judge), never a failed build."""
    from rockedge.engine.build import _check_precision

    fake_trt("10.3.0")
    import tensorrt as trt

    if inspector == "none":
        monkeypatch.setattr(trt.ICudaEngine, "create_engine_inspector", lambda self: None)
    else:
        text = {"not json": "Layers: 3", "a list": "[1, 2]", "no layers": '{"Bindings": []}'}[inspector]
        monkeypatch.setattr(trt.EngineInspector, "get_engine_information", lambda self, fmt: text)
    result = inspect(trt, plan_bytes(trt, onnx_models["fp32"]))
    assert result.layer_precisions == {} and list(result.inputs) == ["images"] and len(result.outputs) == 1
    verification: dict = {"passed": True}
    _check_precision(Precision.FP16, result.layer_precisions, verification)
    assert verification == {"passed": True}


def test_a_plan_the_builder_cannot_deserialize_says_what_tensorrt_said(fake_trt, onnx_models, monkeypatch):
    fake_trt("10.3.0")
    import tensorrt as trt

    with pytest.raises(RockedgeError, match=r"^TensorRT built a plan it cannot deserialize: ERROR: \[fake\] "
                                            r"Serialization assertion failed: Magic tag does not match$"):
        inspect(trt, b"not a plan")
    monkeypatch.setattr(trt.Runtime, "deserialize_cuda_engine", lambda self, data: None)  # silently
    with pytest.raises(RockedgeError, match=r"^TensorRT built a plan it cannot deserialize \(out of GPU memory\?\)$"):
        inspect(trt, plan_bytes(trt, onnx_models["fp32"]))


@pytest.mark.parametrize("version", ["8.6.1", "10.3.0", "11.0.0"])
def test_a_version_compatible_plan_is_inspected_only_with_host_code_allowed(fake_trt, onnx_models, version):
    fake_trt(version)
    import tensorrt as trt

    data = plan_bytes(trt, onnx_models["fp32"], version_compatible=True)
    with pytest.raises(RockedgeError, match="engine_host_code_allowed forbids"):
        inspect(trt, data)
    assert list(inspect(trt, data, host_code_allowed=True).inputs) == ["images"]


# -- _check_precision ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision, layers, fails", [
    (Precision.FP16, {"fp32": 40}, True),  # asked for FP16, built FP32: a silent FP32 engine
    (Precision.FP16, {"fp32": 40, "fp16": 1}, False),
    (Precision.INT8, {"fp16": 30, "fp32": 2}, True),  # INT8 asked, FP16 got
    (Precision.INT8, {"int8": 30, "fp32": 2}, False),
    (Precision.FP32, {"fp32": 40}, False),  # FP32 asks for nothing in particular
    (Precision.FP16, {}, False),  # no layer information: nothing to judge
])
def test_a_build_that_swallowed_its_precision_fails_verification(precision, layers, fails):
    from rockedge.engine.build import _check_precision

    verification: dict = {"passed": True, "failures": []}
    _check_precision(precision, layers, verification)
    assert verification["passed"] is (not fails)
    if fails:
        want = {Precision.FP16: "fp16", Precision.INT8: "int8"}[precision]
        assert verification["failures"] == [f"asked for {precision.value}, but no layer of the engine runs in {want} "
                                            f"({layers})"]


# -- verify_engine -------------------------------------------------------------------------------------------------


def _manifest(precision: str):
    from rockedge.runtime.manifest import EngineManifest
    from rockedge.spec import ModelSpec

    spec = ModelSpec(arch="lraspp_mobilenet_v3_large", input_size=(64, 64))
    return EngineManifest(spec=spec, tensorrt_version="10.3.0", gpu_name="Orin", compute_capability="8.7",
                          precision=precision)


def test_verify_engine_without_onnxruntime_says_so_instead_of_passing(monkeypatch, capsys, tmp_path):
    from rockedge.engine import build

    monkeypatch.setattr(build, "module_version", lambda name: None if name == "onnxruntime" else "1")
    out, table = build.verify_engine(tmp_path / ".m.123.tmp.plan", _manifest("fp16"), tmp_path / "m.onnx",
                                     data_dir=None, n=2, seed=0, max_drop=1.0, shown_as="m.fp16.plan")
    assert out == {"passed": None, "reason": "onnxruntime not installed on the build machine"} and table == ""
    err = capsys.readouterr().err
    assert "the engine was not compared with its ONNX; run `rockedge verify m.fp16.plan --reference m.onnx`" in err


@pytest.fixture
def verified(monkeypatch):
    """``verify(precision, drop, data_dir)``: verify_engine with parity that passes and an INT8 accuracy drop of
    ``drop`` points; returns the record, the table and whether the accuracy was measured."""
    from rockedge.engine import build

    class Side:
        def __init__(self, *args, **kw):
            pass

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    report = SimpleNamespace(passed=True, failures=[], to_dict=lambda: {"passed": True}, table=lambda: "parity table")
    measured: list = []
    monkeypatch.setattr(build, "OrtBackend", Side)
    monkeypatch.setattr(build, "TrtBackend", Side)
    monkeypatch.setattr(build, "verify_backends", lambda ref, cand, **kw: report)

    def verify(precision: str, drop: float, data_dir, max_drop: float = 1.0):
        def accuracy(ref, cand, data):
            measured.append(data)
            return {"class": "rock", "drop_points": drop, "caveats": ["the budget rests on 2 held-out images"]}

        monkeypatch.setattr(build, "accuracy_drop", accuracy)
        out, table = build.verify_engine(Path("m.plan"), _manifest(precision), Path("m.onnx"), data_dir=data_dir, n=2,
                                         seed=0, max_drop=max_drop)
        return out, table, bool(measured)

    return verify


def test_an_int8_engine_at_its_accuracy_budget_passes_and_just_over_fails(verified):
    out, table, measured = verified("int8", 1.0, "data")
    assert measured and out["passed"] is True and out["failures"] == []
    assert table == "parity table\nwarning: the budget rests on 2 held-out images"
    out, _, _ = verified("int8", 1.01, "data")
    assert out["passed"] is False and out["failures"] == ["rock IoU drops 1.01 points > --max-drop 1"]
    out, _, _ = verified("int8", 0.3, "data", max_drop=0.25)
    assert out["passed"] is False and out["failures"] == ["rock IoU drops 0.30 points > --max-drop 0.25"]


@pytest.mark.parametrize("precision, data_dir", [("fp16", "data"), ("int8", None)])
def test_the_accuracy_budget_needs_int8_and_labelled_data(verified, precision, data_dir):
    out, table, measured = verified(precision, 50.0, data_dir)
    assert not measured and out["passed"] is True and "accuracy" not in out and table == "parity table"


# -- the worker, through the real parent/child handshake -----------------------------------------------------------


def test_the_probe_answer_comes_back_from_the_real_worker(fake_trt):
    """`python -m rockedge.engine.worker` answers in the file the parent reads: a child that wrote anywhere else would
    leave the parent with nothing but an exit status."""
    from rockedge.engine.build import device_facts

    fake_trt("8.6.1", gpus=[{"name": "Xavier", "major": 7, "minor": 2}], dla_cores=2, total_memory=16 << 30)
    version, device, platform = device_facts()
    assert version == "8.6.1" and device.gpu_name == "Xavier" and device.compute_capability == (7, 2)
    assert device.dla_cores == 2 and platform["gpu"].startswith("Xavier (compute capability 7.2)")


@pytest.mark.skipif(tensorrt_available(), reason="a real TensorRT is installed here")
def test_without_tensorrt_the_worker_answers_unavailable_in_one_line(tmp_path):
    """The real worker, on a build request and on a probe, where TensorRT is not: the answer says TensorRT is missing
    and how to get it (not a traceback, not a KeyError of a malformed request)."""
    from rockedge import child
    from rockedge.engine import worker
    from rockedge.engine.build import run_worker
    from rockedge.engine.plan import BuildOptions, DeviceFacts, OnnxFacts, plan_build
    from rockedge.runtime.backends.trt import MISSING_TRT
    from rockedge.spec import ModelSpec

    facts = OnnxFacts("images", (1, 3, 64, 64), Precision.FP32)
    plan = plan_build("10.3.0", BuildOptions(precision=Precision.FP16), facts,
                      DeviceFacts("Orin", (8, 7), 8 << 30, is_jetson=True), default_hw=(64, 64))
    req = tmp_path / "request.json"
    req.write_text(json.dumps({"plan": plan.to_dict(), "onnx": str(tmp_path / "m.onnx"), "input_name": "images",
                               "staging": str(tmp_path / "x.plan"), "spec": ModelSpec(arch="x").to_dict()}))
    assert worker.main(["worker", str(req)]) == 1
    assert json.loads(child.result_path(req).read_text()) == {"ok": False, "error": MISSING_TRT, "unavailable": True}
    assert not (tmp_path / "x.plan").exists()
    with pytest.raises(BackendUnavailable) as e:  # the probe, in a real child process
        run_worker({"probe": True})
    assert str(e.value) == MISSING_TRT


# -- the TensorRT backend's refusals -------------------------------------------------------------------------------


def test_the_backend_refuses_what_tensorrt_refuses_in_one_line(fake_trt, onnx_models, tmp_path, monkeypatch, capsys):
    fake_trt("10.3.0")
    plan = tmp_path / "m.plan"
    code, _, err = export(onnx_models["fp32"], "--format", "engine", "--out", plan)
    assert code == 0, err
    import tensorrt as trt

    from rockedge.runtime.backends.trt import TrtBackend

    x = np.zeros((1, 3, 64, 64), np.float32)
    with TrtBackend(plan) as be:
        info = be.info
        assert (info.backend, info.device, info.precision) == ("tensorrt", "Orin", Precision.FP32)
        assert info.details["compute_capability"] == "8.7" and "10.3" in info.details["tensorrt"]
        with pytest.raises(RockedgeError, match=r"^engine input is float32, got uint8$"):
            be.infer(x.astype(np.uint8))
    cases = [
        (trt.IExecutionContext, "execute_async_v3", lambda self, stream: False,
         r"^TensorRT execution failed for m\.plan$"),
        (trt.IExecutionContext, "set_input_shape", lambda self, name, shape: False,
         r"^TensorRT rejected input shape \(1, 3, 64, 64\) for m\.plan$"),
        (trt.ICudaEngine, "create_execution_context", lambda self: None,
         r"^TensorRT could not create an execution context for m\.plan \(out of GPU memory\?\)$"),
        (trt.Runtime, "deserialize_cuda_engine", lambda self, data: None,
         r"^TensorRT 10\.3\.0 could not deserialize m\.plan \(corrupt, or built by another TensorRT/GPU despite its "
         r"manifest\); rebuild it on this device$"),
    ]
    for cls, name, fn, message in cases:
        with monkeypatch.context() as m:
            m.setattr(cls, name, fn)
            be = TrtBackend(plan)
            with pytest.raises(RockedgeError, match=message):
                be.infer(x)
            be.close()
            assert be.stream is None and be.buffers is None
    capsys.readouterr()
    fake_trt("10.3.0", gpus=[{"name": "Orin Nano", "major": 8, "minor": 7}])  # another GPU of the same capability
    with TrtBackend(plan) as be:
        assert be.infer(x).shape == (1, 2, 64, 64)
    assert "m.plan was built on Orin, running on Orin Nano (same compute capability" in capsys.readouterr().err
    fake_trt("10.3.0", gpus=[{"name": "RTX A4000", "major": 8, "minor": 6}])  # same major, another minor
    with pytest.raises(RockedgeError, match=r"built for Orin \(compute capability 8\.7\); this GPU is RTX A4000 "
                                            r"\(8\.6\)"):
        TrtBackend(plan).activate()


def test_a_tensorrt_that_is_only_stubs_or_does_not_load_is_one_line(tmp_path, monkeypatch):
    """tensorrt-stubs installs a 'tensorrt' without Runtime; a TensorRT whose libnvinfer is missing raises ImportError
    on import: neither is "pip install tensorrt"-missing, and each says what it is."""
    from rockedge.runtime.backends.trt import MISSING_TRT, import_tensorrt

    for name, body in (("stubs", "__version__ = '10.13.0'\n"),
                       ("broken", "raise ImportError('libnvinfer.so.10: cannot open shared object file')\n")):
        root = tmp_path / name
        (root / "tensorrt").mkdir(parents=True)
        (root / "tensorrt" / "__init__.py").write_text(body)
        with monkeypatch.context() as m:
            m.syspath_prepend(str(root))
            m.delitem(sys.modules, "tensorrt", raising=False)
            with pytest.raises(BackendUnavailable) as e:
                import_tensorrt()
            # not m.delitem: monkeypatch would put the stub back into sys.modules when the context ends
            sys.modules.pop("tensorrt", None)
        if name == "stubs":
            assert str(e.value) == MISSING_TRT
        else:
            assert str(e.value).startswith("tensorrt is installed but cannot be loaded: a shared library it needs is "
                                           "missing")
