"""The connectivity graph joins occluded roads, keeps dead ends and parallel roads apart, makes one
node per predicted junction region and drops spurs; with its steps off it is the skeleton graph."""
import cv2
import networkx as nx
import numpy as np
import pytest

from roads.classes import DEAD_END, FOUR_OR_MORE, ROAD
from roads.connectivity_graph import ConnectivityGraphSettings, connectivity_graph
from roads.graph import mask_to_graph
from tests.conftest import drawn
from tests.roads.test_road_graph import assert_contract, degrees

SPACENET = (0.3, 0.3)
OFF = {"junctions": False, "gap_closing": False, "spurs": False}


def road_classes(mask: np.ndarray) -> np.ndarray:
    """A connectivity map with road (class 2) wherever `mask` is road, and nothing else."""
    return np.where(mask > 0, ROAD, 0).astype(np.uint8)


def extract(mask: np.ndarray, classes: np.ndarray, probability: np.ndarray | None = None,
            valid: np.ndarray | None = None, pixel_size_m=SPACENET, **settings) -> nx.Graph:
    if probability is None:
        probability = np.where(mask > 0, 0.9, 0.05)
    graph = connectivity_graph(probability, mask > 0, classes, valid, pixel_size_m=pixel_size_m,
                               settings=ConnectivityGraphSettings(**settings))
    assert_contract(graph)
    return graph


def gaps(graph: nx.Graph) -> list[float]:
    """Lengths of the edges that close a gap."""
    return [data["length"] for _, _, data in graph.edges(data=True) if data["gap"]]


def occluded_road(size=(200, 400), width=24, gap=(183, 217)):
    """A road across the tile, its mask cut by an occlusion of 34 px (10 m at 0.3 m/px), with
    the occlusion's probability low but above the background's."""
    full = drawn(((0, 100), (size[1] - 1, 100), width), size=size)
    broken = full.copy()
    broken[:, gap[0]:gap[1]] = 0
    probability = np.where(broken > 0, 0.9, 0.05)
    probability[:, gap[0]:gap[1]][full[:, gap[0]:gap[1]] > 0] = 0.2
    return full, broken, probability


def test_road_broken_by_an_occlusion_is_joined():
    full, broken, probability = occluded_road()
    assert nx.number_connected_components(mask_to_graph(broken)) == 2
    graph = extract(broken, road_classes(full), probability)
    assert nx.number_connected_components(graph) == 1
    assert degrees(graph) == [1, 1, 2, 2]
    # The gap spans the occlusion plus the half-widths the skeleton gives up at both ends.
    (gap,) = gaps(graph)
    assert 34 <= gap <= 34 + 2 * 16
    gap_pts = next(data["pts"] for _, _, data in graph.edges(data=True) if data["gap"])
    assert np.all(np.abs(gap_pts[:, 1] - 100) <= 2)


def test_uint8_probability_as_the_pipeline_keeps_it_gives_the_same_graph():
    """The pipeline passes its uint8 probability (p x 255) rather than a float copy."""
    full, broken, probability = occluded_road()
    as_float = extract(broken, road_classes(full), np.round(probability * 255) / 255)
    as_uint8 = extract(broken, road_classes(full), np.round(probability * 255).astype(np.uint8))
    assert gaps(as_uint8) == gaps(as_float) and len(gaps(as_uint8)) == 1
    assert sorted(as_uint8.edges) == sorted(as_float.edges)


def test_gap_closing_can_be_switched_off_and_is_in_metres():
    full, broken, probability = occluded_road()
    assert not gaps(extract(broken, road_classes(full), probability, gap_closing=False))
    # At 1 m/px the same 34 px occlusion is 34 m, longer than the 30 m maximum gap.
    assert not gaps(extract(broken, road_classes(full), probability, pixel_size_m=(1.0, 1.0)))
    assert gaps(extract(broken, road_classes(full), probability, pixel_size_m=(1.0, 1.0),
                        max_gap_m=70.0))


def test_gap_never_crosses_or_starts_at_no_data():
    full, broken, probability = occluded_road()
    barrier = np.ones(full.shape, dtype=bool)
    barrier[:, 199:201] = False
    assert not gaps(extract(broken, road_classes(full), probability, barrier))
    # Ends at a no-data area are cut roads, not broken ones.
    no_data = np.ones(full.shape, dtype=bool)
    no_data[:, 183:217] = False
    assert not gaps(extract(full, road_classes(full), probability, no_data))


def dead_end_before_a_road():
    """A road that ends 15 m before a crossing road, and its label-like connectivity."""
    mask = drawn(((0, 100), (250, 100), 24), ((300, 0), (300, 199), 24), size=(200, 400))
    classes = road_classes(mask)
    cv2.circle(classes, (239, 100), 15, DEAD_END, -1)
    return mask, classes


def test_predicted_dead_end_is_not_extended():
    mask, classes = dead_end_before_a_road()
    graph = extract(mask, classes)
    assert not gaps(graph) and nx.number_connected_components(graph) == 2
    # The same end without a dead-end prediction is a broken road: it meets the crossing road.
    classes[classes == DEAD_END] = ROAD
    graph = extract(mask, classes)
    assert len(gaps(graph)) == 1 and nx.number_connected_components(graph) == 1
    assert degrees(graph) == [1, 1, 1, 2, 3]


