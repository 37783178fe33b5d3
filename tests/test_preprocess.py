"""Pre/post-processing against plain float64 references: normalisation, letterbox geometry, mask restore."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from rockedge.errors import RockedgeError
from rockedge.runtime.preprocess import Geometry, content, fit, normalize, prepare, restore_mask, to_masks
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


# -- the letterbox geometry, exactly ----------------------------------------------------------------------------


@pytest.mark.parametrize("frame", [
    np.zeros((48, 64), np.uint8),  # greyscale
    np.zeros((48, 64, 4), np.uint8),  # BGRA
    np.zeros((48, 64, 1), np.uint8),
    np.zeros((48, 64, 3), np.float32),  # already converted
    np.zeros((48, 64, 3), np.uint16),
    np.zeros((2, 48, 64, 3), np.uint8),  # a batch, not a frame
])
@pytest.mark.parametrize("mode", ["resize", "letterbox"])
def test_fit_refuses_what_is_not_a_bgr_uint8_frame(frame, mode):
    with pytest.raises(RockedgeError, match=rf"^expected a BGR uint8 HxWx3 frame, got {frame.dtype} "):
        fit(frame, (48, 64), mode)


def test_resize_mode_stretches_the_whole_frame_onto_the_input():
    frame = np.random.default_rng(1).integers(0, 256, (90, 200, 3), dtype=np.uint8)
    for out, geom in (fit(frame, (48, 64), "resize"), fit(frame, (48, 64))):  # resize is the default
        assert geom == Geometry((90, 200), (0, 0, 48, 64))  # no bars: the content is the whole input
        np.testing.assert_array_equal(out, cv2.resize(frame, (64, 48), interpolation=cv2.INTER_LINEAR))


@pytest.mark.parametrize("mode", ["resize", "letterbox"])
def test_a_frame_of_the_input_size_is_fed_as_is(mode):
    frame = np.random.default_rng(2).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    out, geom = fit(frame, (48, 64), mode)
    assert geom == Geometry((48, 64), (0, 0, 48, 64))
    np.testing.assert_array_equal(out, frame)


@pytest.mark.parametrize("frame_hw, model_hw, content", [
    ((37, 53), (48, 64), (1, 0, 45, 64)),  # 37 * 64/53 = 44.7 rows -> 45 (rounded, not cut); 3 spare rows: 1 above
    ((100, 33), (64, 64), (0, 21, 64, 21)),  # 33 * 0.64 = 21.1 -> 21 columns; 43 spare: 21 left, 22 right
    ((40, 64), (48, 64), (4, 0, 40, 64)),  # same width: not scaled, only padded
    ((2, 400), (48, 64), (23, 0, 1, 64)),  # 0.32 of a row: a strip keeps one row, never none
    ((400, 2), (48, 64), (0, 31, 48, 1)),  # and a standing strip one column
])
def test_letterbox_geometry_of_odd_sizes(frame_hw, model_hw, content):
    frame = np.random.default_rng(3).integers(0, 256, (*frame_hw, 3), dtype=np.uint8)
    out, geom = fit(frame, model_hw, "letterbox")
    assert geom == Geometry(frame_hw, content)
    top, left, h, w = content
    inside = np.zeros(model_hw, bool)
    inside[top : top + h, left : left + w] = True
    assert (out[~inside] == 114).all()  # the bars, and nothing but the bars, are grey
    np.testing.assert_array_equal(out[top : top + h, left : left + w],
                                  cv2.resize(frame, (w, h), interpolation=cv2.INTER_LINEAR))


def test_restore_of_a_frame_sized_content_is_the_content():
    """Nothing to resize (the frame fits the input's width exactly): the mask is the content, bars cropped."""
    _, geom = fit(np.zeros((40, 64, 3), np.uint8), (48, 64), "letterbox")
    small = np.random.default_rng(4).integers(0, 5, (48, 64), dtype=np.uint8)
    np.testing.assert_array_equal(content(small, geom), small[4:44])
    np.testing.assert_array_equal(restore_mask(small, geom), small[4:44])


def test_restore_into_a_colour_frame_buffer_and_not_into_a_mismatched_one():
    _, geom = fit(np.zeros((96, 64, 3), np.uint8), (48, 64), "letterbox")  # content (0, 16, 48, 32)
    colour = np.random.default_rng(5).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    want = np.kron(colour[:, 16:48], np.ones((2, 2, 1), np.uint8))
    dst = np.empty((96, 64, 3), np.uint8)
    assert restore_mask(colour, geom, dst=dst) is dst
    np.testing.assert_array_equal(dst, want)
    for wrong in (np.zeros((96, 64), np.uint8), np.zeros((96, 64, 3), np.uint16), np.zeros((64, 96, 3), np.uint8)):
        out = restore_mask(colour, geom, dst=wrong)
        assert out is not wrong and not wrong.any()  # a buffer of another shape or type is left alone
        np.testing.assert_array_equal(out, want)
