"""TOPO on hand-made graphs whose counts follow from placing holes and marbles by hand.

Defaults: holes and marbles every 30 along edges of the subgraph within radius 150 of the
origin, matched within 4. A straight road of length 100 from A = (0, 0) to B = (100, 0): from
origin A its holes are A, B and the points at 30, 60, 90; from origin B, A, B and 70, 40, 10.
"""
import math

import networkx as nx
import numpy as np
import pytest

from evaluation.graph_metrics.core import RoadArrays
from evaluation.graph_metrics.topo import TopoSettings, topo
from roads.graph import lines_to_graph


def roads(*polylines) -> RoadArrays:
    graph = nx.Graph()
    for i, points in enumerate(polylines):
        pts = np.asarray(points, dtype=float)
        graph.add_node(2 * i, pos=pts[0])
        graph.add_node(2 * i + 1, pos=pts[-1])
        graph.add_edge(2 * i, 2 * i + 1, pts=pts,
                       length=float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum()))
    return RoadArrays.from_graph(graph)


ROAD = [(0, 0), (100, 0)]


def test_identical_roads_fill_every_hole():
    # 5 holes per origin, each filled by the marble on the same spot: TP 10.
    result = topo(roads(ROAD), roads(ROAD))
    assert (result.true_positives, result.false_positives, result.false_negatives) == (10, 0, 0)
    assert (result.precision, result.recall, result.f1) == (1.0, 1.0, 1.0)


def test_half_a_road():
    # Proposal A-C, C = (50, 0). Origin A: marbles A, C and 30; A and 30 fill holes, C (no hole
    # within 4 of 50) is a false positive: TP 2, FP 1, FN 3. Origin B: no proposal node within 4,
    # its 5 holes stay empty. Totals TP 2, FP 1, FN 8.
    result = topo(roads(ROAD), roads([(0, 0), (50, 0)]))
    assert (result.true_positives, result.false_positives, result.false_negatives) == (2, 1, 8)
    assert result.precision == pytest.approx(2 / 3)
    assert result.recall == pytest.approx(0.2)
    assert result.f1 == pytest.approx(4 / 13)


def test_hole_size_bounds_the_shift():
    shifted = [(0, 3), (100, 3)]
    assert topo(roads(ROAD), roads(shifted)).f1 == 1.0
    far = topo(roads(ROAD), roads([(0, 5), (100, 5)]))
    assert (far.true_positives, far.false_negatives) == (0, 10)
    assert (far.precision, far.recall, far.f1) == (0.0, 0.0, 0.0)
    assert topo(roads(ROAD), roads([(0, 5), (100, 5)]), TopoSettings(hole_size=6)).f1 == 1.0


def test_only_the_component_of_the_origin_counts():
    # A second proposed road 1 px away but unconnected adds no marble: still TP 10, FP 0.
    result = topo(roads(ROAD), roads(ROAD, [(0, 1), (100, 1)]))
    assert (result.true_positives, result.false_positives, result.false_negatives) == (10, 0, 0)


def test_edges_leaving_the_radius_have_no_holes():
    # A 400 long road: from either end the other is beyond 150, the subgraph is one node.
    long_road = [(0, 0), (400, 0)]
    result = topo(roads(long_road), roads(long_road))
    assert (result.true_positives, result.false_positives, result.false_negatives) == (2, 0, 0)


def test_empty_graphs():
    no_truth = topo(roads(), roads(ROAD))
    assert math.isnan(no_truth.f1)
    no_proposal = topo(roads(ROAD), roads())
    assert (no_proposal.false_negatives, no_proposal.f1) == (2, 0.0)


def test_settings_are_validated():
    with pytest.raises(ValueError, match="^hole_size"):
        TopoSettings(hole_size=0)
    with pytest.raises(ValueError, match="^max_origins"):
        TopoSettings(max_origins=0)
    assert TopoSettings().scaled(2.0).interval == 60.0


def test_a_hole_takes_one_marble():
    # Two proposed roads on the same spot, joined at A: each hole can take one of the two
    # marbles on it. Origin A: 5 holes, 9 marbles (A, both B ends, 3 + 3 points): TP 5, FP 4.
    # Origin B: the proposal origin is one B end, whose subgraph holds both roads: the same.
    joined = lines_to_graph([np.array([(0, 0), (100, 0)], float),
                             np.array([(0, 0), (100, 0.5)], float)])
    result = topo(roads(ROAD), RoadArrays.from_graph(joined))
    assert (result.true_positives, result.false_positives, result.false_negatives) == (10, 8, 0)
