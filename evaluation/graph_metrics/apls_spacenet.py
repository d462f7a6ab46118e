"""The SpaceNet 3 reference scorer's whole pipeline (CosmiQ's `apls.py`), reproduced step by step.

Published SpaceNet 3 numbers come from that command-line pipeline, whose graph construction differs
from ours (`evaluation.graph_metrics.apls` on the road-graph contract) by up to 0.1 APLS per tile.
This module rebuilds its graphs and its scoring so that "APLS (spacenet)" means the same number:

GeoJSON ground truth or proposal (lon/lat LineStrings), in file order:
1. Nodes are exactly equal vertices, numbered as the reference numbers them (a counter that skips
   one id before and after every LineString part; ground truth from 0, a GeoJSON proposal from
   500): the numbers decide the order of later steps and, where the two graphs' ids coincide, the
   result (a quirk kept: an id present in the other graph is never inserted there).
2. Every segment becomes a two-way directed edge whose length is its great-circle length
   (R = 6371009 m) rounded to the millimetre; a segment present in k features gives k parallel
   edges.
3. Vertices are projected to the UTM zone of the graph's centroid.
4. Degree-2 vertices are merged away as osmnx 0.9 simplifies a directed graph (a vertex stays a
   node if it self-loops, if it lacks incoming or outgoing edges, or unless it has exactly two
   neighbours and 2 or 4 directed edges), then the graph becomes undirected.
5. Duplicated edges are deleted, every copy of them (the reference's
   `create_edge_linestrings(remove_redundant=True)` removes an edge (u, v) once per earlier
   geometry it equals, counting each earlier geometry forwards and reversed): a quirk kept for
   comparability, not a choice of ours. It deletes every self-loop too, because simplifying a
   two-way loop yields it once per direction. Nodes stay.
6. Components with at most 100 nodes whose longest shortest path is under 5 m are removed.

A WKT proposal (SpaceNet submission rows, pixel coordinates) is built like the reference's
`wkt_to_G`: nodes are exactly equal pixel vertices (ids from 1000), components with at most 30
nodes spanning under 10 px are removed first, vertices go to lon/lat through the tile's
georeference and to UTM, segment lengths are UTM lengths, then step 4 runs; step 5 runs once,
when scoring.

Scoring (`make_graphs` and `path_sim_metric` of the reference): control points are the nodes plus
points every `delta` along every edge, or only along edges whose length differs from their
bounding-box diagonal by at least `curved_eps` (relative) when `curved_eps` >= 0; an edge keeps
its declared (great-circle) length until a point cuts it, its pieces then take their UTM lengths.
Each control point of A is inserted into B in order, at its projection onto B's nearest edge within
`snap` metres; landing on a node renames that node (the earlier id becomes absent). Pairs are
ordered: a start absent from B costs 1 for every end reachable from it in A, whatever the path's
length; otherwise every end at least `min_path` away along A costs min(1, |L_A - L_B| / L_A), or 1
without a path in B. C = 1 - mean cost (0 without pairs), APLS = harmonic mean of both directions
(0 if either is 0). A tile whose ground truth has no nodes, or whose proposal has no lines, is
skipped (`score` returns None).

Not reproduced: the reference's random sampling for graphs of 500 or more ground-truth nodes
(`make_graphs_yuge`; we always compare every control point) and its nearest-edge search limited to
edges touching the 20 nearest nodes in graphs of over 1000 nodes.
"""
import csv
import functools
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import networkx as nx
import numpy as np
from pyproj import Transformer
from scipy.sparse.csgraph import connected_components, dijkstra

from evaluation.graph_metrics.core import (
    RoadArrays,
    Segments,
    control_points,
    harmonic_mean,
    min_matrix,
    snapped_spots,
    split_graph,
)
from roads.geo import read_feature_collection
from utils.errors import DataError

EARTH_RADIUS_M = 6371009.0
"""Earth radius of osmnx's great-circle lengths."""

GROUND_TRUTH_FIRST_ID, GEOJSON_PROPOSAL_FIRST_ID, WKT_FIRST_ID = 0, 500, 1000
"""Where the reference starts numbering vertices."""

GEOJSON_CLEAN = (100, 5.0)
"""(max nodes, min span in metres) of the small components removed from GeoJSON graphs."""
WKT_CLEAN = (30, 10.0)
"""The same for WKT proposals, the span in pixels."""


