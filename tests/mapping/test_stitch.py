"""Block-wise road graphs stitched at the seams equal the whole-scene graph."""
import cv2
import numpy as np
import pytest

from evaluation.graph_metrics.apls import apls
from mapping.blocks import Block, block_grid, blocks_of_rank
from mapping.stitch import Rasters, assemble, block_graph, clip_to_core, halo_needed, stitch
from roads.extraction import GraphSettings, extract_graph

PIXEL = (1.0, 1.0)  # Massachusetts' ground size: the graph settings reach 50 px


def scene(noise: bool) -> np.ndarray:
    """768 x 768 roads: a skewed lattice with roads along and across the seams of 256 px blocks,
    a diagonal, a roundabout, an open curve, a dead end across a seam; with blobs of noise as a
    poorly trained network predicts them."""
    mask = np.zeros((768, 768), np.uint8)
    for y in (40, 255, 386, 511, 700):
        cv2.line(mask, (0, y), (767, y + 7), 255, 9)
    for x in (60, 256, 300, 512, 740):
        cv2.line(mask, (x, 0), (x - 11, 767), 255, 7)
    cv2.line(mask, (0, 0), (767, 767), 255, 11)
    cv2.circle(mask, (512, 256), 60, 255, 8)
    cv2.line(mask, (250, 600), (262, 620), 255, 9)
    cv2.ellipse(mask, (380, 620), (90, 40), 20, 0, 270, 255, 9)
    road = mask > 0
    if noise:
        field = cv2.GaussianBlur(np.random.default_rng(1).random((768, 768)).astype(np.float32),
                                 (0, 0), 4)
        road |= field > np.quantile(field, 0.8)
    return road


def stitched(road: np.ndarray, size: int, settings: GraphSettings, halo: int):
    def read(top, left, height, width):
        window = road[top:top + height, left:left + width]
        return Rasters(window, window.astype(np.uint8) * 255, None, np.ones_like(window))

    epsilon = settings.pixels(PIXEL)["simplify_epsilon"]
    blocks = block_grid(road.shape, size)
    return assemble(stitch((block_graph(read, block, road.shape, halo, settings, PIXEL)
                            for block in blocks), epsilon))


def lengths(graph) -> float:
    return sum(length for *_, length in graph.edges(data="length"))


@pytest.mark.parametrize("noise", [False, True])
@pytest.mark.parametrize("size", [256, 200])
def test_stitched_graph_equals_the_whole_scene_graph(noise, size):
    road = scene(noise)
    settings = GraphSettings()
    whole = extract_graph(road, settings, pixel_size_m=PIXEL)
    halo = halo_needed(settings, PIXEL)
    assert halo <= 64  # the 3 x 3 blocks of 256 px with a 64 px halo
    blocks = stitched(road, size, settings, 64)
    # Junctions and ends are the same nodes at the same places; a closed ring's node (and the
    # two that split its loop) lies on its first pixel in the raster order of the window that
    # saw it whole, which for a ring wider than the halo is not the scene's first pixel.
    def ends_and_junctions(graph):
        return sorted((tuple(np.round(graph.nodes[node]["pos"], 6)), degree)
                      for node, degree in graph.degree() if degree != 2)

    assert ends_and_junctions(blocks) == ends_and_junctions(whole)
    assert blocks.number_of_edges() == whole.number_of_edges()
    assert lengths(blocks) == pytest.approx(lengths(whole), rel=5e-3)
    score = apls(whole, blocks)
    assert score.apls >= 0.99


def test_an_edge_crossing_several_blocks_is_one_edge():
    road = np.zeros((100, 700), bool)
    road[45:52, 20:680] = True
    graph = stitched(road, 100, GraphSettings(), 64)
    assert graph.number_of_edges() == 1 and graph.number_of_nodes() == 2
    (u, v, pts), = graph.edges(data="pts")
    assert pts[:, 0].min() < 30 and pts[:, 0].max() > 670


def test_a_narrow_halo_leaves_ends_within_the_tolerance_joined_or_apart_but_never_doubled():
    road = scene(noise=True)
    graph = stitched(road, 256, GraphSettings(), 8)
    whole = extract_graph(road, GraphSettings(), pixel_size_m=PIXEL)
    assert lengths(graph) == pytest.approx(lengths(whole), rel=0.05)


def test_clipping_cuts_at_the_same_point_from_both_sides():
    pts = np.array([[10.0, 10.0], [30.3, 12.7], [60.0, 20.0]])
    left = (-np.inf, -np.inf, 29.5, np.inf)
    right = (29.5, -np.inf, np.inf, np.inf)
    (piece_left, _, cut_left), = clip_to_core(pts, left)
    (piece_right, cut_right, _), = clip_to_core(pts, right)
    assert cut_left and cut_right
    np.testing.assert_array_equal(piece_left[-1], piece_right[0])
    assert piece_left[-1][0] == 29.5
    (backwards, cut_start, _), = clip_to_core(pts[::-1].copy(), left)  # the other orientation
    assert cut_start
    np.testing.assert_array_equal(backwards[0], piece_left[-1])


def test_blocks_are_shared_round_robin_and_cover_the_scene():
    blocks = block_grid((1000, 700), 256)
    assert len(blocks) == 4 * 3
    assert sum(block.height * block.width for block in blocks) == 700_000
    shares = [blocks_of_rank(blocks, rank, 3) for rank in range(3)]
    assert sorted(b.index for share in shares for b in share) == list(range(12))
    assert Block(0, 0, 256, 256, 256).expanded(64, (1000, 700)) == (0, 192, 320, 384)
