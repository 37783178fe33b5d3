"""Parity scoring on exactly known outputs: relative logit budgets, ties, and non-finite values that never pass.

``score`` is the second half of ``compare`` (run both backends, then score), so these tests feed it
outputs directly instead of running models.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from rockedge.errors import RockedgeError
from rockedge.spec import ModelSpec
from rockedge.verify.parity import BackendRun, ParityBudget, score, tie_basis

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


# -- what the report says, and what it refuses ---------------------------------------------------------------------

MASK_SPEC = SPEC.replace(output_format="mask")
SPEC3 = SPEC.replace(classes=("background", "rock", "fines"), palette=((0, 0, 0), (250, 50, 83), (0, 0, 255)))


def _decided(mask: np.ndarray, n_cls: int = 2, margin: float = 1.0) -> np.ndarray:
    """float64 logits whose argmax is ``mask``, each pixel decided by ``margin``; largest |logit| is ``margin``."""
    out = np.zeros((n_cls, *mask.shape))
    for c in range(n_cls):
        out[c][mask == c] = margin
    return out


def _quarter_rock() -> np.ndarray:
    m = np.zeros((16, 16), np.uint8)
    m[:, :4] = 1
    return m


def test_each_precision_says_where_its_tie_margin_comes_from():
    """The report's ``budget.tie_basis`` (JSON and table): the floor for FP32, the format's resolution otherwise, and
    whether the user overrode it or switched ties off."""
    assert tie_basis("fp32") == "floor 0.0001 (fp32 kernels differ in summation order)"
    assert tie_basis("fp16") == "2 x fp16 epsilon (0.000977)"
    assert tie_basis("int8") == "2 x quantization step (1/127)"
    fp16 = ParityBudget.for_precision("fp16")
    assert fp16.tie_basis == "2 x fp16 epsilon (0.000977)"
    assert ParityBudget.for_precision("fp16", tie_margin=0.01).tie_basis == "given (--tie-margin)"
    assert replace(fp16, tie_margin=None).tie_basis == "ties not counted"
    ref = _decided(_quarter_rock())
    r = score(_run(ref), _run(ref.copy()), budget=ParityBudget.for_precision("int8"), size=(16, 16), batch=1)
    assert r.to_dict()["budget"]["tie_basis"] == "2 x quantization step (1/127)"


@pytest.mark.parametrize("value", [0.0, 1.0])
def test_a_fraction_budget_may_be_either_end(value):
    assert ParityBudget.for_precision("fp32", min_iou=value).min_iou == value


@pytest.mark.parametrize("value", [-0.5, -1e-9, 1.000001, 1.5])
def test_a_fraction_budget_outside_zero_to_one_is_refused(value):
    with pytest.raises(RockedgeError, match="min-boundary-agreement is a fraction between 0 and 1"):
        ParityBudget.for_precision("int8", min_boundary_agreement=value)


def test_logit_tolerances_are_not_fractions():
    b = ParityBudget.for_precision("fp32", max_abs_diff=5.0, tie_margin=2.0)
    assert (b.max_abs_diff, b.tie_margin) == (5.0, 2.0)


def test_a_mask_output_on_either_side_compares_masks_only():
    """A ``mask``-output model (argmax inside) against a logits one: no logit difference exists, and the masks decide."""
    mask = _quarter_rock()
    ref = _decided(mask)
    for a, b in (((ref, SPEC), (mask, MASK_SPEC)), ((mask, MASK_SPEC), (ref, SPEC))):
        r = score(_run(a[0], spec=a[1]), _run(b[0], spec=b[1]), budget=ParityBudget.for_precision("fp32"),
                  size=(16, 16), batch=1)
        assert r.max_abs_diff is None and r.mean_abs_diff is None
        assert r.agreement == 1.0 and r.passed, r.failures
    wrong = mask.copy()
    wrong[15, 15] = 1  # one pixel of rock that the reference does not paint, far from its edge
    r = score(_run(wrong, spec=MASK_SPEC), _run(mask, spec=MASK_SPEC), budget=ParityBudget.for_precision("fp32"),
              size=(16, 16), batch=1)
    assert r.agreement == 255 / 256 and r.tie_pixels == 0 and not r.passed
    assert r.logit_scale == 1.0


def test_the_mean_logit_difference_is_over_every_value():
    ref = _decided(_quarter_rock())
    cand = ref + 0.25
    cand[:, 0, 0] = ref[:, 0, 0]  # two of 512 values unchanged
    r = _score(ref, cand, LOOSE)
    assert r.max_abs_diff == 0.25 and r.mean_abs_diff == pytest.approx(0.25 * 510 / 512, rel=1e-12)


def test_small_logits_use_a_logit_scale_of_one():
    ref = _decided(_quarter_rock(), margin=0.3)
    assert _score(ref, ref.copy()).logit_scale == 1.0
    assert _score(ref * 10, ref * 10).logit_scale == 3.0


def test_the_logit_difference_exactly_at_its_limit_passes():
    ref = _decided(_quarter_rock())  # logit scale 1: the limit is 1e-3 absolute
    cand = ref.copy()
    cand[0, 5, 2] -= 1e-3  # a rock pixel, its background logit lower still: no class changes
    r = _score(ref, cand, replace(LOOSE, tie_margin=None))
    assert r.max_abs_diff == 1e-3 and r.passed, r.failures


def test_a_tie_exactly_at_the_margin_is_forgiven():
    margin = ParityBudget.for_precision("fp32").tie_margin
    ref = np.zeros((2, 16, 16))
    ref[1] = margin  # rock by exactly the margin, logit scale 1
    cand = np.zeros((2, 16, 16))
    cand[0] = margin
    r = _score(ref, cand)
    assert r.tie_flips == 256 and r.agreement == 1.0 and r.raw_agreement == 0.0


def test_ties_are_not_counted_when_switched_off():
    ref = np.zeros((2, 16, 16))
    ref[1] = 1e-6
    cand = np.zeros((2, 16, 16))
    cand[0] = 1e-6
    r = _score(ref, cand, replace(LOOSE, tie_margin=None))
    assert r.tie_pixels == 0 and r.tie_flips == 0 and r.agreement == 0.0
    assert r.to_dict()["budget"]["tie_basis"] == "ties not counted"


def test_with_three_classes_a_tie_is_between_the_two_highest_logits():
    """A pixel is a tie when its two *highest* reference logits are close, whatever the third does and whichever
    class index holds them."""
    h = 16
    ref = np.zeros((3, h, h))
    cand = np.zeros((3, h, h))
    rows = [  # reference logits per class, then the class the candidate paints
        ((0.0, 4.0, 4.00001), 1),  # rock vs fines within a hair: forgiven
        ((4.00001, 4.0, 0.0), 1),  # background vs rock within a hair: forgiven
        ((4.0, 0.0, 4.00001), 0),  # background vs fines within a hair: forgiven
        ((0.0, 4.0, 0.5), 2),  # rock, decided: a real flip
        ((0.5, 0.0, 4.0), 1),  # fines, decided: a real flip
        ((4.0, 0.5, 0.0), 2),  # background, decided: a real flip
        ((3.0, 4.0, 3.99999), 0),  # rock by a hair over fines; background is not one of the two: a real flip
    ]
    for i, (logits, picked) in enumerate(rows):
        ref[:, i] = np.array(logits)[:, None]
        cand[picked, i] = 1.0
    ref[0, len(rows):] = 4.0  # the other rows: background, decided
    cand[0, len(rows):] = 1.0
    r = score(_run(ref, spec=SPEC3), _run(cand, spec=SPEC3), budget=LOOSE, size=(h, h), batch=1)
    assert r.tie_pixels == 4 * h  # three forgiven rows and the rock-by-a-hair row
    assert r.tie_flips == 3 * h
    assert r.agreement == 1 - 4 * h / h**2


def test_the_reference_class_share_is_of_its_own_mask():
    mask = _quarter_rock()
    cand = np.zeros_like(mask)  # the candidate's all-background mask does not count
    r = score(_run(_decided(mask)), _run(cand, spec=MASK_SPEC), budget=LOOSE, size=(16, 16), batch=1)
    assert r.reference_class_share == {"background": 0.75, "rock": 0.25}


def test_the_report_keeps_each_sides_time_to_the_millisecond():
    ref = _decided(_quarter_rock())
    a = BackendRun({"backend": "a"}, SPEC, [ref], 1.23456, 0)
    b = BackendRun({"backend": "b"}, SPEC, [ref.copy()], 0.04562, 0)
    r = score(a, b, budget=LOOSE, size=(16, 16), batch=1)
    assert r.seconds == {"reference": 1.235, "candidate": 0.046}


def test_exactly_equal_logits_are_a_tie_either_way():
    """Where the reference's top two logits are equal its mask takes the lower class; the other is as right."""
    ref = np.zeros((2, 16, 16))
    cand = np.zeros((2, 16, 16))
    cand[1] = 1e-5
    r = _score(ref, cand)
    assert r.raw_agreement == 0.0 and r.tie_flips == 256 and r.agreement == 1.0 and r.passed


