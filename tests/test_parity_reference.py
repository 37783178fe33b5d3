"""The exported graph, run by ONNX's own reference evaluator, agrees with PyTorch: parity is not only
"ONNX Runtime agrees with itself". MobileNetV3 at 32x32 (ResNet-50 exhausts memory in the evaluator)."""

from __future__ import annotations

import numpy as np
import onnx
from onnx.reference import ReferenceEvaluator

from rockedge.export.onnx import export_onnx
from rockedge.runtime.backends.pytorch import TorchBackend
from rockedge.runtime.preprocess import prepare, to_masks
from rockedge.verify.compare import default_frames
from rockedge.verify.metrics import MaskAgreement


def test_reference_evaluator_matches_pytorch(trained_ckpt, tmp_path):
    ckpt = trained_ckpt(arch="deeplabv3_mobilenet_v3_large")
    res = export_onnx(ckpt, tmp_path / "tiny.onnx", imgsz=(32, 32), input_format="raw", progress=False)
    frames = default_frames(1, (32, 32), seed=4)
    raw, _ = prepare(frames, res.spec)
    (got,) = ReferenceEvaluator(onnx.load(str(res.path))).run(None, {"images": raw})
    torch_be = TorchBackend(ckpt)
    want = torch_be.infer(prepare(frames, torch_be.spec, (32, 32))[0])
    assert got.shape == want.shape == (1, 2, 32, 32)
    assert np.abs(got - want).max() < 1e-3
    agree = MaskAgreement(2)
    agree.update(to_masks(want, torch_be.spec), to_masks(got, res.spec))
    assert agree.agreement >= 0.999
