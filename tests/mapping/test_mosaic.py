"""Mosaics: tiles of one grid read as one scene, checked against the raster they were cut from."""
import pickle
import warnings
from pathlib import Path

import cv2
import numpy as np
import pyproj
import pytest
import rasterio
from affine import Affine

from data_loader import tiles
from data_loader.tiles import RasterOptions, RasterSource
from mapping import scene
from mapping.scene import Mosaic
from roads.georeference import Georeference, write_geotiff
from utils.errors import DataError

LON0, LAT0, STEP = -115.3, 36.2, 2.7e-6
TILE = (64, 80)
OPTIONS = RasterOptions()


def lonlat_grid(shape: tuple[int, int]) -> Georeference:
    return Georeference.north_up_lonlat(LON0, LAT0, STEP, STEP, shape)


def shifted(georeference: Georeference, row: int, col: int, shape) -> Georeference:
    """The georeference of the part of a raster that starts at pixel (row, col)."""
    return Georeference(georeference.crs, georeference.transform @ Affine.translation(col, row),
                        tuple(shape))


def write_raster(path: Path, bands: np.ndarray, georeference: Georeference | None) -> Path:
    """(C, H, W) of any dtype as a GeoTIFF (a plain TIFF without georeference)."""
    profile = {"driver": "GTiff", "count": bands.shape[0], "height": bands.shape[1],
               "width": bands.shape[2], "dtype": bands.dtype.name}
    if georeference is not None:
        profile |= {"crs": rasterio.crs.CRS.from_wkt(georeference.crs.to_wkt()),
                    "transform": georeference.transform}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", **profile) as dataset:
            dataset.write(bands)
    return path


def cut(folder: Path, image: np.ndarray, georeference: Georeference, size=TILE,
        skip=()) -> list[Path]:
    """Write (H, W, C) `image` as tiles `t<row><col>.tif` of `size`, less those in `skip`."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, top in enumerate(range(0, image.shape[0], size[0])):
        for j, left in enumerate(range(0, image.shape[1], size[1])):
            if (i, j) in skip:
                continue
            part = image[top:top + size[0], left:left + size[1]]
            grid = shifted(georeference, top, left, part.shape[:2])
            path = folder / f"t{i}{j:02d}.tif"
            if part.dtype == np.uint8:
                write_geotiff(path, np.ascontiguousarray(part), grid)
            else:
                write_raster(path, np.ascontiguousarray(part.transpose(2, 0, 1)), grid)
            paths.append(path)
    return paths


@pytest.fixture
def whole(tmp_path) -> tuple[Path, np.ndarray]:
    """A 128 x 160 RGB GeoTIFF (two by two tiles of 64 x 80) and its pixels."""
    image = np.random.default_rng(0).integers(0, 256, (128, 160, 3), dtype=np.uint8)
    path = tmp_path / "whole.tif"
    write_geotiff(path, image, lonlat_grid(image.shape[:2]))
    return path, image


WINDOWS = [(0, 0, 128, 160), (40, 60, 50, 50), (63, 79, 2, 2), (0, 70, 20, 20),
           (100, 150, 64, 64), (64, 80, 64, 80)]


def assert_same(read, expected) -> None:
    assert np.array_equal(read.image, expected.image)
    assert np.array_equal(read.valid, expected.valid)
    assert read.georeference.shape == expected.georeference.shape
    assert read.georeference.crs == expected.georeference.crs
    assert np.allclose(read.georeference.transform[:6], expected.georeference.transform[:6],
                       rtol=0, atol=1e-12)


def test_tiles_read_as_the_raster_they_were_cut_from(tmp_path, whole):
    path, image = whole
    cut(tmp_path / "tiles", image, lonlat_grid(image.shape[:2]))
    with Mosaic.open(tmp_path / "tiles", OPTIONS) as mosaic, RasterSource(path) as source:
        assert [p.name for p in mosaic.paths] == ["t000.tif", "t001.tif", "t100.tif", "t101.tif"]
        assert mosaic.shape == (128, 160)
        assert mosaic.georeference.shape == (128, 160)
        assert np.allclose(mosaic.georeference.transform[:6], source.georeference.transform[:6],
                           rtol=0, atol=1e-12)
        for window in WINDOWS:
            assert_same(mosaic.read(*window), source.read(window))
        assert mosaic.read(100, 150, 64, 64).image.shape == (28, 10, 3)
        with pytest.raises(ValueError, match="outside"):
            mosaic.read(128, 0, 4, 4)


def test_single_raster_is_a_mosaic_of_one_tile(whole):
    path, _ = whole
    with Mosaic.open(path, OPTIONS) as mosaic, RasterSource(path) as source:
        assert mosaic.paths == [path] and mosaic.shape == source.shape
        for window in WINDOWS:
            assert_same(mosaic.read(*window), source.read(window))


def test_plain_image_has_no_georeference(tmp_path):
    image = np.random.default_rng(1).integers(0, 256, (30, 40, 3), dtype=np.uint8)
    path = tmp_path / "plain.png"
    assert cv2.imwrite(str(path), image[..., ::-1])
    with Mosaic.open(path, OPTIONS) as mosaic:
        assert mosaic.georeference is None and mosaic.shape == (30, 40)
        window = mosaic.read(5, 6, 10, 12)
        assert window.georeference is None and window.valid.all()
        assert np.array_equal(window.image, image[5:15, 6:18])


def test_missing_tile_is_invalid(tmp_path, whole):
    path, image = whole
    cut(tmp_path / "tiles", image, lonlat_grid(image.shape[:2]), skip={(1, 1)})
    with Mosaic.open(tmp_path / "tiles", OPTIONS) as mosaic:
        assert mosaic.shape == (128, 160)
        read = mosaic.read(0, 0, 128, 160)
    expected_valid = np.ones((128, 160), dtype=bool)
    expected_valid[64:, 80:] = False
    assert np.array_equal(read.valid, expected_valid)
    assert not read.image[64:, 80:].any()
    assert np.array_equal(read.image[expected_valid], image[expected_valid])


def test_gap_at_the_edge_shrinks_nothing_but_the_union(tmp_path, whole):
    """Without its right column of tiles, the mosaic is the left column's extent."""
    _, image = whole
    cut(tmp_path / "tiles", image, lonlat_grid(image.shape[:2]), skip={(0, 1), (1, 1)})
    with Mosaic.open(tmp_path / "tiles", OPTIONS) as mosaic:
        assert mosaic.shape == (128, 80)
        assert np.array_equal(mosaic.read(0, 0, 128, 80).image, image[:, :80])