def test_parallel_roads_are_not_joined_across_the_block():
    # A road ending 20 m beside a parallel road (centre lines 67 px apart).
    mask = drawn(((0, 100), (250, 100), 24), ((0, 167), (399, 167), 24), size=(300, 400))
    graph = extract(mask, road_classes(mask))
    assert not gaps(graph) and nx.number_connected_components(graph) == 2
    # It is the direction test that keeps them apart: without it the end turns to the road.
    assert gaps(extract(mask, road_classes(mask), max_angle_deg=180.0))


def junction_blob():
    """Three roads leaving an elongated blob of road at three places, and one predicted
    4-or-more-way region over the blob."""
    roads = [((0, 150), (399, 150), 20), ((120, 0), (120, 150), 20),
             ((200, 150), (200, 299), 20), ((280, 150), (280, 0), 20)]
    mask = drawn(*roads, size=(300, 400))
    cv2.ellipse(mask, (200, 150), (110, 28), 0, 0, 360, 255, -1)
    classes = road_classes(mask)
    cv2.ellipse(classes, (200, 150), (115, 33), 0, 0, 360, FOUR_OR_MORE, -1)
    return mask, classes


def test_junction_blob_with_three_branch_points_is_one_node():
    mask, classes = junction_blob()
    skeleton = mask_to_graph(mask)
    assert degrees(skeleton) == [1, 1, 1, 1, 1, 3, 3, 3]
    graph = extract(mask, classes)
    assert degrees(graph) == [1, 1, 1, 1, 1, 5]
    (junction,) = [node for node, degree in graph.degree() if degree == 5]
    np.testing.assert_allclose(graph.nodes[junction]["pos"], (200, 150), atol=1)
    assert degrees(extract(mask, classes, junctions=False)) == degrees(skeleton)


def test_junction_region_without_branching_adds_no_node():
    mask = drawn(((0, 100), (399, 100), 24), size=(200, 400))
    classes = road_classes(mask)
    cv2.circle(classes, (200, 100), 18, FOUR_OR_MORE, -1)
    assert degrees(extract(mask, classes)) == [1, 1]


def test_spur_is_removed_unless_it_is_a_predicted_dead_end():
    # A 50 px (15 m) side stub: its skeleton edge (~50 px, 14 m) outlives the skeleton's
    # 30 px artefact pruning.
    mask = drawn(((0, 100), (399, 100), 24), ((200, 100), (200, 150), 16), size=(200, 400))
    assert degrees(mask_to_graph(mask)) == [1, 1, 1, 3]
    classes = road_classes(mask)
    assert degrees(extract(mask, classes)) == [1, 1]
    assert degrees(extract(mask, classes, spurs=False)) == [1, 1, 1, 3]
    cv2.circle(classes, (200, 142), 12, DEAD_END, -1)
    assert degrees(extract(mask, classes)) == [1, 1, 1, 3]


def test_all_steps_off_is_the_skeleton_graph():
    full, broken, probability = occluded_road()
    mask, classes = junction_blob()
    for road, connectivity in ((broken, road_classes(full)), (mask, classes)):
        graph = extract(road, connectivity, **OFF)
        skeleton = mask_to_graph(road)
        assert sorted(graph.edges) == sorted(skeleton.edges)
        for node in skeleton:
            np.testing.assert_array_equal(graph.nodes[node]["pos"], skeleton.nodes[node]["pos"])
        assert not gaps(graph)


@pytest.mark.parametrize("settings, message", [
    ({"max_gap_m": 0.0}, "max_gap_m: must be > 0"),
    ({"spur_length_m": -1.0}, "spur_length_m: expected a number >= 0"),
    ({"max_angle_deg": 200.0}, "max_angle_deg: must be in (0, 180]"),
    ({"min_detour": 0.5}, "min_detour: must be >= 1"),
    ({"min_probability": 0.0}, "min_probability: must be in (0, 1]"),
    ({"junctions": 1}, "junctions: expected true or false"),
])
def test_invalid_settings_name_the_parameter(settings, message):
    with pytest.raises(ValueError, match="^" + message.replace("(", r"\(").replace("]", r"\]")):
        ConnectivityGraphSettings(**settings)


def test_mismatched_shapes_and_pixel_sizes_are_refused():
    mask = drawn(((0, 100), (199, 100), 24))
    with pytest.raises(ValueError, match="^connectivity:"):
        connectivity_graph(mask / 255.0, mask > 0, road_classes(mask)[:-1], pixel_size_m=SPACENET)
    with pytest.raises(ValueError, match="^pixel_size_m:"):
        connectivity_graph(mask / 255.0, mask > 0, road_classes(mask), pixel_size_m=(0.3, 0.0))


def test_junction_region_wider_than_the_span_is_left_to_the_skeleton():
    mask, classes = junction_blob()
    # The blob's three branch points are 143 px = 43 m apart.
    assert degrees(extract(mask, classes, max_junction_span_m=40.0)) == degrees(
        mask_to_graph(mask))
