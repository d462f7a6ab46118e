"""One road graph from block graphs: each block's graph clipped to its core, joined at the seams.

A block's graph is extracted from its core plus a halo (`block_graph`), with the graph method of
the whole-tile pipeline (`roads.extraction.extract_graph`), before polyline simplification. The
halo makes cleaning, skeletonising, spur pruning and junction merging inside the core decide as
they would on the whole scene: every one of them looks a bounded distance around a pixel or a node
(`halo_needed` says how far). The graph is then clipped to the core: a node belongs to the block
whose core holds it, and an edge that leaves the core is cut where it crosses the core's border
(a seam end). Both blocks beside a seam see the same skeleton pixels there, so they cut the
same segment at the same point: `stitch` joins the two pieces into one edge, and a road crosses
any number of seams as one edge, a junction on a seam stays one node (it is in one core only).
Ends that should meet but do not match exactly (the blocks disagreed, which a halo too narrow can
cause) are joined when they lie within `SEAM_TOLERANCE` pixels of each other.

Memory: a block needs its core and halo; `stitch` emits the edges inside a core as soon as the
block is read and holds only the edges that touch a seam until the end, so the graph is never
whole in memory (the seam edges grow with the seams' total length, not with the area).
"""
import dataclasses
import math
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field

import networkx as nx
import numpy as np
from scipy.spatial import cKDTree
from skimage.measure import approximate_polygon

from mapping.blocks import Block
from roads import multigraph as steps
from roads.extraction import GraphSettings, extract_graph, mean_pixel_size
from roads.graph import edge_polyline
from roads.polyline import polyline_length

SEAM_TOLERANCE = 1.5
"""Largest distance (pixels) between two unmatched seam ends of neighbouring blocks that are
joined: one diagonal skeleton step."""


SEAM_SHIFT = 0.4827
"""Where a seam lies between two pixel columns (rows): this far before the first pixel of the next
block. Not 0.5, because a node of two pixels has its centre there, and a node on a seam would be
the end of several seam crossings at one point; node positions are means of a few pixel positions,
fractions with small denominators, which 0.4827 (4827/10000) is not."""


@dataclass(frozen=True)
class Rasters:
    """A window of a scene's prediction: (h, w) bool road mask, uint8 road probability x 255,
    uint8 connectivity classes (None for a mask or probability without them) and bool valid."""

    mask: np.ndarray
    probability: np.ndarray
    connectivity: np.ndarray | None
    valid: np.ndarray


@dataclass
class BlockGraph:
    """The part of the scene's road graph that a block owns, in scene pixel coordinates.

    nodes: {local id: (x, y, degree, class)}, the nodes inside the core, with their degree in the
        block's graph (all their edges are there) and the connectivity class at them (-1: none).
    edges: (start, end, pts, gap) with `pts` the (N, 2) polyline from start to end; an end is
        ("n", local id) for a node of this block or ("s", x, y) for a seam crossing.
    """

    block: Block
    nodes: dict[int, tuple[float, float, int, int]] = field(default_factory=dict)
    edges: list[tuple[tuple, tuple, np.ndarray, bool]] = field(default_factory=list)


def halo_needed(settings: GraphSettings, pixel_size_m: tuple[float, float] | None) -> int:
    """Pixels of halo for which block graphs agree with the whole-scene graph: twice the largest
    reach of any step (spurs, gap search, junction regions), with 32 px for the road widths that
    cleaning and junction merging see."""
    pixels = settings.pixels(pixel_size_m)
    reach = [pixels["spur_length"], math.sqrt(max(pixels["hole_area"], pixels["min_object_area"]))]
    if settings.method == "connectivity":
        size = mean_pixel_size(pixel_size_m) if pixel_size_m else None
        metres = settings.connectivity
        lengths = (metres.max_gap_m, metres.spur_length_m, metres.max_junction_span_m)
        if size:
            reach += [length / size for length in lengths]
    return int(math.ceil(2 * max(reach) + 32))


