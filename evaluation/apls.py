"""APLS (Average Path Length Similarity), the SpaceNet 3 road-graph metric of SPEC section 6.

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
authors' port: 0.03). Edges may declare a length other than their polyline's (`_Roads.lengths`),
kept until a control point cuts them: the SpaceNet pipeline (`evaluation.apls_spacenet`) needs it.
The named presets (ours, spacenet, authors) and TOPO beside APLS: `evaluation.apls_tile`.
"""
import argparse
import functools
import json
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import networkx as nx
import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import dijkstra
from scipy.spatial import cKDTree

from roads.graph import edge_polyline, lines_to_graph
from utils.errors import DataError, UserError, run_cli


@dataclass(frozen=True)
class AplsResult:
    """APLS of one tile, both directions, and the number of control-point pairs each compared."""
    apls: float
    gt_to_prop: float
    prop_to_gt: float
    gt_pairs: int
    prop_pairs: int


@dataclass(frozen=True)
class _Roads:
    """A road graph as arrays.

    positions: (M, 2) node positions (x, y); ends: (E, 2) node indices of each edge;
    polylines: E arrays (n_e, 2) running from the edge's first end to its second;
    lengths: (E,) length of each edge while it is not cut (None: its polyline length). The
    SpaceNet pipeline declares great-circle lengths there while its geometry is in UTM metres.
    """
    positions: np.ndarray
    ends: np.ndarray
    polylines: list[np.ndarray]
    lengths: np.ndarray | None = None

    @classmethod
    def from_graph(cls, graph: nx.Graph, scale: tuple[float, float] = (1.0, 1.0)) -> "_Roads":
        """Arrays of a road graph (the shared contract), coordinates multiplied by (sx, sy)."""
        index = {node: i for i, node in enumerate(graph.nodes)}
        factor = np.asarray(scale, dtype=float)
        positions = np.array([graph.nodes[node]["pos"] for node in graph.nodes], dtype=float)
        edges = list(graph.edges)
        ends = np.array([[index[u], index[v]] for u, v in edges], dtype=np.int64)
        polylines = [np.asarray(edge_polyline(graph, u, v), dtype=float) * factor
                     for u, v in edges]
        return cls(positions.reshape(-1, 2) * factor, ends.reshape(-1, 2), polylines)

    def segment_lengths(self) -> list[np.ndarray]:
        """Per edge, the (n_e - 1,) lengths of its polyline segments."""
        return self._segment_lengths

    @functools.cached_property
    def _segment_lengths(self) -> list[np.ndarray]:
        # Cached: every step of the pairing needs them.
        return [np.linalg.norm(np.diff(line, axis=0), axis=1) for line in self.polylines]

    def edge_lengths(self) -> np.ndarray:
        """(E,) length of each uncut edge: the declared one, else its polyline length."""
        if self.lengths is not None:
            return np.asarray(self.lengths, dtype=float)
        return np.array([seg.sum() for seg in self.segment_lengths()])


def _distances_along_edge(length: float, delta: float, arc_length: float | None = None
                          ) -> np.ndarray:
    """Arc lengths of an edge's control points, as the reference places them.

    length: the edge's (declared) length, which sets the spacing; arc_length: the length of its
    polyline (default: the same), which the single midpoint of a short edge halves.
    """
    if length < 0.75 * delta:
        return np.empty(0)
    if length <= delta:
        return np.array([(length if arc_length is None else arc_length) / 2])
    return np.linspace(0.0, length, math.ceil(length / delta) + 1)[1:-1]


def _is_straight(line: np.ndarray, length: float, curved_eps: float) -> bool:
    """The reference's curvature test: an edge whose length is within `curved_eps` (relative) of
    its bounding box's diagonal gets no control points; a negative `curved_eps` never skips."""
    if curved_eps < 0 or length <= 0:
        return False
    diagonal = float(np.linalg.norm(line.max(axis=0) - line.min(axis=0)))
    return abs(diagonal - length) / length < curved_eps


