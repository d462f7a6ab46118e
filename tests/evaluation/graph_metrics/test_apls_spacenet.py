"""The spacenet mode: the SpaceNet 3 reference pipeline, checked against the reference's own
numbers on 7 real tiles (tests/data/apls-sample) and on hand-made graphs."""
import csv
import json
import math
import subprocess
import sys
from pathlib import Path

import networkx as nx
import numpy as np
import pytest

from evaluation.graph_metrics.apls_spacenet import (
    EARTH_RADIUS_M,
    geojson_graph,
    read_lonlat_lines,
    read_submission,
    score,
)
from evaluation.graph_metrics.tile import AplsSettings, score_tile
from evaluation.graph_metrics.topo import TopoSettings
from tests.conftest import REPO

SAMPLE = REPO / "tests" / "data" / "apls-sample"
EXPECTED = json.loads((SAMPLE / "expected.json").read_text())
LON0, LAT0 = -115.2, 36.17


def sample_score(tile: str, settings: dict):
    truth = geojson_graph(read_lonlat_lines(SAMPLE / "truth" / f"{tile}.geojson")[0], 0)
    proposal = geojson_graph(read_lonlat_lines(SAMPLE / "proposal" / f"{tile}.geojson")[0], 500)
    return score(truth, proposal, delta=settings["linestring_delta_m"],
                 snap=settings["max_snap_dist_m"], min_path=settings["min_path_length_m"],
                 curved_eps=settings["is_curved_eps"])


@pytest.mark.parametrize("settings, key", [("settings_current", "apls"),
                                           ("settings_old_readme", "apls_old_readme_settings")])
def test_sample_tiles_match_the_reference(settings, key):
    values = []
    for tile, expected in EXPECTED["tiles"].items():
        result = sample_score(tile, EXPECTED[settings])
        assert result.apls == pytest.approx(expected[key], abs=1e-4), tile
        if key == "apls":
            assert result.gt_to_prop == pytest.approx(expected["gt_to_prop"], abs=1e-4), tile
            assert result.prop_to_gt == pytest.approx(expected["prop_to_gt"], abs=1e-4), tile
        values.append(result.apls)
    mean_key = "mean_apls" if key == "apls" else "mean_apls_old_readme_settings"
    assert np.mean(values) == pytest.approx(EXPECTED[mean_key], abs=1e-4)


def run_command(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.apls", *args],
                          capture_output=True, text=True, timeout=60)


def test_cli_spacenet_mode_prints_the_reference_score():
    tile = "AOI_2_Vegas_img990"
    done = run_command("--mode", "spacenet", "--gt", str(SAMPLE / "truth" / f"{tile}.geojson"),
                       "--pred", str(SAMPLE / "proposal" / f"{tile}.geojson"))
    assert done.returncode == 0, done.stderr
    scores = json.loads(done.stdout.splitlines()[-1])
    assert scores["apls"] == pytest.approx(EXPECTED["tiles"][tile]["apls"], abs=1e-4)
    assert (scores["mode"], scores["delta"], scores["snap"], scores["min_path"]) == \
        ("spacenet", 50, 4, 0.001)
    assert 0 <= scores["topo_f1"] <= 1


# Hand-made graphs near Las Vegas: along a meridian, haversine metres are R * d(latitude).
def north(metres: float) -> float:
    return math.degrees(metres / EARTH_RADIUS_M)


def meridian(lon: float, *metres: float) -> np.ndarray:
    return np.array([[lon, LAT0 + north(m)] for m in metres])


def edges(graph) -> list:
    return [(u, v, round(length, 3)) for u, v, length in graph.edges(data="length")]


def test_degree_two_vertices_merge_and_lengths_are_great_circle():
    # Three vertices 50 m apart: the middle one has two neighbours and is merged away.
    graph = geojson_graph([meridian(LON0, 0, 50, 100)], 0)
    assert graph.number_of_nodes() == 2
    [(_, _, data)] = graph.edges(data=True)
    assert data["length"] == pytest.approx(100.0, abs=2e-3)
    assert len(data["geometry"]) == 3


def test_a_duplicated_road_loses_every_copy():
    # The second road appears in two features: both copies go, then its bare nodes (a component
    # spanning 0 m). The first road, listed first, stays.
    kept = meridian(LON0, 0, 100)
    twice = meridian(LON0 + 0.01, 0, 40, 80)
    graph = geojson_graph([kept, twice, twice.copy()], 0)
    assert graph.number_of_edges() == 1
    assert graph.number_of_nodes() == 2
    assert edges(graph)[0][2] == pytest.approx(100.0, abs=2e-3)


def test_a_loop_is_deleted_with_its_road_kept():
    # P-Q, then a ring Q-R1-R2-Q: simplifying the two-way ring gives it once per direction, and
    # the two copies delete each other; R1 and R2 were merged away.
    road = meridian(LON0, 0, 100)
    ring = np.array([road[1], [LON0 + 0.0004, LAT0 + north(130)],
                     [LON0 - 0.0004, LAT0 + north(130)], road[1]])
    graph = geojson_graph([road, ring], 0)
    assert graph.number_of_nodes() == 2
    assert graph.number_of_edges() == 1
    assert nx.number_of_selfloops(graph) == 0


def test_small_components_are_removed():
    # Lone roads of 3 m and 6 m: the component spanning under 5 m goes, the other stays.
    graph = geojson_graph([meridian(LON0, 0, 3), meridian(LON0 + 0.01, 0, 6)], 0)
    assert [length for _, _, length in edges(graph)] == [pytest.approx(6.0, abs=2e-3)]


