"""Every budget at its edge: constructed outputs just inside and just outside each limit, so a limit that moves or a
check that is dropped fails here.

Parity (:func:`rockedge.verify.parity.score`): mask agreement, boundary agreement, per-class IoU, the relative
logit difference and the tie margin, per precision, with the documented values written out (docs/tensorrt.md,
docs/export.md): FP32 99.99 % / 99.9 % / 0.999 / 1e-3 x logit scale / 1e-4; FP16 99.9 % / 97 % / 0.98 / - /
2 fp16 epsilons; INT8 98 % / 90 % / 0.95 / - / 2/127. Each check is tested alone (the others switched off), so the
case that is just outside fails for that check and no other.

The INT8 accuracy budget (:func:`rockedge.calibration.budget.fit_budget`): the drop in points, the "at most half the
layers in FP32" cap and ``--max-fp32``, with quantization, ONNX Runtime and scoring replaced by constructed scores:
the loop's own arithmetic is what is tested.
"""

from __future__ import annotations

import io
import re
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from rockedge.errors import RockedgeError
from rockedge.spec import ModelSpec
from rockedge.verify.metrics import MaskAgreement
from rockedge.verify.parity import BackendRun, ParityBudget, score

H = W = 100
N = H * W
SPEC = ModelSpec(arch="lraspp_mobilenet_v3_large", input_size=(H, W))
SPEC3 = ModelSpec(arch="lraspp_mobilenet_v3_large", input_size=(H, W), classes=("background", "rock", "fines"),
                  palette=((0, 0, 0), (250, 50, 83), (0, 0, 255)))
CHECKS = ("min_agreement", "min_boundary_agreement", "min_iou", "max_abs_diff")

# The documented defaults, written out: a preset that moves fails the edge tests below.
AGREEMENT = {"fp32": 0.9999, "fp16": 0.999, "int8": 0.98}
BOUNDARY = {"fp32": 0.999, "fp16": 0.97, "int8": 0.90}
IOU = {"fp32": 0.999, "fp16": 0.98, "int8": 0.95}
TIE = {"fp32": 1e-4, "fp16": 2 * 2.0**-10, "int8": 2 / 127}


def only(precision: str, *keep: str) -> ParityBudget:
    """The preset of ``precision`` with every check but ``keep`` switched off (ties stay as the preset has them)."""
    budget = ParityBudget.for_precision(precision)
    return replace(budget, **{c: None for c in CHECKS if c not in keep})


def logits_of(mask: np.ndarray, n_cls: int = 2, margin: float = 4.0) -> np.ndarray:
    """(C, H, W) float64 logits whose argmax is ``mask``, every pixel decided by ``margin``."""
    out = np.zeros((n_cls, *mask.shape), np.float64)
    for c in range(n_cls):
        out[c][mask == c] = margin
    return out


def run(out: np.ndarray, spec: ModelSpec = SPEC) -> BackendRun:
    return BackendRun({"backend": "fixed"}, spec, [out], 0.0, int(np.size(out) - np.isfinite(out).sum()))


def scored(ref: np.ndarray, cand: np.ndarray, budget: ParityBudget, spec: ModelSpec = SPEC):
    return score(run(ref, spec), run(cand, spec), budget=budget, size=(H, W), batch=1)


def masks_scored(ref_mask: np.ndarray, cand_mask: np.ndarray, budget: ParityBudget, spec: ModelSpec = SPEC):
    n = spec.num_classes
    return scored(logits_of(ref_mask, n), logits_of(cand_mask, n), budget, spec)


def rock_left(cols: int = 30) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[:, :cols] = 1
    return m


def flip_background(mask: np.ndarray, k: int) -> np.ndarray:
    """``k`` isolated background pixels turned rock, away from any boundary."""
    out = mask.copy()
    ys, xs = np.nonzero(mask == 0)
    far = xs >= 40
    ys, xs = ys[far], xs[far]
    pick = np.linspace(0, len(ys) - 1, num=k).round().astype(int) if k else np.zeros(0, int)
    out[ys[pick], xs[pick]] = 1
    return out


