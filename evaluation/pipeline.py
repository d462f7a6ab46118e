"""The one evaluation path, shared by validation and `test.py`.

For each tile: predict whole-tile logits (sliding window), post-process them once (the road
probability, the only threshold, the connectivity classes, the road graph), score them against
the truth when there is one (pixel and relaxed metrics, connectivity mIoU, losses, APLS) and
write the outputs through one writer. The split's metrics are reduced over all processes, so
validation under DDP and a single-process `test.py` report the same numbers.
"""
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import networkx as nx
import numpy as np
import torch

from evaluation.graph_metrics.tile import AplsSettings, score_tile
from evaluation.graph_metrics.topo import TopoSettings
from evaluation.metrics import RoadMetrics
from evaluation.postprocess import Prediction, predicted_graph, truth_lines
from evaluation.predictor import (
    ImageSource,
    SlidingWindowPredictor,
    TensorSource,
    WindowLogits,
)
from evaluation.writer import PredictionWriter
from model.loss import balanced_class_weights, soft_iou_from_sums, soft_iou_sums, weighted_nll_sums
from roads.classes import CONNECTIVITY_CLASSES, IGNORE_INDEX, SEGMENTATION_CLASSES
from roads.extraction import GraphSettings
from roads.georeference import Georeference, read_georeference
from roads.graph import graph_to_lines
from utils.config import ConfigParser
from utils.distributed import all_reduce_sum, gather_objects
from utils.settings import check

LOSS_NAMES = ("seg", "conn", "loss")
"""Losses of the final outputs on whole tiles (`loss` = seg + conn, unweighted)."""
APLS_NAMES = ("apls", "apls_gt_to_prop", "apls_prop_to_gt")
TOPO_NAMES = ("topo_precision", "topo_recall", "topo_f1")


@dataclass(frozen=True)
class MetricSettings:
    """The `metrics` section: the relaxed metrics' buffer `rho` in pixels, the APLS preset and
    distances (`evaluation.graph_metrics.tile.AplsSettings`) and the TOPO parameters (null: no
    TOPO)."""

    rho: int = 3
    apls: AplsSettings = AplsSettings()
    topo: TopoSettings | None = TopoSettings()

    def __post_init__(self) -> None:
        check(self.rho >= 0, "rho", f"must be a non-negative number of pixels, got {self.rho}")

    def graph_names(self) -> tuple[str, ...]:
        """The per-tile graph scores: APLS both ways, and TOPO when it is on."""
        return APLS_NAMES + (TOPO_NAMES if self.topo is not None else ())


@dataclass(frozen=True)
class EvaluationSettings:
    """Everything the pipeline needs besides the predictor (whose settings hold the threshold).

    graphs: build road graphs and score APLS (validation may skip them: they cost time).
    """

    graphs: bool = True
    metrics: MetricSettings = MetricSettings()
    graph: GraphSettings = GraphSettings()


@dataclass
class TileResult:
    """What the pipeline made of one tile: the input item, the prediction, the predicted graph
    (None when graphs are off), the tile's scores (empty without truth), its (H, W) bool valid
    pixels (None: all valid) and its georeference (None: plain image)."""

    item: dict
    prediction: Prediction
    graph: nx.Graph | None
    scores: dict[str, float]
    valid: np.ndarray | None = None
    georeference: Georeference | None = None


