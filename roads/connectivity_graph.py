"""Road graphs that use the connectivity head: junction-aware, gap-closing graph extraction.

The skeleton method (`roads.graph.mask_to_graph`) reads the graph from the road mask alone, so
every occluded stretch (trees, shadows, cars) becomes a break and every blob of the mask a knot
of spurious junctions. `connectivity_graph` starts from the same skeleton graph and then uses
the connectivity head's classes (`roads.classes`) in three steps, each of which can be
switched off (then the step is as in the skeleton method):

1. junctions: the skeleton junctions (degree >= 3) inside one predicted junction region
   (classes THREE_WAY and FOUR_OR_MORE, 8-connected) become one node at the region's centre;
   the skeleton edges between them inside the region are dropped. A region the skeleton passes
   through without branching gets no node; one whose junctions lie more than
   `max_junction_span_m` apart is left as the skeleton has it.
2. gap closing: a skeleton end that is neither in a predicted dead-end region (DEAD_END) nor a
   road cut by the tile or no-data border (`roads.ends`) is a broken road. It is joined to the road of the graph that is
   reached most cheaply through the road probability (a pixel costs its ground length times
   1 - ln p, p clipped to `min_probability`), among the road points within `max_gap_m` that
   lie within `max_angle_deg` of the end's direction and that the graph does not already
   connect to the end by a short path.
   No-data pixels are impassable. Cheapest gaps are closed first; an end reached by an earlier
   gap is no longer an end. A closed gap is its own edge, with edge attribute `gap=True`.
3. spurs: terminal edges shorter than `spur_length_m` are removed unless their end is a
   predicted dead end or lies at the tile or no-data border (a road cut there goes on beyond).
   This runs after gap closing, so that the stub of a broken road is joined, not removed.

Before these steps the graph is the skeleton method's up to its junction merging (cleaning, with
no-data never road; skeleton; artefact spurs under `spur_length` pixels pruned; junctions closer
than `junction_merge_factor` times their road widths merged); after them the simple graph of
the contract is made and the polylines are simplified. Thresholds are in metres and converted
with the pixel size; isotropic ones (reaches, margins, lengths along roads) use the mean of the
two pixel sizes, while the gap search measures true ground distances and angles.
"""
from dataclasses import dataclass, fields

import cv2
import networkx as nx
import numpy as np
from scipy.spatial import cKDTree
from scipy.spatial.distance import pdist
from skimage.graph import MCP_Geometric

from roads import multigraph as steps
from roads.classes import DEAD_END, FOUR_OR_MORE, THREE_WAY
from roads.ends import DEFAULT_BORDER_MARGIN, CutEnds
from roads.graph import (
    DEFAULT_HOLE_AREA,
    DEFAULT_JUNCTION_MERGE_FACTOR,
    DEFAULT_MIN_OBJECT_AREA,
    DEFAULT_SIMPLIFY_EPSILON,
    DEFAULT_SPUR_LENGTH,
    simplify_edges,
    skeleton_of,
)
from roads.polyline import oriented, polyline_length, without_repeats
from utils.settings import check