def _split_graph(roads: _Roads, stop_edge: np.ndarray, stop_t: np.ndarray,
                 stop_node: np.ndarray, n_nodes: int) -> csr_matrix:
    """The graph of `roads` with its edges cut into chains at the given stops.

    stop_edge, stop_t, stop_node: (K,) edge index, arc length from the edge's first end and node
    index of each stop. Returns the (n_nodes, n_nodes) sparse matrix of sub-edge lengths, one
    triangle only (use it as undirected); zero lengths stay explicit entries, i.e. edges.
    """
    n_edges = len(roads.polylines)
    lengths = np.array([seg.sum() for seg in roads.segment_lengths()])
    declared = roads.edge_lengths()
    first, last = np.zeros(n_edges), np.full(n_edges, 2.0)
    edge = np.concatenate([np.arange(n_edges), stop_edge, np.arange(n_edges)])
    # The rank keeps each edge's ends first and last even when rounding puts a stop past them.
    rank = np.concatenate([first, np.ones(len(stop_edge)), last])
    t = np.concatenate([np.zeros(n_edges), np.clip(stop_t, 0.0, lengths[stop_edge]), lengths])
    node = np.concatenate([roads.ends[:, 0], stop_node, roads.ends[:, 1]])
    order = np.lexsort((t, rank, edge))
    edge, t, node = edge[order], t[order], node[order]
    link = edge[1:] == edge[:-1]
    weights = np.diff(t)[link]
    # An edge that no stop cuts keeps its declared length (its polyline length unless declared).
    uncut = np.bincount(stop_edge, minlength=n_edges) == 0
    owner = edge[:-1][link]
    weights = np.where(uncut[owner], declared[owner], weights)
    return _min_matrix(node[:-1][link], node[1:][link], weights, n_nodes)


def _min_matrix(a: np.ndarray, b: np.ndarray, weights: np.ndarray, n_nodes: int) -> csr_matrix:
    """(n_nodes, n_nodes) sparse graph of the (K,) undirected edges a-b, one triangle only; of
    parallel edges the shortest counts (as for a shortest path), zero lengths stay edges."""
    low, high = np.minimum(a, b), np.maximum(a, b)
    order = np.lexsort((weights, high, low))
    low, high, weights = low[order], high[order], weights[order]
    first = np.r_[True, (low[1:] != low[:-1]) | (high[1:] != high[:-1])] if len(low) else low
    matrix = coo_matrix((weights[first], (low[first], high[first])), shape=(n_nodes, n_nodes))
    return matrix.tocsr()


def _control_points(roads: _Roads, delta: float, curved_eps: float = -1.0
                    ) -> tuple[np.ndarray, csr_matrix]:
    """Control points of a graph and the graph cut at them.

    Points go on every edge, or with `curved_eps` >= 0 only on edges that `_is_straight` calls
    curved. Returns (N, 2) positions (the M nodes first, then the points along each edge, edge by
    edge) and the (N, N) sparse graph whose edges join consecutive control points along each road.
    """
    n_nodes = len(roads.positions)
    segments = roads.segment_lengths()
    declared = roads.edge_lengths()
    along = [np.empty(0) if _is_straight(line, length, curved_eps)
             else np.minimum(_distances_along_edge(length, delta, seg.sum()), seg.sum())
             for line, seg, length in zip(roads.polylines, segments, declared, strict=True)]
    points = [roads.positions]
    for line, seg, distances in zip(roads.polylines, segments, along, strict=True):
        arc = np.concatenate([[0.0], np.cumsum(seg)])
        points.append(np.stack([np.interp(distances, arc, line[:, 0]),
                                np.interp(distances, arc, line[:, 1])], axis=1))
    stop_edge = np.repeat(np.arange(len(along)), [len(d) for d in along])
    stop_t = np.concatenate([np.empty(0), *along])
    stop_node = n_nodes + np.arange(len(stop_t))
    graph = _split_graph(roads, stop_edge, stop_t, stop_node, n_nodes + len(stop_t))
    return np.concatenate(points), graph


