"""APLS on hand-made graphs whose scores follow from counting control-point pairs.

Defaults everywhere: delta 20 px, snap 10 px, min_path 3 px. A straight road of length L > delta
gets ceil(L / 20) - 1 evenly spaced control points besides its two end nodes.
"""
import json
import subprocess
import sys

import networkx as nx
import numpy as np
import pytest

from evaluation.graph_metrics.apls import apls


def add_road(graph: nx.Graph, first: int, last: int, points: list) -> None:
    """Add an edge (first, last) along the polyline `points`, per the road-graph contract."""
    pts = np.asarray(points, dtype=float)
    graph.add_node(first, pos=pts[0])
    graph.add_node(last, pos=pts[-1])
    length = float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())
    graph.add_edge(first, last, pts=pts, length=length)


def straight(start: tuple, end: tuple) -> nx.Graph:
    graph = nx.Graph()
    add_road(graph, 0, 1, [start, end])
    return graph


def block(skip_edge: bool = False) -> nx.Graph:
    """One block of a street grid: a 40 px square, corners 0..3; optionally without edge 0-1."""
    corners = [(100, 100), (140, 100), (140, 140), (100, 140)]
    graph = nx.Graph()
    for i in range(4):
        j = (i + 1) % 4
        if not (skip_edge and i == 0):
            add_road(graph, i, j, [corners[i], corners[j]])
    return graph


def harmonic(a: float, b: float) -> float:
    return 2 * a * b / (a + b)


def test_identical_graphs_score_one():
    graph = block()
    add_road(graph, 2, 4, [(140, 140), (170, 150), (200, 190), (205, 260)])  # a curved road
    result = apls(graph, graph)
    assert result.apls == pytest.approx(1.0, abs=1e-12)
    assert result.gt_to_prop == pytest.approx(1.0, abs=1e-12)
    assert result.prop_to_gt == pytest.approx(1.0, abs=1e-12)


def test_extra_vertices_on_polylines_change_nothing():
    gt = nx.Graph()
    add_road(gt, 0, 1, [(0, 0), (100, 0), (100, 90)])
    prop = nx.Graph()
    add_road(prop, 0, 1, [(0, 0), (33, 0), (71.5, 0), (100, 0), (100, 12), (100, 90)])
    result = apls(gt, prop)
    assert result.apls == pytest.approx(1.0, abs=1e-12)


def test_control_points_follow_the_reference_spacing():
    # Pairs of a lone road = C(n, 2) for n control points: L = 14 < 0.75 * 20 has only its ends
    # (1 pair); L = 16 gets its midpoint (3 points, 3 pairs); L = 100 gets 4 inner points
    # (6 points, 15 pairs).
    for length, pairs in ((14, 1), (16, 3), (100, 15)):
        road = straight((0, 0), (length, 0))
        assert apls(road, road).gt_pairs == pairs


def test_removed_edge_of_a_block():
    # Control points of the block: 4 corners + 4 midpoints, 20 px apart around a 160 px loop.
    # Without edge 0-1 the proposal is a 120 px path of 7 of them; the lost midpoint is 20 px
    # from the proposal, beyond snap. Along the path, two points D apart are min(D, 160 - D)
    # apart in the block.
    # gt -> prop: 28 pairs; the 7 with the lost midpoint cost 1; D = 100 (2 pairs) costs
    # (100 - 60) / 60 = 2/3; D = 120 (1 pair) costs min(1, 80 / 40) = 1; the rest 0.
    # C = 1 - (7 + 4/3 + 1) / 28 = 2/3.
    # prop -> gt: 21 pairs; D = 100 costs 40 / 100, D = 120 costs 80 / 120.
    # C = 1 - (0.8 + 2/3) / 21 = 293/315.
    result = apls(block(), block(skip_edge=True))
    assert result.gt_to_prop == pytest.approx(2 / 3)
    assert result.prop_to_gt == pytest.approx(293 / 315)
    assert result.apls == pytest.approx(harmonic(2 / 3, 293 / 315))
    assert (result.gt_pairs, result.prop_pairs) == (28, 21)


def test_gap_cut_in_a_road():
    # Ground truth: x = 0..200 on y = 100, control points every 20 px (11 points, 55 pairs).
    # Proposal: the same road cut between x = 85 and x = 112. The point at x = 100 is 15 and
    # 12 px from the two pieces: absent. Left piece holds 0..80 (5 points), right 120..200 (5):
    # the 10 + 10 pairs within a piece are exact; the 25 across the gap have no path and the
    # 10 with x = 100 are absent: C = 1 - 35/55 = 4/11.
    # Proposal -> ground truth: every proposal point lies on the ground truth, pairs only
    # within a piece, all exact: C = 1.
    gt = straight((0, 100), (200, 100))
    prop = nx.Graph()
    add_road(prop, 0, 1, [(0, 100), (85, 100)])
    add_road(prop, 2, 3, [(112, 100), (200, 100)])
    result = apls(gt, prop)
    assert result.gt_to_prop == pytest.approx(4 / 11)
    assert result.prop_to_gt == pytest.approx(1.0)
    assert result.apls == pytest.approx(8 / 15)


