"""Georeference (roads/georeference.py), SpaceNet GeoJSON reading and road-mask rendering
(roads/geo.py), on rasters the tests write with rasterio."""
import json
import math
import warnings
from pathlib import Path

import cv2
import numpy as np
import pyproj
import pytest
import rasterio
from affine import Affine
from rasterio.enums import Resampling
from rasterio.warp import calculate_default_transform, reproject

from roads.geo import (
    RoadLine,
    project_lines,
    read_road_lines,
    render_road_mask,
    render_tile_mask,
    road_width_m,
    write_road_lines,
)
from roads.georeference import Georeference, read_georeference, write_geotiff
from utils.errors import DataError

SAMPLES = Path("/work/shared/spacenet3-geojson-sample")
VEGAS = Georeference.north_up_lonlat(lon0=-115.2092376, lat0=36.1809477, dx=2.7e-6, dy=2.7e-6,
                                     shape=(100, 100))
WGS84_A, WGS84_F = 6_378_137.0, 1 / 298.257223563


def wgs84_pixel_size(lat: float, dlon: float, dlat: float) -> tuple[float, float]:
    """Ground size of a dlon x dlat degree pixel at `lat` from the ellipsoid's radii of curvature:
    east-west N cos(lat) dlon, north-south M dlat (a textbook formula, not pyproj)."""
    e2 = WGS84_F * (2 - WGS84_F)
    s2 = math.sin(math.radians(lat)) ** 2
    meridian = WGS84_A * (1 - e2) / (1 - e2 * s2) ** 1.5
    normal = WGS84_A / math.sqrt(1 - e2 * s2)
    return (normal * math.cos(math.radians(lat)) * math.radians(dlon),
            meridian * math.radians(dlat))


def write_raster(path: Path, array: np.ndarray, crs, transform: Affine, **options) -> Path:
    """A (bands, H, W) array as a GeoTIFF written by rasterio."""
    with rasterio.open(path, "w", driver="GTiff", height=array.shape[1], width=array.shape[2],
                       count=array.shape[0], dtype=array.dtype, crs=crs, transform=transform,
                       **options) as dataset:
        dataset.write(array)
    return path


def test_pixel_lonlat_round_trip():
    lonlat = np.array([[-115.2092376 + 100 * 2.7e-6, 36.1809477 - 200 * 2.7e-6]])
    np.testing.assert_allclose(VEGAS.to_pixel(lonlat), [[100.0, 200.0]], atol=1e-6)
    xy = np.array([[0.0, 0.0], [1300.0, 1300.0], [10.5, 20.25]])
    np.testing.assert_allclose(VEGAS.to_pixel(VEGAS.to_lonlat(xy)), xy, atol=1e-6)
    np.testing.assert_allclose(VEGAS.to_lonlat([[0.0, 0.0]]), [[-115.2092376, 36.1809477]])


def test_pixel_size_is_per_axis_on_the_ellipsoid():
    # SpaceNet Las Vegas: 2.7e-6 deg pixels are 0.243 m east-west and 0.300 m north-south.
    sx, sy = VEGAS.pixel_size_m()
    centre_lat = 36.1809477 - 50 * 2.7e-6
    expected = wgs84_pixel_size(centre_lat, 2.7e-6, 2.7e-6)
    assert sx == pytest.approx(expected[0], rel=1e-6) and sy == pytest.approx(expected[1], rel=1e-6)
    assert sx == pytest.approx(0.2429, abs=1e-4) and sy == pytest.approx(0.2996, abs=1e-4)


def test_utm_pixel_size_is_the_transform_within_its_scale_error():
    utm = Georeference(pyproj.CRS.from_epsg(32611), Affine(0.3, 0, 652_000, 0, -0.3, 4_000_000),
                       (1300, 1300))
    sx, sy = utm.pixel_size_m()
    assert sx == pytest.approx(0.3, rel=1e-3) and sy == pytest.approx(0.3, rel=1e-3)


