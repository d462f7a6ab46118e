"""Road graphs from drawn masks and from polylines keep the contract and the road topology."""
import cv2
import networkx as nx
import numpy as np
import pytest
from skimage.morphology import remove_small_holes, remove_small_objects

from roads.graph import (
    clean_mask,
    edge_polyline,
    graph_to_lines,
    lines_to_graph,
    mask_to_graph,
    prune_spurs,
    simplify_edges,
)
from roads.multigraph import contract_nodes, simple_graph
from roads.polyline import polyline_length
from tests.conftest import drawn


def degrees(graph: nx.Graph) -> list[int]:
    return sorted(degree for _, degree in graph.degree())


def assert_contract(graph: nx.Graph) -> None:
    """The graph contract of roads.graph."""
    assert type(graph) is nx.Graph and nx.number_of_selfloops(graph) == 0
    for node, pos in graph.nodes(data="pos"):
        assert isinstance(node, int) and pos.shape == (2,) and pos.dtype == float
    for u, v, data in graph.edges(data=True):
        pts = data["pts"]
        assert pts.ndim == 2 and pts.shape[1] == 2 and len(pts) >= 2
        ends = {tuple(pts[0]), tuple(pts[-1])}
        assert ends == {tuple(graph.nodes[u]["pos"]), tuple(graph.nodes[v]["pos"])}
        assert data["length"] == pytest.approx(polyline_length(pts))
        oriented = edge_polyline(graph, u, v)
        np.testing.assert_array_equal(oriented[0], graph.nodes[u]["pos"])
        np.testing.assert_array_equal(edge_polyline(graph, v, u), oriented[::-1])


def segments(lines: list[np.ndarray]) -> set:
    """The undirected segments of polylines, as a set of sorted end-point pairs."""
    return {tuple(sorted((tuple(a), tuple(b))))
            for line in lines for a, b in zip(line[:-1], line[1:])}


def test_straight_road_is_one_edge_between_two_ends():
    graph = mask_to_graph(drawn(((0, 100), (199, 100), 30)))
    assert_contract(graph)
    assert degrees(graph) == [1, 1] and graph.number_of_edges() == 1
    # The skeleton of a road cut by the border stops about a half-width short of it.
    (u, v, length), = graph.edges(data="length")
    assert 199 - 2 * 17 <= length <= 199 - 2 * 13
    assert all(abs(pos[1] - 100) <= 1 for _, pos in graph.nodes(data="pos"))


@pytest.mark.parametrize("roads, expected", [
    ([((0, 100), (199, 100), 30), ((100, 100), (100, 199), 24)], [1, 1, 1, 3]),
    ([((0, 100), (199, 100), 30), ((100, 0), (100, 199), 24)], [1, 1, 1, 1, 4]),
])
def test_junction_degrees(roads, expected):
    graph = mask_to_graph(drawn(*roads))
    assert_contract(graph)
    assert degrees(graph) == expected and graph.number_of_edges() == len(expected) - 1
    junction = max(graph.nodes, key=graph.degree)
    np.testing.assert_allclose(graph.nodes[junction]["pos"], (100, 100), atol=1.5)


def test_ring_is_three_edges_without_self_loop():
    mask = np.zeros((200, 200), np.uint8)
    cv2.circle(mask, (100, 100), 60, 255, 24)
    graph = mask_to_graph(mask)
    assert_contract(graph)
    assert degrees(graph) == [2, 2, 2] and graph.number_of_edges() == 3
    total = sum(length for _, _, length in graph.edges(data="length"))
    assert total == pytest.approx(2 * np.pi * 60, rel=0.03)


def test_loop_attached_to_a_road_has_a_three_way_junction():
    mask = drawn(((100, 130), (100, 199), 24))
    cv2.circle(mask, (100, 80), 50, 255, 24)
    graph = mask_to_graph(mask)
    assert_contract(graph)
    assert degrees(graph) == [1, 2, 2, 3] and graph.number_of_edges() == 4


def test_short_stub_is_pruned_and_its_junction_merged():
    mask = drawn(((0, 100), (199, 100), 30), ((100, 100), (100, 125), 20))
    assert degrees(mask_to_graph(mask, spur_length=1.0)) == [1, 1, 1, 3]
    graph = mask_to_graph(mask)
    assert_contract(graph)
    assert degrees(graph) == [1, 1] and graph.number_of_edges() == 1


def test_oblique_crossing_split_by_the_skeleton_is_merged_into_one_node():
    # The skeleton of two 30 px roads crossing at 45 degrees has two 3-way nodes ~41 px apart.
    mask = drawn(((0, 100), (199, 100), 30), ((-6, -6), (206, 206), 30))
    assert degrees(mask_to_graph(mask, junction_merge_factor=0)) == [1, 1, 1, 1, 3, 3]
    graph = mask_to_graph(mask)
    assert_contract(graph)
    assert degrees(graph) == [1, 1, 1, 1, 4]