def test_directions_swap_with_the_graphs():
    gt = block()
    prop = block(skip_edge=True)
    forward, backward = apls(gt, prop), apls(prop, gt)
    assert forward.gt_to_prop == pytest.approx(backward.prop_to_gt)
    assert forward.prop_to_gt == pytest.approx(backward.gt_to_prop)
    assert forward.apls == pytest.approx(backward.apls)


def test_shift_within_snap_keeps_every_path():
    # A parallel copy 5 px away: every point projects orthogonally onto the other road at
    # the same arc length (the ends onto its end nodes), so every path length is kept.
    result = apls(straight((0, 100), (200, 100)), straight((0, 105), (200, 105)))
    assert result.gt_to_prop == pytest.approx(1.0)
    assert result.prop_to_gt == pytest.approx(1.0)
    assert result.apls == pytest.approx(1.0)


def test_shift_beyond_snap_loses_every_path():
    result = apls(straight((0, 100), (200, 100)), straight((0, 115), (200, 115)))
    assert (result.gt_to_prop, result.prop_to_gt, result.apls) == (0.0, 0.0, 0.0)


def test_spurious_spur():
    # Proposal = ground truth x = 0..200 plus a 40 px spur up from x = 100.
    # gt -> prop: all 11 ground-truth points land on the proposal at the same place: C = 1.
    # prop -> gt: 13 control points (4 nodes, 4 + 4 on the halves, 1 spur midpoint), 78 pairs;
    # the spur's end and midpoint are 40 and 20 px from the ground truth, absent: the
    # 78 - C(11, 2) = 23 pairs that use them cost 1. C = 55/78.
    gt = straight((0, 100), (200, 100))
    prop = nx.Graph()
    add_road(prop, 0, 1, [(0, 100), (100, 100)])
    add_road(prop, 1, 2, [(100, 100), (200, 100)])
    add_road(prop, 1, 3, [(100, 100), (100, 60)])
    result = apls(gt, prop)
    assert result.gt_to_prop == pytest.approx(1.0)
    assert result.prop_to_gt == pytest.approx(55 / 78)
    assert result.apls == pytest.approx(110 / 133)


def test_points_on_one_spot_keep_the_last_inserted():
    # delta 4: ground-truth control points every 4 px on x = 0..100 (26 points, 325 pairs),
    # inserted nodes first (0, 100), then 4, 8, ..., 96. The proposal stops at x = 90: 100,
    # 92 and 96 all project onto its end node, each renaming it; 96 is inserted last and keeps
    # it, 92 and 100 become absent (25 + 24 = 49 pairs cost 1). Pairs (x, 96) for x = 0..88
    # measure 96 - x in the ground truth and 90 - x in the proposal: cost 6 / (96 - x),
    # summing to 6/4 * (1/2 + ... + 1/24). All other pairs are exact.
    gt = straight((0, 0), (100, 0))
    prop = straight((0, 0), (90, 0))
    harmonic_sum = sum(1 / k for k in range(2, 25))
    expected = 1 - (49 + 1.5 * harmonic_sum) / 325
    result = apls(gt, prop, delta=4)
    assert result.gt_to_prop == pytest.approx(expected)
    assert result.prop_to_gt == pytest.approx(1.0)


def test_empty_prediction_scores_zero():
    result = apls(block(), nx.Graph())
    assert result.gt_to_prop == 0.0
    assert result.prop_to_gt == 1.0  # an empty proposal has no path to keep
    assert result.apls == 0.0


def test_tile_without_roads():
    assert apls(nx.Graph(), nx.Graph()).apls == 1.0
    assert apls(nx.Graph(), block()).apls == 0.0
    # Roads shorter than min_path are below what the metric sees: they count as none.
    stub = straight((0, 0), (2, 0))
    assert apls(stub, nx.Graph()).apls == 1.0


def test_metres_per_pixel_reads_parameters_in_metres():
    # 0.5 m/px: delta 10 m, snap 5 m, min path 1.5 m are the pixel defaults; the gap case gives
    # 8/15 again.
    gt = straight((0, 100), (200, 100))
    prop = nx.Graph()
    add_road(prop, 0, 1, [(0, 100), (85, 100)])
    add_road(prop, 2, 3, [(112, 100), (200, 100)])
    result = apls(gt, prop, delta=10, snap=5, min_path=1.5, metres_per_pixel=0.5)
    assert result.apls == pytest.approx(8 / 15)
    with pytest.raises(ValueError):
        apls(gt, prop, metres_per_pixel=0)


def write_roads(path, lines) -> None:
    features = [{"type": "Feature", "properties": {},
                 "geometry": {"type": "LineString", "coordinates": line}} for line in lines]
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))


def run_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.apls", *args],
                          capture_output=True, text=True, timeout=60)


