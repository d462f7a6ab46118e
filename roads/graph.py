"""Road graphs from road masks (skeletons) and from polylines (GeoJSON), and back to polylines.

One module serves the connectivity labels (SPEC 2) and the APLS graphs (SPEC 6).

Graph contract: an undirected simple `networkx.Graph` with integer node ids; node attribute
`pos` = (2,) float (x, y) = (column, row); edge attribute `pts` = (N, 2) float (x, y) polyline
whose first and last points are the end nodes' positions (either orientation: read it through
`edge_polyline`), and `length` = its length in pixels. A self-loop or a second edge between the
same two nodes is never stored: it is split by extra degree-2 nodes (see `_simple_graph`).

Internally the steps work on a `networkx.MultiGraph`, where loops and parallel edges are legal,
so that pruning and merging never lose a road; the simple graph is made once at the end.
"""
from collections.abc import Callable

import cv2
import networkx as nx
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from skimage.measure import approximate_polygon
from skimage.morphology import skeletonize

from roads.skeleton import skeleton_graph

# Defaults (chosen) for SpaceNet masks at 0.3 m/px, where roads are 20-46 px wide.
# Blobs under 200 px (a 20 px wide road stub 10 px long) are noise, not roads.
DEFAULT_MIN_OBJECT_AREA = 200
# Holes under 400 px (about 20 x 20 px) are gaps between drawn lanes, not city blocks or
# roundabout islands; left in, each would add a loop and two false junctions.
DEFAULT_HOLE_AREA = 400
# A boundary bump makes a skeleton spur about as long as the road is wide; 30 px exceeds the
# width of residential roads (20-24 px) and is shorter than any real dead-end street (9 m).
DEFAULT_SPUR_LENGTH = 30.0
# Two junctions closer than 1.25 x the sum of their inscribed-circle radii are one crossing. The
# skeleton splits a crossing of two straight roads into two 3-way nodes whose distance, in units
# of that sum, is 0.2 at 80 degrees, 1.05 at 45 and 1.24 at 40 (measured, any road width): 1.25
# merges crossings down to 40 degrees. Two T-junctions on opposite sides of a road merge only when
# their stems' centre lines are less than ~1.3 road widths apart, i.e. the gap between the stems
# is under a third of a road width: one crossing to the eye too.
DEFAULT_JUNCTION_MERGE_FACTOR = 1.25
# RDP tolerance ~2 px (SPEC 6): removes the pixel staircase of the skeleton, keeps the bends.
DEFAULT_SIMPLIFY_EPSILON = 2.0


def polyline_length(pts: np.ndarray) -> float:
    """Length of an (N, 2) polyline in pixels."""
    return float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())


def edge_polyline(graph: nx.Graph, u: int, v: int) -> np.ndarray:
    """(N, 2) float (x, y) polyline of edge (u, v), oriented from u to v (a copy)."""
    return _oriented(graph.edges[u, v]["pts"], graph.nodes[u]["pos"], graph.nodes[v]["pos"]).copy()


def clean_mask(mask: np.ndarray, min_object_area: int = DEFAULT_MIN_OBJECT_AREA,
               hole_area: int = DEFAULT_HOLE_AREA) -> np.ndarray:
    """(H, W) bool road mask without 8-connected objects smaller than `min_object_area` pixels
    and without holes (4-connected background components, the dual of 8-connected roads, those
    at the border included) smaller than `hole_area` pixels (0 disables either step)."""
    road = np.asarray(mask) > 0
    if road.ndim != 2:
        raise ValueError(f"expected an (H, W) mask, got shape {road.shape}")
    if min_object_area > 0:
        road &= ~_small_components(road, min_object_area, connectivity=8)
    if hole_area > 0:
        road |= _small_components(~road, hole_area, connectivity=4)
    return road


