"""GeoTIFF tags, SpaceNet GeoJSON reading and road-mask rendering (roads/geo.py)."""
import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import tifffile

from roads.geo import (GeoTransform, RoadLine, read_geotransform, read_road_lines,
                             render_road_mask, render_tile_mask, road_width_m, write_geotiff,
                             write_road_lines)
from utils.errors import DataError

SAMPLES = Path("/work/shared/spacenet3-geojson-sample")
VEGAS = GeoTransform(lon0=-115.2092376, lat0=36.1809477, dx=2.7e-6, dy=2.7e-6)


def test_pixel_lonlat_round_trip():
    lonlat = np.array([[VEGAS.lon0 + 100 * 2.7e-6, VEGAS.lat0 - 200 * 2.7e-6]])
    np.testing.assert_allclose(VEGAS.to_pixel(lonlat), [[100.0, 200.0]], atol=1e-6)
    xy = np.array([[0.0, 0.0], [1300.0, 1300.0], [10.5, 20.25]])
    np.testing.assert_allclose(VEGAS.to_pixel(VEGAS.to_lonlat(xy)), xy, atol=1e-6)
    np.testing.assert_allclose(VEGAS.to_lonlat([[0.0, 0.0]]), [[VEGAS.lon0, VEGAS.lat0]])


def test_metres_per_pixel_is_the_north_south_size():
    # 2.7e-6 degrees of a 6371.0088 km great circle.
    assert VEGAS.metres_per_pixel() == pytest.approx(0.300227, abs=1e-6)


def test_geotiff_tags_and_pixels_round_trip(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    path = tmp_path / "tile.tif"
    write_geotiff(path, image, VEGAS)
    assert read_geotransform(path) == VEGAS
    np.testing.assert_array_equal(tifffile.imread(path), image)
    np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1], image)
    with tifffile.TiffFile(path) as tif:
        assert tif.pages.first.compression == tifffile.COMPRESSION.ADOBE_DEFLATE
        assert tif.geotiff_metadata["GeographicTypeGeoKey"] == 4326


def test_tiepoint_off_the_corner_is_moved_to_the_corner(tmp_path):
    path = tmp_path / "tile.tif"
    tifffile.imwrite(path, np.zeros((8, 8, 3), np.uint16), photometric="rgb", extratags=[
        (33550, "d", 3, (0.5, 0.25, 0.0), True),
        (33922, "d", 6, (10.0, 20.0, 0.0, 100.0, 50.0, 0.0), True)])
    assert read_geotransform(path) == GeoTransform(lon0=95.0, lat0=55.0, dx=0.5, dy=0.25)


def test_no_georeference_gives_none(tmp_path):
    plain = tmp_path / "plain.tif"
    tifffile.imwrite(plain, np.zeros((8, 8, 3), np.uint8), photometric="rgb")
    png = tmp_path / "image.png"
    cv2.imwrite(str(png), np.zeros((8, 8, 3), np.uint8))
    assert read_geotransform(plain) is None
    assert read_geotransform(png) is None


def test_unreadable_tiff_raises_data_error_naming_it(tmp_path):
    path = tmp_path / "broken.tif"
    path.write_bytes(b"II*\x00garbage")
    with pytest.raises(DataError, match="broken.tif"):
        read_geotransform(path)


# (file, road lines, of which from MultiLineStrings): counted from the files.
SAMPLE_COUNTS = [("AOI_2_Vegas_img99", 6), ("AOI_2_Vegas_img990", 27), ("AOI_2_Vegas_img991", 15),
                 ("AOI_2_Vegas_img995", 26), ("AOI_2_Vegas_img997", 26),
                 ("AOI_2_Vegas_img998", 34), ("AOI_2_Vegas_img999", 32)]


@pytest.mark.parametrize("stem, count", SAMPLE_COUNTS)
def test_real_spacenet_labels_parse(stem, count):
    lines = read_road_lines(SAMPLES / f"{stem}.geojson")
    assert len(lines) == count
    coords = np.concatenate([line.coords for line in lines])
    assert coords.shape[1] == 2
    assert (-115.30 < coords[:, 0]).all() and (coords[:, 0] < -115.20).all()
    assert (36.16 < coords[:, 1]).all() and (coords[:, 1] < 36.22).all()
    assert all(isinstance(line.properties["road_type"], str) for line in lines)
    if stem != "AOI_2_Vegas_img99":  # roads run border to border: the extent is the 1300 px tile
        extent = (coords.max(axis=0) - coords.min(axis=0)) / 2.7e-6
        np.testing.assert_allclose(extent, [1300.0, 1300.0], atol=0.01)


def test_real_labels_render_inside_their_tile():
    lines = read_road_lines(SAMPLES / "AOI_2_Vegas_img990.geojson")
    coords = np.concatenate([line.coords for line in lines])
    transform = GeoTransform(coords[:, 0].min(), coords[:, 1].max(), 2.7e-6, 2.7e-6)
    mask = render_tile_mask(lines, transform, (1300, 1300))
    assert set(np.unique(mask)) == {0, 255}
    assert 0.1 < (mask > 0).mean() < 0.3


def test_multilinestring_gives_one_line_per_part():
    lines = read_road_lines(SAMPLES / "AOI_2_Vegas_img995.geojson")
    road = [line for line in lines if line.properties["road_id"] == 23291]
    assert [len(line.coords) for line in road] == [2, 3]


def write_json(path: Path, content) -> Path:
    path.write_text(json.dumps(content))
    return path


def feature(geometry, **properties):
    return {"type": "Feature", "properties": properties, "geometry": geometry}