def test_web_mercator_pixel_size_is_shrunk_by_the_latitude():
    mercator = Georeference(pyproj.CRS.from_epsg(3857),
                            Affine(0.5, 0, -12_836_000, 0, -0.5, 4_330_000), (256, 256))
    lat = mercator.to_lonlat([[128, 128]])[0, 1]
    sx, sy = mercator.pixel_size_m()
    assert sx == pytest.approx(0.5 * math.cos(math.radians(lat)), rel=5e-3)
    assert sy == pytest.approx(0.5 * math.cos(math.radians(lat)), rel=5e-3)


def test_rotated_transform_round_trips_and_skew_is_refused():
    rotated = Georeference(pyproj.CRS.from_epsg(32611),
                           Affine.translation(652_000, 4_000_000) @ Affine.rotation(30)
                           @ Affine.scale(0.3, -0.3), (100, 100))
    xy = np.array([[0.0, 0.0], [99.5, 3.25], [40.0, 80.0]])
    np.testing.assert_allclose(rotated.to_pixel(rotated.to_lonlat(xy)), xy, atol=1e-6)
    assert rotated.pixel_size_m() == pytest.approx((0.3, 0.3), rel=1e-3)
    with pytest.raises(ValueError, match="transform: skewed"):
        Georeference(pyproj.CRS.from_epsg(32611),
                     Affine(0.3, 0.05, 652_000, 0, -0.3, 4_000_000), (10, 10))


def test_geotiff_georeference_and_pixels_round_trip(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    georeference = Georeference.north_up_lonlat(-115.2092376, 36.1809477, 2.7e-6, 2.7e-6,
                                                (40, 50))
    path = tmp_path / "tile.tif"
    write_geotiff(path, image, georeference)
    read = read_georeference(path)
    assert read.crs.to_epsg() == 4326 and read.shape == (40, 50)
    assert read.transform == georeference.transform
    np.testing.assert_array_equal(cv2.imread(str(path), cv2.IMREAD_COLOR)[..., ::-1], image)
    with rasterio.open(path) as dataset:
        np.testing.assert_array_equal(dataset.read().transpose(1, 2, 0), image)
        assert dataset.compression.name == "deflate"


def test_geotiff_validity_is_its_internal_mask(tmp_path):
    image = np.full((16, 16, 3), 90, np.uint8)
    valid = np.ones((16, 16), bool)
    valid[:4] = False
    write_geotiff(tmp_path / "tile.tif", image,
                  Georeference.north_up_lonlat(0, 0, 1e-5, 1e-5, (16, 16)), valid=valid)
    with rasterio.open(tmp_path / "tile.tif") as dataset:
        np.testing.assert_array_equal(dataset.dataset_mask() > 0, valid)


def test_tiepoint_off_the_corner_is_moved_to_the_corner(tmp_path):
    # GDAL reads ModelTiepoint (10, 20) -> (100, 50) with scale (0.5, 0.25) as corner (95, 55).
    path = write_raster(tmp_path / "tile.tif", np.zeros((3, 8, 8), np.uint16), "EPSG:4326",
                        Affine(0.5, 0, 95.0, 0, -0.25, 55.0))
    read = read_georeference(path)
    np.testing.assert_allclose(read.to_lonlat([[10.0, 20.0]]), [[100.0, 50.0]])


def test_no_georeference_gives_none(tmp_path):
    plain = tmp_path / "plain.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(plain, "w", driver="GTiff", height=8, width=8, count=3,
                           dtype="uint8") as dataset:
            dataset.write(np.zeros((3, 8, 8), np.uint8))
    png = tmp_path / "image.png"
    cv2.imwrite(str(png), np.zeros((8, 8, 3), np.uint8))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_georeference(plain) is None
        assert read_georeference(png) is None


def test_unreadable_tiff_raises_data_error_naming_it(tmp_path):
    path = tmp_path / "broken.tif"
    path.write_bytes(b"II*\x00garbage")
    with pytest.raises(DataError, match="broken.tif"):
        read_georeference(path)