@dataclass(frozen=True)
class ConnectivityGraphSettings:
    """How the connectivity classes shape the road graph; ground lengths in metres. Defaults are
    starting points chosen for SpaceNet 3 (0.3 m/px, roads 6-14 m wide), to be measured on the
    validation split with a trained model.

    junctions, gap_closing, spurs: switch each step on or off (off: as the skeleton method).
    region_reach_m: a node belongs to a predicted region (junction or dead end) when a pixel of
        it lies within this distance (2 m, about 7 px: a region predicted slightly off-centre or
        small still holds the skeleton node it stands for).
    max_junction_span_m: the junctions of a region are contracted only when no two of them are
        farther apart than this (50 m: a roundabout of 40 m still becomes one node, while a
        region that runs along a road over several crossings, where the head is unsure, is
        left to the skeleton).
    max_gap_m: longest gap closed, straight from the end to the road joined (30 m: a tree crown
        of up to 15 m, plus the road width that the skeleton gives up at the two broken ends,
        about a half-width each, up to 14 m together on SpaceNet's widest roads).
    max_angle_deg: largest angle between the end's direction and the straight line to the road
        joined (35 degrees: the angle to a point 30 m ahead on a curve of 40 m radius, a tight
        residential curve, is 29 degrees with `tangent_length_m` 10 m; a parallel road beside
        the end is at 90 degrees).
    tangent_length_m: the end's direction is that of a chord this long along its edge, ending
        behind the hook that the skeleton of a cut road often makes towards a corner of the cut
        (the road's half-width back from the end); 10 m smooths the pixel staircase and is short
        enough to follow curves.
    min_detour: a gap is closed only where the graph's own path from the end to the point
        joined is at least this many times the straight distance (3: the way round a block is
        far longer than the gap through it, while a join back onto the end's own road or onto
        a road it already meets nearby saves nothing).
    snap_m: a gap landing this close (along the road) to a node of the road joined ends at the
        node instead of splitting the road (3 m, about a residential road's half-width), so two
        ends facing each other across a gap are joined end to end.
    min_probability: road probabilities are clipped to at least this before the cost 1 - ln p
        (0.01: a road pixel costs 1, an occluded one at p = 0.1 costs 3.3, background at most
        5.6, so a path follows road-like pixels but never detours more than 5.6 times).
    spur_length_m: terminal edges shorter than this, whose end is neither a predicted dead end
        nor at a border, are removed (15 m: longer than SpaceNet's widest road, 46 px = 14 m, so
        the spur of a bulge across any road goes, as do most driveway-like blobs; the skeleton
        method's artefact pruning, 30 px = 9 m, runs before in any case).
    """

    junctions: bool = True
    gap_closing: bool = True
    spurs: bool = True
    region_reach_m: float = 2.0
    max_junction_span_m: float = 50.0
    max_gap_m: float = 30.0
    max_angle_deg: float = 35.0
    tangent_length_m: float = 10.0
    min_detour: float = 3.0
    snap_m: float = 3.0
    min_probability: float = 0.01
    spur_length_m: float = 15.0

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if field.type is bool:
                check(isinstance(value, bool), field.name, f"expected true or false, got {value!r}")
            else:
                check(isinstance(value, (int, float)) and not isinstance(value, bool)
                      and value >= 0, field.name, f"expected a number >= 0, got {value!r}")
        for name in ("max_gap_m", "tangent_length_m"):
            check(getattr(self, name) > 0, name, f"must be > 0, got {getattr(self, name)}")
        check(0 < self.max_angle_deg <= 180, "max_angle_deg",
              f"must be in (0, 180], got {self.max_angle_deg}")
        check(self.min_detour >= 1, "min_detour", f"must be >= 1, got {self.min_detour}")
        check(0 < self.min_probability <= 1, "min_probability",
              f"must be in (0, 1], got {self.min_probability}")


def connectivity_graph(road_probability: np.ndarray, road_mask: np.ndarray,
                       connectivity: np.ndarray, valid: np.ndarray | None = None, *,
                       pixel_size_m: tuple[float, float],
                       settings: ConnectivityGraphSettings = ConnectivityGraphSettings(),
                       min_object_area: int = DEFAULT_MIN_OBJECT_AREA,
                       hole_area: int = DEFAULT_HOLE_AREA,
                       spur_length: float = DEFAULT_SPUR_LENGTH,
                       simplify_epsilon: float | None = DEFAULT_SIMPLIFY_EPSILON,
                       junction_merge_factor: float = DEFAULT_JUNCTION_MERGE_FACTOR,
                       border_margin: float = DEFAULT_BORDER_MARGIN) -> nx.Graph:
    """Road graph (the `roads.graph` contract) of a tile's predictions, shaped by the
    connectivity classes (see the module docstring).

    road_probability: (H, W) road probability (the gap paths' cost): float in [0, 1], or uint8
        p x 255 as the evaluation pipeline keeps it (read window by window: a whole-scene float
        copy would cost 8 bytes a pixel).
    road_mask: (H, W) bool thresholded road mask.
    connectivity: (H, W) integer connectivity classes 0..4 (argmax of the connectivity head at
        full resolution).
    valid: (H, W) bool, False on no-data pixels (never road, never crossed); None: all valid.
    pixel_size_m: (metres per pixel along x, along y).
    min_object_area ... junction_merge_factor: the skeleton method's parameters, with its
        defaults (`roads.graph.mask_to_graph`); lengths and areas in pixels.
    border_margin: the margin of the road-end rule (`roads.ends`), pixels.

    Every edge has a bool attribute `gap`: True for the edges that close a gap. With the three
    steps off the graph is `mask_to_graph(road_mask & valid)` (with `gap` False).
    """
    probability = np.asarray(road_probability)
    road = np.asarray(road_mask, dtype=bool)
    classes = np.asarray(connectivity)
    valid = np.ones(road.shape, dtype=bool) if valid is None else np.asarray(valid, dtype=bool)
    for name, array in (("road_probability", probability), ("connectivity", classes),
                        ("valid", valid)):
        if array.shape != road.shape or road.ndim != 2:
            raise ValueError(f"{name}: expected shape {road.shape} of an (H, W) road_mask, "
                             f"got {array.shape}")
    scale = _Scale(pixel_size_m)
    road, skeleton = skeleton_of(road & valid, min_object_area, hole_area)
    cut = CutEnds(road, valid, border_margin)
    half_width = cut.half_width
    multigraph = steps.skeleton_multigraph(
        skeleton, spur_length, junction_merge_factor * half_width if junction_merge_factor > 0
        else None)
    if settings.junctions:
        _contract_junction_regions(multigraph, (classes == THREE_WAY) | (classes == FOUR_OR_MORE),
                                   scale.pixels(settings.region_reach_m),
                                   settings.max_junction_span_m, scale)
    ends = _EndTest(classes == DEAD_END, cut, scale.pixels(settings.region_reach_m))
    if settings.gap_closing:
        _close_gaps(multigraph, probability, valid, ends, scale, settings)
    if settings.spurs:
        steps.prune_spurs(multigraph, scale.pixels(settings.spur_length_m),
                          keep_end=lambda node: ends.kept(multigraph.nodes[node]["pos"]))
    graph = steps.simple_graph(multigraph)
    for _, _, data in graph.edges(data=True):
        data.setdefault("gap", False)
    if simplify_epsilon is not None:
        graph = simplify_edges(graph, simplify_epsilon)
    return graph