def vrt_xml(sources: list[tuple[str, int, int]], shape, georeference: Georeference) -> str:
    """A 3-band Byte VRTDataset of SimpleSources (file name, row, col) of 64 x 80 tiles."""
    c, a, b, f, d, e = georeference.transform.to_gdal()
    bands = []
    for band in (1, 2, 3):
        simple = "".join(
            f'<SimpleSource><SourceFilename relativeToVRT="1">{name}</SourceFilename>'
            f"<SourceBand>{band}</SourceBand>"
            f'<SrcRect xOff="0" yOff="0" xSize="{TILE[1]}" ySize="{TILE[0]}"/>'
            f'<DstRect xOff="{col}" yOff="{row}" xSize="{TILE[1]}" ySize="{TILE[0]}"/>'
            "</SimpleSource>" for name, row, col in sources)
        bands.append(f'<VRTRasterBand dataType="Byte" band="{band}">{simple}</VRTRasterBand>')
    return (f'<VRTDataset rasterXSize="{shape[1]}" rasterYSize="{shape[0]}">'
            f"<SRS>{georeference.crs.to_wkt()}</SRS>"
            f"<GeoTransform>{c!r}, {a!r}, {b!r}, {f!r}, {d!r}, {e!r}</GeoTransform>"
            f"{''.join(bands)}</VRTDataset>")


def test_vrt_reads_as_its_tiles(tmp_path, whole):
    path, image = whole
    folder = tmp_path / "tiles"
    cut(folder, image, lonlat_grid(image.shape[:2]), skip={(1, 0), (1, 1)})
    vrt = folder / "top.vrt"
    vrt.write_text(vrt_xml([("t000.tif", 0, 0), ("t001.tif", 0, 80)], (64, 160),
                           lonlat_grid((64, 160))))
    with RasterSource(path) as source:
        with Mosaic.open(vrt, OPTIONS) as mosaic:
            assert mosaic.shape == (64, 160)
            assert_same(mosaic.read(10, 50, 40, 60), source.read((10, 50, 40, 60)))
        # The folder where the VRT was built: the VRT composes the tiles, read once.
        with Mosaic.open(folder, OPTIONS) as mosaic:
            assert mosaic.paths == [vrt]
            assert_same(mosaic.read(0, 0, 64, 160), source.read((0, 0, 64, 160)))


