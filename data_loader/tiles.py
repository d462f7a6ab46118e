"""Reading dataset tiles: pairing images with masks, decoding them, and checking them up front.

Layout of a split folder: `images/<stem>.<tif|png|jpg>`, `masks/<stem>.png` (0/255) and, for
SpaceNet, optional `geojson/<stem>.geojson`. Images are 8-bit RGB; 16-bit SpaceNet imagery must be
converted first (`python -m tools.spacenet`). Every problem with a file raises `DataError`
naming the file, and `check_tile` finds most of them from file headers alone so that a bad tile
stops the run before training starts rather than in a worker hours later.
"""
import struct
import warnings
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import tifffile
from PIL import Image

from utils.errors import DataError

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
MASK_SUFFIXES = (".png", ".tif", ".tiff")
TIFF_SUFFIXES = (".tif", ".tiff")
JPEG_SUFFIXES = (".jpg", ".jpeg")

# PNG colour type -> number of bands cv2 returns with IMREAD_UNCHANGED (a palette is expanded to 3).
_PNG_BANDS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_END = b"IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"
_PIL_JPEG_BANDS = {"L": 1, "RGB": 3, "CMYK": 4}

_odd_mask_warned = False


@dataclass(frozen=True)
class Tile:
    """One tile of a split: its image and, where the dataset has them, its mask and GeoJSON."""

    stem: str
    image_path: Path
    mask_path: Path | None
    geojson_path: Path | None


@dataclass(frozen=True)
class RasterHeader:
    """What a file header says about a raster: (height, width), band count and pixel dtype."""

    shape: tuple[int, int]
    bands: int
    dtype: np.dtype


