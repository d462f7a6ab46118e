"""Evaluation metrics: road IoU / precision / recall / F1, their relaxed versions with a buffer of
rho pixels, and the connectivity mean IoU.

All functions take numpy arrays or torch tensors (converted to numpy). Masks are (H, W) with road
= nonzero (bool, 0/1 or 0/255); connectivity maps are (H, W) integer class maps, 255 = ignore.
An optional (H, W) bool `valid` leaves out pixels without image data (no-data areas) from every
score: neither a prediction nor a truth there counts. (A dataset item's `mask` holds 255 at such
pixels: pass `mask == 1` as the truth and `mask != 255` as `valid`.)

Division by zero (chosen): a ratio whose denominator is 0 is 1 when neither the prediction nor the
truth holds any road (perfect agreement on an empty image), and 0 otherwise (e.g. precision of an
empty prediction on an image with roads: the image is wrong, so it must not score well). The same
rule applies to one image and to the totals of a split; a split on which no image was measured
yields nan for every score.
"""
import math

import cv2
import numpy as np
import torch

from utils.errors import ConfigError

ArrayLike = np.ndarray | torch.Tensor


def _to_numpy(array: ArrayLike) -> np.ndarray:
    if isinstance(array, torch.Tensor):
        return array.detach().cpu().numpy()
    return np.asarray(array)


def _road_mask(mask: ArrayLike) -> np.ndarray:
    """(H, W) bool road mask from any of bool, 0/1 or 0/255."""
    mask = _to_numpy(mask)
    if mask.ndim != 2:
        raise ValueError(f"a road mask must be (H, W), got shape {mask.shape}")
    return mask.astype(bool)


def _check_same_shape(pred: np.ndarray, true: np.ndarray) -> None:
    if pred.shape != true.shape:
        raise ValueError(f"prediction shape {pred.shape} differs from truth shape {true.shape}")


def _ratio(numerator: float, denominator: float, any_road: bool) -> float:
    """numerator / denominator with the module's zero-division rule (see the module docstring)."""
    if denominator == 0:
        return 0.0 if any_road else 1.0
    return numerator / denominator


def _harmonic_mean(precision: float, recall: float) -> float:
    if precision + recall == 0:
        return 0.0
    return 2 * precision * recall / (precision + recall)


def _restrict(pred: np.ndarray, true: np.ndarray,
              valid: ArrayLike | None) -> tuple[np.ndarray, np.ndarray]:
    """Both road masks without road at invalid pixels."""
    _check_same_shape(pred, true)
    if valid is None:
        return pred, true
    valid = _road_mask(valid)
    _check_same_shape(pred, valid)
    return pred & valid, true & valid


def pixel_counts(pred: ArrayLike, true: ArrayLike,
                 valid: ArrayLike | None = None) -> tuple[int, int, int]:
    """True positives, false positives and false negatives of road pixels.

    pred, true: (H, W) road masks; valid: optional (H, W) bool, pixels counted.
    """
    pred, true = _restrict(_road_mask(pred), _road_mask(true), valid)
    tp = int(np.count_nonzero(pred & true))
    return tp, int(np.count_nonzero(pred)) - tp, int(np.count_nonzero(true)) - tp


