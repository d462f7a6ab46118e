import math

import numpy as np
import pytest
import torch

from evaluation.metrics import (
    RoadMetrics,
    connectivity_confusion,
    mean_iou,
    pixel_counts,
    relaxed_counts,
)


def mask(shape, pixels):
    out = np.zeros(shape, dtype=bool)
    for row, col in pixels:
        out[row, col] = True
    return out


def test_pixel_counts_and_scores_of_one_image():
    true = mask((4, 4), [(0, 0), (0, 1), (1, 0), (1, 1)])
    pred = mask((4, 4), [(0, 0), (1, 1), (3, 3)])
    assert pixel_counts(pred, true) == (2, 1, 2)
    scores = RoadMetrics(rho=0).update(pred, true)
    assert scores["iou"] == pytest.approx(2 / 5)
    assert scores["precision"] == pytest.approx(2 / 3)
    assert scores["recall"] == pytest.approx(1 / 2)
    assert scores["f1"] == pytest.approx(4 / 7)  # 2 tp / (2 tp + fp + fn)
    assert "conn_miou" not in scores


def test_masks_as_0_255_and_torch_tensors_count_alike():
    true = mask((4, 4), [(0, 0), (0, 1), (1, 0), (1, 1)])
    pred = mask((4, 4), [(0, 0), (1, 1), (3, 3)])
    as_255 = (pred.astype(np.uint8) * 255, true.astype(np.uint8) * 255)
    as_torch = (torch.from_numpy(pred), torch.from_numpy(true).long())
    assert pixel_counts(*as_255) == pixel_counts(*as_torch) == (2, 1, 2)


def test_relaxed_counts_at_rho_0_are_plain_counts():
    rng = np.random.default_rng(0)
    pred, true = rng.random((2, 20, 30)) < 0.3
    tp, fp, fn = pixel_counts(pred, true)
    assert relaxed_counts(pred, true, 0) == (tp, tp + fp, tp, tp + fn)


def test_relaxed_counts_of_a_line_shifted_by_one_pixel():
    # Truth: row 5, columns 2..8 (7 px). Prediction: row 6, columns 0..10 (11 px).
    # Columns 2..8 of the prediction are 1 px below the truth; columns 1 and 9 are sqrt(2) away
    # (diagonal to the line's ends); columns 0 and 10 are sqrt(5) away. Every true pixel has a
    # predicted one right below it.
    true = mask((11, 11), [(5, col) for col in range(2, 9)])
    pred = mask((11, 11), [(6, col) for col in range(11)])
    assert relaxed_counts(pred, true, 0) == (0, 11, 0, 7)
    assert relaxed_counts(pred, true, 1) == (7, 11, 7, 7)
    assert relaxed_counts(pred, true, 2) == (9, 11, 7, 7)
    assert relaxed_counts(pred, true, 3) == (11, 11, 7, 7)

    plain = RoadMetrics(rho=0).update(pred, true)
    assert plain["relaxed_precision"] == plain["precision"] == 0
    assert plain["relaxed_f1"] == plain["f1"] == 0
    rho1 = RoadMetrics(rho=1).update(pred, true)
    assert rho1["relaxed_precision"] == pytest.approx(7 / 11)
    assert rho1["relaxed_recall"] == 1
    assert rho1["relaxed_f1"] == pytest.approx(7 / 9)  # 2 (7/11) / (7/11 + 1)
    rho2 = RoadMetrics(rho=2).update(pred, true)
    assert rho2["relaxed_precision"] == pytest.approx(9 / 11)
    assert rho2["relaxed_f1"] == pytest.approx(9 / 10)  # 2 (9/11) / (9/11 + 1)


def test_connectivity_confusion_ignores_255_and_mean_iou():
    true = np.array([[0, 1, 2], [3, 255, 4]])
    pred = np.array([[0, 1, 1], [3, 4, 4]])
    confusion = connectivity_confusion(pred, true)
    expected = np.zeros((5, 5), dtype=np.int64)
    for t, p in [(0, 0), (1, 1), (2, 1), (3, 3), (4, 4)]:
        expected[t, p] += 1
    np.testing.assert_array_equal(confusion, expected)
    assert confusion.dtype == np.int64
    # Per-class IoU: 0 -> 1, 1 -> 1/2 (one extra prediction), 2 -> 0, 3 -> 1, 4 -> 1.
    assert mean_iou(confusion) == pytest.approx((1 + 0.5 + 0 + 1 + 1) / 5)


def test_mean_iou_leaves_out_classes_absent_from_truth_and_prediction():
    assert mean_iou(connectivity_confusion(np.array([[0, 2]]), np.array([[0, 2]]))) == 1
    assert math.isnan(mean_iou(np.zeros((5, 5))))


def test_connectivity_class_out_of_range_is_rejected():
    with pytest.raises(ValueError, match="connectivity classes"):
        connectivity_confusion(np.array([[7]]), np.array([[0]]))


