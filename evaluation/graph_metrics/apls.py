"""APLS (Average Path Length Similarity), the road-graph metric of the SpaceNet 3 challenge.

The pairing of the two graphs follows the CosmiQ `apls` reference:

1. Control points of a graph A: its nodes, then points along each edge (from its first end, as
   `edge_polyline` orients it), whatever the edge's curvature: none on an edge shorter than
   0.75 * delta, the midpoint of an edge up to delta long, else ceil(L / delta) - 1 points that cut
   the edge into equal parts (at most delta long).
2. Each control point of A, in that order, is inserted into the plain graph B (without B's own
   control points) at its orthogonal projection onto B's nearest edge, if that edge is within `snap`
   (a distance of exactly `snap` still snaps): the edge is split there and the new node carries the
   control point's id. When the projection lands on an existing node (an end of the edge, or the
   node of an earlier control point), that node takes the new id and the earlier control point
   becomes absent: of the points that land on one spot, the last one inserted survives. Points
   farther than `snap` from B are absent. Ids of A and of B never mix.
3. For every pair of A's control points whose shortest path in A is at least `min_path`, the
   penalty is min(1, |L_A - L_B| / L_A), L_B being the shortest path between the same ids in B with
   A's points inserted; an absent id or no path in B costs 1. C(A -> B) = 1 - mean penalty
   (over unordered pairs; the reference counts both orders, which gives the same mean).
4. APLS = harmonic mean of C(gt -> prop) and C(prop -> gt); 0 if either is 0.

Chosen edge cases (the reference scores 0 whenever a graph is empty, and the authors' script
skipped tiles with an empty prediction, which inflates the mean):
- A direction whose graph A has no pair of control points at least `min_path` apart along A scores
  1: A has no path that B could fail to keep. Hence, as every tile enters the mean over tiles,
  a tile with no ground-truth roads scores 1 for an empty prediction and 0 for a non-empty one
  (every predicted path is missing from the ground truth), and an empty prediction on a tile with
  roads scores 0. A graph whose roads are all shorter than `min_path` counts as having no roads.
- The `min_path` filter applies to every pair, also to pairs whose first point is absent from B
  (the reference skips the filter there; this only concerns pairs less than 3 px apart).

All points are inserted at once (nearest segment through a KD-tree, one key per spot on B), which
gives the graph that inserting them one by one gives; paths come from scipy's Dijkstra.

Lengths are in pixels. With `pixel_size_m` (sx, sy), the per-axis ground size of a georeferenced
tile (SpaceNet Las Vegas: 0.243 m east-west, 0.300 m north-south), coordinates become metres and
delta, snap and min_path are read in metres; `metres_per_pixel`, one number, is for rasters
without georeference. The score itself is unit-free. With `curved_eps` >= 0 only edges whose
length differs from their bounding-box diagonal by at least that fraction get control points (the
authors' port: 0.03). Edges may declare a length other than their polyline's
(`RoadArrays.lengths`), kept until a control point cuts them: the SpaceNet pipeline
(`evaluation.graph_metrics.apls_spacenet`) needs it. Control points and snapping live in
`evaluation.graph_metrics.core`, which the SpaceNet pipeline shares; the named presets (ours,
spacenet, authors) and TOPO beside APLS: `evaluation.graph_metrics.tile`.
"""
import math
from dataclasses import dataclass

import networkx as nx
import numpy as np
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from evaluation.graph_metrics.core import (
    RoadArrays,
    Segments,
    control_points,
    harmonic_mean,
    snapped_spots,
    split_graph,
)


@dataclass(frozen=True)
class AplsResult:
    """APLS of one tile, both directions, and the number of control-point pairs each compared."""
    apls: float
    gt_to_prop: float
    prop_to_gt: float
    gt_pairs: int
    prop_pairs: int