def _files_by_stem(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    files: dict[str, Path] = {}
    for path in sorted(folder.iterdir()):
        if not path.is_file() or path.suffix.lower() not in suffixes:
            continue
        if path.stem in files:
            raise DataError(f"{path}: two files with stem '{path.stem}' ({files[path.stem].name})")
        files[path.stem] = path
    return files


def list_tiles(split_dir: Path, require_masks: bool = True) -> list[Tile]:
    """The tiles of a split folder, sorted by stem.

    With `require_masks`, every image needs `masks/<stem>.png` and every mask an image; a GeoJSON
    file is attached when `geojson/<stem>.geojson` exists.
    """
    split_dir = Path(split_dir)
    images_dir, masks_dir, geojson_dir = (split_dir / n for n in ("images", "masks", "geojson"))
    if not images_dir.is_dir():
        raise DataError(f"{images_dir}: image folder not found")
    images = _files_by_stem(images_dir, IMAGE_SUFFIXES)
    if not images:
        raise DataError(f"{images_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")
    masks: dict[str, Path] = {}
    if require_masks:
        if not masks_dir.is_dir():
            raise DataError(f"{masks_dir}: mask folder not found")
        masks = _files_by_stem(masks_dir, MASK_SUFFIXES)
        for stem, path in masks.items():
            if stem not in images:
                raise DataError(f"{path}: mask without an image in {images_dir}")
        for stem, path in images.items():
            if stem not in masks:
                raise DataError(f"{path}: image without a mask in {masks_dir}")
    geojsons = _files_by_stem(geojson_dir, (".geojson",)) if geojson_dir.is_dir() else {}
    return [Tile(stem, path, masks.get(stem), geojsons.get(stem))
            for stem, path in sorted(images.items())]


def _check_image_format(path: Path, bands: int, dtype: np.dtype) -> None:
    if bands != 3:
        raise DataError(f"{path}: expected 3 bands (RGB), found {bands}")
    if dtype == np.uint16:
        raise DataError(
            f"{path}: 16-bit image; prepared datasets hold 8-bit images, "
            "convert the raw data with `python -m tools.spacenet`"
        )
    if dtype != np.uint8:
        raise DataError(f"{path}: expected 8-bit pixels, found {dtype}")


def _read_tiff(path: Path) -> np.ndarray:
    """(H, W, bands) or (H, W) array of a TIFF's first image, samples moved last."""
    try:
        with tifffile.TiffFile(path) as tif:
            series = tif.series[0]
            array = series.asarray()
            axes = series.axes
    except Exception as error:  # tifffile raises many types for damaged files
        raise DataError(f"{path}: unreadable TIFF ({error})") from error
    # Band-interleaved files (GDAL's default for some writers) store the samples axis first.
    for axis_name in "SC":
        if axis_name in axes:
            array = np.moveaxis(array, axes.index(axis_name), -1)
            axes = axes.replace(axis_name, "") + axis_name
    extra = [i for i, name in enumerate(axes) if name not in "YXSC"]
    if any(array.shape[i] != 1 for i in extra):
        raise DataError(f"{path}: expected one 2-D image, found axes {series.axes} {series.shape}")
    return array.reshape([n for i, n in enumerate(array.shape) if i not in extra])


def _read_png_or_jpeg(path: Path) -> np.ndarray:
    """(H, W, bands) or (H, W) array decoded by OpenCV, 3 bands reordered to RGB."""
    if path.suffix.lower() in JPEG_SUFFIXES and not _file_ends_with(path, _JPEG_END):
        # libjpeg decodes a truncated JPEG into grey rows with only a printed warning.
        raise DataError(f"{path}: truncated JPEG (no end-of-image marker)")
    array = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if array is None:
        raise DataError(f"{path}: unreadable or truncated image")
    if array.ndim == 3 and array.shape[2] == 3:
        array = cv2.cvtColor(array, cv2.COLOR_BGR2RGB)
    return array


def _read_raster(path: Path) -> np.ndarray:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    if path.suffix.lower() in TIFF_SUFFIXES:
        return _read_tiff(path)
    return _read_png_or_jpeg(path)


def read_image(path: Path) -> np.ndarray:
    """(H, W, 3) uint8 RGB image of a tile."""
    image = _read_raster(path)
    _check_image_format(Path(path), 1 if image.ndim == 2 else image.shape[2], image.dtype)
    return np.ascontiguousarray(image)


def _single_band_mask(path: Path, array: np.ndarray) -> np.ndarray:
    if array.ndim == 3:
        # DeepGlobe ships masks as RGB PNGs with three equal bands.
        if not all(np.array_equal(array[..., 0], array[..., b]) for b in range(1, array.shape[2])):
            raise DataError(f"{path}: expected a single-band mask, "
                            f"found {array.shape[2]} different bands")
        array = array[..., 0]
    if array.dtype != np.uint8:
        raise DataError(f"{path}: expected an 8-bit mask, found {array.dtype}")
    return array


def read_mask(path: Path, expected_shape: tuple[int, int] | None = None) -> np.ndarray:
    """(H, W) bool road mask; `expected_shape` is the (H, W) of the tile's image.

    Masks should hold 0 and 255 (or 0 and 1); other values (JPEG-like noise, anti-aliased edges)
    are binarised at 127 with one warning per process, naming the first such file.
    """
    global _odd_mask_warned
    path = Path(path)
    mask = _single_band_mask(path, _read_raster(path))
    if expected_shape is not None and mask.shape != tuple(expected_shape):
        raise DataError(
            f"{path}: mask is {mask.shape[0]}x{mask.shape[1]} (HxW) "
            f"but its image is {expected_shape[0]}x{expected_shape[1]}"
        )
    if mask.max(initial=0) == 1:
        # 0/1 masks (common in Massachusetts/DeepGlobe conversions) are unambiguous: keep them.
        return mask == 1
    road = mask > 127
    if not _odd_mask_warned and np.any((mask != 0) & (mask != 255)):
        _odd_mask_warned = True
        warnings.warn(
            f"{path}: mask values other than 0/255 binarised at 127 "
            "(further masks with such values are binarised silently)",
            stacklevel=2,
        )
    return road


def _file_ends_with(path: Path, marker: bytes) -> bool:
    with open(path, "rb") as file:
        file.seek(0, 2)
        size = file.tell()
        # Encoders may pad after the end marker; look a little way back.
        file.seek(max(0, size - 64))
        return marker in file.read()


def _tiff_header(path: Path) -> RasterHeader:
    try:
        with tifffile.TiffFile(path) as tif:
            page = tif.pages.first
            end = max((o + n for o, n in zip(page.dataoffsets, page.databytecounts)), default=0)
            if end > path.stat().st_size:
                raise DataError(f"{path}: truncated TIFF (pixel data ends past the file's end)")
            bands = page.samplesperpixel
            return RasterHeader((page.imagelength, page.imagewidth), bands, np.dtype(page.dtype))
    except DataError:
        raise
    except Exception as error:
        raise DataError(f"{path}: unreadable TIFF ({error})") from error


def _png_header(path: Path) -> RasterHeader:
    with open(path, "rb") as file:
        head = file.read(26)
    if len(head) < 26 or not head.startswith(_PNG_SIGNATURE) or head[12:16] != b"IHDR":
        raise DataError(f"{path}: not a PNG file")
    width, height, depth, colour = struct.unpack(">IIBB", head[16:26])
    if colour not in _PNG_BANDS:
        raise DataError(f"{path}: unknown PNG colour type {colour}")
    if not _file_ends_with(path, _PNG_END):
        raise DataError(f"{path}: truncated PNG (no IEND chunk)")
    dtype = np.dtype(np.uint16 if depth == 16 else np.uint8)
    return RasterHeader((height, width), _PNG_BANDS[colour], dtype)


def _jpeg_header(path: Path) -> RasterHeader:
    try:
        with Image.open(path) as image:
            width, height = image.size
            mode = image.mode
    except Exception as error:
        raise DataError(f"{path}: unreadable JPEG ({error})") from error
    if not _file_ends_with(path, _JPEG_END):
        raise DataError(f"{path}: truncated JPEG (no end-of-image marker)")
    return RasterHeader((height, width), _PIL_JPEG_BANDS.get(mode, 0), np.dtype(np.uint8))


def read_header(path: Path) -> RasterHeader:
    """Size, bands and dtype of a raster from its header, without decoding the pixels."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    suffix = path.suffix.lower()
    if suffix in TIFF_SUFFIXES:
        return _tiff_header(path)
    if suffix == ".png":
        return _png_header(path)
    return _jpeg_header(path)


def check_tile(tile: Tile) -> tuple[int, int]:
    """Check a tile from its file headers; returns the image's (H, W).

    Catches wrong band counts, 16-bit images, truncated files and mask/image size mismatches.
    Pixel values (e.g. masks with values other than 0/255) are only seen when a tile is read.
    """
    image = read_header(tile.image_path)
    _check_image_format(tile.image_path, image.bands, image.dtype)
    if tile.mask_path is not None:
        mask = read_header(tile.mask_path)
        if mask.bands not in (1, 3) or mask.dtype != np.uint8:
            raise DataError(f"{tile.mask_path}: expected an 8-bit single-band mask")
        if mask.shape != image.shape:
            raise DataError(
                f"{tile.mask_path}: mask is {mask.shape[0]}x{mask.shape[1]} (HxW) "
                f"but its image is {image.shape[0]}x{image.shape[1]}"
            )
    return image.shape