def _small_components(pixels: np.ndarray, min_area: int, connectivity: int) -> np.ndarray:
    """(H, W) bool: the pixels of `pixels`' connected components smaller than `min_area`.

    OpenCV's labelling with int32 labels: about 6 bytes a pixel at the peak, where scikit-image's
    `remove_small_objects` took 14, the peak of a whole-scene graph extraction."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats(
        pixels.view(np.uint8), connectivity=connectivity, ltype=cv2.CV_32S)
    small = stats[:, cv2.CC_STAT_AREA] < min_area
    small[0] = False  # label 0: the pixels outside `pixels`
    return small[labels]


def mask_to_graph(mask: np.ndarray, *, min_object_area: int = DEFAULT_MIN_OBJECT_AREA,
                  hole_area: int = DEFAULT_HOLE_AREA, spur_length: float = DEFAULT_SPUR_LENGTH,
                  simplify_epsilon: float | None = DEFAULT_SIMPLIFY_EPSILON,
                  junction_merge_factor: float = DEFAULT_JUNCTION_MERGE_FACTOR,
                  border_pad: int = 0) -> nx.Graph:
    """Road graph of an (H, W) mask (bool, 0/1 or 0/255): clean, skeletonise, build the skeleton
    graph, prune spurs, merge close junctions, simplify the polylines.

    `border_pad` > 0 pads the mask by that many pixels of edge replication before cleaning and
    skeletonising and crops the skeleton back (the authors' evaluation does it with 15 px): roads
    then run up to the tile border instead of stopping a half-width short of it.

    Two junctions joined by an edge no longer than `junction_merge_factor` times the sum of their
    inscribed-circle radii (distance transform of the cleaned mask) lie in one crossing area and
    become one node (0 disables): the skeleton of a crossing that is not square splits it into
    two 3-way nodes, and merged, a 4-way crossing has one node of degree 4.
    """
    if border_pad > 0:
        padded = clean_mask(np.pad(np.asarray(mask) > 0, border_pad, mode="edge"),
                            min_object_area, hole_area)
        inner = (slice(border_pad, -border_pad), slice(border_pad, -border_pad))
        road, skeleton = padded[inner], skeletonize(padded)[inner]
    else:
        road = clean_mask(mask, min_object_area, hole_area)
        skeleton = skeletonize(road)
    multigraph = _skeleton_graph(skeleton)
    # Every pixel cluster that is not a plain path pixel is a node; a cluster with two paths (a
    # thick bend of the skeleton) is no junction.
    _merge_degree_two(multigraph, list(multigraph.nodes))
    _prune_spurs(multigraph, spur_length)
    if junction_merge_factor > 0:
        # The 5x5-mask distance transform is within 2% of the exact one at half its cost.
        road_u8 = road.astype(np.uint8)
        inscribed_radius = cv2.distanceTransform(road_u8, cv2.DIST_L2, cv2.DIST_MASK_5)
        _merge_close_junctions(multigraph, junction_merge_factor * inscribed_radius)
    graph = _simple_graph(multigraph)
    if simplify_epsilon is not None:
        graph = simplify_edges(graph, simplify_epsilon)
    return graph


def prune_spurs(graph: nx.Graph, min_length: float) -> nx.Graph:
    """A copy of `graph` without spurs (edges from an end node to a junction) shorter than
    `min_length`, removed shortest first until none is left; nodes left with two edges are merged
    away, so edges run junction-to-junction or to an end. Isolated segments are kept."""
    multigraph = nx.MultiGraph(graph)
    _prune_spurs(multigraph, min_length)
    return _simple_graph(multigraph)


def simplify_edges(graph: nx.Graph, epsilon: float) -> nx.Graph:
    """A copy of `graph` whose polylines are simplified by Ramer-Douglas-Peucker with tolerance
    `epsilon` pixels; end points are kept, lengths recomputed."""
    simplified = graph.copy()
    for u, v, data in simplified.edges(data=True):
        pts = approximate_polygon(data["pts"], tolerance=epsilon)
        simplified.edges[u, v].update(pts=pts, length=polyline_length(pts))
    return simplified


def lines_to_graph(lines: list[np.ndarray], tolerance: float = 1e-3) -> nx.Graph:
    """Road graph of (N, 2) float (x, y) polylines (e.g. projected GeoJSON LineStrings).

    Vertices closer than `tolerance` pixels are one vertex. Line end points and vertices used
    more than once (by several lines, or twice by one) become nodes and lines are split there;
    lines crossing without a shared vertex stay unconnected (bridges, overpasses). Consecutive
    duplicate vertices are dropped, and so are lines left with fewer than two vertices.
    """
    polylines = [_without_repeats(_as_polyline(line), tolerance) for line in lines]
    polylines = [pts for pts in polylines if len(pts) >= 2]
    if not polylines:
        return nx.Graph()
    vertices = np.concatenate(polylines)
    pairs = cKDTree(vertices).query_pairs(tolerance, output_type="ndarray")
    adjacency = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])),
                           shape=(len(vertices), len(vertices)))
    _, vertex_id = connected_components(adjacency, directed=False)
    first_index = np.full(vertex_id.max() + 1, len(vertices))
    np.minimum.at(first_index, vertex_id, np.arange(len(vertices)))
    position = vertices[first_index]
    uses = np.bincount(vertex_id)
    multigraph = nx.MultiGraph()
    start = 0
    for pts in polylines:
        ids = vertex_id[start:start + len(pts)]
        start += len(pts)
        cuts = [0] + [i for i in range(1, len(pts) - 1) if uses[ids[i]] > 1] + [len(pts) - 1]
        for a, b in zip(cuts[:-1], cuts[1:]):
            piece = pts[a:b + 1].copy()
            piece[0], piece[-1] = position[ids[a]], position[ids[b]]
            for node in (ids[a], ids[b]):
                multigraph.add_node(int(node), pos=position[node].copy())
            multigraph.add_edge(int(ids[a]), int(ids[b]), pts=piece, length=polyline_length(piece))
    return _simple_graph(multigraph)


def graph_to_lines(graph: nx.Graph) -> list[np.ndarray]:
    """One (N, 2) float (x, y) polyline per edge (copies)."""
    return [np.array(pts, dtype=float) for _, _, pts in graph.edges(data="pts")]


def _as_polyline(line) -> np.ndarray:
    pts = np.asarray(line, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"expected an (N, 2) polyline, got shape {pts.shape}")
    return pts


def _without_repeats(pts: np.ndarray, tolerance: float) -> np.ndarray:
    if len(pts) == 0:
        return pts
    moved = np.linalg.norm(np.diff(pts, axis=0), axis=1) > tolerance
    return pts[np.concatenate([[True], moved])]


def _oriented(pts: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The polyline `pts` read from `start` to `end` (it may be stored either way round)."""
    forward = np.linalg.norm(pts[0] - start) + np.linalg.norm(pts[-1] - end)
    backward = np.linalg.norm(pts[0] - end) + np.linalg.norm(pts[-1] - start)
    return pts if forward <= backward else pts[::-1]


def _add_edge(multigraph: nx.MultiGraph, u: int, v: int, pts: np.ndarray, **attributes) -> None:
    multigraph.add_edge(u, v, pts=pts, length=polyline_length(pts), **attributes)


def _skeleton_graph(skeleton: np.ndarray) -> nx.MultiGraph:
    """MultiGraph of a one-pixel-wide skeleton (see `roads.skeleton`): a node per junction or end
    pixel cluster at the cluster's mean position, an edge per pixel path between them, a closed
    ring with one node on it and a self-loop; specks without any path are dropped. (row, col)
    become (x, y)."""
    multigraph = nx.MultiGraph()
    if not skeleton.any():
        return multigraph
    raw = skeleton_graph(skeleton)
    for node, centroid in enumerate(raw.centroids):
        multigraph.add_node(node, pos=centroid[::-1].copy())
    for index, (u, v) in enumerate(raw.edges.tolist()):
        # A path starts and ends on a pixel of its end clusters, the first met at either end:
        # orient it from u to v, then put the centroids there.
        pos_u, pos_v = multigraph.nodes[u]["pos"], multigraph.nodes[v]["pos"]
        pts = _oriented(raw.edge_pixels(index)[:, ::-1].astype(float), pos_u, pos_v).copy()
        pts[0], pts[-1] = pos_u, pos_v
        _add_edge(multigraph, u, v, pts)
    return multigraph


def _merge_degree_two(multigraph: nx.MultiGraph, nodes: list[int]) -> None:
    """Replace each of `nodes` that has exactly two edge ends (and is not alone on a ring) by one
    edge joining its two neighbours, so that edges run junction-to-junction or to an end. Two
    edges whose other attributes than `pts` and `length` differ (e.g. a closed gap next to a
    seen road) are different kinds of road and stay apart."""
    for node in nodes:
        if (node not in multigraph or multigraph.degree(node) != 2
                or multigraph.has_edge(node, node)):
            continue
        (_, a, first), (_, b, second) = multigraph.edges(node, data=True)
        attributes = _extra_attributes(first)
        if attributes != _extra_attributes(second):
            continue
        pos_a, pos_node, pos_b = (multigraph.nodes[n]["pos"] for n in (a, node, b))
        joined = np.concatenate([_oriented(first["pts"], pos_a, pos_node),
                                 _oriented(second["pts"], pos_node, pos_b)[1:]])
        multigraph.remove_node(node)
        _add_edge(multigraph, a, b, joined, **attributes)


def _extra_attributes(data: dict) -> dict:
    """An edge's attributes other than its geometry (`pts`, `length`)."""
    return {name: value for name, value in data.items() if name not in ("pts", "length")}


def _is_spur(multigraph: nx.MultiGraph, u: int, v: int,
             keep_end: Callable[[int], bool] | None = None) -> bool:
    """An edge from an end node to a junction, or a loop: the edges pruning may remove; a spur
    whose end node satisfies `keep_end` is kept."""
    if u == v:
        return True
    (end_degree, end), (other_degree, _) = sorted(((multigraph.degree(u), u),
                                                    (multigraph.degree(v), v)))
    if end_degree != 1 or other_degree < 3:
        return False
    return keep_end is None or not keep_end(end)


def _prune_spurs(multigraph: nx.MultiGraph, min_length: float,
                 keep_end: Callable[[int], bool] | None = None) -> None:
    """Remove spurs (and loops, i.e. closed spurs around tiny holes) shorter than `min_length`,
    shortest first, re-checking each since an earlier removal may have turned its junction into
    a plain bend; repeat until stable. Isolated short segments are kept: they are roads, not
    artefacts of a longer road; so are spurs whose end node satisfies `keep_end` (e.g. a
    predicted dead end)."""
    while True:
        spurs = sorted((length, u, v, key) for u, v, key, length
                       in multigraph.edges(keys=True, data="length")
                       if length < min_length and _is_spur(multigraph, u, v, keep_end))
        removed = False
        for _, u, v, key in spurs:
            if not multigraph.has_edge(u, v, key) or not _is_spur(multigraph, u, v, keep_end):
                continue
            multigraph.remove_edge(u, v, key)
            for node in {u, v}:
                if multigraph.degree(node) == 0:
                    multigraph.remove_node(node)
            _merge_degree_two(multigraph, [u, v])
            removed = True
        if not removed:
            return


def _merge_close_junctions(multigraph: nx.MultiGraph, reach: np.ndarray) -> None:
    """Contract groups of junctions (degree >= 3) into one node each, at the group's mean position.

    Two junctions are close when an edge joins them that is no longer than the sum of their
    `reach` ((H, W) map, pixels). Close pairs join groups in order of that ratio, but only when
    every two members of the joined group are as close as the crow flies, so that a chain of
    crossings along a road never collapses into one node. Decided on the graph as it is, the
    result does not depend on the order of the edges.
    """
    height, width = reach.shape
    pos = nx.get_node_attributes(multigraph, "pos")

    def reach_of(node: int) -> float:
        x, y = np.rint(pos[node]).astype(int)
        return float(reach[min(max(y, 0), height - 1), min(max(x, 0), width - 1)])

    def close(a: int, b: int, distance: float) -> bool:
        return distance <= reach_of(a) + reach_of(b)

    candidates = sorted((length / max(reach_of(u) + reach_of(v), 1e-9), u, v, key)
                        for u, v, key, length in multigraph.edges(keys=True, data="length")
                        if u != v and multigraph.degree(u) >= 3 and multigraph.degree(v) >= 3
                        and close(u, v, length))
    group = {}
    contracted = []
    for _, u, v, key in candidates:
        group_u, group_v = group.get(u, {u}), group.get(v, {v})
        if group_u is not group_v:
            if not all(close(a, b, float(np.linalg.norm(pos[a] - pos[b])))
                       for a in group_u for b in group_v):
                continue
            group_u |= group_v
            for node in group_u:
                group[node] = group_u
        contracted.append((u, v, key))
    multigraph.remove_edges_from(contracted)
    for members in {id(members): members for members in group.values()}.values():
        _contract_nodes(multigraph, members)


def _contract_nodes(multigraph: nx.MultiGraph, group: set[int],
                    position: np.ndarray | None = None) -> None:
    """Replace the nodes of `group` by one node at `position` ((2,) x, y; default their mean
    position), extending their edges to it (an edge between two of them becomes a loop).

    An edge leaves the new node where it first gets farther from it than its old end was: the
    stretch of polyline between the old end and the new node (e.g. a junction moved onto a road
    it already ran along) would otherwise be drawn twice, out and back."""
    pos = {node: multigraph.nodes[node]["pos"] for node in group}
    merged = (np.mean(list(pos.values()), axis=0) if position is None
              else np.asarray(position, dtype=float))

    def leaving(pts: np.ndarray) -> np.ndarray:
        """`pts` without its start and the points right after it that are nearer to `merged`
        than the start (its last point is always kept)."""
        distance = np.linalg.norm(pts - merged, axis=1)
        farther = np.flatnonzero(distance[1:-1] >= distance[0])
        return pts[farther[0] + 1 if farther.size else len(pts) - 1:]

    rewired = []
    for a, b, pts in multigraph.edges(group, data="pts"):
        if a in pos and b in pos:
            inner = leaving(leaving(_oriented(pts, pos[a], pos[b]))[::-1])
            rewired.append((None, np.vstack([merged, inner, merged])))
        else:
            end, other = (a, b) if a in pos else (b, a)
            pts = leaving(_oriented(pts, pos[end], multigraph.nodes[other]["pos"]))
            rewired.append((other, np.vstack([merged, pts])))
    keep = min(group)
    multigraph.remove_nodes_from(group)
    multigraph.add_node(keep, pos=merged)
    for other, pts in rewired:
        _add_edge(multigraph, keep, keep if other is None else other, _without_repeats(pts, 0.0))


def _simple_graph(multigraph: nx.MultiGraph) -> nx.Graph:
    """The contract's simple graph: a loop is cut into three edges by nodes at a third and two
    thirds of its vertices (loops of fewer than 4 vertices enclose nothing and are dropped); a
    second edge between two nodes is cut at its middle vertex (a straight segment gains its
    midpoint first); the pieces keep the edge's other attributes. Node ids are renumbered
    0..n-1."""
    graph = nx.Graph()
    graph.add_nodes_from(multigraph.nodes(data=True))
    next_id = max(multigraph.nodes, default=-1) + 1
    for u, v, data in multigraph.edges(data=True):
        pts, attributes = data["pts"], _extra_attributes(data)
        if u == v:
            if len(pts) < 4:
                continue
            cuts = [0, len(pts) // 3, 2 * len(pts) // 3, len(pts) - 1]
        elif graph.has_edge(u, v):
            if len(pts) == 2:
                pts = np.vstack([pts[0], pts.mean(axis=0), pts[1]])
            cuts = [0, len(pts) // 2, len(pts) - 1]
        else:
            cuts = [0, len(pts) - 1]
        ends = [u] + list(range(next_id, next_id + len(cuts) - 2)) + [v]
        next_id += len(cuts) - 2
        for node, cut in zip(ends[1:-1], cuts[1:-1]):
            graph.add_node(node, pos=pts[cut].copy())
        for a, b, start, stop in zip(ends[:-1], ends[1:], cuts[:-1], cuts[1:]):
            piece = pts[start:stop + 1]
            graph.add_edge(a, b, pts=piece, length=polyline_length(piece), **attributes)
    return nx.convert_node_labels_to_integers(graph)