class _Scale:
    """Ground sizes of pixels: metres to pixels, and pixel offsets to metres."""

    def __init__(self, pixel_size_m: tuple[float, float]):
        size = np.asarray(pixel_size_m, dtype=float)
        if size.shape != (2,) or not np.all(size > 0):
            raise ValueError(f"pixel_size_m: expected two sizes > 0, got {pixel_size_m!r}")
        self.xy = size

    def pixels(self, metres: float) -> float:
        """An isotropic ground length in pixels (the mean pixel size)."""
        return metres / float(self.xy.mean())


def _nearest_label(labels: np.ndarray, pos: np.ndarray, reach: float) -> int:
    """The non-zero value of `labels` ((H, W) int) nearest to `pos` ((2,) x, y) within `reach`
    pixels; 0 when there is none."""
    height, width = labels.shape
    x, y = pos
    x0, x1 = max(int(np.floor(x - reach)), 0), min(int(np.ceil(x + reach)), width - 1)
    y0, y1 = max(int(np.floor(y - reach)), 0), min(int(np.ceil(y + reach)), height - 1)
    if x0 > x1 or y0 > y1:
        return 0
    window = labels[y0:y1 + 1, x0:x1 + 1]
    rows, cols = np.nonzero(window)
    if rows.size == 0:
        return 0
    distance = (cols + x0 - x) ** 2 + (rows + y0 - y) ** 2
    nearest = int(np.argmin(distance))
    return int(window[rows[nearest], cols[nearest]]) if distance[nearest] <= reach ** 2 else 0