def test_split_totals_differ_from_mean_of_image_ious():
    metrics = RoadMetrics(rho=0)
    # Image A: tp 1, fp 0, fn 0 -> IoU 1.
    metrics.update(mask((3, 3), [(0, 0)]), mask((3, 3), [(0, 0)]))
    # Image B: tp 1, fp 2, fn 1 -> IoU 1/4.
    metrics.update(mask((3, 3), [(0, 0), (0, 1), (0, 2)]), mask((3, 3), [(0, 0), (2, 2)]))
    # Image C: no road in truth or prediction -> IoU 1 in the per-image mean, nothing to totals.
    empty = metrics.update(np.zeros((3, 3), bool), np.zeros((3, 3), bool))
    assert empty == {key: 1.0 for key in empty}
    result = metrics.result()
    assert result["road_iou"] == pytest.approx(2 / 5)  # tp 2, fp 2, fn 1
    assert result["precision"] == pytest.approx(1 / 2)
    assert result["recall"] == pytest.approx(2 / 3)
    assert result["f1"] == pytest.approx(4 / 7)
    assert result["mean_image_iou"] == pytest.approx((1 + 1 / 4 + 1) / 3)
    assert result["relaxed_precision"] == result["precision"]
    assert math.isnan(result["conn_miou"])


def test_empty_prediction_on_an_image_with_roads_scores_zero():
    scores = RoadMetrics().update(np.zeros((3, 3), bool), mask((3, 3), [(1, 1)]))
    assert scores == {key: 0.0 for key in scores}


def test_result_keys_and_nan_before_any_update():
    result = RoadMetrics().result()
    assert list(result) == ["road_iou", "precision", "recall", "f1", "mean_image_iou",
                            "mean_image_precision", "mean_image_recall", "mean_image_f1",
                            "relaxed_precision", "relaxed_recall", "relaxed_f1", "conn_miou"]
    assert all(math.isnan(value) for value in result.values())


def test_state_tensor_sums_like_one_accumulator():
    rng = np.random.default_rng(1)
    images = [(rng.random((16, 16)) < 0.3, rng.random((16, 16)) < 0.3,
               rng.integers(0, 5, (16, 16)), rng.integers(0, 5, (16, 16))) for _ in range(3)]
    images[0][3][0, :] = 255
    together = RoadMetrics(rho=2)
    parts = [RoadMetrics(rho=2), RoadMetrics(rho=2)]
    for index, image in enumerate(images):
        together.update(*image)
        parts[index % 2].update(*image)
    state = parts[0].state_tensor() + parts[1].state_tensor()
    assert state.dtype == torch.float64 and state.shape == (13 + 25,)
    merged = RoadMetrics(rho=2)
    merged.load_state_tensor(state)
    assert merged.result() == pytest.approx(together.result())
    np.testing.assert_array_equal(merged.confusion, together.confusion)
    with pytest.raises(ValueError, match="shape"):
        merged.load_state_tensor(state[:-1])


def test_per_image_means_of_precision_recall_f1():
    # Image A: perfect (P = R = F1 = 1). Image B: 1 predicted pixel on 2 true ones: P = 1, R = 1/2,
    # F1 = 2/3. Means: P 1, R 3/4, F1 5/6; pooled over pixels: P 3/3, R 3/4.
    metrics = RoadMetrics(rho=0)
    a = np.zeros((4, 4), bool)
    a[0, :2] = True
    metrics.update(a, a)
    pred, true = np.zeros((4, 4), bool), np.zeros((4, 4), bool)
    pred[2, 0] = True
    true[2, :2] = True
    metrics.update(pred, true)
    result = metrics.result()
    assert result["mean_image_precision"] == pytest.approx(1.0)
    assert result["mean_image_recall"] == pytest.approx(0.75)
    assert result["mean_image_f1"] == pytest.approx(5 / 6)
    assert result["recall"] == pytest.approx(3 / 4)


def test_invalid_pixels_count_in_no_score():
    rng = np.random.default_rng(4)
    pred, true = rng.random((2, 30, 40)) < 0.3
    valid = np.ones((30, 40), bool)
    valid[:, 25:] = False
    # On the invalid part: garbage that would change every score if it counted.
    pred_garbage, true_garbage = pred.copy(), true.copy()
    pred_garbage[:, 25:], true_garbage[:, 25:] = True, False
    assert pixel_counts(pred_garbage, true_garbage, valid) == pixel_counts(pred[:, :25],
                                                                           true[:, :25])
    # Relaxed: a truth pixel across the no-data edge does not match a valid prediction either.
    assert relaxed_counts(pred_garbage, true_garbage, 2, valid) == relaxed_counts(
        pred[:, :25], true[:, :25], 2)
    conn_pred, conn_true = rng.integers(0, 5, (2, 30, 40))
    confusion = connectivity_confusion(conn_pred, conn_true, valid=valid)
    np.testing.assert_array_equal(confusion,
                                  connectivity_confusion(conn_pred[:, :25], conn_true[:, :25]))
    with_valid, cropped = RoadMetrics(rho=2), RoadMetrics(rho=2)
    scores = with_valid.update(pred_garbage, true_garbage, conn_pred, conn_true, valid=valid)
    assert scores == cropped.update(pred[:, :25], true[:, :25], conn_pred[:, :25],
                                    conn_true[:, :25])
    assert with_valid.result() == cropped.result()
    with pytest.raises(ValueError, match="shape"):
        pixel_counts(pred, true, valid[:, :10])