def test_a_junction_moved_along_its_road_does_not_run_out_and_back():
    """Contracting a junction onto a point of one of its roads (as a predicted junction region's
    centre can be) starts that road at the new point, rather than running back to the old
    junction first and then forward again, a stretch drawn twice."""
    multigraph = nx.MultiGraph()
    for node, pos in enumerate([(0, 0), (40, 0), (0, 30), (0, -30)]):
        multigraph.add_node(node, pos=np.array(pos, dtype=float))
    for other in (1, 2, 3):
        end = multigraph.nodes[other]["pos"]
        pts = np.linspace((0.0, 0.0), end, 11)
        multigraph.add_edge(0, other, pts=pts, length=polyline_length(pts))
    contract_nodes(multigraph, {0}, position=np.array([8.0, 0.0]))
    along = multigraph.edges[0, 1, 0]["pts"]
    assert np.allclose(along[0], (8, 0)) and np.all(np.diff(along[:, 0]) > 0)
    assert multigraph.edges[0, 1, 0]["length"] == pytest.approx(32.0)
    for other in (2, 3):  # roads leaving sideways keep their course beyond the old junction
        pts = multigraph.edges[0, other, 0]["pts"]
        assert np.allclose(pts[0], (8, 0)) and np.allclose(pts[-1], multigraph.nodes[other]["pos"])


def test_small_objects_and_holes_are_cleaned_and_empty_mask_gives_empty_graph():
    mask = drawn(((0, 100), (199, 100), 30))
    mask[100, 100] = 0                     # a one-pixel hole would make a loop
    cv2.circle(mask, (50, 30), 5, 255, -1)  # a 81-pixel speck
    assert degrees(mask_to_graph(mask)) == [1, 1]
    assert mask_to_graph(np.zeros((50, 60), bool)).number_of_nodes() == 0


def star(arms: dict[int, tuple[float, float]]) -> nx.Graph:
    """A graph with node 0 at the origin and straight edges to nodes at the given positions."""
    graph = nx.Graph()
    graph.add_node(0, pos=np.zeros(2))
    for node, pos in arms.items():
        pos = np.array(pos, dtype=float)
        graph.add_node(node, pos=pos)
        pts = np.array([[0.0, 0.0], pos / 2, pos])
        graph.add_edge(0, node, pts=pts, length=polyline_length(pts))
    return graph


def test_prune_spurs_removes_the_short_arm_and_joins_the_others():
    pruned = prune_spurs(star({1: (5, 0), 2: (0, 50), 3: (0, -60)}), min_length=10)
    assert_contract(pruned)
    assert degrees(pruned) == [1, 1]
    (u, v, data), = pruned.edges(data=True)
    assert data["length"] == pytest.approx(110)
    assert {tuple(data["pts"][0]), tuple(data["pts"][-1])} == {(0.0, 50.0), (0.0, -60.0)}


def test_prune_spurs_removes_shortest_first_until_stable():
    # Both arms of the Y's fork are short: removing one leaves a bend, so the other stays.
    pruned = prune_spurs(star({1: (4, 3), 2: (-4, 3), 3: (0, -80)}), min_length=10)
    assert degrees(pruned) == [1, 1]
    assert sum(pruned.edges[e]["length"] for e in pruned.edges) == pytest.approx(85)