class Evaluator:
    """Evaluates a split tile by tile; `result()` gives the split's metrics once all are done.

    items: dicts with `image` (3, H, W) float normalised, `raw_image` (H, W, 3) uint8, `stem`,
    `image_path` and, for a split with truth, `mask` (H, W) int 0/1, `conn` (H, W) int classes and
    `geojson_path` ("" when the tile has none).
    """

    def __init__(self, predictor: SlidingWindowPredictor, settings: EvaluationSettings,
                 writer: PredictionWriter | None = None) -> None:
        self.predictor = predictor
        self.settings = settings
        self.writer = writer
        self.metrics = RoadMetrics(rho=settings.metrics.rho)
        self.losses = torch.zeros(3, dtype=torch.float64)  # seg, conn, tiles with truth
        self.tiles_seen = torch.zeros(1, dtype=torch.float64)
        # Per graph score: sum and number of tiles scored (the spacenet preset skips some).
        self.graph_scores = torch.zeros(len(settings.metrics.graph_names()), 2,
                                        dtype=torch.float64)
        self.rows: list[dict] = []
        self.truth_sources: set[str] = set()

    @staticmethod
    def metric_names(settings: EvaluationSettings) -> set[str]:
        """The numeric keys of `result()` for a split with truth."""
        names = set(RoadMetrics(rho=0).result()) | set(LOSS_NAMES)
        return names | set(settings.metrics.graph_names()) if settings.graphs else names

    def tiles(self, items: Iterable[dict]) -> Iterator[TileResult]:
        """Predict, post-process, score and write each item; yield what was made of it."""
        for item in items:
            yield self._evaluate(item)

    def _evaluate(self, item: dict) -> TileResult:
        self.tiles_seen += 1
        source = item["image"]
        if isinstance(source, torch.Tensor):
            source = TensorSource(source)
        prediction = Prediction.empty(source.shape)
        loss = TileLoss(item["mask"], item["conn"]) if "mask" in item else None
        for window in self.predictor.windows(source):
            prediction.paste(window.region, window.segmentation, window.connectivity,
                             self.predictor.settings.threshold)
            if loss is not None:
                loss.add(window)
        if hasattr(source, "close"):
            source.close()
        georeference = read_georeference(item["image_path"])
        valid = _valid_pixels(item, source)
        graph = None
        if self.settings.graphs or self.writer is not None:
            graph = predicted_graph(prediction, self.settings.graph, item.get("pixel_size_m"),
                                    valid)
        scores: dict[str, float] = {}
        true_mask = None
        if loss is not None:
            true_mask = item["mask"].numpy() == 1
            scores = self.metrics.update(prediction.mask, true_mask, prediction.connectivity,
                                         item["conn"].numpy(), valid=valid)
            seg_loss, conn_loss = loss.result()
            self.losses += torch.tensor([seg_loss, conn_loss, 1.0], dtype=torch.float64)
            scores.update(seg=seg_loss, conn=conn_loss, loss=seg_loss + conn_loss)
            if self.settings.graphs:
                scores.update(self._graph_scores(item, true_mask, georeference, graph))
            self.rows.append({"stem": item["stem"], **{k: round(v, 6) for k, v in scores.items()}})
        if self.writer is not None:
            image = _numpy(item["raw_image"]) if "raw_image" in item else None
            self.writer.write(item["stem"], image, prediction, graph, georeference, true_mask,
                              valid)
        return TileResult(item, prediction, graph, scores, valid, georeference)

    def _graph_scores(self, item: dict, true_mask: np.ndarray,
                      georeference: Georeference | None, graph: nx.Graph) -> dict[str, float]:
        """APLS and TOPO of the predicted graph against the tile's true roads."""
        lines, source = truth_lines(true_mask, item["geojson_path"], georeference,
                                    self.settings.graph, item.get("pixel_size_m"))
        self.truth_sources.add(source)
        metrics = self.settings.metrics
        scores = score_tile(lines, graph_to_lines(graph), metrics.apls, metrics.topo,
                            to_lonlat=georeference.to_lonlat if georeference else None,
                            pixel_size_m=item.get("pixel_size_m"))
        for index, name in enumerate(metrics.graph_names()):
            if not math.isnan(scores[name]):
                self.graph_scores[index] += torch.tensor([scores[name], 1.0], dtype=torch.float64)
        return scores

    def result(self) -> dict[str, Any]:
        """The split's metrics, summed over every process: RoadMetrics' scores, the mean losses,
        the mean APLS and where its truth came from, and the number of tiles (only the latter
        for tiles without truth). Collective under DDP: every process must call it."""
        self.metrics.load_state_tensor(all_reduce_sum(self.metrics.state_tensor()))
        losses = all_reduce_sum(self.losses.clone())
        graph_sums = all_reduce_sum(self.graph_scores.clone())
        tiles_seen = int(all_reduce_sum(self.tiles_seen.clone()).item())
        self.rows = sorted((row for rows in gather_objects(self.rows) for row in rows),
                           key=lambda row: row["stem"])
        sources = {source for group in gather_objects(sorted(self.truth_sources))
                   for source in group}
        tiles = losses[2].item()
        if not tiles:
            return {"n_tiles": tiles_seen}
        summary: dict[str, Any] = self.metrics.result()
        seg, conn = (losses[:2] / tiles).tolist()
        summary.update(seg=seg, conn=conn, loss=seg + conn)
        if self.settings.graphs:
            for name, (total, count) in zip(self.settings.metrics.graph_names(),
                                            graph_sums.tolist()):
                summary[name] = total / count if count else math.nan
            summary["apls_tiles"] = int(graph_sums[0, 1].item())
            summary["apls_ground_truth"] = "+".join(sorted(sources))
        summary["n_tiles"] = tiles_seen
        return summary