def _contract_junction_regions(multigraph: nx.MultiGraph, junction: np.ndarray, reach: float,
                               max_span_m: float, scale: _Scale) -> None:
    """Contract the junctions (degree >= 3) of each 8-connected region of `junction` ((H, W)
    bool) into one node at the region's centroid, unless two of them are more than
    `max_span_m` apart. Edges between two of them (or loops) that run mostly inside the region
    are the skeleton's knot of the junction and are dropped; other edges between them become
    loops of the contracted node."""
    count, labels = cv2.connectedComponents(junction.astype(np.uint8), connectivity=8)
    if count <= 1:
        return
    # Centroids from the (sparse) region pixels: cv2's statistics cost 5x the labelling.
    rows, cols = np.nonzero(labels)
    region_of = labels[rows, cols]
    area = np.bincount(region_of, minlength=count)
    centroids = np.stack([np.bincount(region_of, cols, count), np.bincount(region_of, rows, count)],
                         axis=1) / np.maximum(area, 1)[:, None]
    groups: dict[int, set[int]] = {}
    for node, degree in multigraph.degree():
        if degree >= 3:
            region = _nearest_label(labels, multigraph.nodes[node]["pos"], reach)
            if region:
                groups.setdefault(region, set()).add(node)
    height, width = labels.shape
    for region, members in sorted(groups.items()):
        where = np.array([multigraph.nodes[node]["pos"] for node in members]) * scale.xy
        if len(members) > 1 and pdist(where).max() > max_span_m:
            continue
        knot = []
        for u, v, key, pts in multigraph.edges(members, keys=True, data="pts"):
            if u in members and v in members:
                cols = np.clip(np.rint(pts[:, 0]).astype(int), 0, width - 1)
                rows = np.clip(np.rint(pts[:, 1]).astype(int), 0, height - 1)
                if np.mean(labels[rows, cols] == region) >= 0.5:
                    knot.append((u, v, key))
        multigraph.remove_edges_from(knot)
        keep = min(members)
        steps.contract_nodes(multigraph, members, centroids[region])
        # Two roads through a predicted junction are a bend: one edge, as elsewhere.
        steps.merge_degree_two(multigraph, [keep])


class _EndTest:
    """Which end nodes are predicted dead ends, and which are roads cut by a border."""

    def __init__(self, dead_end: np.ndarray, cut: CutEnds, reach: float):
        self.dead_end = dead_end.astype(np.uint8)
        self.cut = cut
        self.reach = reach

    def is_dead_end(self, pos: np.ndarray) -> bool:
        return _nearest_label(self.dead_end, pos, self.reach) > 0

    def kept(self, pos: np.ndarray) -> bool:
        """A true end of a road: a predicted dead end, or a road cut by a border."""
        return self.is_dead_end(pos) or self.cut.is_cut(*pos)


class _RoadPoints:
    """The vertices of the graph's edges (densified to at most 1.5 px apart) in a k-d tree over
    ground coordinates, each with its edge and distance along it; edges split by gaps keep
    their vertices' records up to date."""

    def __init__(self, multigraph: nx.MultiGraph, scale: _Scale):
        pos = nx.get_node_attributes(multigraph, "pos")
        self.edges: list[tuple[int, int, int, np.ndarray]] = []
        points, edge_of, vertex_of, along = [], [], [], []
        for u, v, key, pts in list(multigraph.edges(keys=True, data="pts")):
            pts = _densified(oriented(pts, pos[u], pos[v]))
            multigraph.edges[u, v, key]["pts"] = pts
            points.append(pts)
            edge_of.append(np.full(len(pts), len(self.edges)))
            vertex_of.append(np.arange(len(pts)))
            along.append(_arc_lengths(pts))
            self.edges.append((u, v, key, pts))
        self.points = np.concatenate(points) if points else np.zeros((0, 2))
        self.edge_of = np.concatenate(edge_of) if points else np.zeros(0, dtype=int)
        self.vertex_of = np.concatenate(vertex_of) if points else np.zeros(0, dtype=int)
        self.along = np.concatenate(along) if points else np.zeros(0)
        self.tree = cKDTree(self.points * scale.xy)

    def graph_distance(self, ids: np.ndarray, node_distance: dict[int, float]) -> np.ndarray:
        """(K,) graph path length in pixels from a node to the points `ids`, given the path
        lengths `node_distance` to the nodes it reaches (inf where it reaches neither end)."""
        result = np.full(len(ids), np.inf)
        edge_ids = self.edge_of[ids]
        for edge in np.unique(edge_ids):
            u, v, _, pts = self.edges[edge]
            on_edge = edge_ids == edge
            along = self.along[ids[on_edge]]
            length = polyline_length(pts)
            result[on_edge] = np.minimum(node_distance.get(u, np.inf) + along,
                                         node_distance.get(v, np.inf) + length - along)
        return result

    def split(self, multigraph: nx.MultiGraph, point: int) -> int:
        """Split the edge of `point` at it (a new node) and return the node."""
        edge, vertex = int(self.edge_of[point]), int(self.vertex_of[point])
        u, v, key, pts = self.edges[edge]
        attributes = {name: value for name, value in multigraph.edges[u, v, key].items()
                      if name not in ("pts", "length")}
        node = max(multigraph.nodes) + 1
        multigraph.add_node(node, pos=pts[vertex].copy())
        multigraph.remove_edge(u, v, key)
        first, second = pts[:vertex + 1], pts[vertex:]
        first_key = multigraph.add_edge(u, node, pts=first, length=polyline_length(first),
                                        **attributes)
        second_key = multigraph.add_edge(node, v, pts=second, length=polyline_length(second),
                                         **attributes)
        members = np.nonzero(self.edge_of == edge)[0]
        beyond = members[self.vertex_of[members] > vertex]
        self.edge_of[members] = len(self.edges)
        self.edge_of[beyond] = len(self.edges) + 1
        self.vertex_of[beyond] -= vertex
        self.along[beyond] -= self.along[point]
        self.edges += [(u, node, first_key, first), (node, v, second_key, second)]
        return node