@dataclass(frozen=True)
class RefGraph:
    """A road graph as the reference builds it, in UTM metres.

    ids: (M,) reference node ids; positions: (M, 2) UTM (easting, northing); ends: (E, 2) node
    indices, polylines running from ends[:, 0] to ends[:, 1] in the reference's stored direction;
    lengths: (E,) declared lengths (great-circle for GeoJSON, UTM for WKT) in metres.
    """
    ids: np.ndarray
    positions: np.ndarray
    ends: np.ndarray
    polylines: list[np.ndarray]
    lengths: np.ndarray

    @property
    def roads(self) -> RoadArrays:
        """The graph as the shared `RoadArrays`, declared lengths included."""
        return RoadArrays(self.positions, self.ends, self.polylines, self.lengths)


@dataclass(frozen=True)
class SpacenetScore:
    """APLS of a tile in the spacenet mode and its two directions."""
    apls: float
    gt_to_prop: float
    prop_to_gt: float


# ---------------------------------------------------------------------------------------------
# Reading inputs

def read_lonlat_lines(path: Path) -> tuple[list[np.ndarray], int]:
    """LineString parts of a GeoJSON FeatureCollection, in file order, and the number of features
    skipped for not being lines (Polygon, Point, null geometry).

    Parts keep every vertex, also parts of one vertex (they still take node ids in the reference).
    Raises DataError naming the file for unreadable JSON or non-finite coordinates.
    """
    path = Path(path)
    collection = read_feature_collection(path)
    lines, skipped = [], 0
    for index, feature in enumerate(collection["features"]):
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        kind = geometry.get("type") if isinstance(geometry, dict) else None
        if kind == "LineString":
            parts = [geometry.get("coordinates")]
        elif kind == "MultiLineString":
            parts = geometry.get("coordinates") or []
        else:
            skipped += 1
            continue
        if not isinstance(parts, list):
            raise DataError(f"{path}: invalid GeoJSON (feature {index}: malformed coordinates)")
        for part in parts:
            try:
                coords = np.array([position[:2] for position in part], dtype=float).reshape(-1, 2)
            except (TypeError, ValueError, IndexError, OverflowError):
                raise DataError(f"{path}: invalid GeoJSON (feature {index}: malformed "
                                f"coordinates)") from None
            if not np.isfinite(coords).all():
                raise DataError(f"{path}: feature {index} has a NaN or infinite coordinate")
            if len(coords):
                lines.append(coords)
    return lines, skipped


_WKT_LINE = re.compile(r"^\s*LINESTRING\s*(\(.*\)|EMPTY)\s*$", re.IGNORECASE)


def parse_wkt_linestring(text: str) -> np.ndarray | None:
    """(N, 2) pixel vertices of a WKT LINESTRING, None for LINESTRING EMPTY; ValueError if the
    text is no LINESTRING or has non-finite coordinates."""
    match = _WKT_LINE.match(text)
    if match is None:
        raise ValueError("not a WKT LINESTRING")
    body = match.group(1)
    if body.upper() == "EMPTY":
        return None
    pairs = [pair.split() for pair in body[1:-1].split(",")]
    if any(len(pair) < 2 for pair in pairs):
        raise ValueError("malformed coordinates")
    try:
        coords = np.array([[float(pair[0]), float(pair[1])] for pair in pairs], dtype=float)
    except ValueError:
        raise ValueError("malformed coordinates") from None
    if not np.isfinite(coords).all():
        raise ValueError("NaN or infinite coordinate")
    return coords


def read_submission(path: Path, image_id: str) -> list[np.ndarray]:
    """Pixel polylines of the rows of a SpaceNet submission (`ImageId,WKT_Pix`) for one image.

    Raises DataError naming the file: a missing header, or a row whose WKT does not parse (with
    its line number).
    """
    path = Path(path)
    try:
        with open(path, newline="", encoding="utf-8") as file:
            rows = list(csv.reader(file))
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path}: unreadable submission ({error})") from None
    header = [cell.strip() for cell in rows[0]] if rows else []
    if header[:2] != ["ImageId", "WKT_Pix"]:
        raise DataError(f"{path}: a SpaceNet submission starts with the header 'ImageId,WKT_Pix'")
    lines = []
    for number, row in enumerate(rows[1:], start=2):
        if not row or row[0].strip() != image_id:
            continue
        try:
            if len(row) < 2:
                raise ValueError("no WKT_Pix column")
            coords = parse_wkt_linestring(row[1])
        except ValueError as error:
            raise DataError(f"{path}: line {number}: invalid WKT ({error})") from None
        if coords is not None:
            lines.append(coords)
    return lines