@pytest.mark.parametrize(("tie_rows", "warned"), [(8, None), (12, "75 % of pixels are near-ties")])
def test_a_reference_of_mostly_near_ties_is_warned_about(tie_rows, warned):
    """Half the pixels near-ties says nothing yet; more than half: the reference is flat and agreement proves little."""
    ref = _decided(_quarter_rock(), margin=4.0)
    ref[:, :tie_rows] = np.array([0.0, 1e-6])[:, None, None]
    r = _score(ref, ref.copy(), LOOSE)
    assert r.tie_pixels == tie_rows * 16
    flat = [w for w in r.warnings if "near-ties" in w]
    assert flat == ([] if warned is None else [f"{warned}: the reference's logits are flat (untrained model?), so "
                                                   "agreement proves little"])


@pytest.mark.parametrize(("rock", "warned"), [(100, False), (99, True)])
def test_one_class_warning_starts_above_99_percent(rock, warned):
    """Exactly 99 % of the reference one class is not warned about; any more is."""
    mask = np.zeros((100, 100), np.uint8)
    mask.ravel()[:rock] = 1
    spec = SPEC.replace(input_size=(100, 100))
    ref = _decided(mask, margin=4.0)
    r = score(_run(ref, spec=spec), _run(ref.copy(), spec=spec), budget=LOOSE, size=(100, 100), batch=1)
    assert any("> 99 % of pixels one class" in w for w in r.warnings) is warned
    assert r.warnings == [] or warned


