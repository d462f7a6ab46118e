"""The one raster reader (data_loader/tiles.py) and the COG writer on real bytes: a crop of a real
SpaceNet PAN tile (tests/data) and GeoTIFFs written here with rasterio in the encodings, band
layouts, CRSs and no-data conventions found in the wild."""
import time
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.enums import ColorInterp

from data_loader.tiles import (
    RasterOptions,
    RasterSource,
    Tile,
    check_tile,
    read_raster,
    stretch_to_uint8,
)
from roads.classes import PALETTE
from roads.geo import read_road_lines, render_tile_mask
from roads.georeference import Georeference, read_georeference, write_cog
from utils.errors import DataError

DATA = Path(__file__).resolve().parents[1] / "data" / "spacenet-vegas-pan"
UTM = Affine(0.3, 0.0, 652_209.99, 0.0, -0.3, 4_000_000.0)


def write(path: Path, bands: np.ndarray, crs="EPSG:32611", transform: Affine = UTM,
          colorinterp: list | None = None, **options) -> Path:
    """(bands, H, W) written by rasterio as a GeoTIFF (or `driver` in options)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver=options.pop("driver", "GTiff"),
                           height=bands.shape[1], width=bands.shape[2], count=bands.shape[0],
                           dtype=bands.dtype, crs=crs, transform=transform, **options) as dataset:
            dataset.write(bands)
            if colorinterp is not None:
                dataset.colorinterp = colorinterp
    return path


def scene(height: int = 64, width: int = 80, bands: int = 3, dtype=np.uint8,
          seed: int = 0) -> np.ndarray:
    """(bands, H, W) smooth random imagery (JPEG-compressible), values up to 255 or 2047."""
    top = 255 if dtype == np.uint8 else 2047
    rng = np.random.default_rng(seed)
    coarse = rng.uniform(1, top, (bands, height // 8 + 1, width // 8 + 1)).astype(np.float32)
    return np.stack([cv2.resize(band, (width, height), interpolation=cv2.INTER_LINEAR)
                     for band in coarse]).round().astype(dtype)


# The real SpaceNet 3 PAN tile, as distributed: 1 band, uint16 11-bit, EPSG:4326.

def test_real_pan_tile_is_replicated_stretched_and_georeferenced():
    raster = read_raster(DATA / "pan_crop.tif")
    with rasterio.open(DATA / "pan_crop.tif") as dataset:
        raw = dataset.read(1)
        assert dataset.dtypes[0] == "uint16" and raw.max() < 2048
    assert raster.image.shape == (256, 256, 3) and raster.image.dtype == np.uint8
    assert raster.valid.all()
    expected = stretch_to_uint8(np.dstack([raw] * 3), np.ones(raw.shape, bool))
    np.testing.assert_array_equal(raster.image, expected)
    georeference = raster.georeference
    assert georeference.crs.to_epsg() == 4326 and georeference.shape == (256, 256)
    sx, sy = georeference.pixel_size_m()
    assert sx == pytest.approx(0.243, abs=1e-3) and sy == pytest.approx(0.2996, abs=1e-3)


def test_real_labels_land_on_the_real_roads_with_a_warning_for_the_rest():
    raster = read_raster(DATA / "pan_crop.tif")
    lines = read_road_lines(DATA / "roads.geojson")
    with pytest.warns(UserWarning, match=r"roads\.geojson: \d+ of \d+ road positions lie outside "
                                         r"the 256x256 raster"):
        mask = render_tile_mask(lines, raster.georeference, label_path=DATA / "roads.geojson")
    with rasterio.open(DATA / "spacenet_mask_crop.tif") as dataset:
        theirs = dataset.read(1) > 0
        assert dataset.transform == raster.georeference.transform
    ours = mask > 0
    assert 0.03 < ours.mean() < 0.3
    assert (ours & theirs).sum() / (ours | theirs).sum() > 0.5   # SpaceNet's own mask of them
    # Asphalt is darker than the yards on either side of it in this crop.
    assert raster.image[ours].mean() < raster.image[~ours].mean()


# GeoTIFFs in every encoding GDAL reads give the same pixels.

@pytest.mark.parametrize("options", [
    {"compress": "lzw"}, {"compress": "deflate", "predictor": 2}, {"compress": "zstd"},
    {"compress": "lzw", "tiled": True, "blockxsize": 32, "blockysize": 32},
    {"compress": "deflate", "BIGTIFF": "YES"}, {"interleave": "band"}, {"driver": "PNG"}],
    ids=["lzw", "deflate", "zstd", "tiled", "bigtiff", "band-interleaved", "png"])
def test_encodings_read_the_same_pixels(tmp_path, options):
    bands = scene()
    suffix = ".png" if options.get("driver") == "PNG" else ".tif"
    georeferenced = suffix == ".tif"
    path = write(tmp_path / f"x{suffix}", bands, crs="EPSG:32611" if georeferenced else None,
                 transform=UTM if georeferenced else Affine.identity(), **options)
    raster = read_raster(path)
    np.testing.assert_array_equal(raster.image, bands.transpose(1, 2, 0))
    assert raster.valid.all()
    assert (raster.georeference is not None) == georeferenced
    assert check_tile(Tile("x", path, None, None)) == (64, 80)


def test_jpeg_compressed_and_jpeg_files_read_within_jpeg_error(tmp_path):
    bands = scene()
    for path in (write(tmp_path / "x.tif", bands, compress="jpeg", photometric="ycbcr"),
                 write(tmp_path / "x.jpg", bands, crs=None, transform=Affine.identity(),
                       driver="JPEG")):
        error = read_raster(path).image.astype(int) - bands.transpose(1, 2, 0)
        assert np.abs(error).mean() < 8, path.name  # 4:2:0 chroma subsampling of sharp colors
        assert np.abs(error.mean(axis=(0, 1))).max() < 3, path.name  # bands in RGB order


# Bands, alpha and no-data.

def test_utm_lzw_rgba_with_transparent_corners(tmp_path):
    bands = scene(bands=3)
    alpha = np.full((64, 80), 255, np.uint8)
    for corner in (np.s_[:10, :12], np.s_[-8:, -20:]):
        alpha[corner] = 0
    path = write(tmp_path / "rgba.tif", np.concatenate([bands, alpha[None]]), compress="lzw",
                 photometric="rgb", alpha="yes")
    raster = read_raster(path)
    np.testing.assert_array_equal(raster.valid, alpha > 0)
    np.testing.assert_array_equal(raster.image, bands.transpose(1, 2, 0))
    assert raster.georeference.crs.to_epsg() == 32611
    assert raster.georeference.pixel_size_m() == pytest.approx((0.3, 0.3), rel=1e-3)


def test_uint16_with_a_nodata_value_is_stretched_over_the_valid_pixels(tmp_path):
    bands = scene(dtype=np.uint16)
    bands[:, :16] = 65535  # no-data: would make the 98th percentile 65535 if counted
    path = write(tmp_path / "nodata.tif", bands, nodata=65535, compress="deflate")
    raster = read_raster(path)
    valid = np.ones((64, 80), bool)
    valid[:16] = False
    np.testing.assert_array_equal(raster.valid, valid)
    np.testing.assert_array_equal(raster.image, stretch_to_uint8(bands.transpose(1, 2, 0), valid))
    assert (raster.image[16:] == 255).mean() < 0.05 and (raster.image[:16] == 0).all()


def test_eight_band_multispectral_needs_a_band_selection(tmp_path):
    bands = scene(bands=8, dtype=np.uint16)
    path = write(tmp_path / "mul.tif", bands, colorinterp=[ColorInterp.undefined] * 8)
    with pytest.raises(DataError, match=r"mul\.tif: expected 3 bands \(RGB\), found 8"):
        read_raster(path)
    raster = read_raster(path, RasterOptions(bands=(5, 3, 2)))
    raw = bands[[4, 2, 1]].transpose(1, 2, 0)
    np.testing.assert_array_equal(raster.image, stretch_to_uint8(raw, np.ones((64, 80), bool)))
    with pytest.raises(DataError, match=r"mul\.tif: bands \[9, 3, 2\] selects band 9, but the "
                                        r"raster has 8"):
        check_tile(Tile("m", path, None, None), RasterOptions(bands=(9, 3, 2)))


def test_nodata_color_marks_invalid_pixels(tmp_path):
    image = scene(seed=3).transpose(1, 2, 0).copy()
    image[:, :20] = 255  # Massachusetts Roads: white outside the scene
    image[30, 40] = (255, 255, 0)  # white in two bands only: valid
    path = tmp_path / "mass.png"
    assert cv2.imwrite(str(path), image[..., ::-1])
    expected = np.ones((64, 80), bool)
    expected[:, :20] = False
    for color in ((255, 255, 255), (255,)):
        raster = read_raster(path, RasterOptions(nodata_color=color))
        np.testing.assert_array_equal(raster.valid, expected | ~(image == 255).all(axis=2))
        assert raster.valid[:, 20:].mean() > 0.99 and raster.valid[30, 40]
    # A single band read three times takes a three-value color (SpaceNet's black) as well.
    pan = write(tmp_path / "pan.tif", scene(bands=1, dtype=np.uint16))
    with rasterio.open(pan, "r+") as dataset:
        band = dataset.read(1)
        band[:5] = 0
        dataset.write(band, 1)
    valid = read_raster(pan, RasterOptions(nodata_color=(0, 0, 0))).valid
    assert not valid[:5].any() and valid[5:].all()


@pytest.mark.parametrize("options, message", [
    ({"bands": (0, 1, 2)}, "bands: expected 3"), ({"bands": (1, 2)}, "bands: expected 3"),
    ({"nodata_color": (0, 0)}, "nodata_color: expected 3"),
    ({"nodata_color": (0, float("nan"), 0)}, "nodata_color: expected 3"),
    ({"max_pixels": 0}, "max_pixels: must be")])
def test_raster_options_are_validated_naming_the_parameter(options, message):
    with pytest.raises(ValueError, match=message):
        RasterOptions(**options)


# Scenes of any size: windows, and headers declaring absurd sizes.

def test_windows_read_the_whole_raster_in_pieces_with_one_stretch(tmp_path):
    bands = scene(height=100, width=90, dtype=np.uint16, seed=5)
    path = write(tmp_path / "scene.tif", bands, compress="lzw", tiled=True, blockxsize=32,
                 blockysize=32)
    whole = read_raster(path)
    with RasterSource(path) as source:
        assert source.shape == (100, 90)
        part = source.read((40, 30, 50, 100))  # clipped to the raster: 50 x 60
        np.testing.assert_array_equal(part.image, whole.image[40:90, 30:90])
        np.testing.assert_allclose(part.georeference.to_lonlat([[0, 0]]),
                                   whole.georeference.to_lonlat([[30, 40]]))
        with pytest.raises(ValueError, match="outside"):
            source.read((100, 0, 10, 10))


def test_a_decompression_bomb_is_refused_from_its_header(tmp_path):
    path = tmp_path / "bomb.tif"
    with rasterio.open(path, "w", driver="GTiff", height=60_000, width=60_000, count=3,
                       dtype="uint8", crs="EPSG:32611", transform=UTM, tiled=True,
                       blockxsize=512, blockysize=512, compress="deflate", SPARSE_OK=True,
                       BIGTIFF="YES"):
        pass  # no pixel written: the tile index alone, declaring 3.6 G pixels
    assert path.stat().st_size < 1_000_000
    start = time.perf_counter()
    with pytest.raises(DataError, match=r"bomb\.tif: declares 60000x60000 pixels"):
        read_raster(path)
    with pytest.raises(DataError, match=r"bomb\.tif: declares 60000x60000 pixels"):
        check_tile(Tile("b", path, None, None))
    assert time.perf_counter() - start < 5
    with RasterSource(path) as source:  # a window of it reads fine
        assert source.read((1000, 1000, 64, 64)).image.shape == (64, 64, 3)


def test_a_crs_less_raster_has_no_georeference(tmp_path):
    path = write(tmp_path / "plain.tif", scene(), crs=None, transform=Affine.identity())
    assert read_raster(path).georeference is None and read_georeference(path) is None


# Cloud-Optimized GeoTIFF outputs overlay their input.

def test_cog_outputs_keep_the_input_grid(tmp_path):
    georeference = Georeference(read_georeference(write(tmp_path / "in.tif", scene())).crs, UTM,
                                (64, 80))
    classes = np.random.default_rng(0).integers(0, 5, (64, 80), dtype=np.uint8)
    classes[:4] = 255
    write_cog(tmp_path / "conn.tif", classes, georeference, nodata=255, colormap=PALETTE)
    probability = np.random.default_rng(1).random((64, 80), dtype=np.float32)
    write_cog(tmp_path / "prob.tif", probability, georeference, resampling="average")
    for name, array in (("conn.tif", classes), ("prob.tif", probability)):
        with rasterio.open(tmp_path / name) as dataset:
            assert dataset.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
            assert dataset.crs.to_epsg() == 32611 and dataset.transform == UTM
            np.testing.assert_array_equal(dataset.read(1), array)
    with rasterio.open(tmp_path / "conn.tif") as dataset:
        assert dataset.nodata == 255
        assert dataset.colormap(1)[3][:3] == PALETTE[3]


def test_cog_of_a_large_raster_has_overviews(tmp_path):
    georeference = Georeference.north_up_lonlat(-115.3, 36.2, 2.7e-6, 2.7e-6, (1300, 1300))
    mask = np.zeros((1300, 1300), np.uint8)
    mask[600:640] = 255
    write_cog(tmp_path / "mask.tif", mask, georeference)
    with rasterio.open(tmp_path / "mask.tif") as dataset:
        assert dataset.overviews(1) and dataset.block_shapes[0] == (512, 512)
        np.testing.assert_array_equal(dataset.read(1), mask)
