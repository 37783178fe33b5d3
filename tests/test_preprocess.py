"""Pre/post-processing against plain float64 references: normalisation, letterbox geometry, mask restore."""

from __future__ import annotations

import numpy as np
import pytest

from rockedge.runtime.preprocess import fit, normalize, prepare, restore_mask, to_masks
from rockedge.spec import ModelSpec

SPEC = ModelSpec(arch="deeplabv3_mobilenet_v3_large", input_size=(48, 64))


def test_normalize_matches_float64_reference():
    x = np.random.default_rng(0).integers(0, 256, (2, 37, 53, 3), dtype=np.uint8)
    ref = ((x[..., ::-1].astype(np.float64) / 255 - np.array(SPEC.mean)) / np.array(SPEC.std)).transpose(0, 3, 1, 2)
    out = normalize(x, SPEC)
    assert out.dtype == np.float32 and out.shape == (2, 3, 37, 53) and out.flags.c_contiguous
    assert np.abs(out - ref).max() < 1e-5


@pytest.mark.parametrize("mode", ["resize", "letterbox"])
def test_mask_restores_onto_the_frame(mode):
    # A frame whose left half is "rock": the restored mask must put rock on the left half again.
    frame = np.zeros((90, 200, 3), np.uint8)
    spec = SPEC.replace(resize=mode)
    x, (geom,) = prepare([frame], spec)
    assert x.shape == (1, 3, 48, 64)
    small = np.zeros((48, 64), np.uint8)
    top, left, h, w = geom.content
    small[top : top + h, left : left + w // 2] = 1
    m = restore_mask(small, geom)
    assert m.shape == (90, 200)
    assert m[:, :95].mean() > 0.97 and m[:, 105:].mean() < 0.03
    if mode == "letterbox":
        assert top > 0 and left == 0  # wide frame: padded above and below, aspect kept


def test_letterbox_pads_with_grey_and_keeps_content():
    frame = np.full((100, 50, 3), 200, np.uint8)
    out, geom = fit(frame, (64, 64), "letterbox")
    top, left, h, w = geom.content
    assert (h, w) == (64, 32) and left == 16
    assert (out[:, :left] == 114).all() and (out[top : top + h, left : left + w] == 200).all()


def test_raw_models_get_uint8_nhwc_and_mask_outputs_pass_through():
    spec = SPEC.replace(input_format="raw", output_format="mask")
    x, _ = prepare([np.zeros((10, 10, 3), np.uint8)], spec)
    assert x.dtype == np.uint8 and x.shape == (1, 48, 64, 3)
    out = np.array([[[0, 1], [1, 0]]], dtype=np.int32)
    assert to_masks(out, spec).tolist() == out.tolist()
    logits = np.zeros((1, 2, 2, 2), np.float32)
    logits[0, 1, 0, 0] = 1.0
    assert to_masks(logits, SPEC).tolist() == [[[1, 0], [0, 0]]]


@pytest.mark.parametrize("frame_hw, model_hw, content", [
    ((128, 32), (64, 48), (0, 16, 64, 16)),  # tall frame: bars left and right
    ((32, 128), (48, 64), (16, 0, 16, 64)),  # wide frame: bars above and below
])
def test_letterbox_restore_is_the_content_exactly_and_nothing_of_the_bars(frame_hw, model_hw, content):
    """Multi-class masks at exactly half the frame size: the restored mask is each content pixel as a 2x2 block,
    every class index kept (nearest, never blended), no column or row of the bars (class 3 here) taken along."""
    rng = np.random.default_rng(0)
    x, (geom,) = prepare([np.zeros((*frame_hw, 3), np.uint8)], SPEC.replace(resize="letterbox", input_size=model_hw))
    assert geom.content == content and geom.frame_hw == frame_hw
    top, left, h, w = content
    small = np.full(model_hw, 3, np.uint8)  # the bars
    small[top : top + h, left : left + w] = rng.integers(0, 3, (h, w))
    want = np.kron(small[top : top + h, left : left + w], np.ones((2, 2), np.uint8))
    np.testing.assert_array_equal(restore_mask(small, geom), want)
    dst = np.empty(frame_hw, np.uint8)
    assert restore_mask(small, geom, dst=dst) is dst
    np.testing.assert_array_equal(dst, want)
    colour = np.stack([small * 40, small * 80, small * 20], axis=-1).astype(np.uint8)  # an image made from the mask
    np.testing.assert_array_equal(restore_mask(colour, geom), np.kron(colour[top : top + h, left : left + w],
                                                                      np.ones((2, 2, 1), np.uint8)))