def image_id_of(path: Path) -> str:
    """SpaceNet ImageId of a ground-truth file: its stem without a 'spacenetroads_' prefix."""
    return Path(path).stem.split("spacenetroads_")[-1]


def geotiff_to_lonlat(path: Path) -> Callable[[np.ndarray], np.ndarray]:
    """Pixel (x, y) -> lon/lat of a GeoTIFF, through its affine transform and CRS (rasterio)."""
    # Imported here: rasterio takes longer to import than scoring a GeoJSON tile.
    import rasterio
    from rasterio.errors import RasterioIOError

    try:
        with rasterio.open(path) as dataset:
            transform, crs = dataset.transform, dataset.crs
    except RasterioIOError as error:
        raise DataError(f"{path}: no readable GeoTIFF ({error})") from None
    if crs is None or transform.is_identity:
        raise DataError(f"{path}: the GeoTIFF has no georeference")
    to_lonlat = (None if crs.to_epsg() == 4326
                 else Transformer.from_crs(crs.to_wkt(), "EPSG:4326", always_xy=True))

    def convert(xy: np.ndarray) -> np.ndarray:
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        a, b, c, d, e, f = transform[:6]
        world_x, world_y = a * xy[:, 0] + b * xy[:, 1] + c, d * xy[:, 0] + e * xy[:, 1] + f
        if to_lonlat is not None:
            world_x, world_y = to_lonlat.transform(world_x, world_y)
        return np.column_stack([world_x, world_y])

    return convert


# ---------------------------------------------------------------------------------------------
# Graph construction

def _haversine(lon1, lat1, lon2, lat2) -> np.ndarray:
    """Great-circle distance in metres on osmnx's sphere."""
    phi1, phi2 = np.radians(lat1), np.radians(lat2)
    h = (np.sin((phi2 - phi1) / 2) ** 2
         + np.cos(phi1) * np.cos(phi2) * np.sin((np.radians(lon2) - np.radians(lon1)) / 2) ** 2)
    return 2 * np.arcsin(np.sqrt(np.minimum(1.0, h))) * EARTH_RADIUS_M


def utm_projector(lonlat: np.ndarray) -> Transformer:
    """lon/lat -> UTM metres in the zone of the mean longitude of the distinct (N, 2) points
    (osmnx 0.9's rule: the centroid of their union)."""
    unique = np.unique(np.asarray(lonlat, dtype=float).reshape(-1, 2), axis=0)
    return _utm_zone(int(math.floor((unique[:, 0].mean() + 180) / 6.0) + 1))


@functools.lru_cache(maxsize=8)
def _utm_zone(zone: int) -> Transformer:
    # Building a transformer costs ~10 ms, more than scoring a small tile.
    return Transformer.from_crs("EPSG:4326", f"+proj=utm +zone={zone} +datum=WGS84 +units=m",
                                always_xy=True)


def _numbered(lines: list[np.ndarray], first_id: int) -> tuple[dict, list[list[int]]]:
    """Reference ids of exactly equal vertices: ({id: (x, y)} in first-seen order, id paths)."""
    coords, id_of, paths, counter = {}, {}, [], first_id
    for line in lines:
        counter += 1
        path = []
        for vertex in map(tuple, np.asarray(line, dtype=float).tolist()):
            node = id_of.get(vertex)
            if node is None:
                node = id_of[vertex] = counter
                coords[node] = vertex
                counter += 1
            path.append(node)
        counter += 1
        paths.append(path)
    return coords, paths


def _is_endpoint(graph: nx.MultiDiGraph, node: int) -> bool:
    """osmnx 0.9's test for a node that simplification keeps."""
    neighbours = set(graph.predecessors(node)) | set(graph.successors(node))
    if node in neighbours or graph.out_degree(node) == 0 or graph.in_degree(node) == 0:
        return True
    return not (len(neighbours) == 2 and graph.degree(node) in (2, 4))


def _walk(graph: nx.MultiDiGraph, start: int, second: int, endpoints: set) -> list[int]:
    """The chain of non-endpoints from `start` through `second` to the next endpoint, closed back
    onto `start` when it loops there (osmnx 0.9's `build_path`)."""
    path, node = [start, second], second
    while True:
        step = next((s for s in graph.successors(node) if s not in path), None)
        if step is None:
            break
        path.append(step)
        if step in endpoints:
            return path
        node = step
    if path[-1] not in endpoints and path[0] in graph.successors(path[-1]):
        path.append(path[0])
    return path