def block_graph(read: Callable[[int, int, int, int], Rasters], block: Block,
                shape: tuple[int, int], halo: int, settings: GraphSettings,
                pixel_size_m: tuple[float, float] | None) -> BlockGraph:
    """The graph that `block` owns: extracted from the rasters that `read(top, left, height,
    width)` gives for the core and `halo` pixels around it, clipped to the core."""
    top, left, height, width = block.expanded(halo, shape)
    rasters = read(top, left, height, width)
    unsimplified = dataclasses.replace(settings, simplify_epsilon_m=None, simplify_epsilon=None)
    valid = None if rasters.valid.all() else rasters.valid
    graph = extract_graph(rasters.mask, unsimplified, pixel_size_m=pixel_size_m,
                          probability=rasters.probability, connectivity=rasters.connectivity,
                          valid=valid)
    offset = np.array([left, top], dtype=float)
    # The core in the continuous pixel coordinates of node positions (pixel centres at integers),
    # its sides SEAM_SHIFT off the pixel borders; a core side on the scene border reaches to
    # infinity, so that nothing is clipped there.
    x0 = block.left - SEAM_SHIFT if block.left > 0 else -math.inf
    y0 = block.top - SEAM_SHIFT if block.top > 0 else -math.inf
    right, bottom = block.left + block.width, block.top + block.height
    x1 = right - SEAM_SHIFT if right < shape[1] else math.inf
    y1 = bottom - SEAM_SHIFT if bottom < shape[0] else math.inf
    core = (x0, y0, x1, y1)
    owned = BlockGraph(block)
    for node, pos in graph.nodes(data="pos"):
        x, y = pos + offset
        if _inside(x, y, core):
            row, col = int(round(pos[1])), int(round(pos[0]))
            classes = rasters.connectivity
            node_class = int(classes[row, col]) if classes is not None else -1
            owned.nodes[node] = (float(x), float(y), graph.degree(node), node_class)
    for u, v, gap in graph.edges(data="gap", default=False):
        pts = edge_polyline(graph, u, v) + offset
        for piece, start_cut, end_cut in clip_to_core(pts, core):
            start = ("s", *map(float, piece[0])) if start_cut else ("n", u)
            end = ("s", *map(float, piece[-1])) if end_cut else ("n", v)
            owned.edges.append((start, end, piece, bool(gap)))
    return owned


def _inside(x: float, y: float, core: tuple[float, float, float, float]) -> bool:
    x0, y0, x1, y1 = core
    return x0 <= x < x1 and y0 <= y < y1


def _crossing(a: np.ndarray, b: np.ndarray, axis: int, line: float) -> np.ndarray:
    """The point where segment a-b crosses the line `axis` = `line`, computed from the two ends
    in a fixed order, so that the blocks on both sides of a seam get the same floats."""
    first, second = (a, b) if tuple(a) <= tuple(b) else (b, a)
    t = (line - first[axis]) / (second[axis] - first[axis])
    point = first + t * (second - first)
    point[axis] = line
    return point


def clip_to_core(pts: np.ndarray, core: tuple[float, float, float, float]
                 ) -> list[tuple[np.ndarray, bool, bool]]:
    """The pieces of the polyline `pts` inside `core`, each with whether its start and its end
    were cut at the core's border (unlike the toy generator's `clip_polyline`, which trims
    drawn roads to a tile: here a cut point must come out the same from both sides of a seam)."""
    x0, y0, x1, y1 = core
    pieces = []
    current: list[np.ndarray] | None = None
    start_cut = False
    if _inside(*pts[0], core):
        current = [pts[0]]
    for a, b in zip(pts[:-1], pts[1:]):
        hits = []
        for axis, line in ((0, x0), (0, x1), (1, y0), (1, y1)):
            if math.isfinite(line) and (a[axis] >= line) != (b[axis] >= line):
                point = _crossing(a, b, axis, line)
                other = 1 - axis
                low, high = (y0, y1) if axis == 0 else (x0, x1)
                if low <= point[other] <= high:
                    t = abs(point[axis] - a[axis]) / abs(b[axis] - a[axis])
                    hits.append((t, axis, point))
        for _, _, point in sorted(hits, key=lambda hit: (hit[0], hit[1])):
            if current is not None:
                current.append(point)
                pieces.append((np.array(current), start_cut, True))
                current = None
            else:
                current, start_cut = [point], True
        inside_b = _inside(*b, core)
        if current is not None and inside_b:
            current.append(b)
        elif current is not None:  # left through a corner the crossings missed
            pieces.append((np.array(current), start_cut, True))
            current = None
        elif inside_b:  # entered through a corner the crossings missed
            current, start_cut = [b], True
    if current is not None:
        pieces.append((np.array(current), start_cut, False))
    # A node exactly on the core's border belongs to the next block, which cuts its edge there
    # into a piece of length 0: kept, it ties the node to the seam end of this block's piece.
    return [(piece, first, last) for piece, first, last in pieces if len(piece) >= 2
            and (polyline_length(piece) > 0 or first != last)]


@dataclass
class Batch:
    """Nodes and edges ready to write, in scene pixels with global node ids.

    nodes: {id: (x, y, degree, class)} (class -1: unknown); edges: (u, v, pts, gap)."""

    nodes: dict[int, tuple[float, float, int, int]]
    edges: list[tuple[int, int, np.ndarray, bool]]


