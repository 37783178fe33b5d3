"""Overlays and per-frame stats: only classes are painted, contours in class colours, rock counts per component."""

from __future__ import annotations

import numpy as np
import pytest

from rockedge.errors import RockedgeError
from rockedge.runtime.overlay import colorize, draw_overlay, mask_stats, palette_lut

PALETTE = ((0, 0, 0), (250, 50, 83), (0, 200, 0))


def _scene():
    frame = np.full((40, 60, 3), 100, np.uint8)
    mask = np.zeros((40, 60), np.uint8)
    mask[5:15, 5:15] = 1
    mask[20:30, 30:50] = 1
    mask[32:38, 2:8] = 2
    return frame, mask


def test_lut_maps_classes_to_bgr():
    lut = palette_lut(PALETTE)
    assert lut[0, 1].tolist() == [83, 50, 250]  # BGR of RGB (250, 50, 83)
    img = colorize(np.array([[0, 1, 2]], np.uint8), lut)
    assert img[0].tolist() == [[0, 0, 0], [83, 50, 250], [0, 200, 0]]


def test_overlay_blends_only_where_a_class_is_found():
    frame, mask = _scene()
    out = draw_overlay(frame, mask, palette_lut(PALETTE), alpha=0.5)
    assert (out[mask == 0] == 100).all()
    assert out[10, 10].tolist() == [round(100 * 0.5 + 83 * 0.5), 75, round(100 * 0.5 + 250 * 0.5)]
    assert (draw_overlay(frame, np.zeros_like(mask), palette_lut(PALETTE)) == frame).all()


def test_contours_are_drawn_in_class_colour_on_region_edges():
    frame, mask = _scene()
    lut = palette_lut(PALETTE)
    plain = draw_overlay(frame, mask, lut, alpha=0.0)
    outlined = draw_overlay(frame, mask, lut, alpha=0.0, contours=True)
    changed = np.any(outlined != plain, axis=2)
    assert changed.any() and not changed[mask == 0].all()
    edge = outlined[5, 10].astype(int)  # the rock region's top edge: the class colour (anti-aliased)
    assert np.abs(edge - [83, 50, 250]).max() < 20 and plain[5, 10].tolist() == [100, 100, 100]
    assert not changed[10, 10]  # the inside of a region is not outlined


def test_stats_fraction_count_and_class_shares():
    _, mask = _scene()
    s = mask_stats(mask, num_classes=3)
    assert s["rock_fraction"] == pytest.approx((mask != 0).mean(), abs=1e-6)
    assert s["rock_count"] == 3  # two rock blobs and one of class 2 (every non-background class is rock)
    assert s["class_fractions"] == pytest.approx([(mask == k).mean() for k in range(3)], abs=1e-6)
    two = mask_stats((mask == 1).astype(np.uint8), num_classes=2)
    assert two["rock_count"] == 2 and "class_fractions" not in two
    assert mask_stats(np.zeros((4, 4), np.uint8), num_classes=2) == {"rock_fraction": 0.0, "rock_count": 0}


def test_bad_overlay_arguments_are_errors():
    frame, mask = _scene()
    with pytest.raises(RockedgeError, match="does not match frame"):
        draw_overlay(frame, mask[:10], palette_lut(PALETTE))
    with pytest.raises(RockedgeError, match="--alpha"):
        draw_overlay(frame, mask, palette_lut(PALETTE), alpha=2.0)


@pytest.mark.parametrize("mode", ["resize", "letterbox"])
def test_the_fast_1080p_path_draws_exactly_what_the_plain_one_does(mode):
    """Colours looked up at model resolution and scaled up, the blend on the painted box only, scratch arrays
    reused: the overlay must be pixel for pixel the plain whole-frame blend, and the stats at model resolution the
    frame's (nearest upscaling keeps every region's connectivity)."""
    import cv2

    from rockedge.runtime.preprocess import content, fit, restore_mask

    rng = np.random.default_rng(3)
    frame = rng.integers(0, 255, (1080, 1920, 3), dtype=np.uint8)
    small = np.zeros((192, 352), np.uint8)
    for _ in range(25):
        cv2.circle(small, (int(rng.integers(0, 352)), int(rng.integers(0, 192))), int(rng.integers(2, 15)),
                   int(rng.integers(1, 3)), -1)
    lut = palette_lut(PALETTE)
    _, geom = fit(frame, (192, 352), mode)
    mask = restore_mask(small, geom)
    ref = frame.copy()
    blended = cv2.addWeighted(frame, 0.5, colorize(mask, lut), 0.5, 0.0)
    cv2.copyTo(blended, (mask != 0).view(np.uint8), ref)
    for _ in range(2):  # the second call reuses the scratch arrays
        fast = draw_overlay(frame, mask, lut, colour=restore_mask(colorize(small, lut), geom))
        assert np.array_equal(fast, ref)
    assert np.array_equal(draw_overlay(frame, mask, lut), ref)
    full, model = mask_stats(mask, num_classes=3), mask_stats(content(small, geom), num_classes=3)
    assert model["rock_count"] == full["rock_count"] > 5
    assert model["rock_fraction"] == pytest.approx(full["rock_fraction"], abs=0.01)