class TileLoss:
    """The losses of a tile's final outputs, accumulated over its windows: soft-IoU from summed
    intersections and unions, the balanced cross-entropy (class weights from the whole tile's
    labels) from summed weighted log-losses, so a tile never needs its logits in one piece.

    mask (H, W) int 0/1 (255 ignored), conn (H, W) int classes (255 ignored).
    """

    def __init__(self, mask: torch.Tensor, conn: torch.Tensor) -> None:
        self.mask, self.conn = mask, conn
        self.weights = balanced_class_weights(conn, CONNECTIVITY_CLASSES)
        self.intersection = self.union = torch.zeros(SEGMENTATION_CLASSES, dtype=torch.float64)
        self.nll = self.weight = torch.zeros((), dtype=torch.float64)

    def add(self, window: WindowLogits) -> None:
        mask, conn = self.mask[window.region][None], self.conn[window.region][None]
        intersection, union = soft_iou_sums(window.segmentation[None], mask)
        self.intersection = self.intersection + intersection[0].double()
        self.union = self.union + union[0].double()
        nll, weight = weighted_nll_sums(window.connectivity[None], conn, self.weights)
        self.nll, self.weight = self.nll + nll.double(), self.weight + weight.double()

    def result(self) -> tuple[float, float]:
        """(segmentation loss, connectivity loss); the latter 0 for a tile without labels."""
        seg = soft_iou_from_sums(self.intersection, self.union).item()
        conn = (self.nll / self.weight).item() if self.weight > 0 else 0.0
        return seg, conn


def evaluate(predictor: SlidingWindowPredictor, items: Iterable[dict],
             settings: EvaluationSettings, writer: PredictionWriter | None = None
             ) -> tuple[dict[str, Any], list[dict]]:
    """Run the pipeline over `items`: the split's metrics and one row of scores per tile."""
    evaluator = Evaluator(predictor, settings, writer)
    for _ in evaluator.tiles(items):
        pass
    return evaluator.result(), evaluator.rows


def evaluation_settings(config: ConfigParser, graphs: bool = True) -> EvaluationSettings:
    """The pipeline's settings from a config: its `metrics` and `graph` sections."""
    return EvaluationSettings(graphs=graphs, metrics=config.settings(MetricSettings, "metrics"),
                              graph=config.settings(GraphSettings, "graph"))


def _valid_pixels(item: dict, source: ImageSource) -> np.ndarray | None:
    """(H, W) bool pixels with image data: where the truth is not IGNORE_INDEX, or what a scene
    read from disk found (alpha, nodata); None when every pixel is valid."""
    if "mask" in item:
        valid = item["mask"].numpy() != IGNORE_INDEX
    else:
        valid = getattr(source, "valid", None)
        if valid is None:
            return None
    return None if valid.all() else valid


def _numpy(array: Any) -> np.ndarray:
    return array.numpy() if isinstance(array, torch.Tensor) else np.asarray(array)
