"""Road graphs from road masks (skeletons) and from polylines (GeoJSON), and back to polylines.

One module serves the connectivity labels and the APLS graphs, so that both see roads the same way.

Graph contract: an undirected simple `networkx.Graph` with integer node ids; node attribute
`pos` = (2,) float (x, y) = (column, row); edge attribute `pts` = (N, 2) float (x, y) polyline
whose first and last points are the end nodes' positions (either orientation: read it through
`edge_polyline`), and `length` = its length in pixels. A self-loop or a second edge between the
same two nodes is never stored: it is split by extra degree-2 nodes (see
`roads.multigraph.simple_graph`).

The steps between the mask and the contract work on a `networkx.MultiGraph`
(`roads.multigraph`), which the connectivity method (`roads.connectivity_graph`) composes too.
"""
import cv2
import networkx as nx
import numpy as np
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from scipy.spatial import cKDTree
from skimage.measure import approximate_polygon
from skimage.morphology import skeletonize

from roads import multigraph as steps
from roads.polyline import as_polyline, oriented, polyline_length, without_repeats

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
# RDP tolerance ~2 px: removes the pixel staircase of the skeleton, keeps the bends.
DEFAULT_SIMPLIFY_EPSILON = 2.0


def edge_polyline(graph: nx.Graph, u: int, v: int) -> np.ndarray:
    """(N, 2) float (x, y) polyline of edge (u, v), oriented from u to v (a copy)."""
    return oriented(graph.edges[u, v]["pts"], graph.nodes[u]["pos"], graph.nodes[v]["pos"]).copy()


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


def road_half_width(road: np.ndarray) -> np.ndarray:
    """(H, W) float32 distance of each pixel of the (H, W) bool `road` to the nearest non-road
    pixel: the radius of the road's inscribed circle there. Pixels outside the image count as
    road, so that a road cut by the border keeps its width up to it. The 5x5-mask distance
    transform is within 2 % of the exact one at half its cost."""
    return cv2.distanceTransform(np.asarray(road).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)


def skeleton_of(mask: np.ndarray, min_object_area: int = DEFAULT_MIN_OBJECT_AREA,
                hole_area: int = DEFAULT_HOLE_AREA, border_pad: int = 0
                ) -> tuple[np.ndarray, np.ndarray]:
    """(road, skeleton): the cleaned (H, W) bool mask (`clean_mask`) and its one-pixel-wide
    skeleton. `border_pad` > 0 pads the mask by that many pixels of edge replication before
    cleaning and skeletonising and crops both back, so that roads run up to the tile border
    instead of stopping a half-width short of it (the authors' evaluation does it with 15 px)."""
    if border_pad > 0:
        padded = clean_mask(np.pad(np.asarray(mask) > 0, border_pad, mode="edge"),
                            min_object_area, hole_area)
        inner = (slice(border_pad, -border_pad), slice(border_pad, -border_pad))
        return padded[inner], skeletonize(padded)[inner]
    road = clean_mask(mask, min_object_area, hole_area)
    return road, skeletonize(road)


def mask_to_graph(mask: np.ndarray, *, min_object_area: int = DEFAULT_MIN_OBJECT_AREA,
                  hole_area: int = DEFAULT_HOLE_AREA, spur_length: float = DEFAULT_SPUR_LENGTH,
                  simplify_epsilon: float | None = DEFAULT_SIMPLIFY_EPSILON,
                  junction_merge_factor: float = DEFAULT_JUNCTION_MERGE_FACTOR,
                  border_pad: int = 0) -> nx.Graph:
    """Road graph of an (H, W) mask (bool, 0/1 or 0/255): clean, skeletonise (`skeleton_of`),
    build the skeleton graph, prune spurs, merge close junctions, simplify the polylines.

    Two junctions joined by an edge no longer than `junction_merge_factor` times the sum of their
    inscribed-circle radii (`road_half_width` of the cleaned mask) lie in one crossing area and
    become one node (0 disables): the skeleton of a crossing that is not square splits it into
    two 3-way nodes, and merged, a 4-way crossing has one node of degree 4.
    """
    road, skeleton = skeleton_of(mask, min_object_area, hole_area, border_pad)
    reach = (junction_merge_factor * road_half_width(road) if junction_merge_factor > 0
             else None)
    graph = steps.simple_graph(steps.skeleton_multigraph(skeleton, spur_length, reach))
    if simplify_epsilon is not None:
        graph = simplify_edges(graph, simplify_epsilon)
    return graph


def prune_spurs(graph: nx.Graph, min_length: float) -> nx.Graph:
    """A copy of `graph` without spurs (edges from an end node to a junction) shorter than
    `min_length`, removed shortest first until none is left; nodes left with two edges are merged
    away, so edges run junction-to-junction or to an end. Isolated segments are kept."""
    multigraph = nx.MultiGraph(graph)
    steps.prune_spurs(multigraph, min_length)
    return steps.simple_graph(multigraph)


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
    polylines = [without_repeats(as_polyline(line), tolerance) for line in lines]
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
            steps.add_edge(multigraph, int(ids[a]), int(ids[b]), piece)
    return steps.simple_graph(multigraph)


def graph_to_lines(graph: nx.Graph) -> list[np.ndarray]:
    """One (N, 2) float (x, y) polyline per edge (copies)."""
    return [np.array(pts, dtype=float) for _, _, pts in graph.edges(data="pts")]
