"""The road graph as arrays, and the steps that APLS, the SpaceNet pipeline and TOPO share.

`RoadArrays` is the one array form of a road graph that every metric of this package reads.
The APLS steps (see `evaluation.graph_metrics.apls` for the pairing they serve):
`control_points` places a graph's control points and cuts the graph at them; `Segments` and
`snapped_spots` project points onto a graph's nearest polyline segment within a snapping distance;
`split_graph` cuts a graph at such spots; `min_matrix` builds a sparse graph from edge lists;
`harmonic_mean` combines the two directions of APLS.
"""
import functools
import math
from dataclasses import dataclass

import networkx as nx
import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.spatial import cKDTree

from roads.graph import edge_polyline


@dataclass(frozen=True)
class RoadArrays:
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
    def from_graph(cls, graph: nx.Graph, scale: tuple[float, float] = (1.0, 1.0)
                   ) -> "RoadArrays":
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


def split_graph(roads: RoadArrays, stop_edge: np.ndarray, stop_t: np.ndarray,
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
    return min_matrix(node[:-1][link], node[1:][link], weights, n_nodes)


def min_matrix(a: np.ndarray, b: np.ndarray, weights: np.ndarray, n_nodes: int) -> csr_matrix:
    """(n_nodes, n_nodes) sparse graph of the (K,) undirected edges a-b, one triangle only; of
    parallel edges the shortest counts (as for a shortest path), zero lengths stay edges."""
    low, high = np.minimum(a, b), np.maximum(a, b)
    order = np.lexsort((weights, high, low))
    low, high, weights = low[order], high[order], weights[order]
    first = np.r_[True, (low[1:] != low[:-1]) | (high[1:] != high[:-1])] if len(low) else low
    matrix = coo_matrix((weights[first], (low[first], high[first])), shape=(n_nodes, n_nodes))
    return matrix.tocsr()


def control_points(roads: RoadArrays, delta: float, curved_eps: float = -1.0
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
    graph = split_graph(roads, stop_edge, stop_t, stop_node, n_nodes + len(stop_t))
    return np.concatenate(points), graph


@dataclass(frozen=True)
class Segments:
    """All polyline segments of a graph: (S, 2) start and vector, (S,) edge, index in the edge,
    arc length of the start along the edge and length."""
    start: np.ndarray
    vector: np.ndarray
    edge: np.ndarray
    index: np.ndarray
    arc: np.ndarray
    length: np.ndarray

    @classmethod
    def from_roads(cls, roads: RoadArrays) -> "Segments":
        """The segments of every polyline of `roads`, edge by edge."""
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


def _snap(points: np.ndarray, segments: Segments, snap: float
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


def snapped_spots(points: np.ndarray, roads: RoadArrays, segments: Segments, snap: float
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


def harmonic_mean(a: float, b: float) -> float:
    """APLS of two directions: their harmonic mean, 0 if either is 0 (or less)."""
    if a <= 0 or b <= 0:
        return 0.0
    return 2 * a * b / (a + b)
