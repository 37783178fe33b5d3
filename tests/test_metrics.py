"""Segmentation metrics: the confusion matrix behind every IoU rockedge prints, and the boundary band of parity."""

from __future__ import annotations

import numpy as np
import pytest

from rockedge.verify.metrics import ConfusionMatrix, MaskAgreement, boundary_band


def test_confusion_matrix_counts_and_scores():
    cm = ConfusionMatrix(2)
    target = np.array([[0, 0, 1, 1]])
    pred = np.array([[0, 1, 1, 1]])
    cm.update(target, pred)
    assert cm.mat.tolist() == [[1, 1], [0, 2]]
    assert cm.pixel_accuracy == pytest.approx(0.75)
    assert cm.iou.tolist() == pytest.approx([0.5, 2 / 3])
    assert cm.miou == pytest.approx((0.5 + 2 / 3) / 2)
    rep = cm.report(("background", "rock"))
    assert rep["pixels"] == 4 and rep["iou"]["rock"] == pytest.approx(2 / 3)


def test_ignore_index_and_out_of_range_targets_are_skipped_and_predictions_clipped():
    cm = ConfusionMatrix(2, ignore_index=255)
    target = np.array([0, 255, 1, 7])  # 255 ignored; 7 is not a class: skipped too
    pred = np.array([0, 1, 9, 1])  # a prediction past the last class counts as the last class
    cm.update(target, pred)
    assert cm.mat.sum() == 2 and cm.mat.tolist() == [[1, 0], [0, 1]]


def test_absent_class_is_nan_not_zero_and_miou_ignores_it():
    cm = ConfusionMatrix(3)
    cm.update(np.array([0, 0, 1]), np.array([0, 0, 1]))
    assert np.isnan(cm.iou[2]) and cm.miou == 1.0
    assert cm.report(("a", "b", "c"))["iou"]["c"] is None
    empty = ConfusionMatrix(2)
    assert np.isnan(empty.pixel_accuracy) and np.isnan(empty.miou)


def test_shape_mismatch_is_an_error_and_merge_adds():
    a, b = ConfusionMatrix(2), ConfusionMatrix(2)
    with pytest.raises(ValueError):
        a.update(np.zeros(3), np.zeros(4))
    a.update(np.array([1]), np.array([1]))
    b.update(np.array([0]), np.array([1]))
    a.merge(b)
    assert a.mat.tolist() == [[0, 1], [0, 1]]


def test_boundary_band_width():
    m = np.zeros((9, 9), np.uint8)
    m[:, 5:] = 1  # one vertical class change between columns 4 and 5
    assert boundary_band(m, 1)[0].tolist() == [False] * 4 + [True, True] + [False] * 3
    assert boundary_band(m, 2)[0].tolist() == [False] * 3 + [True] * 4 + [False] * 2
    assert not boundary_band(np.zeros((5, 5), np.uint8), 2).any()


def test_mask_agreement_and_its_boundary_share():
    a = np.zeros((10, 10), np.uint8)
    a[:, 5:] = 1
    b = a.copy()
    b[0, 5] = 0  # one flipped pixel, on the boundary
    agree = MaskAgreement(2)
    agree.update(a, b)
    assert agree.agreement == pytest.approx(0.99)
    assert agree.boundary_agreement < agree.agreement  # the error sits where precision loss shows first
    assert agree.iou().tolist() == pytest.approx([50 / 51, 49 / 50])
    same = MaskAgreement(2)
    same.update(np.zeros((4, 4)), np.zeros((4, 4)))
    assert same.boundary_agreement == 1.0 and same.iou().tolist() == [1.0, 1.0]


def test_targets_outside_the_classes_are_skipped_at_both_ends():
    """A target of -1 or of ``num_classes`` is no class (a label tool's 'unknown', an off-by-one mask): not counted."""
    cm = ConfusionMatrix(2, ignore_index=255)
    cm.update(np.array([-1, 2, 0, 1]), np.array([0, 1, 0, 1]))
    assert cm.mat.tolist() == [[1, 0], [0, 1]]


def test_a_negative_prediction_counts_as_the_first_class():
    cm = ConfusionMatrix(2)
    cm.update(np.array([1, 0]), np.array([-1, -3]))
    assert cm.mat.tolist() == [[1, 0], [1, 0]]


def test_a_class_of_one_pixel_has_an_iou():
    cm = ConfusionMatrix(2)
    cm.update(np.array([0, 0, 0, 1]), np.array([0, 0, 0, 1]))
    assert cm.iou.tolist() == [1.0, 1.0]


def test_masks_of_different_shapes_are_refused_even_when_they_broadcast():
    agree = MaskAgreement(2)
    with pytest.raises(ValueError, match=r"mask shapes differ: \(4, 4\) vs \(4, 1\)"):
        agree.update(np.zeros((4, 4), np.uint8), np.zeros((4, 1), np.uint8))
    assert agree.pixels == 0


def test_mask_agreement_takes_nested_lists_as_masks():
    agree = MaskAgreement(2)
    agree.update([[0, 1], [1, 1]], [[0, 1], [0, 1]])
    assert agree.pixels == 4 and agree.agreement == 0.75