@dataclass(frozen=True)
class _Segments:
    """All polyline segments of a graph: (S, 2) start and vector, (S,) edge, index in the edge,
    arc length of the start along the edge and length."""
    start: np.ndarray
    vector: np.ndarray
    edge: np.ndarray
    index: np.ndarray
    arc: np.ndarray
    length: np.ndarray

    @classmethod
    def from_roads(cls, roads: _Roads) -> "_Segments":
        lengths = roads.segment_lengths()
        counts = [len(seg) for seg in lengths]
        starts = [line[:-1] for line in roads.polylines]
        vectors = [np.diff(line, axis=0) for line in roads.polylines]
        arcs = [np.cumsum(seg) - seg for seg in lengths]
        return cls(np.concatenate([np.empty((0, 2)), *starts]),
                   np.concatenate([np.empty((0, 2)), *vectors]),
                   np.repeat(np.arange(len(counts)), counts),
                   np.concatenate([np.empty(0, dtype=np.int64)]
                                  + [np.arange(n) for n in counts]),
                   np.concatenate([np.empty(0), *arcs]),
                   np.concatenate([np.empty(0), *lengths]))

    def candidates(self, points: np.ndarray, snap: float) -> tuple[np.ndarray, np.ndarray]:
        """(K,) point and (K,) segment indices of candidate pairs: every segment within `snap`
        of one of the (P, 2) points is among that point's candidates.

        A KD-tree over samples every h = max(snap, 1) / 2 along the segments: each point of a
        segment lies within h / 2 of a sample, so a segment within snap has a sample within
        snap + h / 2; h tied to snap keeps the candidates few whatever the segment lengths.
        """
        spacing = max(snap, 1.0) / 2
        steps = np.maximum(1, np.ceil(self.length / spacing)).astype(np.int64)
        owner = np.repeat(np.arange(len(steps)), steps + 1)
        first = np.concatenate([[0], np.cumsum(steps + 1)[:-1]])
        fraction = (np.arange(len(owner)) - first[owner]) / steps[owner]
        samples = self.start[owner] + fraction[:, None] * self.vector[owner]
        near = cKDTree(samples).sparse_distance_matrix(
            cKDTree(points), snap + spacing / 2, output_type="ndarray")
        pair = np.unique(near["j"] * len(steps) + owner[near["i"]])
        return pair // len(steps), pair % len(steps)