def test_window_georeference_places_its_corner(tmp_path, whole):
    _, image = whole
    cut(tmp_path / "tiles", image, lonlat_grid(image.shape[:2]))
    with Mosaic.open(tmp_path / "tiles", OPTIONS) as mosaic:
        window = mosaic.read(70, 90, 10, 10)
    lon, lat = window.georeference.to_lonlat(np.array([[0.0, 0.0]]))[0]
    assert lon == pytest.approx(LON0 + 90 * STEP, abs=1e-10)
    assert lat == pytest.approx(LAT0 - 70 * STEP, abs=1e-10)
    assert window.georeference.shape == (10, 10)


def test_later_tile_wins_where_it_is_valid(tmp_path):
    grid = lonlat_grid((16, 24))
    first = np.full((16, 16, 3), 10, dtype=np.uint8)
    second = np.full((16, 16, 3), 200, dtype=np.uint8)
    second_valid = np.ones((16, 16), dtype=bool)
    second_valid[:8, :4] = False
    write_geotiff(tmp_path / "a.tif", first, shifted(grid, 0, 0, (16, 16)))
    write_geotiff(tmp_path / "b.tif", second, shifted(grid, 0, 8, (16, 16)), valid=second_valid)
    with Mosaic.open(tmp_path, OPTIONS) as mosaic:
        read = mosaic.read(0, 0, 16, 24)
    assert read.valid.all()
    assert (read.image[:, :8] == 10).all() and (read.image[:, 16:] == 200).all()
    assert (read.image[:8, 8:12] == 10).all() and (read.image[8:, 8:12] == 200).all()
    assert (read.image[:, 12:16] == 200).all()


def rgb(shape=(16, 16)) -> np.ndarray:
    return np.random.default_rng(2).integers(0, 256, (*shape, 3), dtype=np.uint8)


def utm_grid(shape) -> Georeference:
    return Georeference(pyproj.CRS.from_epsg(32611), Affine(0.3, 0, 500000, 0, -0.3, 4000000),
                        shape)


def grid_at(col: float, step: float = STEP) -> Georeference:
    return Georeference.north_up_lonlat(LON0 + col * STEP, LAT0, step, step, (16, 16))


def rotated(shape) -> Georeference:
    return Georeference(pyproj.CRS.from_epsg(4326),
                        Affine(0.0, STEP, LON0, STEP, 0.0, LAT0) @ Affine(1, 0, 0, 0, -1, 0),
                        shape)


BAD_SECOND_TILES = {
    "crs": (lambda p: write_geotiff(p, rgb(), utm_grid((16, 16))),
            ["a.tif is EPSG:4326", "b.tif is EPSG:32611", "gdalwarp"]),
    "pixel size": (lambda p: write_geotiff(p, rgb(), grid_at(16, 2 * STEP)),
                   ["a.tif", "b.tif", "pixel size"]),
    "off grid": (lambda p: write_geotiff(p, rgb(), grid_at(16.5)),
                 ["b.tif", "+0.500", "grid of a.tif"]),
    "rotated": (lambda p: write_geotiff(p, rgb(), rotated((16, 16))), ["b.tif", "rotated"]),
    "band count": (lambda p: write_raster(p, rgb()[None, ..., 0], grid_at(16)),
                   ["a.tif has 3 bands", "b.tif 1"]),
    "dtype": (lambda p: write_raster(p, rgb().transpose(2, 0, 1).astype(np.uint16),
                                     grid_at(16)), ["a.tif is uint8", "b.tif uint16"]),
    "no georeference": (lambda p: write_raster(p, rgb().transpose(2, 0, 1), None),
                        ["b.tif", "without georeference", "cannot be placed"]),
}


@pytest.mark.parametrize("case", BAD_SECOND_TILES)
def test_tiles_off_one_grid_are_refused_in_one_line(tmp_path, case):
    write_bad, expected = BAD_SECOND_TILES[case]
    write_geotiff(tmp_path / "a.tif", rgb(), grid_at(0))
    write_bad(tmp_path / "b.tif")
    with pytest.raises(DataError) as error:
        Mosaic.open(tmp_path, OPTIONS)
    message = str(error.value)
    assert "\n" not in message and str(tmp_path) in message
    for part in expected:
        assert part in message


def test_folder_without_tiles_is_refused(tmp_path):
    with pytest.raises(DataError, match="no raster tiles") as error:
        Mosaic.open(tmp_path, OPTIONS)
    assert str(tmp_path) in str(error.value)
    assert cv2.imwrite(str(tmp_path / "view.png"), rgb())
    with pytest.raises(DataError, match=r"no raster tiles .*view\.png have no place on a map"):
        Mosaic.open(tmp_path, OPTIONS)


