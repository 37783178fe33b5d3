"""`rockedge verify`: any two models rockedge can open; exit code is the verdict."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from click.testing import CliRunner

from rockedge.cli import main
from rockedge.export.onnx import export_onnx
from rockedge.verify.compare import default_frames

MNV3 = "deeplabv3_mobilenet_v3_large"


def verify(*args) -> "click.testing.Result":  # noqa: F821
    return CliRunner().invoke(main, ["verify", *map(str, args)])


@pytest.fixture(scope="module")
def models(trained_ckpt, tmp_path_factory) -> dict[str, Path]:
    import torch

    ckpt = trained_ckpt()
    root = tmp_path_factory.mktemp("verify")
    onnx_path = export_onnx(ckpt, root / "m.onnx", progress=False).path
    # A checkpoint that really segments differently: the rock logit shifted by a margin.
    payload = torch.load(ckpt, weights_only=True)
    sd = payload["state_dict"]
    sd[next(k for k in ("classifier.high_classifier.bias", "classifier.4.bias") if k in sd)][1] += 1.0
    shifted = root / "shifted.pt"
    torch.save(payload, shifted)
    return {"ckpt": ckpt, "onnx": onnx_path, "shifted": shifted}


def test_checkpoint_vs_onnx_passes_and_writes_report(models, tmp_path):
    report = tmp_path / "r" / "verify.json"
    res = verify(models["onnx"], "--reference", models["ckpt"], "--n", 4, "--json", report)
    assert res.exit_code == 0, res.output
    assert "result: PASS" in res.output
    data = json.loads(report.read_text())
    assert data["passed"] is True and data["agreement"] >= 0.9999
    assert data["candidate"]["backend"] == "onnxruntime" and data["reference"]["backend"] == "torch"
    assert min(data["reference_class_share"].values()) > 0.05


def test_different_models_fail_with_exit_1(models, tmp_path):
    report = tmp_path / "fail.json"
    res = verify(models["shifted"], "--reference", models["ckpt"], "--n", 3, "--json", report)
    assert res.exit_code == 1
    assert "result: FAIL" in res.output and res.output.strip().splitlines()[-1].startswith("error: parity over")
    assert json.loads(report.read_text())["passed"] is False  # the report survives the failure
    # The same pair within a loose enough budget passes: the budget, not the pair, decides.
    res = verify(models["shifted"], "--reference", models["ckpt"], "--n", 3, "--min-agreement", 0, "--min-boundary", 0,
                 "--min-iou", 0, "--max-abs-diff", 100)
    assert res.exit_code == 0, res.output


def test_verify_on_dataset_images(models, tmp_path):
    data = tmp_path / "ds"
    for split in ("train", "val"):
        (data / split / "images").mkdir(parents=True)
        (data / split / "masks").mkdir(parents=True)
    frames = default_frames(3, (70, 90), seed=11)  # not the model size: prepare() resizes
    for i, f in enumerate(frames):
        for split in ("train", "val"):
            cv2.imwrite(str(data / split / "images" / f"{i}.png"), f)
            cv2.imwrite(str(data / split / "masks" / f"{i}.png"), np.zeros(f.shape[:2], np.uint8))
    got = default_frames(3, (64, 64), data_dir=data)
    assert len(got) == 3 and all(np.array_equal(a, b) for a, b in zip(got, frames))
    res = verify("--model", models["onnx"], "--reference", models["ckpt"], "--data", data, "--n", 3)
    assert res.exit_code == 0, res.output
    assert "val, 3 of 3" in res.output


def test_verify_bad_inputs(models, tmp_path):
    res = verify(tmp_path / "none.onnx", "--reference", models["ckpt"])
    assert res.exit_code == 1 and "not found" in res.output and "Traceback" not in res.output
    res = verify(models["onnx"], "--reference", models["ckpt"], "--imgsz", 32)  # the ONNX is fixed at 64x64
    assert res.exit_code == 1 and "does not fit" in res.output
    res = verify(models["onnx"])
    assert res.exit_code == 2 and "--reference" in res.output and len(res.output.strip().splitlines()) == 1