def test_geometries_other_than_lines_are_skipped(tmp_path):
    path = write_json(tmp_path / "roads.geojson", {"type": "FeatureCollection", "features": [
        feature(None),
        feature({"type": "Point", "coordinates": [1.0, 2.0]}),
        feature({"type": "LineString", "coordinates": [[1.0, 2.0, 9.0], [3.0, 4.0, 9.0]]},
                road_type="3"),
        feature({"type": "LineString", "coordinates": [[5.0, 6.0]]}),
        feature({"type": "MultiLineString", "coordinates": [[[0, 0], [1, 1]], [[2, 2], [3, 3]]]}),
    ]})
    lines = read_road_lines(path)
    assert len(lines) == 3
    np.testing.assert_array_equal(lines[0].coords, [[1.0, 2.0], [3.0, 4.0]])
    assert lines[0].properties == {"road_type": "3"}
    np.testing.assert_array_equal(lines[2].coords, [[2.0, 2.0], [3.0, 3.0]])


def test_empty_collection_gives_no_lines(tmp_path):
    path = write_json(tmp_path / "empty.geojson", {"type": "FeatureCollection", "features": []})
    assert read_road_lines(path) == []


@pytest.mark.parametrize("content", [
    "{not json", "[1, 2]", '{"type": "FeatureCollection"}',
    json.dumps({"type": "FeatureCollection", "features": [
        feature({"type": "LineString", "coordinates": [[0, "a"], [1, 1]]})]}),
    json.dumps({"type": "FeatureCollection", "features": [
        feature({"type": "LineString", "coordinates": [0, 1]})]}),
])
def test_invalid_geojson_raises_data_error_naming_the_file(tmp_path, content):
    path = tmp_path / "bad.geojson"
    path.write_text(content)
    with pytest.raises(DataError, match="bad.geojson"):
        read_road_lines(path)


def test_write_then_read_road_lines(tmp_path):
    path = tmp_path / "out.geojson"
    lines = [np.array([[-115.2, 36.1], [-115.19, 36.11]]),
             np.array([[0.5, 1.5], [2.0, 3.0], [4, 5]])]
    properties = [{"road_type": "5"}, {"road_type": "2", "road_id": 7}]
    write_road_lines(path, lines, properties)
    read = read_road_lines(path)
    assert [line.properties for line in read] == properties
    for written, line in zip(lines, read):
        np.testing.assert_array_equal(line.coords, written)


@pytest.mark.parametrize("properties, width", [
    ({"road_type": "5"}, 6.6), ({"road_type": "2"}, 13.0), ({"road_type": 1}, 13.0),
    ({"road_type": "3.0"}, 10.5), ({}, 6.6), ({"road_type": None}, 6.6),
    ({"road_type": "garbled"}, 6.6), ({"road_type": "99"}, 6.6)])
def test_road_width_by_type(properties, width):
    assert road_width_m(properties) == width


def test_road_mask_is_the_set_within_half_width_of_the_polyline():
    p, q, radius = np.array([10.0, 20.0]), np.array([50.0, 20.0]), 5.0
    mask = render_road_mask([np.array([p, q])], [2 * radius], (40, 80))
    assert set(np.unique(mask)) == {0, 255}
    rows, cols = np.mgrid[:40, :80]
    along = np.clip((cols - p[0]) / (q[0] - p[0]), 0, 1)
    distance = np.hypot(cols - (p[0] + along * (q[0] - p[0])), rows - p[1])
    road = mask > 0
    np.testing.assert_array_equal(road, distance <= radius)
    np.testing.assert_array_equal(np.flatnonzero(road[:, 30]), np.arange(15, 26))  # 11 px across
    assert road[20, 5] and not road[20, 4]  # round cap reaches x = 10 - 5
    assert road[16, 7] and not road[16, 6]    # (7, 16) is 5.0 px from the end (10, 20), (6, 16) 5.7


def test_single_point_line_is_a_disk_and_far_lines_draw_nothing():
    disk = render_road_mask([np.array([[4.0, 4.0]]), np.array([[-50.0, 3.0], [-20.0, 3.0]])],
                            [4.0, 10.0], (9, 9)) > 0
    rows, cols = np.mgrid[:9, :9]
    np.testing.assert_array_equal(disk, np.hypot(cols - 4, rows - 4) <= 2)


def test_road_widths_match_the_authors_masks_in_pixels():
    line = [np.array([[0.0, 50.0], [99.0, 50.0]])]
    lines = [RoadLine(VEGAS.to_lonlat(line[0]), {"road_type": t}) for t in ("5", "2")]
    residential = render_tile_mask(lines[:1], VEGAS, (100, 100))
    primary = render_tile_mask(lines[1:], VEGAS, (100, 100))
    assert (residential[:, 50] > 0).sum() == 21   # 6.6 m / 0.3002 m = 22.0 px wide
    assert (primary[:, 50] > 0).sum() == 43       # 13 m / 0.3002 m = 43.3 px wide


def test_tile_mask_projects_and_uses_road_type_widths():
    xy = [np.array([[5.0, 5.0], [60.0, 40.0], [90.0, 10.0]]), np.array([[0.0, 90.0], [99.0, 80.0]])]
    lines = [RoadLine(VEGAS.to_lonlat(xy[0]), {"road_type": "2"}),
             RoadLine(VEGAS.to_lonlat(xy[1]), {"road_type": "7"})]
    metres = VEGAS.metres_per_pixel()
    expected = render_road_mask(xy, [13.0 / metres, 4.5 / metres], (100, 100))
    np.testing.assert_array_equal(render_tile_mask(lines, VEGAS, (100, 100)), expected)