def test_skipped_tiles_score_nan():
    lines = [np.array([[10.0, 10.0], [200.0, 10.0]])]
    settings = AplsSettings(mode="spacenet")
    empty_proposal = score_tile(lines, [], settings, TopoSettings(), None, (0.3, 0.3))
    empty_truth = score_tile([], lines, settings, None, None, (0.3, 0.3))
    assert all(math.isnan(v) for v in empty_proposal.values())
    assert math.isnan(empty_truth["apls"])
    with pytest.raises(ValueError, match="to_lonlat"):
        score_tile(lines, lines, settings)


def write_geotiff(path: Path, lon0: float, lat0: float, size: float) -> None:
    import rasterio
    from affine import Affine
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=1, dtype="uint8",
                       crs="EPSG:4326", transform=Affine(size, 0, lon0, 0, -size, lat0)) as out:
        out.write(np.zeros((1, 64, 64), dtype=np.uint8))


GRID = [np.array([[100.0, 100.0], [600.0, 100.0], [600.0, 500.0]]),
        np.array([[350.0, 100.0], [350.0, 700.0]])]


def wkt(line: np.ndarray) -> str:
    return "LINESTRING (" + ", ".join(f"{x} {y}" for x, y in line.tolist()) + ")"


def write_submission(path: Path, rows: list[tuple[str, str]]) -> None:
    with open(path, "w", newline="") as file:
        writer = csv.writer(file)
        writer.writerow(["ImageId", "WKT_Pix"])
        writer.writerows(rows)


def test_submission_against_geojson_truth(tmp_path):
    # The same roads as truth (lon/lat GeoJSON) and as a submission (pixel WKT): APLS is 1 up to
    # the difference between great-circle and UTM lengths (< 0.1 %), TOPO is 1.
    size = 2.7e-6
    write_geotiff(tmp_path / "RGB-PanSharpen_AOI_2_Vegas_img7.tif", LON0, LAT0, size)
    truth = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {},
         "geometry": {"type": "LineString",
                      "coordinates": [[LON0 + x * size, LAT0 - y * size] for x, y in line]}}
        for line in GRID] + [{"type": "Feature", "properties": {},
                              "geometry": {"type": "Point", "coordinates": [LON0, LAT0]}}]}
    (tmp_path / "AOI_2_Vegas_img7.geojson").write_text(json.dumps(truth))
    write_submission(tmp_path / "submission.csv", [("AOI_2_Vegas_img8", "LINESTRING (0 0, 5 5)")]
                     + [("AOI_2_Vegas_img7", wkt(line)) for line in GRID])
    done = run_command("--mode", "spacenet", "--gt", str(tmp_path / "AOI_2_Vegas_img7.geojson"),
                       "--pred", str(tmp_path / "submission.csv"), "--image", str(tmp_path))
    assert done.returncode == 0, done.stderr
    assert "skipped 1 feature" in done.stderr
    scores = json.loads(done.stdout.splitlines()[-1])
    assert scores["apls"] == pytest.approx(1.0, abs=2e-3)
    assert scores["topo_f1"] == pytest.approx(1.0)

    def to_lonlat(xy):
        return np.column_stack([LON0 + xy[:, 0] * size, LAT0 - xy[:, 1] * size])
    tile = score_tile(GRID, GRID, AplsSettings(mode="spacenet"), to_lonlat=to_lonlat)
    assert tile["apls"] == pytest.approx(scores["apls"], abs=1e-9)


def test_submission_errors_are_one_line(tmp_path):
    gt = SAMPLE / "truth" / "AOI_2_Vegas_img99.geojson"
    tile = "AOI_2_Vegas_img99"
    (tmp_path / "no_header.csv").write_text(f'{tile},"LINESTRING (0 0, 1 1)"\n')
    write_submission(tmp_path / "bad.csv", [(tile, "LINESTRING (0 0, 1 1)"),
                                            (tile, "LINESTRING (0 0, x 1)")])
    write_submission(tmp_path / "nan.csv", [(tile, "LINESTRING (0 0, nan 1)")])
    with pytest.raises(Exception, match="header"):
        read_submission(tmp_path / "no_header.csv", "AOI_2_Vegas_img99")
    with pytest.raises(Exception, match="line 3"):
        read_submission(tmp_path / "bad.csv", "AOI_2_Vegas_img99")
    with pytest.raises(Exception, match="line 2.*NaN"):
        read_submission(tmp_path / "nan.csv", "AOI_2_Vegas_img99")
    cases = [(["--pred", str(tmp_path / "bad.csv"), "--image", str(tmp_path)], "ImageId"),
             (["--pred", str(tmp_path / "bad.csv")], "--image")]
    for args, message in cases:
        done = run_command("--mode", "spacenet", "--gt", str(gt), *args)
        assert done.returncode == 2
        assert done.stderr.strip().count("\n") == 0 and message in done.stderr
    nan_roads = {"type": "FeatureCollection", "features": [
        {"type": "Feature", "properties": {},
         "geometry": {"type": "LineString", "coordinates": [[0, 0], [float("nan"), 1]]}}]}
    (tmp_path / "nan.geojson").write_text(json.dumps(nan_roads))
    done = run_command("--mode", "spacenet", "--gt", str(gt),
                       "--pred", str(tmp_path / "nan.geojson"))
    assert done.returncode == 2 and done.stderr.strip().count("\n") == 0
    assert "NaN or infinite" in done.stderr