def _simplified(graph: nx.MultiDiGraph) -> nx.MultiGraph:
    """Degree-2 vertices merged away (in place on the directed graph), then undirected.

    Node attribute `xy` (UTM); edge attribute `length`; merged edges get `geometry`, the (n, 2)
    UTM vertices of their chain.
    """
    # A set built from the same ids in the same order iterates as the reference's does.
    endpoints = set([node for node in graph.nodes if _is_endpoint(graph, node)])
    paths = [_walk(graph, node, successor, endpoints)
             for node in endpoints for successor in graph.successors(node)
             if successor not in endpoints]
    merged = []
    for path in paths:
        steps = zip(path[:-1], path[1:], strict=True)
        length = sum(graph.edges[u, v, 0]["length"] for u, v in steps)
        merged.append((path[0], path[-1], length,
                       np.array([graph.nodes[node]["xy"] for node in path])))
    for u, v, length, geometry in merged:
        graph.add_edge(u, v, length=length, geometry=geometry)
    graph.remove_nodes_from({node for path in paths for node in path[1:-1]})
    return graph.to_undirected()


def remove_redundant_edges(graph: nx.MultiGraph) -> nx.MultiGraph:
    """The reference's `create_edge_linestrings(remove_redundant=True)`, in place.

    Gives every edge a `geometry` starting at its first reported end, and deletes an edge (u, v)
    once per earlier geometry that it equals forwards or reversed (the first edge's geometry counts
    forwards only): two copies of a road delete each other, a self-loop and its reverse too.
    """
    seen_pairs, seen, redundant = set(), [], []
    for i, (u, v, data) in enumerate(graph.edges(data=True)):
        start, end = graph.nodes[u]["xy"], graph.nodes[v]["xy"]
        if "geometry" not in data:
            line = np.array([start, end])
            data["geometry"] = line
        else:
            line = data["geometry"]
            if np.linalg.norm(start - line[0]) > np.linalg.norm(end - line[0]):
                data["geometry"] = line[::-1].copy()
        reverse = line[::-1]
        if i == 0:
            seen_pairs = {(u, v), (v, u)}
            seen.append(line)
        elif (u, v) in seen_pairs or (v, u) in seen_pairs:
            redundant.extend((u, v) for other in seen
                             if _same(line, other) or _same(reverse, other))
        else:
            seen_pairs.add((u, v))
            seen.extend([line, reverse])
    for u, v in redundant:
        if graph.has_edge(u, v):
            graph.remove_edge(u, v)
    return graph


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and bool(np.array_equal(a, b))


def _remove_small_components(graph: nx.MultiGraph, max_nodes: int, min_span: float,
                             weight: str) -> None:
    """Drop components of at most `max_nodes` nodes whose longest shortest path is < min_span."""
    nodes = list(graph.nodes)
    if not nodes:
        return
    index = {node: i for i, node in enumerate(nodes)}
    edges = [(index[u], index[v], w) for u, v, w in graph.edges(data=weight)]
    a, b, w = (np.array(column, dtype=float) for column in zip(*edges, strict=True)) \
        if edges else (np.empty(0), np.empty(0), np.empty(0))
    matrix = min_matrix(a.astype(np.int64), b.astype(np.int64), w, len(nodes))
    _, label = connected_components(matrix, directed=False)
    sizes = np.bincount(label)
    small = []
    for component in np.flatnonzero(sizes <= max_nodes):
        members = np.flatnonzero(label == component)
        lengths = dijkstra(matrix, directed=False, indices=members)
        if lengths[np.isfinite(lengths)].max() < min_span:
            small.extend(nodes[i] for i in members)
    graph.remove_nodes_from(small)