def _within(reference: np.ndarray, rho: int) -> np.ndarray:
    """(H, W) bool: pixels at Euclidean distance <= rho from a pixel of `reference`."""
    if not reference.any():
        return np.zeros_like(reference)
    # distanceTransform measures the distance to the nearest zero pixel, so roads are the zeros;
    # the precise mask gives exact Euclidean distances (sqrt of integers) for the <= test.
    distance = cv2.distanceTransform(
        np.where(reference, 0, 255).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return distance <= rho


def relaxed_counts(pred: ArrayLike, true: ArrayLike, rho: int,
                   valid: ArrayLike | None = None) -> tuple[int, int, int, int]:
    """Counts for relaxed precision and recall with a buffer of `rho` pixels.

    A predicted road pixel is correct if a true road pixel lies within Euclidean distance rho, and a
    true road pixel is found if a predicted one lies within rho. rho = 0 gives plain counts.

    pred, true: (H, W) road masks; valid: optional (H, W) bool, pixels counted (road at invalid
    pixels is removed from both masks first, so it neither counts nor matches).
    Returns (pred_hits, pred_total, true_hits, true_total): relaxed precision is
    pred_hits / pred_total and relaxed recall true_hits / true_total.
    """
    if rho < 0:
        raise ValueError(f"rho must be >= 0, got {rho}")
    pred, true = _restrict(_road_mask(pred), _road_mask(true), valid)
    pred_hits = int(np.count_nonzero(pred & _within(true, rho)))
    true_hits = int(np.count_nonzero(true & _within(pred, rho)))
    return pred_hits, int(np.count_nonzero(pred)), true_hits, int(np.count_nonzero(true))


def connectivity_confusion(pred: ArrayLike, true: ArrayLike, num_classes: int = 5,
                           ignore_index: int = 255, valid: ArrayLike | None = None) -> np.ndarray:
    """(num_classes, num_classes) int64 confusion matrix, rows = true class, columns = predicted.

    pred, true: (H, W) integer class maps; pixels whose truth is `ignore_index` or that are not
    `valid` (optional (H, W) bool) are skipped.
    """
    pred, true = _to_numpy(pred).astype(np.int64), _to_numpy(true).astype(np.int64)
    _check_same_shape(pred, true)
    labelled = true != ignore_index
    if valid is not None:
        valid = _road_mask(valid)
        _check_same_shape(pred, valid)
        labelled &= valid
    pred, true = pred[labelled], true[labelled]
    for name, classes in (("true", true), ("predicted", pred)):
        if classes.size and (classes.min() < 0 or classes.max() >= num_classes):
            raise ValueError(f"{name} connectivity classes must lie in [0, {num_classes}) "
                             f"or be {ignore_index}, got {np.unique(classes).tolist()}")
    counts = np.bincount(true * num_classes + pred, minlength=num_classes * num_classes)
    return counts.reshape(num_classes, num_classes)


def mean_iou(confusion: ArrayLike) -> float:
    """Mean IoU over the classes present in the truth or the prediction of a confusion matrix.

    A class absent from both (chosen) is left out of the mean rather than counted as 1 or 0:
    a tile without junctions says nothing about how well junctions are found, and counting it
    as perfect would inflate the score. nan if the matrix is empty.
    """
    confusion = _to_numpy(confusion).astype(np.float64)
    intersection = np.diag(confusion)
    union = confusion.sum(axis=0) + confusion.sum(axis=1) - intersection
    present = union > 0
    if not present.any():
        return math.nan
    return float(np.mean(intersection[present] / union[present]))


class RoadMetrics:
    """Accumulates the pixel and connectivity scores of this module over the images of a split.

    Pixel scores (`road_iou`, `precision`, `recall`, `f1`) and the relaxed ones are computed from
    counts summed over all pixels of the split; `mean_image_iou` is the mean of per-image IoUs;
    `conn_miou` is the mean IoU of the confusion matrix summed over the split (nan if no
    connectivity map was given).
    """

    # Additive totals, in the order of `state_tensor` (the confusion matrix follows them).
    _TOTALS = ("tp", "fp", "fn", "image_iou_sum", "images",
               "pred_hits", "pred_total", "true_hits", "true_total", "conn_images",
               "image_precision_sum", "image_recall_sum", "image_f1_sum")

    def __init__(self, rho: int = 3, conn_classes: int = 5):
        if not isinstance(rho, int) or rho < 0:
            raise ConfigError(f"rho must be a non-negative integer number of pixels, got {rho!r}")
        self.rho = rho
        self.conn_classes = conn_classes
        self.reset()

    def reset(self) -> None:
        self.totals = dict.fromkeys(self._TOTALS, 0.0)
        self.confusion = np.zeros((self.conn_classes, self.conn_classes), dtype=np.int64)

    def update(self, pred_mask: ArrayLike, true_mask: ArrayLike,
               pred_conn: ArrayLike | None = None, true_conn: ArrayLike | None = None,
               valid: ArrayLike | None = None) -> dict:
        """Add one image; return its own scores.

        pred_mask, true_mask: (H, W) road masks; pred_conn, true_conn: optional (H, W) class maps
        (both or neither); valid: optional (H, W) bool, the pixels with image data, the only ones
        scored. Returns iou, precision, recall, f1, relaxed_precision, relaxed_recall,
        relaxed_f1, and conn_miou when connectivity maps are given.
        """
        if (pred_conn is None) != (true_conn is None):
            raise ValueError("give both pred_conn and true_conn, or neither")
        tp, fp, fn = pixel_counts(pred_mask, true_mask, valid)
        pred_hits, pred_total, true_hits, true_total = relaxed_counts(
            pred_mask, true_mask, self.rho, valid)
        scores = self._scores(tp, fp, fn, pred_hits, pred_total, true_hits, true_total)
        counts = (tp, fp, fn, scores["iou"], 1, pred_hits, pred_total, true_hits, true_total)
        for key, value in zip(self._TOTALS, counts, strict=False):
            self.totals[key] += value
        for name in ("precision", "recall", "f1"):
            self.totals[f"image_{name}_sum"] += scores[name]
        if pred_conn is not None:
            confusion = connectivity_confusion(pred_conn, true_conn, self.conn_classes,
                                               valid=valid)
            self.confusion += confusion
            self.totals["conn_images"] += 1
            scores["conn_miou"] = mean_iou(confusion)
        return scores

    @staticmethod
    def _scores(tp: float, fp: float, fn: float, pred_hits: float, pred_total: float,
                true_hits: float, true_total: float) -> dict:
        any_road = tp + fp + fn > 0
        precision = _ratio(tp, tp + fp, any_road)
        recall = _ratio(tp, tp + fn, any_road)
        relaxed_precision = _ratio(pred_hits, pred_total, any_road)
        relaxed_recall = _ratio(true_hits, true_total, any_road)
        return {
            "iou": _ratio(tp, tp + fp + fn, any_road),
            "precision": precision,
            "recall": recall,
            "f1": _harmonic_mean(precision, recall),
            "relaxed_precision": relaxed_precision,
            "relaxed_recall": relaxed_recall,
            "relaxed_f1": _harmonic_mean(relaxed_precision, relaxed_recall),
        }

    def result(self) -> dict:
        """Split scores: road_iou, precision, recall, f1 (pixels accumulated over the split), their
        per-image means mean_image_iou, mean_image_precision, mean_image_recall, mean_image_f1,
        relaxed_precision, relaxed_recall, relaxed_f1, conn_miou (floats; nan before any update)."""
        keys = ("road_iou", "precision", "recall", "f1", "mean_image_iou", "mean_image_precision",
                "mean_image_recall", "mean_image_f1", "relaxed_precision", "relaxed_recall",
                "relaxed_f1", "conn_miou")
        t = self.totals
        if t["images"] == 0:
            return dict.fromkeys(keys, math.nan)
        scores = self._scores(t["tp"], t["fp"], t["fn"], t["pred_hits"], t["pred_total"],
                              t["true_hits"], t["true_total"])
        return {
            "road_iou": scores["iou"],
            "precision": scores["precision"],
            "recall": scores["recall"],
            "f1": scores["f1"],
            "mean_image_iou": t["image_iou_sum"] / t["images"],
            "mean_image_precision": t["image_precision_sum"] / t["images"],
            "mean_image_recall": t["image_recall_sum"] / t["images"],
            "mean_image_f1": t["image_f1_sum"] / t["images"],
            "relaxed_precision": scores["relaxed_precision"],
            "relaxed_recall": scores["relaxed_recall"],
            "relaxed_f1": scores["relaxed_f1"],
            "conn_miou": mean_iou(self.confusion) if t["conn_images"] else math.nan,
        }

    def state_tensor(self) -> torch.Tensor:
        """(13 + conn_classes**2,) float64 tensor of every additive total, for `all_reduce`.

        float64 holds pixel counts exactly up to 2**53 (about 5e9 SpaceNet tiles).
        """
        totals = torch.tensor([self.totals[key] for key in self._TOTALS], dtype=torch.float64)
        confusion = torch.from_numpy(self.confusion.reshape(-1).astype(np.float64))
        return torch.cat([totals, confusion])

    def load_state_tensor(self, state: torch.Tensor) -> None:
        """Replace the totals by those of `state`, e.g. the sum over processes of `state_tensor`."""
        state = state.detach().cpu().to(torch.float64)
        expected = len(self._TOTALS) + self.conn_classes ** 2
        if state.shape != (expected,):
            raise ValueError(f"state tensor must have shape ({expected},), "
                             f"got {tuple(state.shape)}")
        totals, confusion = state.split([len(self._TOTALS), self.conn_classes ** 2])
        self.totals = dict(zip(self._TOTALS, totals.tolist(), strict=False))
        self.confusion = confusion.round().to(torch.int64).reshape(
            self.conn_classes, self.conn_classes).numpy()