def _insert_points(points: np.ndarray, roads: RoadArrays, snap: float
                   ) -> tuple[csr_matrix, np.ndarray]:
    """The graph `roads` with `points` inserted in order, and the node each point ended on.

    Returns the sparse graph over the M nodes of `roads` plus one node per new spot, and (P,)
    node index of each point (-1: absent, too far or renamed by a later point on the same spot).
    """
    segments = Segments.from_roads(roads)
    n_nodes = len(roads.positions)
    node_of = np.full(len(points), -1, dtype=np.int64)
    if len(segments.length) == 0:
        return csr_matrix((n_nodes, n_nodes)), node_of
    point, t, edge, index, s, on_node, end_node = snapped_spots(points, roads, segments, snap)
    spots = zip(np.where(on_node, -1, edge).tolist(), np.where(on_node, end_node, index).tolist(),
                s.tolist(), strict=True)
    # Insertion in order renames a spot's node for each later point: the last one keeps it.
    last_on_spot = {spot: i for i, spot in enumerate(spots)}
    winners = np.array(sorted(last_on_spot.values()), dtype=np.int64)
    new = winners[~on_node[winners]]
    renamed = winners[on_node[winners]]
    node_of[point[renamed]] = end_node[renamed]
    node_of[point[new]] = n_nodes + np.arange(len(new))
    graph = split_graph(roads, edge[new], t[new], node_of[point[new]], n_nodes + len(new))
    return graph, node_of


def _path_similarity(source: RoadArrays, target: RoadArrays, delta: float, snap: float,
                     min_path: float, curved_eps: float = -1.0) -> tuple[float, int]:
    """C(source -> target) and the number of control-point pairs it compared."""
    points, source_graph = control_points(source, delta, curved_eps)
    if len(points) < 2:
        return 1.0, 0
    source_lengths = dijkstra(source_graph, directed=False)
    pairs = np.triu(np.isfinite(source_lengths) & (source_lengths >= min_path)
                    & (source_lengths > 0), k=1)
    if not pairs.any():
        return 1.0, 0
    target_graph, node_of = _insert_points(points, target, snap)
    present = np.flatnonzero(node_of >= 0)
    target_lengths = np.full_like(source_lengths, np.inf)
    if len(present):
        nodes = node_of[present]
        found = dijkstra(target_graph, directed=False, indices=nodes)[:, nodes]
        target_lengths[np.ix_(present, present)] = found
    length_a, length_b = source_lengths[pairs], target_lengths[pairs]
    # An absent id or no path gives length_b = inf, hence the full penalty of 1.
    penalty = np.minimum(1.0, np.abs(length_a - length_b) / length_a)
    return float(1.0 - penalty.mean()), int(pairs.sum())


def apls(gt: nx.Graph, prop: nx.Graph, *, delta: float = 20.0, snap: float = 10.0,
         min_path: float = 3.0, metres_per_pixel: float | None = None,
         pixel_size_m: tuple[float, float] | None = None, curved_eps: float = -1.0
         ) -> AplsResult:
    """APLS between a ground-truth and a proposed road graph (the shared road-graph contract).

    delta: control-point spacing; snap: largest distance at which a control point is inserted into
    the other graph; min_path: shortest path compared. Pixels, or metres if `pixel_size_m`
    (sx, sy), the per-axis ground size of a georeferenced tile, or `metres_per_pixel`, one number
    for a raster without georeference, is given. curved_eps >= 0 puts control points only on
    curved edges (see `core._is_straight`; the authors' port uses 0.03); negative: on every edge.
    """
    scale = (1.0, 1.0)
    if metres_per_pixel is not None and pixel_size_m is not None:
        raise ValueError("metres_per_pixel: give it or pixel_size_m, not both")
    if metres_per_pixel is not None:
        if metres_per_pixel <= 0:
            raise ValueError(f"metres_per_pixel must be positive, got {metres_per_pixel}")
        delta, snap, min_path = (value / metres_per_pixel for value in (delta, snap, min_path))
    if pixel_size_m is not None:
        if len(pixel_size_m) != 2 or not all(math.isfinite(v) and v > 0 for v in pixel_size_m):
            raise ValueError(f"pixel_size_m: must be two positive sizes, got {pixel_size_m}")
        scale = (float(pixel_size_m[0]), float(pixel_size_m[1]))
    if delta <= 0 or snap < 0 or min_path < 0:
        raise ValueError(f"need delta > 0, snap >= 0, min_path >= 0; "
                         f"got {delta}, {snap}, {min_path}")
    gt_roads, prop_roads = RoadArrays.from_graph(gt, scale), RoadArrays.from_graph(prop, scale)
    gt_to_prop, gt_pairs = _path_similarity(gt_roads, prop_roads, delta, snap, min_path,
                                            curved_eps)
    prop_to_gt, prop_pairs = _path_similarity(prop_roads, gt_roads, delta, snap, min_path,
                                              curved_eps)
    return AplsResult(harmonic_mean(gt_to_prop, prop_to_gt), gt_to_prop, prop_to_gt,
                      gt_pairs, prop_pairs)
