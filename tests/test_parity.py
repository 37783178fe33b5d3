"""The logit tolerances of a parity budget are relative to the reference's logit scale."""

from __future__ import annotations

import numpy as np

from rockedge.export.parity import ParityBudget, compare
from rockedge.runtime.backends.base import Backend
from rockedge.spec import ModelSpec

SPEC = ModelSpec(arch="deeplabv3_mobilenet_v3_large", input_size=(16, 16))


class Fixed(Backend):
    """Returns the given logits whatever the input: parity logic on exactly known numbers."""

    def __init__(self, logits: np.ndarray) -> None:
        super().__init__(SPEC)
        self.logits = logits

    def infer(self, batch: np.ndarray) -> np.ndarray:
        return np.repeat(self.logits[None], batch.shape[0], axis=0)


def _logits(scale: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((2, 16, 16)) * scale).astype(np.float32)


def test_large_logits_pass_with_relative_fp32_noise():
    ref = _logits(3000.0)  # logits in the thousands, as a briefly trained ResNet-50 has
    cand = ref * (1 + 2e-6)  # relative FP32-level error: ~2e-2 absolute at this scale
    frame = [np.zeros((16, 16, 3), np.uint8)]
    r = compare(Fixed(ref), Fixed(cand.astype(np.float32)), frame)
    assert r.max_abs_diff > 1e-2  # an absolute budget (0.01 or tighter) would have failed this export
    assert r.logit_scale > 1000 and r.passed, r.failures


def test_real_differences_still_fail():
    ref = _logits(3000.0)
    cand = ref.copy()
    cand[:, :4] += 500.0  # a genuine error, far above FP32 noise at this scale
    r = compare(Fixed(ref), Fixed(cand), [np.zeros((16, 16, 3), np.uint8)])
    assert not r.passed and any("logit diff" in f for f in r.failures)


def test_small_logits_keep_the_absolute_floor():
    ref = _logits(0.1)  # scale < 1: the budget stays 1e-3 absolute, never tighter
    cand = ref + 5e-4
    r = compare(Fixed(ref), Fixed(cand), [np.zeros((16, 16, 3), np.uint8)],
                budget=ParityBudget.for_precision("fp32", min_agreement=0.0, min_boundary_agreement=0.0, min_iou=0.0))
    assert r.logit_scale == 1.0 and r.passed
    r = compare(Fixed(ref), Fixed(ref + 2e-3), [np.zeros((16, 16, 3), np.uint8)],
                budget=ParityBudget.for_precision("fp32", min_agreement=0.0, min_boundary_agreement=0.0, min_iou=0.0))
    assert not r.passed