def _snap(points: np.ndarray, segments: _Segments, snap: float
          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Orthogonal projection of each point onto the nearest segment within `snap`.

    Returns (K,) indices of the points that snap, their (K,) segment and (K,) position s in
    [0, 1] along it. Ties go to the lowest segment index.
    """
    point, segment = segments.candidates(points, snap)
    offset = points[point] - segments.start[segment]
    vector = segments.vector[segment]
    squared = np.einsum("ij,ij->i", vector, vector)
    dot = np.einsum("ij,ij->i", offset, vector)
    s = np.clip(np.divide(dot, squared, out=np.zeros_like(dot), where=squared > 0), 0.0, 1.0)
    distance = np.linalg.norm(offset - s[:, None] * vector, axis=1)
    keep = distance <= snap
    point, segment, s, distance = point[keep], segment[keep], s[keep], distance[keep]
    order = np.lexsort((segment, distance, point))
    nearest = order[np.r_[True, point[order][1:] != point[order][:-1]]] if len(order) else order
    return point[nearest], segment[nearest], s[nearest]


def _snapped_spots(points: np.ndarray, roads: _Roads, segments: _Segments, snap: float
                   ) -> tuple[np.ndarray, ...]:
    """Where each point within `snap` of `roads` lands, one key per spot: (K,) point index,
    arc length t along its edge, edge, segment index, position s in the segment, whether the
    spot is an end node of the edge, and that node. The end of a segment is the start of the
    next one, and the ends of an edge are its nodes, whichever edge the point was projected on."""
    point, segment, s = _snap(points, segments, snap)
    t = segments.arc[segment] + s * segments.length[segment]
    edge, index = segments.edge[segment], segments.index[segment]
    at_end = s == 1.0
    index, s = np.where(at_end, index + 1, index), np.where(at_end, 0.0, s)
    n_segments = np.array([len(line) - 1 for line in roads.polylines])
    at_first = (index == 0) & (s == 0.0)
    on_node = at_first | (index == n_segments[edge])
    end_node = np.where(at_first, roads.ends[edge, 0], roads.ends[edge, 1])
    return point, t, edge, index, s, on_node, end_node


def _insert_points(points: np.ndarray, roads: _Roads, snap: float
                   ) -> tuple[csr_matrix, np.ndarray]:
    """The graph `roads` with `points` inserted in order, and the node each point ended on.

    Returns the sparse graph over the M nodes of `roads` plus one node per new spot, and (P,)
    node index of each point (-1: absent, too far or renamed by a later point on the same spot).
    """
    segments = _Segments.from_roads(roads)
    n_nodes = len(roads.positions)
    node_of = np.full(len(points), -1, dtype=np.int64)
    if len(segments.length) == 0:
        return csr_matrix((n_nodes, n_nodes)), node_of
    point, t, edge, index, s, on_node, end_node = _snapped_spots(points, roads, segments, snap)
    spots = zip(np.where(on_node, -1, edge).tolist(), np.where(on_node, end_node, index).tolist(),
                s.tolist(), strict=True)
    # Insertion in order renames a spot's node for each later point: the last one keeps it.
    last_on_spot = {spot: i for i, spot in enumerate(spots)}
    winners = np.array(sorted(last_on_spot.values()), dtype=np.int64)
    new = winners[~on_node[winners]]
    renamed = winners[on_node[winners]]
    node_of[point[renamed]] = end_node[renamed]
    node_of[point[new]] = n_nodes + np.arange(len(new))
    graph = _split_graph(roads, edge[new], t[new], node_of[point[new]], n_nodes + len(new))
    return graph, node_of


def _path_similarity(source: _Roads, target: _Roads, delta: float, snap: float,
                     min_path: float, curved_eps: float = -1.0) -> tuple[float, int]:
    """C(source -> target) and the number of control-point pairs it compared."""
    points, source_graph = _control_points(source, delta, curved_eps)
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
    curved edges (see `_is_straight`; the authors' port uses 0.03); negative: on every edge.
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
    gt_roads, prop_roads = _Roads.from_graph(gt, scale), _Roads.from_graph(prop, scale)
    gt_to_prop, gt_pairs = _path_similarity(gt_roads, prop_roads, delta, snap, min_path,
                                            curved_eps)
    prop_to_gt, prop_pairs = _path_similarity(prop_roads, gt_roads, delta, snap, min_path,
                                              curved_eps)
    return AplsResult(harmonic_mean(gt_to_prop, prop_to_gt), gt_to_prop, prop_to_gt,
                      gt_pairs, prop_pairs)


def harmonic_mean(a: float, b: float) -> float:
    """APLS of two directions: their harmonic mean, 0 if either is 0 (or less)."""
    if a <= 0 or b <= 0:
        return 0.0
    return 2 * a * b / (a + b)


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be non-negative, got {text}")
    return value


def main(argv: list[str] | None = None) -> None:
    # The presets and the SpaceNet pipeline build on this module, hence the late import.
    from evaluation import apls_spacenet as spacenet
    from evaluation.apls_tile import PRESETS, AplsSettings, score_graphs, score_reference_graphs
    from evaluation.topo import TopoSettings

    parser = argparse.ArgumentParser(
        prog="python -m evaluation.apls",
        description="APLS and TOPO of a proposed road network against the ground truth; the last "
                    "line printed is one JSON object. Modes ours and authors: GeoJSON in pixel "
                    "coordinates. Mode spacenet (the SpaceNet 3 reference pipeline): lon/lat "
                    "GeoJSON, or --pred submission.csv (ImageId,WKT_Pix) with --image TILE.tif.")
    parser.add_argument("--mode", choices=list(PRESETS), default="ours", help="preset")
    parser.add_argument("--gt", required=True, help="ground-truth GeoJSON")
    parser.add_argument("--pred", required=True, help="proposed GeoJSON, or a submission CSV")
    parser.add_argument("--image", default=None,
                        help="GeoTIFF of the tile (or a folder holding it) for a submission CSV")
    parser.add_argument("--delta", type=_positive, default=None,
                        help="control-point spacing (default: the preset's)")
    parser.add_argument("--snap", type=_non_negative, default=None, help="snapping distance")
    parser.add_argument("--min-path", type=_non_negative, default=None,
                        help="shortest path compared")
    parser.add_argument("--curved-eps", type=float, default=None,
                        help="control points only on edges at least this curved (< 0: all)")
    parser.add_argument("--metres-per-pixel", type=_positive, default=None,
                        help="ours/authors: read the distances in metres (rasters without "
                             "georeference)")
    parser.add_argument("--hole-size", type=_positive, default=TopoSettings.hole_size,
                        help="TOPO hole size")
    parser.add_argument("--topo-interval", type=_positive, default=TopoSettings.interval,
                        help="TOPO spacing of holes and marbles")
    parser.add_argument("--topo-radius", type=_positive, default=TopoSettings.subgraph_radius,
                        help="TOPO subgraph radius")
    args = parser.parse_args(argv)
    try:
        settings = AplsSettings(mode=args.mode, delta=args.delta, snap=args.snap,
                                min_path=args.min_path, curved_eps=args.curved_eps,
                                metres_per_pixel=args.metres_per_pixel)
    except ValueError as error:
        raise UserError(str(error)) from None
    topo_settings = TopoSettings(args.hole_size, args.topo_interval, args.topo_radius)
    truth_lines = _read_lines(args.gt, spacenet)
    if args.mode == "spacenet":
        truth = spacenet.geojson_graph(truth_lines, spacenet.GROUND_TRUTH_FIRST_ID)
        if args.pred.lower().endswith(".csv"):
            if args.image is None:
                raise UserError("--image: a submission CSV needs the tile's GeoTIFF")
            image_id = spacenet.image_id_of(args.gt)
            to_lonlat = spacenet.geotiff_to_lonlat(_geotiff_of(args.image, image_id))
            proposal_lines = spacenet.read_submission(args.pred, image_id)
            proposal = spacenet.wkt_graph(proposal_lines, to_lonlat)
        else:
            proposal_lines = _read_lines(args.pred, spacenet)
            proposal = spacenet.geojson_graph(proposal_lines, spacenet.GEOJSON_PROPOSAL_FIRST_ID)
        scores = score_reference_graphs(truth, proposal, settings, topo_settings,
                                        has_proposal=bool(proposal_lines))
    else:
        scores = score_graphs(lines_to_graph(truth_lines),
                              lines_to_graph(_read_lines(args.pred, spacenet)),
                              settings, topo_settings)
    skipped = math.isnan(scores["apls"])
    output = {"apls": scores["apls"], "gt_to_prop": scores["apls_gt_to_prop"],
              "prop_to_gt": scores["apls_prop_to_gt"], "topo_precision": scores["topo_precision"],
              "topo_recall": scores["topo_recall"], "topo_f1": scores["topo_f1"],
              "mode": args.mode, **settings.resolved(), "topo": asdict(topo_settings),
              "skipped": skipped}
    if skipped:
        print("note: tile skipped (no ground-truth roads or no proposal lines), as the reference "
              "does; its scores are null", file=sys.stderr)
    print(json.dumps({k: None if isinstance(v, float) and math.isnan(v) else v
                      for k, v in output.items()}))


def _read_lines(path: str, spacenet) -> list[np.ndarray]:
    """LineString parts of a GeoJSON file; a note on stderr counts the features skipped."""
    lines, skipped = spacenet.read_lonlat_lines(path)
    if skipped:
        print(f"note: {path}: skipped {skipped} feature(s) that are not LineStrings "
              f"(Polygon, Point, ...)", file=sys.stderr)
    return lines


def _geotiff_of(image: str, image_id: str) -> Path:
    """The GeoTIFF given, or the one in the folder given whose name ends with the ImageId."""
    path = Path(image)
    if path.is_dir():
        matches = sorted(p for p in path.iterdir()
                         if p.suffix.lower() in (".tif", ".tiff") and p.stem.endswith(image_id))
        if not matches:
            raise DataError(f"{path}: ImageId {image_id} has no GeoTIFF here")
        return matches[0]
    if not path.is_file():
        raise DataError(f"{path}: ImageId {image_id} has no GeoTIFF (file not found)")
    return path


if __name__ == "__main__":
    run_cli(main)
