"""The skeleton's pixel graph: known small cases, and no limit on coordinates or node counts."""
import numpy as np
import pytest

from roads.graph import mask_to_graph
from roads.skeleton import skeleton_graph


def test_a_cross_has_one_junction_cluster_and_four_arms():
    skeleton = np.zeros((11, 11), bool)
    skeleton[5, 1:10] = skeleton[1:10, 5] = True
    graph = skeleton_graph(skeleton)
    # The centre and its four neighbours have 3+ neighbours: one cluster of 5 pixels.
    assert len(graph.centroids) == 5 and len(graph.edges) == 4
    np.testing.assert_array_equal(graph.centroids[0], (1, 5))  # arm ends come first, raster order
    junction = [i for i, c in enumerate(graph.centroids) if tuple(c) == (5, 5)]
    assert len(junction) == 1
    for index, (u, v) in enumerate(graph.edges):
        assert junction[0] in (u, v)
        pixels = graph.edge_pixels(index)
        assert len(pixels) == 4 and np.abs(np.diff(pixels, axis=0)).max() <= 1


def test_a_ring_gets_one_node_and_a_self_loop_and_specks_are_dropped():
    skeleton = np.zeros((9, 12), bool)
    skeleton[1, 2:5] = skeleton[5, 2:5] = True  # a ring: two rows joined by two columns
    skeleton[2:5, 1] = skeleton[2:5, 5] = True
    skeleton[7, 10] = True  # a lone pixel: no path, no road
    graph = skeleton_graph(skeleton)
    assert len(graph.centroids) == 1 and graph.edges.tolist() == [[0, 0]]
    np.testing.assert_array_equal(graph.centroids[0], (1, 2))  # its first pixel in raster order
    pixels = graph.edge_pixels(0)
    assert len(pixels) == 13  # the node pixel, the 11 other ring pixels, the node pixel again
    np.testing.assert_array_equal(pixels[0], pixels[-1])


def test_columns_past_int16_keep_their_coordinates():
    """A thin 8 x 40,000 strip with a road at columns 39,000-39,899: no int16 wrap-around."""
    skeleton = np.zeros((8, 40_000), bool)
    skeleton[4, 39_000:39_900] = True
    graph = skeleton_graph(skeleton)
    np.testing.assert_array_equal(graph.centroids, [[4, 39_000], [4, 39_899]])
    np.testing.assert_array_equal(graph.edge_pixels(0)[:, 1], np.arange(39_000, 39_900))

    mask = np.zeros((8, 40_000), np.uint8)
    mask[2:7, 39_000:39_900] = 255
    roads = mask_to_graph(mask, min_object_area=0, hole_area=0)
    xs = np.concatenate([pts[:, 0] for _, _, pts in roads.edges(data="pts")])
    assert roads.number_of_edges() == 1
    assert xs.min() == pytest.approx(39_000, abs=3) and xs.max() == pytest.approx(39_899, abs=3)


def test_more_nodes_than_uint16_labels():
    """33,800 three-pixel segments: 67,600 end nodes, each segment one edge."""
    mask = np.zeros((260, 1040), bool)
    for start in range(3):
        mask[::2, start::4] = True
    graph = skeleton_graph(mask)
    assert len(graph.centroids) == 67_600 and len(graph.edges) == 33_800
    assert graph.edges.max() == 67_599
    # The last segment, bottom right: nodes at columns 1036 and 1038 of row 258.
    last = graph.edge_pixels(len(graph.edges) - 1)
    np.testing.assert_array_equal(last, [[258, 1036], [258, 1037], [258, 1038]])

    roads = mask_to_graph(mask, min_object_area=0, hole_area=0, spur_length=0,
                          junction_merge_factor=0, simplify_epsilon=None)
    assert roads.number_of_nodes() == 67_600 and roads.number_of_edges() == 33_800


def test_deterministic():
    rng = np.random.default_rng(3)
    mask = rng.random((120, 150)) < 0.4
    first, second = skeleton_graph(mask), skeleton_graph(mask)
    for name in ("centroids", "edges", "offsets", "pixels"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))


def test_rejects_a_volume():
    with pytest.raises(ValueError, match="skeleton: expected an"):
        skeleton_graph(np.zeros((2, 3, 4), bool))


def test_specks_alone_give_an_empty_graph():
    skeleton = np.zeros((6, 6), bool)
    skeleton[1, 1] = skeleton[4, 3:5] = True
    assert mask_to_graph(skeleton, min_object_area=0, hole_area=0).number_of_nodes() == 0