def geojson_graph(lines: list[np.ndarray], first_id: int,
                  planar_scale: tuple[float, float] | None = None) -> nx.MultiGraph:
    """Steps 1-6 of the module docstring: the reference graph of lon/lat LineString parts.

    With `planar_scale` (sx, sy) the lines are pixel (x, y) of a raster without georeference:
    coordinates are scaled to metres and lengths are Euclidean (rounded to the millimetre too).
    Nodes carry `xy` (UTM or scaled metres); edges `length` (m) and `geometry` ((n, 2)). Empty
    without lines.
    """
    coords, paths = _numbered(lines, first_id)
    graph = nx.MultiDiGraph()
    if not coords:
        return nx.MultiGraph()
    ids = list(coords)
    raw = np.array([coords[node] for node in ids])
    xy = _to_metres(raw, planar_scale)
    for node, position in zip(ids, xy, strict=True):
        graph.add_node(node, xy=position)
    for path in paths:
        segments = list(zip(path[:-1], path[1:], strict=True))
        graph.add_edges_from(segments)
        graph.add_edges_from([(v, u) for u, v in segments])
    edges = list(graph.edges(keys=True))
    if edges:
        ends = np.array([coords[u] + coords[v] for u, v, _ in edges]).reshape(-1, 4)
        if planar_scale is None:
            lengths = _haversine(ends[:, 0], ends[:, 1], ends[:, 2], ends[:, 3])
        else:
            lengths = np.hypot((ends[:, 2] - ends[:, 0]) * planar_scale[0],
                               (ends[:, 3] - ends[:, 1]) * planar_scale[1])
        lengths = np.round(lengths, 3)
        nx.set_edge_attributes(graph, dict(zip(edges, lengths.tolist(), strict=True)), "length")
    undirected = remove_redundant_edges(_simplified(graph))
    _remove_small_components(undirected, *GEOJSON_CLEAN, weight="length")
    return undirected


def _to_metres(points: np.ndarray, planar_scale: tuple[float, float] | None) -> np.ndarray:
    """(N, 2) lon/lat -> UTM, or with `planar_scale` pixel (x, y) -> scaled metres."""
    if planar_scale is not None:
        return points * np.asarray(planar_scale, dtype=float)
    east, north = utm_projector(points).transform(points[:, 0], points[:, 1])
    return np.column_stack([east, north])


def wkt_graph(lines_px: list[np.ndarray], to_lonlat: Callable[[np.ndarray], np.ndarray] | None,
              planar_scale: tuple[float, float] | None = None) -> nx.MultiGraph:
    """The reference's graph of a WKT proposal (pixel polylines; see the module docstring).

    Needs the tile's `to_lonlat` (pixel -> lon/lat), or `planar_scale` for a raster without
    georeference (metres = scaled pixels).
    """
    coords, paths = {}, []
    id_of = {}
    for line in lines_px:
        path = []
        for vertex in map(tuple, np.asarray(line, dtype=float).tolist()):
            if vertex not in id_of:
                id_of[vertex] = WKT_FIRST_ID + len(id_of)
                coords[id_of[vertex]] = vertex
            path.append(id_of[vertex])
        paths.append(path)
    pixel_graph = nx.MultiDiGraph()
    pixel_graph.add_nodes_from(coords)
    seen = set()
    for path in paths:
        for u, v in zip(path[:-1], path[1:], strict=True):
            # The reference aborts on a segment seen before; we keep the first copy only.
            if (u, v) in seen or (v, u) in seen:
                continue
            seen.add((u, v))
            pixel_graph.add_edge(u, v, length_pix=float(np.hypot(
                coords[u][0] - coords[v][0], coords[u][1] - coords[v][1])))
    undirected = pixel_graph.to_undirected()
    _remove_small_components(undirected, *WKT_CLEAN, weight="length_pix")
    if undirected.number_of_nodes() == 0:
        return nx.MultiGraph()
    ids = list(undirected.nodes)
    pixels = np.array([coords[node] for node in ids], dtype=float)
    positions = _to_metres(pixels if planar_scale is not None else to_lonlat(pixels),
                           planar_scale)
    xy = dict(zip(ids, positions, strict=True))
    for node in ids:
        undirected.nodes[node]["xy"] = xy[node]
    for u, v, data in undirected.edges(data=True):
        data["length"] = float(np.linalg.norm(xy[u] - xy[v]))
    return _simplified(undirected.to_directed())


def ref_graph(graph: nx.MultiGraph) -> RefGraph:
    """Arrays of a reference graph, edges in the graph's order, polylines as stored."""
    ids = list(graph.nodes)
    index = {node: i for i, node in enumerate(ids)}
    positions = np.array([graph.nodes[node]["xy"] for node in ids], dtype=float).reshape(-1, 2)
    ends, polylines, lengths = [], [], []
    for u, v, data in graph.edges(data=True):
        line = np.asarray(data.get("geometry", np.array([positions[index[u]],
                                                         positions[index[v]]])), dtype=float)
        first, second = index[u], index[v]
        if np.linalg.norm(positions[first] - line[0]) > np.linalg.norm(positions[second] - line[0]):
            first, second = second, first
        ends.append((first, second))
        polylines.append(line)
        lengths.append(float(data["length"]))
    return RefGraph(np.array(ids, dtype=np.int64), positions,
                    np.array(ends, dtype=np.int64).reshape(-1, 2), polylines,
                    np.array(lengths, dtype=float))