def raw_scene() -> np.ndarray:
    """(128, 160, 3) uint16 11-bit-like imagery whose brightness varies across the scene, so that
    each tile alone would get its own stretch."""
    rows, cols = np.mgrid[:128, :160]
    noise = np.random.default_rng(3).integers(0, 60, (128, 160, 3))
    base = np.dstack([300 + 8 * rows + 2 * cols, 500 + 6 * cols, 200 + 4 * rows + 3 * cols])
    return (base + noise).astype(np.uint16)


def test_raw_tiles_share_one_stretch(tmp_path):
    raw = raw_scene()
    grid = lonlat_grid(raw.shape[:2])
    write_raster(tmp_path / "whole.tif", raw.transpose(2, 0, 1), grid)
    cut(tmp_path / "tiles", raw, grid)
    with Mosaic.open(tmp_path / "tiles", OPTIONS) as mosaic, \
            RasterSource(tmp_path / "whole.tif") as source:
        limits = mosaic.stretch_limits()
        assert np.array_equal(limits, source.stretch_limits())
        with RasterSource(tmp_path / "tiles" / "t000.tif") as first:
            assert not np.allclose(first.stretch_limits(), limits, rtol=0.05)
        # Across the border of the two upper tiles: the same steps as in the source.
        for window in [(10, 60, 30, 40), (0, 0, 128, 160)]:
            assert_same(mosaic.read(*window), source.read(window))


def test_large_raw_mosaic_stretches_from_a_sample(tmp_path, monkeypatch):
    raw = raw_scene()
    write_raster(tmp_path / "whole.tif", raw.transpose(2, 0, 1), lonlat_grid(raw.shape[:2]))
    cut(tmp_path / "tiles", raw, lonlat_grid(raw.shape[:2]))
    with RasterSource(tmp_path / "whole.tif") as source:
        exact = source.stretch_limits()
    monkeypatch.setattr(tiles, "STRETCH_SAMPLE_PIXELS", 2000)
    with Mosaic.open(tmp_path / "tiles", OPTIONS) as mosaic:
        sampled = mosaic.stretch_limits()
    assert not np.array_equal(sampled, exact)
    assert np.allclose(sampled, exact, rtol=0.05)


@pytest.fixture
def counted(monkeypatch) -> dict:
    """Counts of tiles open now, the most open at once, and tile reads of `mapping.scene`."""
    counts = {"open": 0, "peak": 0, "reads": 0}

    class CountedSource(RasterSource):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            counts["open"] += 1
            counts["peak"] = max(counts["peak"], counts["open"])

        def close(self):
            super().close()
            counts["open"] -= 1

        def read(self, *args, **kwargs):
            counts["reads"] += 1
            return super().read(*args, **kwargs)

    monkeypatch.setattr(scene, "RasterSource", CountedSource)
    return counts


def test_many_tiles_few_open(tmp_path, counted):
    image = np.random.default_rng(4).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    paths = cut(tmp_path, image, lonlat_grid(image.shape[:2]), size=(16, 16))
    assert len(paths) == 12
    windows = [(r, c, 10, 10) for r in range(0, 48, 8) for c in range(0, 64, 8)]
    with Mosaic.open(tmp_path, OPTIONS, max_open=4) as mosaic:
        for row, col, height, width in windows + windows[::-1] + [(0, 0, 48, 64)]:
            read = mosaic.read(row, col, height, width)
            assert np.array_equal(read.image, image[row:row + height, col:col + width])
            assert read.valid.all()
        assert counted["peak"] <= 4
        # A window reads only the tiles it meets.
        reads = counted["reads"]
        mosaic.read(18, 18, 8, 8)
        assert counted["reads"] == reads + 1
        mosaic.read(12, 12, 8, 8)
        assert counted["reads"] == reads + 5
    assert counted["open"] == 0


def test_mosaic_pickles_without_open_files(tmp_path, whole):
    _, image = whole
    cut(tmp_path / "tiles", image, lonlat_grid(image.shape[:2]))
    with Mosaic.open(tmp_path / "tiles", OPTIONS) as mosaic:
        before = mosaic.read(40, 60, 50, 50)
        with pickle.loads(pickle.dumps(mosaic)) as copy:
            assert_same(copy.read(40, 60, 50, 50), before)