def test_cli_prints_one_json_object(tmp_path):
    write_roads(tmp_path / "gt.geojson", [[[0, 100], [200, 100]]])
    write_roads(tmp_path / "pred.geojson", [[[0, 100], [85, 100]], [[112, 100], [200, 100]]])
    done = run_command("--gt", str(tmp_path / "gt.geojson"),
                       "--pred", str(tmp_path / "pred.geojson"))
    assert done.returncode == 0, done.stderr
    scores = json.loads(done.stdout.splitlines()[-1])
    assert {"apls", "gt_to_prop", "prop_to_gt", "topo_f1", "mode"} <= set(scores)
    assert scores["mode"] == "ours" and (scores["delta"], scores["snap"]) == (20, 10)
    assert scores["apls"] == pytest.approx(8 / 15)


def test_cli_reports_a_bad_file_in_one_line(tmp_path):
    (tmp_path / "bad.geojson").write_text("{not json")
    write_roads(tmp_path / "pred.geojson", [[[0, 100], [85, 100]]])
    done = run_command("--gt", str(tmp_path / "bad.geojson"),
                       "--pred", str(tmp_path / "pred.geojson"))
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "bad.geojson" in done.stderr


def test_pixel_size_is_read_per_axis():
    # A road moved 8 px down: 2.4 m with 0.3 m rows (within snap 3 m, every path kept), 4 m with
    # 0.5 m rows (beyond snap, nothing kept), whatever the columns measure.
    gt, prop = straight((0, 100), (200, 100)), straight((0, 108), (200, 108))
    kept = apls(gt, prop, delta=20, snap=3, min_path=1, pixel_size_m=(0.5, 0.3))
    lost = apls(gt, prop, delta=20, snap=3, min_path=1, pixel_size_m=(0.3, 0.5))
    assert kept.apls == pytest.approx(1.0)
    assert lost.apls == 0.0
    # Square pixels read as metres_per_pixel does.
    same = apls(gt, prop, delta=10, snap=5, min_path=1.5, pixel_size_m=(0.5, 0.5))
    one_size = apls(gt, prop, delta=10, snap=5, min_path=1.5, metres_per_pixel=0.5)
    assert same == one_size
    with pytest.raises(ValueError, match="pixel_size_m"):
        apls(gt, prop, pixel_size_m=(0.3, 0))


def test_curved_only_control_points():
    # With curved_eps 0.03 a straight 100 px road keeps only its ends (1 pair); a bent one,
    # 116.6 px long on a 104.4 px bounding-box diagonal (10 % longer), gets ceil(116.6 / 20) - 1
    # = 5 inner points: 7 points, 21 pairs.
    road = straight((0, 0), (100, 0))
    assert apls(road, road, curved_eps=0.03).gt_pairs == 1
    bent = nx.Graph()
    add_road(bent, 0, 1, [(0, 0), (50, 30), (100, 0)])
    assert apls(bent, bent, curved_eps=0.03).gt_pairs == 21


def test_presets_name_their_distances():
    from evaluation.graph_metrics.tile import AplsSettings
    assert AplsSettings().resolved() == {"delta": 20.0, "snap": 10.0, "min_path": 3.0,
                                         "curved_eps": -1.0, "units": "pixels"}
    assert AplsSettings(mode="spacenet").resolved() == {
        "delta": 50.0, "snap": 4.0, "min_path": 0.001, "curved_eps": -1.0, "units": "metres"}
    authors = AplsSettings(mode="authors", snap=8).resolved()
    assert (authors["curved_eps"], authors["snap"], authors["delta"]) == (0.03, 8.0, 20.0)
    assert AplsSettings(metres_per_pixel=0.5).resolved()["units"] == "metres"
    for kwargs, name in (({"mode": "osm"}, "mode"), ({"delta": 0}, "delta"),
                         ({"snap": -1}, "snap"), ({"mode": "spacenet", "units": "pixels"},
                                                  "units")):
        with pytest.raises(ValueError, match=f"^{name}"):
            AplsSettings(**kwargs)


def test_score_tile_ours_is_todays_apls():
    from evaluation.graph_metrics.tile import AplsSettings, score_tile
    from roads.graph import lines_to_graph
    truth = [np.array([[100, 100], [140, 100], [140, 140]], float),
             np.array([[140, 140], [100, 140], [100, 100]], float)]
    proposal = [np.array([[101, 102], [139, 101], [141, 139]], float)]
    scores = score_tile(truth, proposal, AplsSettings(), None)
    expected = apls(lines_to_graph(truth), lines_to_graph(proposal))
    assert (scores["apls"], scores["apls_gt_to_prop"], scores["apls_prop_to_gt"]) == \
        (expected.apls, expected.gt_to_prop, expected.prop_to_gt)
    assert "topo_f1" not in scores
    authors = score_tile(truth, proposal, AplsSettings(mode="authors"))
    assert authors["apls"] == apls(lines_to_graph(truth), lines_to_graph(proposal),
                                   curved_eps=0.03).apls
    assert 0 <= authors["topo_f1"] <= 1
    metric = score_tile(truth, proposal, AplsSettings(units="metres"), None,
                        pixel_size_m=(0.3, 0.25))
    assert metric["apls"] == apls(lines_to_graph(truth), lines_to_graph(proposal),
                                  pixel_size_m=(0.3, 0.25)).apls
    with pytest.raises(ValueError, match="^units"):
        score_tile(truth, proposal, AplsSettings(units="metres"))
