"""The steps of road graph extraction, on a working `networkx.MultiGraph` of a skeleton.

Both graph methods compose them (`roads.graph.mask_to_graph`, `roads.connectivity_graph`): build
the skeleton's multigraph, merge away degree-2 nodes, prune spurs, merge or contract junctions,
and make the simple graph of the contract at the end. In the multigraph loops and parallel edges
are legal, so that pruning and merging never lose a road.

Node attribute `pos`: (2,) float (x, y); edge attributes `pts`: (N, 2) float (x, y) polyline
between the end nodes' positions, in either orientation (read it through `oriented`), and
`length` in pixels; other edge attributes (e.g. `gap`) mark kinds of road and are kept.
"""
from collections.abc import Callable

import networkx as nx
import numpy as np

from roads.polyline import oriented, polyline_length, without_repeats
from roads.skeleton import skeleton_graph


def from_skeleton(skeleton: np.ndarray) -> nx.MultiGraph:
    """MultiGraph of a one-pixel-wide skeleton (see `roads.skeleton`): a node per junction or end
    pixel cluster at the cluster's mean position, an edge per pixel path between them, a closed
    ring with one node on it and a self-loop; specks without any path are dropped. (row, col)
    become (x, y).

    Edges go in from their lower node id, in the order of that node's neighbours (first edge to
    each), then in tracing order: the order in which a multigraph of the traced edges lists them,
    so that every later step, which visits edges in insertion order, gives one graph for one mask.
    """
    multigraph = nx.MultiGraph()
    if not skeleton.any():
        return multigraph
    raw = skeleton_graph(skeleton)
    for node, centroid in enumerate(raw.centroids):
        multigraph.add_node(node, pos=centroid[::-1].copy())
    low, high = raw.edges.min(axis=1), raw.edges.max(axis=1)
    _, first, pair = np.unique(low * len(raw.centroids) + high, return_index=True,
                               return_inverse=True)
    for index in np.lexsort((np.arange(len(low)), first[pair], low)).tolist():
        u, v = int(low[index]), int(high[index])
        # A path starts and ends on a pixel of its end clusters, the first met at either end:
        # orient it from u to v, then put the centroids there.
        pos_u, pos_v = multigraph.nodes[u]["pos"], multigraph.nodes[v]["pos"]
        pts = oriented(raw.edge_pixels(index)[:, ::-1].astype(float), pos_u, pos_v).copy()
        pts[0], pts[-1] = pos_u, pos_v
        add_edge(multigraph, u, v, pts)
    return multigraph


def skeleton_multigraph(skeleton: np.ndarray, spur_length: float,
                        junction_reach: np.ndarray | None = None) -> nx.MultiGraph:
    """The working multigraph of an (H, W) skeleton: its pixel graph (`from_skeleton`), bends
    merged away, spurs under `spur_length` pixels pruned, and, when `junction_reach` ((H, W)
    pixels) is given, junctions closer than their summed reach merged (`merge_close_junctions`).
    """
    multigraph = from_skeleton(skeleton)
    # Every pixel cluster that is not a plain path pixel is a node; a cluster with two paths (a
    # thick bend of the skeleton) is no junction.
    merge_degree_two(multigraph, list(multigraph.nodes))
    prune_spurs(multigraph, spur_length)
    if junction_reach is not None:
        merge_close_junctions(multigraph, junction_reach)
    return multigraph


def merge_degree_two(multigraph: nx.MultiGraph, nodes: list[int]) -> None:
    """Replace each of `nodes` that has exactly two edge ends (and is not alone on a ring) by one
    edge joining its two neighbours, so that edges run junction-to-junction or to an end. Two
    edges whose other attributes than `pts` and `length` differ (e.g. a closed gap next to a
    seen road) are different kinds of road and stay apart."""
    for node in nodes:
        if (node not in multigraph or multigraph.degree(node) != 2
                or multigraph.has_edge(node, node)):
            continue
        (_, a, first), (_, b, second) = multigraph.edges(node, data=True)
        attributes = extra_attributes(first)
        if attributes != extra_attributes(second):
            continue
        pos_a, pos_node, pos_b = (multigraph.nodes[n]["pos"] for n in (a, node, b))
        joined = np.concatenate([oriented(first["pts"], pos_a, pos_node),
                                 oriented(second["pts"], pos_node, pos_b)[1:]])
        multigraph.remove_node(node)
        add_edge(multigraph, a, b, joined, **attributes)


