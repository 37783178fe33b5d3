"""Models rockedge did not export: a spec from the command line, tensors found by shape, and `rockedge spec`."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import pytest
from click.testing import CliRunner

from rockedge.cli import main
from rockedge.errors import RockedgeError
from rockedge.runtime.modelio import SpecFlags, resolve_io
from rockedge.spec import ModelSpec
from rockedge.tensors import TensorInfo

MNV3 = "deeplabv3_mobilenet_v3_large"


def _invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def plain_onnx(trained_ckpt, tmp_path_factory) -> Path:
    """The fixture checkpoint exported the way most people do it: torch.onnx.export of the torchvision model,
    its dict outputs kept as "out" and "aux", no metadata."""
    import torch

    from rockedge.models.checkpoint import load_checkpoint
    from rockedge.models.zoo import build_model

    ckpt = load_checkpoint(trained_ckpt(arch=MNV3))
    model = build_model(arch=MNV3, num_classes=2, aux_loss=True).eval()
    model.load_state_dict({**model.state_dict(), **ckpt.state_dict})
    path = tmp_path_factory.mktemp("foreign") / "torchvision.onnx"
    with torch.no_grad():
        torch.onnx.export(model, (torch.randn(1, 3, 64, 64),), str(path), dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["out", "aux"])
    return path


@pytest.fixture
def image(scenes, tmp_path) -> Path:
    p = tmp_path / "rocks.png"
    cv2.imwrite(str(p), scenes(1, 64, 64, seed=3)[0][0])
    return p


def test_foreign_onnx_without_flags_says_how_to_describe_it(plain_onnx, image, tmp_path):
    r = _invoke("run", plain_onnx, image, "--out", tmp_path / "o", "-q")
    assert r.exit_code == 1 and "carries no rockedge model spec: describe it with --classes" in r.output
    assert "rockedge spec write" in r.output and len(r.output.strip().splitlines()) == 1


def test_foreign_onnx_runs_with_classes_and_segments_like_the_checkpoint(plain_onnx, trained_ckpt, image, tmp_path):
    r = _invoke("run", plain_onnx, image, "--classes", "background,rock", "--out", tmp_path / "o", "--save-mask", "-q")
    assert r.exit_code == 0, r.output
    mask = cv2.imread(str(tmp_path / "o" / "masks" / "rocks.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (64, 64) and 0 < mask.mean() < 1
    # Same weights as the rockedge checkpoint: parity must hold (the "out" head was picked, not "aux").
    r = _invoke("verify", plain_onnx, "--reference", trained_ckpt(arch=MNV3), "--classes", "background,rock", "--n", 3)
    assert r.exit_code == 0, r.output
    assert "result: PASS" in r.output


def test_a_class_list_that_does_not_fit_the_output_is_an_error(plain_onnx, image, tmp_path):
    r = _invoke("run", plain_onnx, image, "--classes", "background,rock,sand", "--out", tmp_path / "o", "-q")
    assert r.exit_code == 1 and "output out has 2 channels, but the spec names 3 classes" in r.output
    assert not (tmp_path / "o").exists()


def test_spec_write_once_then_no_flags(plain_onnx, image, tmp_path):
    out = tmp_path / "described.onnx"
    r = _invoke("spec", "write", plain_onnx, "--classes", "background,rock", "--palette", "#000000,#00ff00",
                "--out", out)
    assert r.exit_code == 0, r.output
    assert "2 classes (background, rock)" in r.output
    r = _invoke("spec", "show", out, "--json", "-")
    shown = json.loads(r.stdout)
    assert shown["spec"]["classes"] == ["background", "rock"] and shown["spec"]["palette"][1] == [0, 255, 0]
    assert shown["source"] == "onnx metadata" and shown["precision"] == "fp32"
    r = _invoke("run", out, image, "--out", tmp_path / "o", "-q")
    assert r.exit_code == 0, r.output
    import onnx  # the copy is still a valid model whose graph is untouched

    a, b = onnx.load(str(plain_onnx)), onnx.load(str(out))
    onnx.checker.check_model(b)
    assert a.graph.SerializeToString() == b.graph.SerializeToString()


def test_eval_takes_the_flags_too(plain_onnx, tmp_path):
    from rockedge.data.synth import write_synth_dataset

    data = write_synth_dataset(tmp_path / "d", n=5, size_hw=(64, 64), progress=False)
    r = _invoke("eval", plain_onnx, "--data", data, "--classes", "background,rock", "--json", "-", "-q")
    assert r.exit_code == 0, r.output
    assert set(json.loads(r.stdout)["iou"]) == {"background", "rock"}


def test_plan_manifest_from_its_onnx_or_from_flags(tmp_path, trained_ckpt):
    from rockedge.digest import sha256_file
    from rockedge.export.onnx import export_onnx
    from rockedge.runtime.manifest import read_manifest

    onnx_path = export_onnx(trained_ckpt(arch=MNV3), tmp_path / "m.onnx", progress=False).path
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"a plan built by trtexec")
    r = _invoke("spec", "write", plan, "--from", onnx_path)
    assert r.exit_code == 0, r.output
    m = read_manifest(plan)
    assert m.spec.classes == ("background", "rock") and m.onnx_sha256 == sha256_file(onnx_path)
    assert m.plan_sha256 == sha256_file(plan) and m.spec.input_size == (64, 64)
    assert "does not record which TensorRT" in r.output  # no TensorRT here: said, not faked
    # the ONNX's input is fixed, so the plan's is too: recorded, as serving it (Triton) needs
    assert m.input_shapes == {"images": {k: [1, 3, 64, 64] for k in ("min", "opt", "max")}}
    dyn = export_onnx(trained_ckpt(arch=MNV3), tmp_path / "dyn.onnx", dynamic=True, progress=False).path
    r = _invoke("spec", "write", plan, "--from", dyn)
    assert r.exit_code == 0 and "does not record m.plan's input shapes" in r.output, r.output
    assert read_manifest(plan).input_shapes == {}
    other = tmp_path / "other.plan"
    other.write_bytes(b"x")
    r = _invoke("spec", "write", other, "--classes", "background,rock", "--precision", "fp16")
    assert r.exit_code == 0, r.output
    assert read_manifest(other).precision.value == "fp16"
    r = _invoke("spec", "show", other)
    assert "background, rock" in r.output and "manifest other.plan.json" in r.output
    r = _invoke("spec", "write", tmp_path / "third.plan")
    assert r.exit_code == 1


# -- resolve_io on exactly known tensors ------------------------------------------------------------------------


def _img(name="input", shape=(1, 3, 64, 64), dtype="float32") -> TensorInfo:
    return TensorInfo(name, shape, dtype)


def test_inputs_and_outputs_found_by_shape():
    spec, inp, out = resolve_io("m", [_img()], [TensorInfo("aux", (1, 2, 64, 64), "float32"),
                                                TensorInfo("out", (1, 2, 64, 64), "float32")],
                                None, SpecFlags(classes=("bg", "rock")))
    assert out.name == "out" and inp.size_hw == (64, 64) and spec.input_size == (64, 64)
    spec, _, out = resolve_io("m", [_img(shape=(None, 3, None, None))], [TensorInfo("y", (None, 5, None, None), "float32"),
                                                                           TensorInfo("m", (None, None, None), "int64")],
                              None, SpecFlags(classes=("a", "b"), imgsz=(96, 128)))
    assert out.name == "m" and spec.output_format == "mask" and spec.input_size == (96, 128)


def test_raw_uint8_input_is_recognised():
    spec, inp, _ = resolve_io("m", [_img(shape=(1, 48, 64, 3), dtype="uint8")],
                              [TensorInfo("mask", (1, 48, 64), "int32")], None, SpecFlags(classes=("a", "b")))
    assert spec.input_format == "raw" and inp.layout == "NHWC" and spec.input_size == (48, 64)


@pytest.mark.parametrize(
    "inputs, flags, message",
    [
        ([_img("a"), _img("b")], SpecFlags(classes=("x", "y")), "several inputs"),
        ([_img()], SpecFlags(classes=("x", "y"), input_name="nope"), "no input named 'nope'"),
        ([_img()], SpecFlags(classes=("x", "y"), input_format="raw"), "raw input means uint8 NHWC"),
        ([_img(shape=(1, 64, 64))], SpecFlags(classes=("x", "y")), "rockedge feeds 4-D images"),
    ],
)
def test_wrong_guesses_are_errors(inputs, flags, message):
    with pytest.raises(RockedgeError, match=message):
        resolve_io("m", inputs, [TensorInfo("out", (1, 2, 64, 64), "float32")], None, flags)


def test_a_model_with_a_spec_keeps_it():
    spec = ModelSpec(arch=MNV3, input_size=(64, 64))
    got, _, _ = resolve_io("m", [_img()], [TensorInfo("logits", (1, 2, 64, 64), "float32")], spec,
                           SpecFlags(palette=((1, 2, 3), (4, 5, 6))))
    assert got.classes == spec.classes and got.palette == ((1, 2, 3), (4, 5, 6))
    with pytest.raises(RockedgeError, match="has its own model spec"):
        resolve_io("m", [_img()], [TensorInfo("logits", (1, 2, 64, 64), "float32")], spec, SpecFlags(std=(1, 1, 1)))
    renamed, _, _ = resolve_io("m", [_img()], [TensorInfo("logits", (1, 2, 64, 64), "float32")], spec,
                               SpecFlags(classes=("ground", "stone")), assumed=True)
    assert renamed.classes == ("ground", "stone")
