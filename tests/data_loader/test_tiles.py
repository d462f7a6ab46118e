"""Tile listing, decoding and header checks on tiny files written by the tests."""
import warnings
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
from rasterio.enums import ColorInterp

from data_loader import tiles
from data_loader.tiles import Tile, check_tile, list_tiles, read_image, read_mask
from utils.errors import DataError

SIZE = 32


def rgb_image(height: int = SIZE, width: int = SIZE) -> np.ndarray:
    """(H, W, 3) uint8 with distinct channels: R = row, G = column, B = 200."""
    rows, cols = np.mgrid[:height, :width]
    return np.dstack([rows * 4, cols * 4, np.full_like(rows, 200)]).astype(np.uint8)


def road_mask(height: int = SIZE, width: int = SIZE) -> np.ndarray:
    """(H, W) uint8 0/255 with a vertical road in columns 12..19."""
    mask = np.zeros((height, width), np.uint8)
    mask[:, 12:20] = 255
    return mask


def write_tiff(path: Path, image: np.ndarray, colorinterp: list | None = None,
               **options) -> Path:
    """(H, W) or (H, W, bands) as a plain TIFF written by rasterio (no georeference)."""
    bands = image[None] if image.ndim == 2 else image.transpose(2, 0, 1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", rasterio.errors.NotGeoreferencedWarning)
        with rasterio.open(path, "w", driver="GTiff", height=bands.shape[1], width=bands.shape[2],
                           count=bands.shape[0], dtype=bands.dtype, **options) as dataset:
            dataset.write(bands)
            if colorinterp is not None:
                dataset.colorinterp = colorinterp
    return path


def write_rgb(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix == ".tif":
        write_tiff(path, image, photometric="rgb" if image.ndim == 3 and image.shape[2] == 3
                   else "minisblack")
    else:
        array = image[..., ::-1] if image.ndim == 3 and image.shape[2] == 3 else image
        assert cv2.imwrite(str(path), np.ascontiguousarray(array))
    return path


def make_split(root: Path, stems=("b", "a"), suffix=".png") -> Path:
    for stem in stems:
        write_rgb(root / "images" / f"{stem}{suffix}", rgb_image())
        write_rgb(root / "masks" / f"{stem}.png", road_mask())
    return root


def truncate(path: Path, keep: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def test_list_tiles_pairs_by_stem_sorted_with_optional_geojson(tmp_path):
    split = make_split(tmp_path / "train")
    (split / "geojson").mkdir()
    (split / "geojson" / "a.geojson").write_text('{"type": "FeatureCollection", "features": []}')
    listed = list_tiles(split)
    assert [t.stem for t in listed] == ["a", "b"]
    assert listed[0] == Tile("a", split / "images/a.png", split / "masks/a.png",
                             split / "geojson/a.geojson")
    assert listed[1].geojson_path is None


def test_list_tiles_without_masks(tmp_path):
    write_rgb(tmp_path / "test" / "images" / "x.tif", rgb_image())
    assert list_tiles(tmp_path / "test", require_masks=False) == [
        Tile("x", tmp_path / "test/images/x.tif", None, None)
    ]


def test_image_without_mask_names_the_image(tmp_path):
    split = make_split(tmp_path / "train")
    write_rgb(split / "images" / "c.png", rgb_image())
    with pytest.raises(DataError, match=r"images/c\.png: image without a mask"):
        list_tiles(split)


def test_mask_without_image_names_the_mask(tmp_path):
    split = make_split(tmp_path / "train")
    write_rgb(split / "masks" / "z.png", road_mask())
    with pytest.raises(DataError, match=r"masks/z\.png: mask without an image"):
        list_tiles(split)


def test_missing_or_empty_split_names_the_folder(tmp_path):
    with pytest.raises(DataError, match=r"nowhere/images: image folder not found"):
        list_tiles(tmp_path / "nowhere")
    (tmp_path / "empty" / "images").mkdir(parents=True)
    with pytest.raises(DataError, match=r"empty/images: no images"):
        list_tiles(tmp_path / "empty")


@pytest.mark.parametrize("suffix", [".png", ".tif", ".jpg"])
def test_read_image_returns_rgb(tmp_path, suffix):
    image = rgb_image()
    path = write_rgb(tmp_path / f"x{suffix}", image)
    read = read_image(path)
    assert read.shape == (SIZE, SIZE, 3) and read.dtype == np.uint8
    tolerance = 8 if suffix == ".jpg" else 0  # JPEG is lossy; channel order is what matters here
    assert np.abs(read.astype(int) - image).max() <= tolerance


def test_read_image_band_interleaved_tiff(tmp_path):
    image = rgb_image()
    write_tiff(tmp_path / "x.tif", image, photometric="rgb", interleave="band")
    np.testing.assert_array_equal(read_image(tmp_path / "x.tif"), image)


UNDEFINED = ColorInterp.undefined


@pytest.mark.parametrize("bands, colorinterp", [
    (2, [ColorInterp.gray, UNDEFINED]),
    (4, [ColorInterp.red, ColorInterp.green, ColorInterp.blue, UNDEFINED]),
    (5, [UNDEFINED] * 5)])
def test_wrong_band_count_is_named(tmp_path, bands, colorinterp):
    path = write_tiff(tmp_path / "x.tif", np.zeros((SIZE, SIZE, bands), np.uint8), colorinterp)
    message = rf"x\.tif: expected 3 bands \(RGB\), found {bands}; choose three with `bands`"
    with pytest.raises(DataError, match=message):
        read_image(path)
    with pytest.raises(DataError, match=message):
        check_tile(Tile("x", path, None, None))


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_one_band_is_replicated_and_alpha_is_validity(tmp_path, suffix):
    grey = rgb_image()[..., 1]
    path = write_rgb(tmp_path / f"grey{suffix}", grey)
    np.testing.assert_array_equal(read_image(path), np.dstack([grey] * 3))
    alpha = np.full((SIZE, SIZE), 255, np.uint8)
    alpha[:5, :7] = 0
    rgba = np.dstack([rgb_image(), alpha])
    if suffix == ".tif":
        path = write_tiff(tmp_path / "rgba.tif", rgba, photometric="rgb", alpha="yes")
    else:
        path = tmp_path / "rgba.png"
        assert cv2.imwrite(str(path), cv2.cvtColor(rgba, cv2.COLOR_RGBA2BGRA))
    raster = tiles.read_raster(path)
    np.testing.assert_array_equal(raster.image, rgb_image())
    np.testing.assert_array_equal(raster.valid, alpha > 0)
    assert check_tile(Tile("x", path, None, None)) == (SIZE, SIZE)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_uint16_image_is_stretched_like_the_preparation(tmp_path, suffix):
    image = rgb_image().astype(np.uint16) * 8
    path = tmp_path / f"x{suffix}"
    write_rgb(path, image)
    expected = tiles.stretch_to_uint8(image, np.ones((SIZE, SIZE), bool))
    np.testing.assert_array_equal(read_image(path), expected)
    assert check_tile(Tile("x", path, None, None)) == (SIZE, SIZE)


@pytest.mark.parametrize("suffix", [".png", ".tif", ".jpg"])
def test_truncated_file_is_named(tmp_path, suffix):
    noisy = np.random.default_rng(0).integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    path = truncate(write_rgb(tmp_path / f"x{suffix}", noisy))
    with pytest.raises(DataError, match=rf"x\{suffix}: .*(unreadable|truncated)"):
        read_image(path)
    with pytest.raises(DataError, match=rf"x\{suffix}: .*(unreadable|truncated)"):
        check_tile(Tile("x", path, None, None))


def test_not_an_image_is_named(tmp_path):
    path = tmp_path / "x.png"
    path.write_text("hello")
    with pytest.raises(DataError, match=r"x\.png: unreadable"):
        read_image(path)
    with pytest.raises(DataError, match=r"x\.png: unreadable"):
        check_tile(Tile("x", path, None, None))


def test_read_mask_binary(tmp_path):
    path = write_rgb(tmp_path / "m.png", road_mask())
    mask = read_mask(path, (SIZE, SIZE))
    assert mask.dtype == bool and mask.sum() == SIZE * 8
    assert mask[:, 12:20].all()


def test_rgb_mask_with_equal_bands_is_accepted(tmp_path):
    path = write_rgb(tmp_path / "m.png", np.dstack([road_mask()] * 3))
    np.testing.assert_array_equal(read_mask(path), road_mask() > 0)


def test_odd_mask_values_binarised_with_one_warning(tmp_path, monkeypatch):
    monkeypatch.setattr(tiles, "_odd_mask_warned", False)
    odd = np.array([[0, 100, 127, 128], [200, 255, 1, 254]], np.uint8)
    first = write_rgb(tmp_path / "first.png", odd)
    second = write_rgb(tmp_path / "second.png", odd)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mask = read_mask(first)
        read_mask(second)
    np.testing.assert_array_equal(mask, [[0, 0, 0, 1], [1, 1, 0, 1]])
    assert len(caught) == 1
    assert "first.png" in str(caught[0].message) and "127" in str(caught[0].message)


def test_mask_size_mismatch_names_both_sizes(tmp_path):
    path = write_rgb(tmp_path / "m.png", road_mask(SIZE, 24))
    with pytest.raises(DataError, match=r"m\.png: mask is 32x24 \(HxW\) but its image is 32x32"):
        read_mask(path, (SIZE, SIZE))
    image = write_rgb(tmp_path / "i.png", rgb_image())
    with pytest.raises(DataError, match=r"m\.png: mask is 32x24 \(HxW\) but its image is 32x32"):
        check_tile(Tile("i", image, path, None))


def test_check_tile_accepts_a_good_tile(tmp_path):
    split = make_split(tmp_path / "train", stems=("a",), suffix=".tif")
    assert check_tile(list_tiles(split)[0]) == (SIZE, SIZE)
