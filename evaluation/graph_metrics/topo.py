"""TOPO, the topology metric of Biagioni and Eriksson, as CosmiQ's `apls` package computes it.

For each origin (a ground-truth node):
1. Holes: the ground-truth nodes within `subgraph_radius` of the origin that the edges among them
   connect to it, plus points every `interval` along those edges (from the end nearer the origin;
   an edge shorter than `interval` gets none).
2. The proposal node nearest the origin within `hole_size` is the proposal's origin; with none,
   every hole is missed (false negatives). Marbles: the same construction around that node.
3. Each marble in turn (nodes first, then the points edge by edge) fills the nearest still empty
   hole within `hole_size` (a true positive); a marble without one is a false positive. Holes left
   empty are false negatives.
Counts add up over the origins; precision = TP / (TP + FP), recall = TP / (TP + FN), F1 their
harmonic mean (each 0 when its denominator is 0).

Chosen where the reference is random: it draws min(500, nodes) origins with replacement, so its
TOPO changes from run to run; here every ground-truth node is an origin (at most `max_origins`,
evenly spread over the node order). An edge's length is its declared length where the graph has
one (the SpaceNet pipeline's great-circle length), else its polyline length.
A tile whose ground truth has no nodes has no origin: precision, recall and F1 are nan; an empty
proposal scores 0 (the ground truth's nodes counted as false negatives).
"""
import math
from dataclasses import dataclass

import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree

from evaluation.graph_metrics.core import RoadArrays
from utils.settings import check


@dataclass(frozen=True)
class TopoSettings:
    """TOPO parameters, in the tile's ground units (metres when its ground size is known, else
    pixels). Defaults: the reference's, in metres."""
    hole_size: float = 4.0
    interval: float = 30.0
    subgraph_radius: float = 150.0
    max_origins: int = 500

    def __post_init__(self) -> None:
        for name in ("hole_size", "interval", "subgraph_radius"):
            value = getattr(self, name)
            check(isinstance(value, (int, float)) and math.isfinite(value) and value > 0, name,
                  f"must be a positive number, got {value!r}")
        check(isinstance(self.max_origins, int) and self.max_origins >= 1, "max_origins",
              f"must be an integer >= 1, got {self.max_origins!r}")

    def scaled(self, factor: float) -> "TopoSettings":
        """The same settings with every distance multiplied by `factor` (e.g. metres -> pixels)."""
        return TopoSettings(self.hole_size * factor, self.interval * factor,
                            self.subgraph_radius * factor, self.max_origins)


@dataclass(frozen=True)
class TopoResult:
    true_positives: int
    false_positives: int
    false_negatives: int
    precision: float
    recall: float
    f1: float


class _Sampled:
    """A graph with, per edge, its TOPO points sampled from either end.

    points: (P, 2) all samples, edge by edge, those from ends[e, 0] first then those from
    ends[e, 1]; start[e, 0] / start[e, 1]: where each run begins; count[e]: its length.
    """

    def __init__(self, roads: RoadArrays, interval: float) -> None:
        self.positions = roads.positions
        self.ends = roads.ends
        self.tree = cKDTree(self.positions) if len(self.positions) else None
        runs, counts = [], []
        for line, seg, length in zip(roads.polylines, roads.segment_lengths(),
                                     roads.edge_lengths(), strict=True):
            arc = np.concatenate([[0.0], np.cumsum(seg)])
            distances = np.arange(0.0, length, interval)[1:] if length >= interval else []
            distances = np.minimum(np.asarray(distances, dtype=float), arc[-1])
            runs += [_along(line, arc, distances), _along(line[::-1], arc[-1] - arc[::-1],
                                                          distances)]
            counts.append(len(distances))
        self.count = np.array(counts, dtype=np.int64)
        self.points = np.concatenate([np.empty((0, 2)), *runs])
        begins = np.concatenate([[0], np.cumsum(np.repeat(self.count, 2))[:-1]]).astype(np.int64)
        self.start = begins.reshape(-1, 2)

    def around(self, origin: int, radius: float) -> np.ndarray:
        """(K, 2) nodes connected to `origin` within `radius` of it, in node order, then the
        points along the edges among them, edge by edge, sampled from the end nearer the origin."""
        centre = self.positions[origin]
        near = np.sort(np.asarray(self.tree.query_ball_point(centre, radius), dtype=np.int64))
        local = np.full(len(self.positions), -1, dtype=np.int64)
        local[near] = np.arange(len(near))
        a, b = local[self.ends[:, 0]], local[self.ends[:, 1]]
        inside = np.flatnonzero((a >= 0) & (b >= 0))
        graph = coo_matrix((np.ones(len(inside)), (a[inside], b[inside])),
                           shape=(len(near), len(near)))
        _, label = connected_components(graph, directed=False)
        member = label == label[local[origin]]
        edges = inside[member[a[inside]]]
        first = self.positions[self.ends[edges, 0]]
        last = self.positions[self.ends[edges, 1]]
        outward = np.linalg.norm(last - centre, axis=1) >= np.linalg.norm(first - centre, axis=1)
        starts = np.where(outward, self.start[edges, 0], self.start[edges, 1])
        counts = self.count[edges]
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        return np.concatenate([self.positions[near[member]],
                               self.points[np.repeat(starts, counts) + offsets]])


def _along(line: np.ndarray, arc: np.ndarray, distances: np.ndarray) -> np.ndarray:
    return np.stack([np.interp(distances, arc, line[:, 0]),
                     np.interp(distances, arc, line[:, 1])], axis=1).reshape(-1, 2)


def _match(holes: np.ndarray, marbles: np.ndarray, hole_size: float) -> int:
    """Marbles in order fill the nearest empty hole within `hole_size`; the number filled."""
    distances = np.linalg.norm(marbles[:, None, :] - holes[None, :, :], axis=2)
    marble, hole = np.nonzero(distances <= hole_size)
    # Each marble's candidate holes, nearest first; a marble takes the first one still empty.
    order = np.lexsort((distances[marble, hole], marble))
    filled, served = set(), set()
    for m, h in zip(marble[order].tolist(), hole[order].tolist(), strict=True):
        if m not in served and h not in filled:
            filled.add(h)
            served.add(m)
    return len(filled)


def topo(truth: RoadArrays, proposal: RoadArrays, settings: TopoSettings = TopoSettings()
         ) -> TopoResult:
    """TOPO of a proposed road graph against the ground truth (see the module docstring)."""
    n_truth = len(truth.positions)
    if n_truth == 0:
        return TopoResult(0, 0, 0, math.nan, math.nan, math.nan)
    if len(proposal.positions) == 0:
        return TopoResult(0, 0, n_truth, 0.0, 0.0, 0.0)
    holes_graph = _Sampled(truth, settings.interval)
    marbles_graph = _Sampled(proposal, settings.interval)
    origins = (np.arange(n_truth) if n_truth <= settings.max_origins
               else np.unique(np.linspace(0, n_truth - 1, settings.max_origins).round()
                              ).astype(np.int64))
    tp = fp = fn = 0
    for origin in origins:
        holes = holes_graph.around(origin, settings.subgraph_radius)
        distance, nearest = marbles_graph.tree.query(truth.positions[origin])
        if distance > settings.hole_size:
            fn += len(holes)
            continue
        marbles = marbles_graph.around(int(nearest), settings.subgraph_radius)
        filled = _match(holes, marbles, settings.hole_size)
        tp += filled
        fp += len(marbles) - filled
        fn += len(holes) - filled
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return TopoResult(tp, fp, fn, precision, recall, f1)