def test_utm_copy_of_a_tile_gives_the_same_lonlat_within_a_metre(tmp_path):
    """A lon/lat tile warped to UTM 11N by GDAL: a bright block lands on the same ground."""
    source = Georeference.north_up_lonlat(-115.2092376, 36.1809477, 2.7e-6, 2.7e-6, (256, 256))
    image = np.zeros((3, 256, 256), np.uint8)
    image[:, 60:64, 100:104] = 255  # centre at pixel (102, 62)
    left, top = -115.2092376, 36.1809477
    transform, width, height = calculate_default_transform(
        "EPSG:4326", "EPSG:32611", 256, 256, left=left, bottom=top - 256 * 2.7e-6,
        right=left + 256 * 2.7e-6, top=top, resolution=0.3)
    warped = np.zeros((3, height, width), np.uint8)
    reproject(image, warped, src_transform=source.transform, src_crs="EPSG:4326",
              dst_transform=transform, dst_crs="EPSG:32611", resampling=Resampling.bilinear)
    path = write_raster(tmp_path / "utm.tif", warped, "EPSG:32611", transform, compress="lzw")
    utm = read_georeference(path)
    assert utm.crs.to_epsg() == 32611 and utm.shape == (height, width)
    assert utm.pixel_size_m() == pytest.approx((0.3, 0.3), rel=1e-3)
    rows, cols = np.nonzero(warped[0] > 127)
    block = utm.to_lonlat([[cols.mean() + 0.5, rows.mean() + 0.5]])[0]
    original = source.to_lonlat([[102.0, 62.0]])[0]
    _, _, error_m = pyproj.Geod(ellps="WGS84").inv(*block, *original)
    assert error_m < 1.0
    # And lon/lat -> UTM pixel -> lon/lat is exact.
    lonlat = source.to_lonlat([[0, 0], [256, 256], [128, 64]])
    np.testing.assert_allclose(utm.to_lonlat(utm.to_pixel(lonlat)), lonlat, atol=1e-9)


def test_geojson_road_projected_to_pixels_and_back_lands_within_half_a_pixel(tmp_path):
    utm = Georeference(pyproj.CRS.from_epsg(32611), Affine(0.3, 0, 652_000, 0, -0.3, 4_000_000),
                       (1000, 1000))
    xy = np.array([[10.0, 20.0], [500.25, 480.5], [990.0, 700.0]])
    path = tmp_path / "roads.geojson"
    write_road_lines(path, [utm.to_lonlat(xy)], [{"road_type": "5"}])
    (line,) = read_road_lines(path)
    assert line.crs is None  # RFC 7946 lon/lat
    projected = project_lines([line], utm, label_path=path)[0]
    assert np.abs(projected - xy).max() < 0.5


def test_declared_crs_of_a_geojson_is_used(tmp_path):
    utm = Georeference(pyproj.CRS.from_epsg(32611), Affine(0.3, 0, 652_000, 0, -0.3, 4_000_000),
                       (1000, 1000))
    xy = np.array([[10.0, 20.0], [300.0, 400.0]])
    path = write_json(tmp_path / "utm.geojson", {
        "type": "FeatureCollection",
        "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:EPSG::32611"}},
        "features": [feature({"type": "LineString", "coordinates": utm.to_map(xy).tolist()})]})
    (line,) = read_road_lines(path)
    assert line.crs.to_epsg() == 32611
    np.testing.assert_allclose(project_lines([line], utm)[0], xy, atol=1e-6)
    for name in ("EPSG:4326", "urn:ogc:def:crs:OGC:1.3:CRS84"):
        lonlat = write_json(tmp_path / "lonlat.geojson", {
            "type": "FeatureCollection", "crs": {"type": "name", "properties": {"name": name}},
            "features": [feature({"type": "LineString", "coordinates": [[-115.2, 36.1],
                                                                        [-115.1, 36.2]]})]})
        assert read_road_lines(lonlat)[0].crs is None


@pytest.mark.parametrize("crs", [{"type": "name", "properties": {"name": "EPSG:999999"}},
                                 {"type": "link", "properties": {"href": "x"}}])
def test_unknown_geojson_crs_is_named(tmp_path, crs):
    path = write_json(tmp_path / "odd.geojson", {"type": "FeatureCollection", "crs": crs,
                                                 "features": []})
    with pytest.raises(DataError, match=r"odd\.geojson: .*(CRS|crs)"):
        read_road_lines(path)