# ---------------------------------------------------------------------------------------------
# Scoring

def _insert_sequentially(points: np.ndarray, point_ids: np.ndarray, target: RefGraph,
                         snap: float):
    """Insert control points into `target` one by one, as the reference does with renaming.

    Returns the split sparse graph and {id: node index} of the graph's node names afterwards.
    """
    roads = target.roads
    segments = Segments.from_roads(roads)
    n_nodes = len(target.ids)
    names = {int(node_id): i for i, node_id in enumerate(target.ids)}
    name_of_node = list(names)
    stops_edge, stops_t = [], []
    if len(segments.length):
        point, t, edge, index, s, on_node, end_node = snapped_spots(points, roads, segments,
                                                                     snap)
        spot_node = {}
        for k, (p, e, i, f) in enumerate(zip(point.tolist(), edge.tolist(), index.tolist(),
                                             s.tolist(), strict=True)):
            new_id = int(point_ids[p])
            if new_id in names:
                continue  # the reference skips an id already in the graph
            if on_node[k]:
                node = int(end_node[k])
            else:
                node = spot_node.get((e, i, f))
                if node is None:
                    node = spot_node[(e, i, f)] = len(name_of_node)
                    name_of_node.append(None)
                    stops_edge.append(e)
                    stops_t.append(t[k])
            if name_of_node[node] is not None:
                del names[name_of_node[node]]
            name_of_node[node] = new_id
            names[new_id] = node
    graph = split_graph(roads, np.array(stops_edge, dtype=np.int64), np.array(stops_t),
                         n_nodes + np.arange(len(stops_edge)), len(name_of_node))
    return graph, names


def _similarity(source: RefGraph, target: RefGraph, delta: float, snap: float, min_path: float,
                curved_eps: float) -> float:
    """C(source -> target) of the reference's `path_sim_metric` (see the module docstring)."""
    if len(source.ids) == 0 or len(target.ids) == 0:
        return 0.0
    points, source_graph = control_points(source.roads, delta, curved_eps)
    n_mid = len(points) - len(source.ids)
    point_ids = np.concatenate([source.ids, source.ids.max() + 1 + np.arange(n_mid)])
    length_a = dijkstra(source_graph, directed=False)
    target_graph, names = _insert_sequentially(points, point_ids, target, snap)
    node_b = np.array([names.get(int(i), -1) for i in point_ids])
    present = node_b >= 0
    length_b = np.full_like(length_a, np.inf)
    if present.any():
        found = dijkstra(target_graph, directed=False, indices=node_b[present])
        columns = np.where(present, node_b, 0)
        length_b[present] = np.where(present[None, :], found[:, columns], np.inf)
    reachable = np.isfinite(length_a)
    off_diagonal = ~np.eye(len(points), dtype=bool)
    absent_costs = int((reachable & off_diagonal)[~present].sum())
    compared = reachable & (length_a >= min_path) & present[:, None]
    a, b = length_a[compared], length_b[compared]
    with np.errstate(divide="ignore", invalid="ignore"):
        costs = np.where(a <= 0, 0.0, np.where(np.isfinite(b),
                                               np.minimum(1.0, np.abs(a - b) / a), 1.0))
    count = absent_costs + len(costs)
    if count == 0:
        return 0.0
    return float(1.0 - (absent_costs + costs.sum()) / count)


def score(truth: nx.MultiGraph, proposal: nx.MultiGraph, *, delta: float, snap: float,
          min_path: float, curved_eps: float) -> SpacenetScore | None:
    """APLS of the reference's two graphs (from `geojson_graph` / `wkt_graph`); None when the
    ground truth has no nodes (the reference skips the tile). Distances in metres."""
    if truth.number_of_nodes() == 0:
        return None
    # As in the reference, the proposal is cleaned once more, the ground truth only for its own
    # control points (a no-op in all but degenerate cases, kept for fidelity).
    truth_cp = ref_graph(remove_redundant_edges(truth.to_undirected()))
    truth_plain = ref_graph(truth)
    prop = ref_graph(remove_redundant_edges(proposal.to_undirected()))
    gt_to_prop = _similarity(truth_cp, prop, delta, snap, min_path, curved_eps)
    prop_to_gt = _similarity(prop, truth_plain, delta, snap, min_path, curved_eps)
    return SpacenetScore(harmonic_mean(gt_to_prop, prop_to_gt), gt_to_prop, prop_to_gt)
