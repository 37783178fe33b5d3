"""Parity scoring on exactly known outputs: relative logit budgets, ties, and non-finite values that never pass.

``score`` is the second half of ``compare`` (run both backends, then score), so these tests feed it
outputs directly instead of running models.
"""

from __future__ import annotations

import numpy as np
import pytest

from rockedge.spec import ModelSpec
from rockedge.verify.parity import BackendRun, ParityBudget, score

SPEC = ModelSpec(arch="deeplabv3_mobilenet_v3_large", input_size=(16, 16))
LOOSE = ParityBudget.for_precision("fp32", min_agreement=0.0, min_boundary_agreement=0.0, min_iou=0.0)


def _logits(scale: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    return (rng.standard_normal((2, 16, 16)) * scale).astype(np.float32)


def _run(*outputs: np.ndarray, spec: ModelSpec = SPEC) -> BackendRun:
    from rockedge.runtime.batching import count_nonfinite

    return BackendRun({"backend": "fixed"}, spec, list(outputs), 0.0, sum(count_nonfinite(o) for o in outputs))


def _score(ref: np.ndarray, cand: np.ndarray, budget: ParityBudget | None = None):
    return score(_run(ref), _run(cand), budget=budget or ParityBudget.for_precision("fp32"), size=(16, 16), batch=1)


def test_large_logits_pass_with_relative_fp32_noise():
    ref = _logits(3000.0)  # logits in the thousands, as a briefly trained ResNet-50 has
    cand = (ref * (1 + 2e-6)).astype(np.float32)  # relative FP32-level error: ~2e-2 absolute at this scale
    r = _score(ref, cand)
    assert r.max_abs_diff > 1e-2  # an absolute budget (0.01 or tighter) would have failed this export
    assert r.logit_scale > 1000 and r.passed, r.failures


def test_real_differences_still_fail():
    ref = _logits(3000.0)
    cand = ref.copy()
    cand[1, :4] += 3000.0 * 4  # a genuine error, far above FP32 noise at this scale: the top rows turn rock
    r = _score(ref, cand)
    changed = (ref.argmax(0) != cand.argmax(0)).mean()
    assert 0.1 < changed <= 0.25  # a quarter of the rows, less the pixels that were rock already
    assert not r.passed and r.agreement == pytest.approx(1 - changed)
    assert [f.split(" ", 2)[:2] for f in r.failures] == [["max", "|logit"], ["mask", "agreement"],
                                                         ["boundary", "agreement"], ["IoU", "of"], ["IoU", "of"]]
    # The same error under the FP16 budget, which does not hold logits: the masks alone fail it.
    r = _score(ref, cand, ParityBudget.for_precision("fp16"))
    assert not r.passed and r.failures[0].startswith("mask agreement")


def test_small_logits_keep_the_absolute_floor():
    ref = _logits(0.1)  # scale < 1: the budget stays 1e-3 absolute, never tighter
    assert _score(ref, ref + 5e-4, LOOSE).passed
    r = _score(ref, ref + 2e-3, LOOSE)
    assert r.logit_scale == 1.0 and not r.passed


@pytest.mark.parametrize("side", ["candidate", "reference"])
def test_nonfinite_outputs_never_pass(side):
    """The bug this closes: NaN logits gave max |diff| 0, 100 % agreement and PASS."""
    good = _logits(5.0)
    bad = good.copy()
    bad[0, :2, :3] = np.nan
    bad[1, 0, 0] = np.inf
    ref, cand = (good, bad) if side == "candidate" else (bad, good)
    r = _score(ref, cand, LOOSE)
    assert not r.passed
    assert r.nonfinite == {"reference": 0 if side == "candidate" else 7, "candidate": 7 if side == "candidate" else 0}
    assert any(f.startswith(f"{side} output has 7 non-finite values (NaN/Inf)") for f in r.failures), r.failures
    assert np.isfinite(r.max_abs_diff) and np.isfinite(r.mean_abs_diff)
    assert "non-finite" in r.table()


def test_all_nan_candidate_fails_even_with_every_check_disabled():
    ref = _logits(5.0)
    off = ParityBudget.for_precision("fp32", min_agreement=0.0, min_boundary_agreement=0.0, min_iou=0.0,
                                     max_abs_diff=1e9)
    r = _score(ref, np.full_like(ref, np.nan), off)
    assert not r.passed and r.nonfinite["candidate"] == ref.size


def test_near_ties_flip_without_failing():
    ref = _logits(1.0)
    ref[1] = ref[0] + 1e-6  # every pixel a near-tie, rock by a hair
    cand = ref.copy()
    cand[1] = ref[0] - 1e-6  # background by a hair
    r = _score(ref, cand, LOOSE)
    assert r.tie_flips == ref[0].size and r.agreement == 1.0 and r.raw_agreement == 0.0
    assert any("near-ties" in w for w in r.warnings)


@pytest.mark.parametrize("source", ["generated rock scenes", "data/rocks (val, 4 of 40)"])
def test_a_one_class_reference_is_warned_about_in_words_that_fit_the_frames(source):
    """With --data the frames are already real images: the warning names them instead of asking for --data."""
    ref = _logits(5.0)
    ref[0] += 100.0  # background everywhere
    r = score(_run(ref), _run(ref.copy()), budget=LOOSE, size=(16, 16), batch=1, frame_source=source)
    (warning,) = [w for w in r.warnings if "> 99 % of pixels one class" in w]
    if source.startswith("generated"):
        assert "use real images (--data)" in warning
    else:
        assert "--data" not in warning and f"one class on {source}: the check proves little" in warning