# -- mask agreement ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_mask_agreement_at_its_limit_passes_and_one_pixel_more_fails(precision):
    limit = AGREEMENT[precision]
    k_in = round((1 - limit) * N)  # 1, 10, 200 of 10 000 pixels
    ref = rock_left()
    inside = masks_scored(ref, flip_background(ref, k_in), only(precision, "min_agreement"))
    outside = masks_scored(ref, flip_background(ref, k_in + 1), only(precision, "min_agreement"))
    assert inside.agreement == limit and inside.passed, inside.failures
    assert outside.agreement == (N - k_in - 1) / N and not outside.passed
    assert outside.failures == [f"mask agreement {outside.agreement * 100:.4f} % < {limit * 100:g} %"]


# -- boundary agreement --------------------------------------------------------------------------------------------


def stripes(period: int = 10) -> np.ndarray:
    return ((np.arange(W) // period) % 2).astype(np.uint8)[None].repeat(H, 0)


def stripe_flips(ref: np.ndarray, k: int, period: int = 10) -> np.ndarray:
    """``k`` pixels on the last column of a stripe given the next stripe's class: disagreements inside the band."""
    out = ref.copy()
    spots = [(r, c) for r in range(0, H, 2) for c in range(period - 1, W - 1, period)]
    spots += [(r, c) for r in range(1, H, 2) for c in range(period - 1, W - 1, period)]
    for r, c in spots[:k]:
        out[r, c] = ref[r, c + 1]
    return out


def boundary_agreement(a: np.ndarray, b: np.ndarray) -> float:
    agree = MaskAgreement(2)
    agree.update(a, b)
    return agree.boundary_agreement


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_boundary_agreement_at_its_limit_passes_and_one_pixel_more_fails(precision):
    limit = BOUNDARY[precision]
    ref = stripes()
    k_in = 0
    while boundary_agreement(ref, stripe_flips(ref, k_in + 1)) >= limit:
        k_in += 1
    assert k_in >= 2  # the band is large enough that one pixel is a fine step
    inside = masks_scored(ref, stripe_flips(ref, k_in), only(precision, "min_boundary_agreement"))
    outside = masks_scored(ref, stripe_flips(ref, k_in + 1), only(precision, "min_boundary_agreement"))
    assert limit <= inside.boundary_agreement < limit + 0.002 and inside.passed, inside.failures
    assert limit - 0.002 < outside.boundary_agreement < limit and not outside.passed
    assert outside.failures == [f"boundary agreement {outside.boundary_agreement * 100:.4f} % < {limit * 100:g} %"]


@pytest.mark.parametrize("blob_in", ["reference", "candidate"])
def test_the_boundary_band_is_taken_from_both_masks(blob_in):
    """A class region only one side paints has a boundary only in that side's mask: whichever side it is, its rim is
    boundary, and the pixels there disagree. A band taken from the reference alone sees no boundary at all when only
    the candidate paints one (boundary agreement 100 %)."""
    empty = np.zeros((H, W), np.uint8)
    blob = empty.copy()
    blob[40:46, 40:46] = 1
    ref, cand = (blob, empty) if blob_in == "reference" else (empty, blob)
    r = masks_scored(ref, cand, only("fp32", "min_boundary_agreement"))
    # The band: the blob less its 2x2 centre (32 pixels, all disagreeing) and the 52 pixels outside it within two
    # 4-connected steps (agreeing).
    assert r.boundary_agreement == 52 / 84
    assert not r.passed and r.failures[0].startswith("boundary agreement")


def test_no_boundary_anywhere_means_nothing_to_disagree_on():
    r = masks_scored(np.zeros((H, W), np.uint8), np.zeros((H, W), np.uint8), only("fp32", "min_boundary_agreement"))
    assert r.boundary_agreement == 1.0 and r.passed


# -- per-class IoU -------------------------------------------------------------------------------------------------


def rock_rows(rows: int = 10) -> np.ndarray:
    m = np.zeros((H, W), np.uint8)
    m[:rows] = 1  # 1000 rock pixels
    return m


def lose(mask: np.ndarray, cls: int, k: int, to: int) -> np.ndarray:
    out = mask.copy()
    ys, xs = np.nonzero(mask == cls)
    out[ys[:k], xs[:k]] = to
    return out


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
def test_per_class_iou_at_its_limit_passes_and_one_pixel_more_fails(precision):
    limit = IOU[precision]
    k_in = round((1 - limit) * 1000)  # 1, 20, 50 of 1000 rock pixels
    ref = rock_rows()
    inside = masks_scored(ref, lose(ref, 1, k_in, 0), only(precision, "min_iou"))
    outside = masks_scored(ref, lose(ref, 1, k_in + 1, 0), only(precision, "min_iou"))
    assert inside.iou["rock"] == limit and inside.passed, inside.failures
    assert outside.iou["rock"] == (1000 - k_in - 1) / 1000 and not outside.passed
    assert outside.failures == [f"IoU of class 'rock' between the masks {outside.iou['rock']:.5f} < {limit:g}"]


def test_every_class_is_held_to_the_iou_budget_not_only_rock():
    """Background is the small class here: it is the one that fails. With three classes, the third one fails."""
    ref = 1 - rock_rows()  # 1000 background pixels, 9000 rock
    r = masks_scored(ref, lose(ref, 0, 2, 1), only("fp32", "min_iou"))
    assert r.iou["rock"] > 0.999 and r.iou["background"] == 0.998
    assert r.failures == ["IoU of class 'background' between the masks 0.99800 < 0.999"]
    three = rock_rows()
    three[50:60] = 2  # 1000 "fines" pixels
    r = masks_scored(three, lose(three, 2, 2, 0), only("fp32", "min_iou"), spec=SPEC3)
    assert r.iou["rock"] == 1.0 and r.iou["fines"] == 0.998
    assert r.failures == ["IoU of class 'fines' between the masks 0.99800 < 0.999"]


# -- logit difference (FP32 only) ----------------------------------------------------------------------------------


@pytest.mark.parametrize("scale", [1.0, 1000.0])
def test_logit_difference_at_its_limit_in_units_of_the_logit_scale(scale):
    """1e-3 x max(1, largest |reference logit|): absolute for small logits, relative for large ones."""
    ref = logits_of(rock_left(), margin=scale)
    budget = only("fp32", "max_abs_diff")
    for d, ok in ((0.999e-3 * scale, True), (1.001e-3 * scale, False)):
        cand = ref.copy()
        cand[0, 50, 50] -= d  # a background pixel, less sure of itself: the mask does not change
        r = scored(ref, cand, budget)
        assert r.logit_scale == scale and r.max_abs_diff == pytest.approx(d, rel=1e-9)
        assert r.passed is ok, (d, r.failures)
        assert r.agreement == 1.0
    assert r.failures == [f"max |logit diff| {r.max_abs_diff:.3e} > 0.001 x logit scale {scale:.4g}"]


def test_the_logit_scale_is_the_references_not_the_candidates():
    ref = logits_of(rock_left(), margin=1.0)
    cand = ref.copy()
    cand[0, 50, 50] = 900.0  # a wild candidate value cannot widen its own tolerance
    r = scored(ref, cand, only("fp32", "max_abs_diff"))
    assert r.logit_scale == 1.0 and not r.passed


@pytest.mark.parametrize("precision", ["fp16", "int8"])
def test_reduced_precisions_hold_masks_not_logits(precision):
    ref = logits_of(rock_left())
    cand = ref * 1.5  # every logit moves, no pixel changes class
    r = scored(ref, cand, ParityBudget.for_precision(precision))
    assert r.max_abs_diff == pytest.approx(2.0) and r.passed, r.failures


# -- tie margin ----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("precision", ["fp32", "fp16", "int8"])
@pytest.mark.parametrize("scale", [1.0, 100.0])
def test_tie_margin_at_its_limit(precision, scale):
    """A pixel whose reference top-2 gap is within the margin (x logit scale) may flip: a tie. Just outside it, the
    same flip is a disagreement."""
    margin = TIE[precision]
    budget = only(precision, "min_agreement")
    assert budget.tie_margin == pytest.approx(margin, rel=1e-12)
    for gap, tie in ((0.999 * margin * scale, True), (1.001 * margin * scale, False)):
        ref = np.zeros((2, H, W))
        ref[1] = gap  # rock by ``gap``
        ref[0, 0, 0] = scale  # sets the logit scale; that pixel is background, by far
        cand = ref.copy()
        cand[1] = -gap  # background by ``gap``
        cand[1, 0, 0] = ref[1, 0, 0]
        r = scored(ref, cand, budget)
        assert r.logit_scale == scale
        assert r.raw_agreement == 1 / N  # every pixel but the one that sets the scale flipped
        if tie:
            assert r.tie_flips == N - 1 and r.agreement == 1.0 and r.passed, r.failures
        else:
            assert r.tie_flips == 0 and r.agreement == 1 / N and not r.passed


def test_only_near_ties_are_forgiven():
    ref = logits_of(rock_left())  # decided pixels
    ref[:, 0, :] = [[0.0], [1e-5]]  # one row of near-ties, rock by a hair
    cand = ref.copy()
    cand[1, 0, :] = -1e-5  # the near-ties flip: forgiven
    cand[:, 98:, 99] = [[0.0], [4.0]]  # two decided background pixels flipped for real: not forgiven
    r = scored(ref, cand, only("fp32", "min_agreement"))
    assert r.tie_pixels == W and r.tie_flips == W
    assert r.agreement == (N - 2) / N and not r.passed  # below 99.99 %


def test_budget_overrides_are_fractions_and_known_fields():
    assert ParityBudget.for_precision("int8", min_agreement=None).min_agreement == AGREEMENT["int8"]
    assert ParityBudget.for_precision("fp16", min_iou=0.5).min_iou == 0.5
    with pytest.raises(RockedgeError, match="min-agreement is a fraction between 0 and 1, got 99.9"):
        ParityBudget.for_precision("fp32", min_agreement=99.9)
    with pytest.raises(RockedgeError, match="unknown budget field"):
        ParityBudget.for_precision("fp32", min_pixels=0.5)


# -- the INT8 accuracy budget --------------------------------------------------------------------------------------


@pytest.fixture
def fake_budget(monkeypatch):
    """``fit(layers, ious, **kw)``: fit_budget over a model with ``layers`` quantized layers, where the model with
    ``k`` layers kept in FP32 scores ``ious[k]`` (``ious["fp32"]`` for the FP32 model) rock IoU. The layer ranking
    puts the last layer first. Each variant is scored from the file it was saved to. Returns the result and the calls
    made."""
    import onnx

    from rockedge.calibration import budget as mod
    from rockedge.verify.accuracy import Scores

    calls: dict[str, list] = {"sensitivity": [], "with_fp32": []}
    state: dict = {}
    saved: dict[Path, object] = {}  # path -> the model onnx.save wrote there

    class Graph:
        def __init__(self, model, float_model=None):
            self.quantized_nodes = [f"layer{i}" for i in range(state["layers"])]

        def with_fp32(self, nodes):
            calls["with_fp32"].append(list(nodes))
            return len(nodes)

    class Backend:
        def __init__(self, path, **kw):
            self.path = Path(path)
            self.spec = SPEC
            if self.path == Path("fp32.onnx"):
                self.model = "fp32"
            elif self.path in saved:
                self.model = saved[self.path]
            else:
                raise FileNotFoundError(self.path)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            pass

    def fake_score(be, dataset, cls):
        iou = state["ious"][be.model]  # "fp32", or the number of layers the saved variant keeps in FP32
        return Scores(iou=iou, miou=iou, ms_per_image=1.0, images=20, class_pixels=50_000)

    def fake_sensitivity(fp32, graph, feeds):
        calls["sensitivity"].append(1)
        return [(n, float(i)) for i, n in enumerate(reversed(graph.quantized_nodes))]

    monkeypatch.setattr(onnx, "load", lambda path: "fp32-model")
    monkeypatch.setattr(onnx, "save", lambda model, path: saved.__setitem__(Path(path), model))
    monkeypatch.setattr(mod, "quantize", lambda calibration, target: "qdq-model")
    monkeypatch.setattr(mod, "QdqGraph", Graph)
    monkeypatch.setattr(mod, "OrtBackend", Backend)
    monkeypatch.setattr(mod, "score", fake_score)
    monkeypatch.setattr(mod, "budget_class", lambda spec: "rock")
    monkeypatch.setattr(mod, "sensitivity", fake_sensitivity)
    monkeypatch.setattr(mod, "_sensitivity_feeds", lambda calibration, dataset: [])

    def fit(layers: int, ious: dict, **kw):
        state.update(layers=layers, ious=ious)
        saved.clear()
        calibration = SimpleNamespace(model=Path("fp32.onnx"))
        model, result = mod.fit_budget(calibration, dataset=[], **{"progress": False, **kw})
        return model, result, calls

    return fit


def flat(fp32: float, int8: float, upto: int = 64) -> dict:
    return {"fp32": fp32, **{k: int8 for k in range(upto + 1)}}


def test_int8_drop_at_the_limit_passes_and_just_over_fails(fake_budget):
    # 0.75 -> 0.7421875 is a drop of exactly 0.78125 points (binary fractions: no rounding anywhere).
    ious = flat(0.75, 0.7421875)
    model, r, calls = fake_budget(10, ious, max_drop=0.78125)
    assert r.passed and [s.kept_fp32 for s in r.steps] == [0] and r.chosen == 0 and model == 0
    assert r.steps[0].drop_points == 0.78125 and r.kept == [] and calls["sensitivity"] == []
    _, r, calls = fake_budget(10, ious, max_drop=0.78)
    assert not r.passed and len(r.steps) > 1 and calls["sensitivity"] == [1]  # ranked once, after step 0


@pytest.mark.parametrize("layers, sizes", [(10, [0, 1, 2, 4, 5]), (11, [0, 1, 2, 4, 5]), (16, [0, 1, 2, 4, 8]),
                                           (20, [0, 1, 2, 4, 8, 10]), (1, [0]), (3, [0, 1])])
def test_at_most_half_the_layers_are_kept_in_fp32(fake_budget, layers, sizes):
    """Twice as many at each step, and never more than half of the quantized layers (rounded down)."""
    _, r, calls = fake_budget(layers, flat(0.75, 0.5), max_drop=1.0)
    assert not r.passed
    assert [s.kept_fp32 for s in r.steps] == sizes and max(sizes) == layers // 2
    order = [f"layer{i}" for i in reversed(range(layers))]  # the ranking, worst first
    assert calls["with_fp32"] == [order[:k] for k in sizes]
    assert [s.added for s in r.steps] == [order[a:b] for a, b in zip([0, *sizes], sizes)]


@pytest.mark.parametrize("max_fp32, layers, sizes", [(3, 10, [0, 1, 2, 3]), (0, 10, [0]), (1, 10, [0, 1]),
                                                     (8, 10, [0, 1, 2, 4, 8]), (100, 6, [0, 1, 2, 4, 6])])
def test_max_fp32_replaces_the_half_cap(fake_budget, max_fp32, layers, sizes):
    _, r, _ = fake_budget(layers, flat(0.75, 0.5), max_drop=1.0, max_fp32=max_fp32)
    assert [s.kept_fp32 for s in r.steps] == sizes


def test_the_first_step_within_budget_is_kept_and_the_loop_stops(fake_budget):
    ious = {"fp32": 0.75, 0: 0.70, 1: 0.72, 2: 0.745, 4: 0.75}
    model, r, _ = fake_budget(10, ious, max_drop=1.0)
    assert r.passed and [s.kept_fp32 for s in r.steps] == [0, 1, 2] and r.chosen == 2 and model == 2
    assert r.kept == ["layer9", "layer8"]


def test_when_no_step_meets_the_budget_the_smallest_drop_is_kept(fake_budget):
    ious = {"fp32": 0.75, 0: 0.70, 1: 0.73, 2: 0.71, 4: 0.73, 5: 0.72}
    model, r, _ = fake_budget(10, ious, max_drop=1.0)
    assert not r.passed and r.chosen == 1 and model == 1  # the first of the two smallest drops
    assert r.kept == ["layer9"]


def test_int8_budget_arguments_are_checked(fake_budget):
    with pytest.raises(RockedgeError, match="--max-drop must be >= 0 points, got -0.5"):
        fake_budget(10, flat(0.75, 0.75), max_drop=-0.5)
    with pytest.raises(RockedgeError, match="--max-fp32 must be >= 0 layers, got -1"):
        fake_budget(10, flat(0.75, 0.75), max_drop=1.0, max_fp32=-1)


def test_when_keeping_layers_does_not_help_the_fully_quantized_int8_drop_is_kept(fake_budget):
    """No step within budget and every step with layers in FP32 worse than none: the INT8 model, nothing kept."""
    ious = {"fp32": 0.75, 0: 0.74, 1: 0.70, 2: 0.72, 4: 0.73, 5: 0.71}
    model, r, _ = fake_budget(10, ious, max_drop=0.5)
    assert not r.passed and r.chosen == 0 and model == 0 and r.kept == []
    assert [s.drop_points for s in r.steps] == pytest.approx([1.0, 5.0, 3.0, 2.0, 4.0])


@pytest.mark.parametrize("max_drop", [0.0, 0.5])
def test_int8_budget_of_zero_or_a_fraction_of_a_point_is_accepted(fake_budget, max_drop):
    model, r, _ = fake_budget(10, flat(0.75, 0.75), max_drop=max_drop)  # INT8 loses nothing here
    assert r.passed and r.chosen == 0 and model == 0 and r.max_drop == max_drop


def test_int8_budget_progress_counts_each_step_and_shows_its_drop(fake_budget, monkeypatch):
    from rockedge.calibration import budget as mod
    from rockedge.console import LineProgress

    bars: list = []

    class Bar(LineProgress):
        closed = False

        def close(self) -> None:
            self.closed = True
            super().close()

    def progress(*, total, desc, unit, enabled):
        bars.append(Bar(total=total, desc=desc, unit=unit, interval=0, file=io.StringIO()))  # a line per update
        bars[-1].enabled = enabled
        return bars[-1]

    monkeypatch.setattr(mod, "console_progress", progress)
    fake_budget(10, flat(0.75, 0.5), max_drop=1.0, progress=True)  # 5 steps, none within budget
    (bar,) = bars
    lines = bar.file.getvalue().splitlines()
    assert bar.enabled and bar.closed and bar.n == bar.total == 5 and len(lines) == 5
    for i, (line, kept) in enumerate(zip(lines, [0, 1, 2, 4, 5]), 1):
        assert re.fullmatch(rf"int8 budget: {i}/5 step .*\[kept {kept} fp32, drop 25\.00p, \d+s\]", line), line
    fake_budget(10, flat(0.75, 0.75), max_drop=1.0)  # within budget at once; quiet unless asked
    assert not bars[1].enabled and bars[1].n == 1 and bars[1].closed