def test_simplify_keeps_end_points_and_removes_the_staircase():
    # A pixel staircase along the diagonal: RDP with 2 px tolerance leaves its two ends.
    staircase = np.array([(i // 2 + i % 2, i // 2) for i in range(41)], dtype=float)
    graph = nx.Graph()
    graph.add_node(0, pos=staircase[0])
    graph.add_node(1, pos=staircase[-1])
    graph.add_edge(0, 1, pts=staircase, length=polyline_length(staircase))
    simplified = simplify_edges(graph, 2.0)
    assert_contract(simplified)
    np.testing.assert_array_equal(simplified.edges[0, 1]["pts"], [staircase[0], staircase[-1]])
    assert simplified.edges[0, 1]["length"] == pytest.approx(20 * np.sqrt(2))
    assert len(graph.edges[0, 1]["pts"]) == 41  # the input graph is untouched


def test_mask_graph_simplified_edges_end_at_their_nodes():
    mask = np.zeros((200, 200), np.uint8)
    cv2.ellipse(mask, (100, 100), (80, 50), 20, 0, 200, 255, 20)
    raw, simple = mask_to_graph(mask, simplify_epsilon=None), mask_to_graph(mask)
    assert_contract(simple)
    assert degrees(simple) == degrees(raw) == [1, 1]
    (simple_pts,), (raw_pts,) = graph_to_lines(simple), graph_to_lines(raw)
    assert len(simple_pts) < len(raw_pts) / 5


def test_lines_split_at_shared_vertices_not_at_vertex_free_crossings():
    cross = [np.array([[0, 50], [50, 50], [100, 50]]), np.array([[50, 0], [50, 50], [50, 100]])]
    graph = lines_to_graph(cross)
    assert_contract(graph)
    assert degrees(graph) == [1, 1, 1, 1, 4]
    overpass = [np.array([[0, 50], [100, 50]]), np.array([[50, 0], [50, 100]])]
    graph = lines_to_graph(overpass)
    assert degrees(graph) == [1, 1, 1, 1] and graph.number_of_edges() == 2


def test_lines_end_on_another_line_vertex_and_repeated_vertices():
    through = np.array([[0, 0], [40, 0], [40, 0], [80, 0]], dtype=float)
    branch = np.array([[40, 30], [40, 1e-5]])  # ends on the shared vertex within tolerance
    graph = lines_to_graph([through, branch, np.array([[5, 5], [5, 5]])])
    assert_contract(graph)
    assert degrees(graph) == [1, 1, 1, 3] and graph.number_of_edges() == 3
    junction = max(graph.nodes, key=graph.degree)
    np.testing.assert_array_equal(graph.nodes[junction]["pos"], (40, 0))
    assert all(len(pts) == 2 for pts in graph_to_lines(graph))


def test_closed_and_parallel_lines_become_simple_edges():
    ring = np.array([[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]], dtype=float)
    graph = lines_to_graph([ring])
    assert_contract(graph)
    assert degrees(graph) == [2, 2, 2]
    twins = [np.array([[0, 0], [10, 0]]), np.array([[0, 0], [5, 3], [10, 0]])]
    graph = lines_to_graph(twins)
    assert_contract(graph)
    assert degrees(graph) == [2, 2, 2] and segments(graph_to_lines(graph)) == segments(twins)


def test_round_trip_lines_graph_lines_keeps_geometry():
    lines = [
        np.array([[0, 0], [30, 5], [60, 0], [90, 10]], dtype=float),
        np.array([[30, 5], [35, 40], [20, 80]], dtype=float),   # starts on a vertex of line 0
        np.array([[60, -20], [60, 30]], dtype=float),           # crosses line 0 without a vertex
        np.array([[90, 10], [95, 60], [20, 80]], dtype=float),  # joins two ends
    ]
    graph = lines_to_graph(lines)
    assert_contract(graph)
    assert segments(graph_to_lines(graph)) == segments(lines)
    total = sum(polyline_length(line) for line in lines)
    assert sum(length for _, _, length in graph.edges(data="length")) == pytest.approx(total)
    # Ends: (0, 0) and the overpass; bends where lines meet end to end; the junction at (30, 5).
    assert degrees(graph) == [1, 1, 1, 2, 2, 3] and graph.number_of_edges() == 5


@pytest.mark.parametrize("seed", range(6))
def test_clean_mask_removes_what_scikit_image_removes(seed):
    """The OpenCV labelling behind `clean_mask` against scikit-image's definitions on random
    masks: objects 8-connected, holes 4-connected (border ones included), both "smaller than"."""
    rng = np.random.default_rng(seed)
    mask = rng.random((90, 130)) < rng.uniform(0.3, 0.7)
    min_object_area, hole_area = (int(n) for n in rng.integers(2, 40, size=2))
    objects_removed = remove_small_objects(mask, max_size=min_object_area - 1, connectivity=2)
    expected = remove_small_holes(objects_removed, max_size=hole_area - 1, connectivity=1)
    assert np.array_equal(clean_mask(mask, min_object_area, hole_area), expected)
    assert np.array_equal(clean_mask(mask, min_object_area, 0), objects_removed)


def test_a_second_edge_stored_backwards_is_cut_into_pieces_that_join_their_nodes():
    """Parallel edges are split at the middle vertex of the second; its polyline may be stored
    from v to u (the contract allows either), and each piece must still end at its own nodes."""
    multigraph = nx.MultiGraph()
    multigraph.add_node(0, pos=np.array([0.0, 0.0]))
    multigraph.add_node(1, pos=np.array([10.0, 0.0]))
    straight = np.array([[0.0, 0.0], [10.0, 0.0]])
    arc_backwards = np.array([[10.0, 0.0], [8.0, 4.0], [5.0, 5.0], [2.0, 4.0], [0.0, 0.0]])
    multigraph.add_edge(0, 1, pts=straight, length=polyline_length(straight))
    multigraph.add_edge(0, 1, pts=arc_backwards, length=polyline_length(arc_backwards))
    graph = simple_graph(multigraph)
    assert_contract(graph)
    assert graph.number_of_nodes() == 3 and graph.number_of_edges() == 3
    assert sum(length for *_, length in graph.edges(data="length")) == pytest.approx(
        10 + polyline_length(arc_backwards))
