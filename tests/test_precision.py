"""FP16 and INT8 ONNX models held to their budgets: conversion, Q/DQ placement TensorRT accepts, the accuracy
budget that falls back to FP32 layers or stops, and the one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import onnx
import pytest
from click.testing import CliRunner

from rockedge.cli import main
from rockedge.errors import RockedgeError

LRASPP = "lraspp_mobilenet_v3_large"


@pytest.fixture(scope="module")
def blobs(tmp_path_factory) -> Path:
    """A labelled set of blob scenes (what the fixture models are trained on), train and val splits."""
    from conftest import blob_scene

    root = tmp_path_factory.mktemp("blobs")
    rng = np.random.default_rng(0)
    for split, n in (("train", 16), ("val", 8)):
        (root / split / "images").mkdir(parents=True)
        (root / split / "masks").mkdir(parents=True)
        for i in range(n):
            img, mask = blob_scene(rng, 64, 64)
            cv2.imwrite(str(root / split / "images" / f"{i}.png"), img)
            cv2.imwrite(str(root / split / "masks" / f"{i}.png"), mask)
    return root


@pytest.fixture(scope="module")
def fp32(trained_ckpt, tmp_path_factory) -> Path:
    from rockedge.export.onnx import export_onnx

    # Trained long enough that it segments blobs well: then INT8 noise costs accuracy instead of adding it.
    ckpt = trained_ckpt(arch=LRASPP, steps=300)
    return export_onnx(ckpt, tmp_path_factory.mktemp("prec") / "m.onnx", progress=False).path


@pytest.fixture(scope="module")
def grey(tmp_path_factory) -> Path:
    """A calibration set of one flat grey frame: every activation range comes out far too narrow."""
    d = tmp_path_factory.mktemp("grey")
    cv2.imwrite(str(d / "grey.png"), np.full((64, 64, 3), 90, np.uint8))
    return d


def _export(*args) -> "click.testing.Result":  # noqa: F821
    return CliRunner().invoke(main, ["export", *map(str, args), "-q"])


def test_int8_qdq_model_is_what_tensorrt_accepts_and_meets_the_budget(fp32, blobs, tmp_path):
    out = tmp_path / "m.int8.onnx"
    r = _export(fp32, "--int8", "--data", blobs, "--calib-n", 16, "--out", out)
    assert r.exit_code == 0, r.output
    m = onnx.load(str(out))
    onnx.checker.check_model(m)  # topologically sorted, as Netron, onnxsim and older onnx-tensorrt expect
    ops = [n.op_type for n in m.graph.node]
    assert ops.count("QuantizeLinear") > 20 and ops.count("DequantizeLinear") > 20
    assert {o.version for o in m.opset_import if o.domain in ("", "ai.onnx")} == {17}  # TensorRT 8.5 parses it
    inits = {i.name: i for i in m.graph.initializer}
    zero_points = [inits[n.input[2]] for n in m.graph.node if n.op_type == "QuantizeLinear" and n.input[2] in inits]
    assert zero_points and all(z.data_type == onnx.TensorProto.INT8 for z in zero_points)  # symmetric int8 only
    assert all(not onnx.numpy_helper.to_array(z).any() for z in zero_points)
    per_channel = [n for n in m.graph.node if n.op_type == "QuantizeLinear"
                   and n.input[1] in inits and inits[n.input[1]].dims and inits[n.input[1]].dims[0] > 1]
    assert per_channel, "weights are quantized per output channel"
    assert not any(n.op_type == "DequantizeLinear" and inits.get(n.input[0]) is not None
                   and inits[n.input[0]].data_type == onnx.TensorProto.INT32 for n in m.graph.node)  # no int32 bias
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["rockedge.precision"] == "int8" and "rockedge.spec" in meta
    settings = json.loads(meta["rockedge.export"])
    assert settings["method"] == "minmax" and settings["calibration"]["n"] == 16
    report = json.loads((tmp_path / "m.int8.parity.json").read_text())
    assert report["budget"]["passed"] and report["budget"]["chosen_step"] == 0  # met with every layer in INT8
    # 8 val images are too few for a budget to mean much: the report and the output say so, with the basis
    b = report["budget"]
    assert b["images"] == 8 and 0 < b["class_pixels"] < 8 * 64 * 64
    assert any(c.startswith("the budget rests on 8 held-out images") for c in b["caveats"])
    assert "warning: the budget rests on 8 held-out images" in r.output
    assert "rock IoU" in r.output and "speed-up" in r.output  # FP32 vs INT8 side by side


def test_budget_keeps_sensitive_layers_in_fp32_until_it_is_met(fp32, blobs, grey, tmp_path):
    """A flat calibration frame clips every activation: the full INT8 model loses many points, and the budget
    keeps the layers that add most error in FP32 until it is within 8 points."""
    r = _export(fp32, "--int8", "--data", blobs, "--calib-data", grey, "--calib-n", 1, "--calib-method", "minmax",
                "--max-drop", 8, "--out", tmp_path / "fb.int8.onnx")
    assert r.exit_code == 0, r.output
    budget = json.loads((tmp_path / "fb.int8.parity.json").read_text())["budget"]
    assert budget["passed"] and budget["steps"][0]["drop_points"] > 8
    chosen = budget["steps"][budget["chosen_step"]]
    assert chosen["kept_fp32"] > 0 and chosen["drop_points"] <= 8
    assert len(budget["kept_fp32"]) == chosen["kept_fp32"] and budget["sensitivity_db"]
    m = onnx.load(str(tmp_path / "fb.int8.onnx"))
    onnx.checker.check_model(m)  # with layers switched back to FP32 too
    assert json.loads({p.key: p.value for p in m.metadata_props}["rockedge.export"])["kept_fp32"] == budget["kept_fp32"]


def test_a_budget_no_setting_meets_stops_with_the_best_model_kept(fp32, blobs, grey, tmp_path):
    out = tmp_path / "st.int8.onnx"
    # The same flat calibration loses tens of points; one layer kept in FP32 recovers most, not all of them.
    r = _export(fp32, "--int8", "--data", blobs, "--calib-data", grey, "--calib-n", 1, "--calib-method", "minmax",
                "--max-drop", 2, "--max-fp32", 1, "--out", out)
    assert r.exit_code == 1
    assert r.output.strip().splitlines()[-1].startswith("error: the int8 step is over its budget")
    assert "NOT met" in r.output
    assert not out.exists() and (tmp_path / "st.int8.failed.onnx").is_file()
    assert not (tmp_path / "st.int8.parity.json").exists()  # the report of a failure sits beside the .failed file
    budget = json.loads((tmp_path / "st.int8.failed.parity.json").read_text())["budget"]
    assert not budget["passed"] and [s["kept_fp32"] for s in budget["steps"]] == [0, 1]
    best = min(budget["steps"], key=lambda s: s["drop_points"])
    assert budget["steps"][budget["chosen_step"]] == best and best["drop_points"] > 2


def test_fp16_onnx_keeps_float32_io_and_passes_fp16_parity(fp32, blobs, tmp_path):
    r = _export(fp32, "--half", "--data", blobs)
    assert r.exit_code == 0, r.output
    half = fp32.with_name("m.fp16.onnx")
    m = onnx.load(str(half))
    assert m.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert m.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT  # the onnxconverter-common bug, fixed
    assert any(i.data_type == onnx.TensorProto.FLOAT16 for i in m.graph.initializer)
    assert {p.key: p.value for p in m.metadata_props}["rockedge.precision"] == "fp16"
    report = json.loads(half.with_name("m.fp16.parity.json").read_text())
    assert report["parity"]["passed"] and report["parity"]["agreement"] >= 0.999
    from rockedge.runtime.backends.ort import OrtBackend

    with OrtBackend(half) as be:
        assert be.info.precision.value == "fp16" and be.infer(np.zeros((1, 3, 64, 64), np.float32)).dtype == np.float32


@pytest.mark.parametrize("args, message", [
    (["--int8"], "--int8 needs --data DIR, a labelled dataset"),
    (["--int8", "--data", "{images}"], "is not a labelled dataset"),
    (["--int8", "--data", "{blobs}", "--calib-data", "{empty}"], "no images in"),
    (["--int8", "--data", "{blobs}", "--calib-data", "{nowhere}"], "source not found"),
    (["--int8", "--half"], "choose one"),
])
def test_bad_precision_requests_are_one_line_and_write_nothing(fp32, blobs, tmp_path, args, message):
    (tmp_path / "empty").mkdir()
    (tmp_path / "images").mkdir()
    cv2.imwrite(str(tmp_path / "images" / "a.png"), np.zeros((8, 8, 3), np.uint8))
    subs = {"{blobs}": str(blobs), "{empty}": str(tmp_path / "empty"), "{images}": str(tmp_path / "images"),
            "{nowhere}": str(tmp_path / "nowhere")}
    out = tmp_path / "x.int8.onnx"
    r = _export(fp32, *[subs.get(a, a) for a in args], "--out", out)
    assert r.exit_code == 1, r.output
    lines = r.output.strip().splitlines()
    assert len(lines) == 1 and message in lines[0] and "Traceback" not in r.output
    assert not out.exists() and not list(tmp_path.glob("x.*"))


def test_reduced_precision_starts_from_fp32(fp32, blobs, tmp_path):
    r = _export(fp32, "--half", "--data", blobs, "--out", tmp_path / "h.onnx")
    assert r.exit_code == 0
    with pytest.raises(RockedgeError, match="already fp16; --half/--int8 start from the FP32 model"):
        from rockedge.calibration.inputs import read_fp32

        read_fp32(tmp_path / "h.onnx")


# -- the CPU target ------------------------------------------------------------------------------------------------

def test_int8_for_the_cpu_is_onnx_runtimes_layout_and_meets_the_same_budget(fp32, blobs, tmp_path):
    out = tmp_path / "c.int8.onnx"
    r = _export(fp32, "--int8", "--target", "cpu", "--data", blobs, "--calib-n", 16, "--out", out)
    assert r.exit_code == 0, r.output
    m = onnx.load(str(out))
    onnx.checker.check_model(m)
    inits = {i.name: i for i in m.graph.initializer}
    producers = {o: n for n in m.graph.node for o in n.output}
    convs = [n for n in m.graph.node if n.op_type == "Conv"]
    # every Conv reads a dequantized activation and an int8 weight stored as int8, and its output is quantized
    assert convs and all(producers[n.input[0]].op_type == "DequantizeLinear" for n in convs)
    weights = [producers[n.input[1]] for n in convs]
    assert all(w.op_type == "DequantizeLinear" and inits[w.input[0]].data_type == onnx.TensorProto.INT8 for w in weights)
    consumers = {i: n for n in m.graph.node for i in n.input}
    assert all(consumers[n.output[0]].op_type == "QuantizeLinear" for n in convs)
    zps = [inits[n.input[2]] for n in m.graph.node if n.op_type == "QuantizeLinear" and n.input[2] in inits]
    assert any(z.data_type == onnx.TensorProto.UINT8 for z in zps)  # uint8 activations with a zero point
    meta = {p.key: p.value for p in m.metadata_props}
    assert meta["rockedge.int8_target"] == "cpu" and meta["rockedge.precision"] == "int8"
    report = json.loads((tmp_path / "c.int8.parity.json").read_text())
    assert report["target"] == "cpu" and report["budget"]["passed"]
    assert report["parity"]["candidate"]["int8_target"] == "cpu"
    show = CliRunner().invoke(main, ["spec", "show", str(out)])
    assert "int8_target   cpu" in show.output


def test_the_cpu_target_falls_back_to_fp32_layers_like_the_tensorrt_one(fp32, blobs, grey, tmp_path):
    r = _export(fp32, "--int8", "--target", "cpu", "--data", blobs, "--calib-data", grey, "--calib-n", 1,
                "--max-drop", 8, "--out", tmp_path / "cfb.int8.onnx")
    assert r.exit_code == 0, r.output
    budget = json.loads((tmp_path / "cfb.int8.parity.json").read_text())["budget"]
    assert budget["steps"][0]["drop_points"] > 8  # a flat calibration frame ruins the full INT8 model
    chosen = budget["steps"][budget["chosen_step"]]
    assert chosen["kept_fp32"] > 0 and chosen["drop_points"] <= 8


def test_the_wrong_target_says_what_it_costs(fp32, blobs, tmp_path, monkeypatch, capsys):
    from helpers import cli_runner

    from rockedge.runtime.backends import ort

    monkeypatch.setattr(ort, "_SAID", set())  # "once per process": start this test's process afresh
    trt = tmp_path / "t.int8.onnx"
    r = cli_runner().invoke(main, ["export", str(fp32), "--int8", "--data", str(blobs), "--calib-n", "8", "--out",
                                   str(trt), "-q"])
    assert r.exit_code == 0, r.stderr
    # the export's own checks run the TensorRT layout on the CPU provider: the user asked for TensorRT, no note
    assert "laid out for TensorRT" not in r.output + r.stderr
    r = cli_runner().invoke(main, ["eval", str(trt), "--data", str(blobs), "-q"])
    assert r.exit_code == 0, r.stderr
    assert r.stderr.count("is INT8 laid out for TensorRT") == 1 and "--target cpu" in r.stderr
    assert f"note: {trt.name} is INT8" in r.stderr  # the user's file, not a staging name
    capsys.readouterr()
    for _ in range(2):  # said once per process: opening the model again says nothing
        with ort.OrtBackend(trt, providers=["cpu"]):
            pass
    assert "laid out for TensorRT" not in capsys.readouterr().err
    cpu = tmp_path / "c.int8.onnx"
    assert _export(fp32, "--int8", "--target", "cpu", "--data", blobs, "--calib-n", 8, "--out", cpu).exit_code == 0
    r = cli_runner().invoke(main, ["export", str(cpu), "--format", "engine"])
    assert r.exit_code == 1 and "laid out for ONNX Runtime's CPU provider" in r.stderr
    assert "--target tensorrt" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    r = cli_runner().invoke(main, ["export", str(fp32), "--target", "cpu"])
    assert r.exit_code == 1 and "--target is the layout of an INT8 model: add --int8" in r.stderr


def test_a_cpu_target_export_over_its_budget_is_kept_as_failed(fp32, blobs, grey, tmp_path):
    out = tmp_path / "co.int8.onnx"
    # a flat calibration frame ruins the full INT8 model, and no layer may go back to FP32
    r = _export(fp32, "--int8", "--target", "cpu", "--data", blobs, "--calib-data", grey, "--calib-n", 1,
                "--max-drop", 1, "--max-fp32", 0, "--out", out)
    assert r.exit_code == 1, r.output
    assert r.output.strip().splitlines()[-1].startswith("error: the int8 step is over its budget")
    assert not out.exists() and not (tmp_path / "co.int8.parity.json").exists()
    failed = tmp_path / "co.int8.failed.onnx"
    assert {p.key: p.value for p in onnx.load(str(failed)).metadata_props}["rockedge.int8_target"] == "cpu"
    report = json.loads((tmp_path / "co.int8.failed.parity.json").read_text())
    assert report["target"] == "cpu" and not report["budget"]["passed"]
    assert [s["kept_fp32"] for s in report["budget"]["steps"]] == [0] and report["budget"]["steps"][0]["drop_points"] > 1


def test_benchmark_labels_int8_models_with_their_layout(fp32, blobs, tmp_path):
    cpu = tmp_path / "b.int8.onnx"
    assert _export(fp32, "--int8", "--target", "cpu", "--data", blobs, "--calib-n", 4, "--out", cpu).exit_code == 0
    r = CliRunner().invoke(main, ["benchmark", str(cpu), str(fp32), "--runs", "2", "--warmup", "1", "--out",
                                  str(tmp_path / "b"), "-q"])
    assert r.exit_code == 0, r.output
    rows = {ln.split()[0]: ln.split()[3] for ln in r.output.splitlines() if ln.startswith(("b.int8.onnx", "m.onnx"))}
    assert rows == {"b.int8.onnx": "int8/cpu", "m.onnx": "fp32"}
    report = json.loads((tmp_path / "b" / "benchmark.json").read_text())
    assert {(row["precision"], row["int8_target"]) for row in report["rows"]} == {("int8", "cpu"), ("fp32", None)}


def test_budget_caveats_follow_the_basis():
    from rockedge.verify.accuracy import Scores, caveats

    fair = Scores(0.6, 0.7, 1.0, images=40, class_pixels=200_000)
    assert caveats(fair, "rock") == []
    assert "1 held-out image, 900 labelled rock pixels" in caveats(Scores(0.6, 0.7, 1.0, 1, 900), "rock")[0]
    near_zero = caveats(Scores(0.003, 0.5, 1.0, images=40, class_pixels=200_000), "rock")
    assert len(near_zero) == 1 and "scores 0.3 % rock IoU" in near_zero[0]