def test_a_trained_looking_reference_gets_no_warnings():
    r = _score(_decided(_quarter_rock(), margin=4.0), _decided(_quarter_rock(), margin=4.0))
    assert r.warnings == [] and r.passed


@pytest.mark.parametrize(("ref_n", "cand_n"), [(0, 0), (2, 1), (1, 2)])
def test_each_side_needs_one_output_per_frame(ref_n, cand_n):
    """A candidate that returned fewer outputs must not pass on the frames it did return."""
    out = _decided(_quarter_rock())
    with pytest.raises(RockedgeError, match=f"nothing to compare: {ref_n} reference and {cand_n} candidate"):
        score(_run(*[out] * ref_n), _run(*[out] * cand_n), budget=LOOSE, size=(16, 16), batch=1)


def test_outputs_that_do_not_fit_are_one_clear_error():
    out = _decided(_quarter_rock())
    with pytest.raises(RockedgeError, match=r"output shapes differ: \(2, 16, 16\) vs \(2, 16, 15\)"):
        _score(out, out[:, :, :15].copy())
    with pytest.raises(RockedgeError, match=r"mask shapes differ: \(16, 16\) vs \(16, 15\)"):
        score(_run(_quarter_rock(), spec=MASK_SPEC), _run(_quarter_rock()[:, :15].copy(), spec=MASK_SPEC),
              budget=LOOSE, size=(16, 16), batch=1)
    with pytest.raises(RockedgeError, match=r"the candidate output has 3 channels but its spec names 2 classes "
                                            r"\(background, rock\)"):
        _score(out, _decided(_quarter_rock(), n_cls=3))
    with pytest.raises(RockedgeError, match="the reference output has 3 channels but its spec names 2 classes"):
        _score(_decided(_quarter_rock(), n_cls=3), out)