def test_positions_outside_the_raster_are_counted_in_a_warning(tmp_path):
    lines = [RoadLine(VEGAS.to_lonlat(np.array([[10.0, 10.0], [50.0, 50.0], [300.0, 50.0],
                                                [50.0, -40.0]])), {})]
    with pytest.warns(UserWarning, match=r"labels\.geojson: 2 of 4 road positions lie outside "
                                         r"the 100x100 raster"):
        project_lines(lines, VEGAS, label_path=tmp_path / "labels.geojson")


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
    georeference = Georeference.north_up_lonlat(coords[:, 0].min(), coords[:, 1].max(), 2.7e-6,
                                                2.7e-6, (1300, 1300))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no position lies outside the tile
        mask = render_tile_mask(lines, georeference, label_path=SAMPLES / "img990.geojson")
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
    for written, line in zip(lines, read, strict=False):
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
    across = [np.array([[0.0, 50.0], [99.0, 50.0]]), np.array([[50.0, 0.0], [50.0, 99.0]])]
    lines = {(t, axis): [RoadLine(VEGAS.to_lonlat(across[axis]), {"road_type": t})]
             for t in ("5", "2") for axis in (0, 1)}
    residential = render_tile_mask(lines["5", 0], VEGAS)
    primary = render_tile_mask(lines["2", 0], VEGAS)
    assert (residential[:, 50] > 0).sum() == 23   # 6.6 m / 0.2996 m = 22.0 px: centres within 11.0
    assert (primary[:, 50] > 0).sum() == 43       # 13 m / 0.2996 m = 43.4 px wide
    # East-west pixels are 0.243 m: a north-south road is more pixels wide.
    assert (render_tile_mask(lines["5", 1], VEGAS)[50] > 0).sum() == 27   # 6.6 / 0.2429 = 27.2
    assert (render_tile_mask(lines["2", 1], VEGAS)[50] > 0).sum() == 53   # 13 / 0.2429 = 53.5


def test_tile_mask_projects_and_uses_road_type_widths_per_axis():
    xy = [np.array([[5.0, 5.0], [60.0, 40.0], [90.0, 10.0]]), np.array([[0.0, 90.0], [99.0, 80.0]])]
    lines = [RoadLine(VEGAS.to_lonlat(xy[0]), {"road_type": "2"}),
             RoadLine(VEGAS.to_lonlat(xy[1]), {"road_type": "7"})]
    sx, sy = VEGAS.pixel_size_m()
    expected = render_road_mask(xy, [13.0, 4.5], (100, 100), pixel_size=(sx, sy))
    mask = render_tile_mask(lines, VEGAS)
    assert np.count_nonzero(mask != expected) <= 2  # pixel vs metre units: rounding at the edges
    rows, cols = np.mgrid[:100, :100]
    # The primary road's segment from (60, 40) to (90, 10) in ground metres.
    p, q = np.array([60.0 * sx, 40.0 * sy]), np.array([90.0 * sx, 10.0 * sy])
    ground = np.stack([cols * sx, rows * sy], axis=-1)
    along = np.clip(((ground - p) @ (q - p)) / ((q - p) @ (q - p)), 0, 1)
    distance = np.linalg.norm(ground - (p + along[..., None] * (q - p)), axis=-1)
    inner = (distance < 6.4) & (cols > 62) & (cols < 88)
    outer = (distance > 6.6) & (cols > 62) & (cols < 88) & (rows < 60)
    assert (mask[inner] > 0).all() and (mask[outer & (rows < 60)] == 0).all()


def test_square_pixels_give_the_masks_of_pixel_widths_bit_for_bit():
    """The toy generator's path: widths / pixel size in pixels, as the shipped masks were drawn."""
    rng = np.random.default_rng(3)
    xy = [rng.uniform(0, 100, (5, 2)) for _ in range(6)]
    lines = [RoadLine(VEGAS.to_lonlat(line), {"road_type": str(t)})
             for line, t in zip(xy, (1, 3, 5, 7, 4, 2), strict=True)]
    size = 0.300227
    expected = render_road_mask([VEGAS.to_pixel(line.coords) for line in lines],
                                [road_width_m(line.properties) / size for line in lines],
                                (100, 100))
    np.testing.assert_array_equal(render_tile_mask(lines, VEGAS, (size, size)), expected)