def prune_spurs(multigraph: nx.MultiGraph, min_length: float,
                 keep_end: Callable[[int], bool] | None = None) -> None:
    """Remove spurs (and loops, i.e. closed spurs around tiny holes) shorter than `min_length`,
    shortest first, re-checking each since an earlier removal may have turned its junction into
    a plain bend; repeat until stable. Isolated short segments are kept: they are roads, not
    artefacts of a longer road; so are spurs whose end node satisfies `keep_end` (e.g. a
    predicted dead end)."""
    while True:
        spurs = sorted((length, u, v, key) for u, v, key, length
                       in multigraph.edges(keys=True, data="length")
                       if length < min_length and is_spur(multigraph, u, v, keep_end))
        removed = False
        for _, u, v, key in spurs:
            if not multigraph.has_edge(u, v, key) or not is_spur(multigraph, u, v, keep_end):
                continue
            multigraph.remove_edge(u, v, key)
            for node in {u, v}:
                if multigraph.degree(node) == 0:
                    multigraph.remove_node(node)
            merge_degree_two(multigraph, [u, v])
            removed = True
        if not removed:
            return


def is_spur(multigraph: nx.MultiGraph, u: int, v: int,
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


def merge_close_junctions(multigraph: nx.MultiGraph, reach: np.ndarray) -> None:
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
        contract_nodes(multigraph, members)


def contract_nodes(multigraph: nx.MultiGraph, group: set[int],
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
            inner = leaving(leaving(oriented(pts, pos[a], pos[b]))[::-1])
            rewired.append((None, np.vstack([merged, inner, merged])))
        else:
            end, other = (a, b) if a in pos else (b, a)
            pts = leaving(oriented(pts, pos[end], multigraph.nodes[other]["pos"]))
            rewired.append((other, np.vstack([merged, pts])))
    keep = min(group)
    multigraph.remove_nodes_from(group)
    multigraph.add_node(keep, pos=merged)
    for other, pts in rewired:
        add_edge(multigraph, keep, keep if other is None else other, without_repeats(pts, 0.0))


def simple_graph(multigraph: nx.MultiGraph) -> nx.Graph:
    """The contract's simple graph: a loop is cut into three edges by nodes at a third and two
    thirds of its vertices (loops of fewer than 4 vertices enclose nothing and are dropped); a
    second edge between two nodes is cut at its middle vertex (a straight segment gains its
    midpoint first); the pieces keep the edge's other attributes. Node ids are renumbered
    0..n-1."""
    graph = nx.Graph()
    graph.add_nodes_from(multigraph.nodes(data=True))
    next_id = max(multigraph.nodes, default=-1) + 1
    for u, v, data in multigraph.edges(data=True):
        pts, attributes = data["pts"], extra_attributes(data)
        if u == v:
            if len(pts) < 4:
                continue
            cuts = [0, len(pts) // 3, 2 * len(pts) // 3, len(pts) - 1]
        elif graph.has_edge(u, v):
            # Cut from u to v, so that each piece runs between the nodes it joins.
            pts = oriented(pts, multigraph.nodes[u]["pos"], multigraph.nodes[v]["pos"])
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


def add_edge(multigraph: nx.MultiGraph, u: int, v: int, pts: np.ndarray, **attributes) -> None:
    multigraph.add_edge(u, v, pts=pts, length=polyline_length(pts), **attributes)


def extra_attributes(data: dict) -> dict:
    """An edge's attributes other than its geometry (`pts`, `length`)."""
    return {name: value for name, value in data.items() if name not in ("pts", "length")}