def stitch(block_graphs: Iterable[BlockGraph], simplify_epsilon: float | None,
           class_at: Callable[[float, float], int] | None = None) -> Iterator[Batch]:
    """The scene's road graph from its blocks' graphs (in block order): one Batch per block with
    its nodes and the edges inside its core, then one with the edges joined across seams and the
    nodes made there. Polylines are simplified by `simplify_epsilon` pixels (None: kept);
    `class_at(x, y)` gives the class at a node made at a seam (default unknown)."""
    next_id = 0
    seams = nx.MultiGraph()
    for owned in block_graphs:
        ids = {}
        for local in owned.nodes:
            ids[local] = next_id
            next_id += 1
        batch = Batch({ids[local]: data for local, data in owned.nodes.items()}, [])
        for start, end, pts, gap in owned.edges:
            if start[0] == "n" and end[0] == "n":
                batch.edges.append((ids[start[1]], ids[end[1]], _simplified(pts, simplify_epsilon),
                                    gap))
                continue
            keys = [("n", ids[end_[1]]) if end_[0] == "n" else end_ + (owned.block.index,)
                    for end_ in (start, end)]
            for key, point, data in zip(keys, (pts[0], pts[-1]), (start, end)):
                if key not in seams:
                    seams.add_node(key, pos=np.asarray(point, dtype=float), seam=data[0] == "s")
            steps.add_edge(seams, keys[0], keys[1], pts, gap=gap)
        yield batch
    yield _joined(seams, next_id, simplify_epsilon, class_at)


def _joined(seams: nx.MultiGraph, next_id: int, simplify_epsilon: float | None,
            class_at: Callable[[float, float], int] | None) -> Batch:
    """The seam edges joined: seam ends of two blocks at one point (or, unmatched, within
    SEAM_TOLERANCE) become one node, which then joins its two edges into one."""
    # Both sides of a seam cut one segment at the same point: one key but for the block index.
    by_point: dict[tuple, list] = {}
    for key in seams.nodes:
        if key[0] == "s":
            by_point.setdefault(key[1:3], []).append(key)
    loose = [keys[0] for keys in by_point.values() if len(keys) == 1]
    groups = [keys for keys in by_point.values() if len(keys) > 1]
    if len(loose) > 1:
        points = np.array([key[1:3] for key in loose])
        paired = set()
        for i, j in sorted(cKDTree(points).query_pairs(SEAM_TOLERANCE),
                           key=lambda pair: np.linalg.norm(points[pair[0]] - points[pair[1]])):
            if i not in paired and j not in paired and loose[i][3] != loose[j][3]:
                paired |= {i, j}
                groups.append([loose[i], loose[j]])
    for keys in groups:
        steps.contract_nodes(seams, set(keys))
    for key in [key for key in seams.nodes if key[0] == "s"]:
        steps.merge_degree_two(seams, [key])
    real = {key: key[1] for key in seams.nodes if key[0] == "n"}
    simple = _simple(seams)
    ids = {}
    nodes = {}
    for node, data in simple.nodes(data=True):
        key = data.get("key")
        if key in real:
            ids[node] = real[key]
            continue
        ids[node] = next_id
        next_id += 1
        x, y = data["pos"]
        nodes[ids[node]] = (float(x), float(y), simple.degree(node),
                            class_at(x, y) if class_at else -1)
    edges = [(ids[u], ids[v], _simplified(edge_polyline(simple, u, v), simplify_epsilon),
              bool(gap)) for u, v, gap in simple.edges(data="gap", default=False)
             if polyline_length(simple.edges[u, v]["pts"]) > 0]
    # A node made at a seam whose only edges had no length carries no road.
    linked = {node for u, v, _, _ in edges for node in (u, v)}
    return Batch({node: data for node, data in nodes.items() if node in linked}, edges)


def _simple(seams: nx.MultiGraph) -> nx.Graph:
    """The contract's simple graph of the seam edges, each node remembering its key."""
    return steps.simple_graph(nx.convert_node_labels_to_integers(seams, label_attribute="key"))


def _simplified(pts: np.ndarray, epsilon: float | None) -> np.ndarray:
    return pts if epsilon is None else approximate_polygon(pts, tolerance=epsilon)


def assemble(batches: Iterable[Batch]) -> nx.Graph:
    """The batches of `stitch` as one graph of the contract (for tiles and tests: a city's graph
    goes to files batch by batch instead)."""
    graph = nx.Graph()
    for batch in batches:
        for node, (x, y, _, node_class) in batch.nodes.items():
            graph.add_node(node, pos=np.array([x, y]), node_class=node_class)
        for u, v, pts, gap in batch.edges:
            if graph.has_edge(u, v):
                raise ValueError(f"stitch: a second edge between nodes {u} and {v}")
            graph.add_edge(u, v, pts=pts, length=polyline_length(pts), gap=gap)
    return graph