def _densified(pts: np.ndarray) -> np.ndarray:
    """(M, 2) polyline `pts` with vertices inserted so that consecutive ones are at most 1.5 px
    apart (a skeleton's pixel path, diagonal steps included, is left as it is)."""
    steps = np.maximum(np.ceil(np.linalg.norm(np.diff(pts, axis=0), axis=1) / 1.5), 1)
    steps = steps.astype(int)
    if np.all(steps == 1):
        return pts
    segment = np.repeat(np.arange(len(steps)), steps)
    first = np.repeat(np.cumsum(steps) - steps, steps)
    fraction = (np.arange(len(segment)) - first) / steps[segment]
    inner = pts[segment] + fraction[:, None] * (pts[segment + 1] - pts[segment])
    return np.vstack([inner, pts[-1:]])


def _arc_lengths(pts: np.ndarray) -> np.ndarray:
    """(N,) distance in pixels along the polyline `pts` to each vertex."""
    return np.concatenate([[0.0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])


def _start_of(pts: np.ndarray, distance: float) -> np.ndarray:
    """The first vertices of the densified polyline `pts`, enough to reach `distance` pixels
    along it: its vertices are at least 0.75 px apart, but for a few next to the nodes (whose
    positions replace a path's end pixels), for which 8 vertices are added."""
    return pts[:int(np.ceil(distance / 0.75)) + 8]


def _point_back(pts: np.ndarray, distance: float) -> np.ndarray:
    """The point `distance` pixels along the (densified) polyline `pts` from its first vertex
    (its last if shorter)."""
    pts = _start_of(pts, distance)
    along = _arc_lengths(pts)
    if distance >= along[-1]:
        return pts[-1]
    i = int(np.searchsorted(along, distance, side="right")) - 1
    t = (distance - along[i]) / max(along[i + 1] - along[i], 1e-12)
    return pts[i] + t * (pts[i + 1] - pts[i])


def _close_gaps(multigraph: nx.MultiGraph, probability: np.ndarray, valid: np.ndarray,
                ends: _EndTest, scale: _Scale, settings: ConnectivityGraphSettings) -> None:
    """Join the broken ends of `multigraph` to the roads beyond their gaps, cheapest first (see
    the module docstring); each closed gap is an edge with `gap=True`."""
    broken = [node for node, degree in multigraph.degree()
              if degree == 1 and not ends.kept(multigraph.nodes[node]["pos"])]
    if not broken:
        return
    points = _RoadPoints(multigraph, scale)
    # Graph paths longer than the admissible detour of the longest gap need no exact length.
    cutoff = settings.min_detour * settings.max_gap_m / float(scale.xy.min())
    proposals = []
    for end in broken:
        proposal = _cheapest_gap(multigraph, end, points, probability, valid, ends.cut.half_width,
                                 scale, settings, cutoff)
        if proposal is not None:
            proposals.append(proposal)
    snap = scale.pixels(settings.snap_m)
    for _, end, point, path in sorted(proposals, key=lambda proposal: proposal[:2]):
        if multigraph.degree(end) != 1:
            continue
        # Earlier gaps may have connected the end to its target: check the detour again.
        node_distance = nx.single_source_dijkstra_path_length(multigraph, end, cutoff=cutoff,
                                                              weight="length")
        straight = float(np.linalg.norm(points.points[point] - multigraph.nodes[end]["pos"]))
        ids = np.array([point])
        if points.graph_distance(ids, node_distance)[0] < settings.min_detour * straight:
            continue
        u, v, _, pts = points.edges[points.edge_of[point]]
        along = points.along[point]
        if along <= snap:
            target = u
        elif polyline_length(pts) - along <= snap:
            target = v
        else:
            target = points.split(multigraph, point)
        if target == end:
            continue
        gap = path[:, ::-1].astype(float)
        gap = np.vstack([multigraph.nodes[end]["pos"], gap[1:-1], multigraph.nodes[target]["pos"]])
        gap = without_repeats(gap, 0.0)
        if len(gap) < 2:
            continue
        multigraph.add_edge(end, target, pts=gap, length=polyline_length(gap), gap=True)


def _max_half_width(pts: np.ndarray, distance: float, half_width: np.ndarray) -> float:
    """Largest of the (H, W) `half_width` map at the vertices of the (densified) polyline `pts`
    within `distance` pixels of its start (along it)."""
    start = _start_of(pts, distance)
    near = start[_arc_lengths(start) <= distance]
    height, width = half_width.shape
    cols = np.clip(np.rint(near[:, 0]).astype(int), 0, width - 1)
    rows = np.clip(np.rint(near[:, 1]).astype(int), 0, height - 1)
    return float(half_width[rows, cols].max())


def _cheapest_gap(multigraph: nx.MultiGraph, end: int, points: _RoadPoints,
                  probability: np.ndarray, valid: np.ndarray, half_width: np.ndarray,
                  scale: _Scale, settings: ConnectivityGraphSettings, cutoff: float):
    """(cost, end, road point id, (K, 2) int row, col pixel path) of the cheapest gap from the
    end node `end` to an admissible road point, or None when there is none."""
    pos = multigraph.nodes[end]["pos"]
    (_, other, pts), = multigraph.edges(end, data="pts")
    pts = oriented(pts, pos, multigraph.nodes[other]["pos"])
    # The skeleton of a cut road often hooks towards a corner of the cut over about a road
    # half-width: the direction is read behind that hook.
    tangent = scale.pixels(settings.tangent_length_m)
    hook = min(_max_half_width(pts, tangent, half_width), polyline_length(pts) / 2)
    direction = (_point_back(pts, hook) - _point_back(pts, hook + tangent)) * scale.xy
    if not np.any(direction):
        return None
    direction /= np.linalg.norm(direction)
    ids = np.asarray(points.tree.query_ball_point(pos * scale.xy, settings.max_gap_m), dtype=int)
    if ids.size == 0:
        return None
    offsets = (points.points[ids] - pos) * scale.xy
    distance = np.linalg.norm(offsets, axis=1)
    ahead = offsets @ direction >= np.cos(np.radians(settings.max_angle_deg)) * distance
    ids, distance = ids[ahead & (distance > 0)], distance[ahead & (distance > 0)]
    if ids.size == 0:
        return None
    node_distance = nx.single_source_dijkstra_path_length(multigraph, end, cutoff=cutoff,
                                                          weight="length")
    straight = np.linalg.norm(points.points[ids] - pos, axis=1)
    ids = ids[points.graph_distance(ids, node_distance) >= settings.min_detour * straight]
    if ids.size == 0:
        return None
    # Search a window around the end and its candidate points, with a margin for detours.
    height, width = probability.shape
    margin = 10
    corners = np.vstack([points.points[ids], pos])
    x0, y0 = np.maximum(np.floor(corners.min(axis=0)).astype(int) - margin, 0)
    x1, y1 = np.minimum(np.ceil(corners.max(axis=0)).astype(int) + margin,
                        (width - 1, height - 1))
    window = (slice(y0, y1 + 1), slice(x0, x1 + 1))
    near = probability[window]
    near = near / 255.0 if near.dtype == np.uint8 else near.astype(float)
    cost = 1.0 - np.log(np.clip(near, settings.min_probability, 1.0))
    cost[~valid[window]] = np.inf
    start = (int(round(pos[1])) - y0, int(round(pos[0])) - x0)
    if not np.isfinite(cost[start]):
        return None
    targets = np.rint(points.points[ids][:, ::-1]).astype(int) - (y0, x0)
    # sampling in metres (rows, cols): the cost is ground length times the pixel cost.
    search = MCP_Geometric(cost, sampling=(scale.xy[1], scale.xy[0]))
    cumulative, _ = search.find_costs([start], [tuple(t) for t in targets], find_all_ends=False)
    reached = cumulative[targets[:, 0], targets[:, 1]]
    best = int(np.argmin(reached))
    if not np.isfinite(reached[best]):
        return None
    path = np.asarray(search.traceback(tuple(targets[best]))) + (y0, x0)
    return float(reached[best]), end, int(ids[best]), path
