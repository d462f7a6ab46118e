"""Reading rasters and dataset tiles: the one reader of training, preparation and prediction.

Every raster GDAL reads (through rasterio) is an image: GeoTIFF with any compression (LZW, deflate,
ZSTD, JPEG), tiled or striped, BigTIFF, and PNG/JPEG without georeference. A read gives
(H, W, 3) uint8 RGB and an (H, W) bool validity mask:

- Bands: 3 color bands are RGB; 1 band (panchromatic) is replicated; an alpha band is not a color
  band but the validity; any other count needs `bands`, three 1-based band numbers (e.g.
  [5, 3, 2] for the red, green and blue of SpaceNet's 8-band MUL), or one to replicate.
- Pixel types other than uint8 (SpaceNet's 11-bit uint16) are stretched to 8 bits by a per-band
  2nd..98th percentile stretch over the valid pixels of the whole raster (`stretch_to_uint8`),
  the rule of the SpaceNet preparation, so that raw imagery can be predicted without preparing it.
- Validity: the raster's GDAL mask (alpha band, internal mask, nodata value) and, where configured
  for the dataset, a no-data color (SpaceNet black, Massachusetts Roads white): a pixel whose
  selected bands all equal it is invalid.

`RasterSource` reads windows of scenes of any size; `read_raster` / `read_image` read a whole
raster, refused above `max_pixels` from the header alone (a decompression bomb declares a huge
size in a few bytes). Layout of a split folder: `images/<stem>.<tif|png|jpg>`, `masks/<stem>.png`
(0/255), optional `valid/<stem>.png` (0/255 validity, written by the preparation) and, for
SpaceNet, `geojson/<stem>.geojson`. Every problem with a file raises `DataError` naming it, and
`check_tile` finds most of them from headers alone, so that a bad tile stops the run before
training starts rather than in a worker hours later.
"""
import math
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from affine import Affine
from rasterio.enums import ColorInterp, Resampling
from rasterio.errors import RasterioError
from rasterio.windows import Window

from roads.georeference import Georeference, gdal_message, georeference_of, open_raster
from utils.errors import DataError

IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg")
MASK_SUFFIXES = (".png", ".tif", ".tiff")
JPEG_SUFFIXES = (".jpg", ".jpeg")

MAX_PIXELS = 1 << 28
"""Largest raster read whole (268 M pixels, 16384 x 16384: 0.8 GB as RGB, 3.2 GB normalized);
larger scenes are read in windows of a `RasterSource`."""

STRETCH_SAMPLE_PIXELS = 1 << 24
"""Rasters up to this many pixels get their stretch percentiles from every pixel (the exact rule
of the preparation); larger ones from a decimated read of about this many."""

STRETCH_PERCENTILES = (2.0, 98.0)

_PNG_END = b"IEND\xaeB`\x82"
_JPEG_END = b"\xff\xd9"

_odd_mask_warned = False


class BandError(DataError):
    """A raster whose bands do not give RGB: a count without `bands`, or a band that does not
    exist."""


@dataclass(frozen=True)
class RasterOptions:
    """How a dataset's images become RGB (see the module docstring).

    bands: 1-based band numbers, three (R, G, B) or one (replicated); None: the raster's color
        bands, which must be 3 or 1.
    nodata_color: three values (R, G, B as read, a single band read three times) or one for all
        three, in the raster's own pixel values before any stretch: pixels equal to it in all
        three are invalid.
    max_pixels: largest H * W read at once.
    """

    bands: tuple[int, ...] | None = None
    nodata_color: tuple[float, ...] | None = None
    max_pixels: int = MAX_PIXELS

    def __post_init__(self):
        if self.bands is not None:
            bands = tuple(self.bands)
            if (len(bands) not in (1, 3) or not all(isinstance(b, int) and not isinstance(b, bool)
                                                    and b >= 1 for b in bands)):
                raise ValueError(f"bands: expected 3 (or 1) band numbers >= 1, got {list(bands)}")
            object.__setattr__(self, "bands", bands)
        if self.nodata_color is not None:
            color = tuple(self.nodata_color)
            if len(color) not in (1, 3) or not all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                    for v in color):
                raise ValueError(f"nodata_color: expected 3 (or 1) numbers, got {list(color)}")
            object.__setattr__(self, "nodata_color", color)
        if not isinstance(self.max_pixels, int) or self.max_pixels < 1:
            raise ValueError(f"max_pixels: must be a positive integer, got {self.max_pixels!r}")


@dataclass(frozen=True)
class RasterImage:
    """A raster read as RGB: image (H, W, 3) uint8, valid (H, W) bool, and its georeference
    (None for PNG/JPEG and rasters without CRS)."""

    image: np.ndarray
    valid: np.ndarray
    georeference: Georeference | None


@dataclass(frozen=True)
class Tile:
    """One tile of a split: its image and, where the dataset has them, its mask, GeoJSON and
    validity mask."""

    stem: str
    image_path: Path
    mask_path: Path | None
    geojson_path: Path | None
    valid_path: Path | None = None


@dataclass(frozen=True)
class RasterHeader:
    """What a file header says about a raster: (height, width), band count and pixel dtype."""

    shape: tuple[int, int]
    bands: int
    dtype: np.dtype


def _file_ends_with(path: Path, marker: bytes) -> bool:
    with open(path, "rb") as file:
        file.seek(0, 2)
        size = file.tell()
        # Encoders may pad after the end marker; look a little way back.
        file.seek(max(0, size - 64))
        return marker in file.read()


def _check_complete(path: Path, dataset) -> None:
    """Catch truncated files cheaply: PNG and JPEG by their end marker (libjpeg decodes a cut JPEG
    into grey rows with only a warning), TIFF by decoding its last block of pixels."""
    suffix = path.suffix.lower()
    if dataset.driver == "PNG" and not _file_ends_with(path, _PNG_END):
        raise DataError(f"{path}: truncated PNG (no IEND chunk)")
    if dataset.driver == "JPEG" or suffix in JPEG_SUFFIXES:
        if not _file_ends_with(path, _JPEG_END):
            raise DataError(f"{path}: truncated JPEG (no end-of-image marker)")
    if dataset.driver == "GTiff":
        block_height, block_width = dataset.block_shapes[0]
        row = (dataset.height - 1) // block_height * block_height
        col = (dataset.width - 1) // block_width * block_width
        window = Window(col, row, min(block_width, dataset.width - col),
                        min(block_height, dataset.height - row))
        try:
            dataset.read(dataset.count, window=window)
        except RasterioError as error:
            raise DataError(f"{path}: truncated or damaged TIFF ({gdal_message(error)})") from None


def _check_size(path: Path, height: int, width: int, max_pixels: int) -> None:
    if height * width > max_pixels:
        raise DataError(f"{path}: declares {width}x{height} pixels, more than the {max_pixels} "
                        "read at once (max_pixels); a damaged header or a scene to read in "
                        "windows")


def _select_bands(path: Path, dataset, options: RasterOptions) -> tuple[int, ...]:
    """The three 1-based band numbers read as R, G, B (one repeated for a single band)."""
    if options.bands is not None:
        missing = [b for b in options.bands if b > dataset.count]
        if missing:
            raise BandError(f"{path}: bands {list(options.bands)} selects band {missing[0]}, but "
                            f"the raster has {dataset.count}")
        selected = options.bands
    else:
        selected = tuple(index for index, color in zip(dataset.indexes, dataset.colorinterp,
                                                       strict=True)
                         if color != ColorInterp.alpha)
        if len(selected) not in (1, 3):
            raise BandError(f"{path}: expected 3 bands (RGB), found {len(selected)}; choose three "
                            "with `bands` (1-based, e.g. [5, 3, 2])")
    return selected * 3 if len(selected) == 1 else selected


def _check_dtype(path: Path, dtype: np.dtype) -> None:
    if np.dtype(dtype).kind not in "uif":
        raise DataError(f"{path}: unsupported pixel type {dtype}")


def stretch_limits(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(C, 2) float64 (low, high): each band's 2nd and 98th percentile over the valid pixels of an
    (H, W, C) raw image; (0, 1) for every band when no pixel is valid."""
    if not valid.any():
        return np.tile([0.0, 1.0], (image.shape[2], 1))
    return np.stack([np.percentile(image[..., band][valid], STRETCH_PERCENTILES)
                     for band in range(image.shape[2])])


def apply_stretch(image: np.ndarray, limits: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(H, W, C) raw -> (H, W, C) uint8 mapping each band's (low, high) onto 0..255, clipped;
    invalid pixels are 0."""
    out = np.zeros(image.shape, dtype=np.uint8)
    for band, (low, high) in enumerate(limits):
        scaled = (image[..., band].astype(np.float32) - low) * (255.0 / max(high - low, 1e-6))
        out[..., band] = np.clip(np.round(scaled), 0, 255)
    out[~valid] = 0
    return out


def stretch_to_uint8(image: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(H, W, C) raw bands -> (H, W, C) uint8 by a per-band 2nd..98th percentile stretch (chosen).

    The percentile stretch is the usual SpaceNet visualization: it maps each band's bulk of 11-bit
    values onto 0..255 and clips the few saturated pixels (roofs, sun glints) instead of letting
    them compress the range. Invalid pixels (`valid` (H, W) bool; by default those 0 in every
    band, SpaceNet's no-data) are left out of the percentiles and stay 0.
    """
    if valid is None:
        valid = image.max(axis=2) > 0
    return apply_stretch(image, stretch_limits(image, valid), valid)


class RasterSource:
    """An open raster read as RGB in windows, for tiles and scenes of any size.

    `shape` (H, W), `georeference` (None without CRS), `bands` (the 1-based bands read as R, G, B),
    `count` (the bands in the file) and `dtype` come from the header, checked when the source
    opens. A non-uint8 raster is stretched with limits from the whole raster (`stretch_limits`),
    the same for every window.
    Use as a context manager or call `close`.
    """

    def __init__(self, path: Path, options: RasterOptions = RasterOptions()) -> None:
        self.path = Path(path)
        self.options = options
        self._dataset = open_raster(self.path)
        try:
            self.shape = (self._dataset.height, self._dataset.width)
            self.dtype = np.dtype(self._dataset.dtypes[0])
            self.count = self._dataset.count
            _check_dtype(self.path, self.dtype)
            self.bands = _select_bands(self.path, self._dataset, options)
            self.georeference = georeference_of(self._dataset, self.path)
        except BaseException:
            self._dataset.close()
            raise
        self._limits: np.ndarray | None = None

    def __enter__(self) -> "RasterSource":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        self._dataset.close()

    def _read_raw(self, window: Window | None, out_shape: tuple[int, int] | None = None
                  ) -> tuple[np.ndarray, np.ndarray]:
        """(h, w, 3) raw values and (h, w) validity of a window (or of the whole raster resampled
        to `out_shape`)."""
        unique = tuple(dict.fromkeys(self.bands))
        kwargs = {"window": window}
        if out_shape is not None:
            kwargs |= {"out_shape": (len(unique), *out_shape), "resampling": Resampling.nearest}
        try:
            raw = self._dataset.read(unique, **kwargs)
            masks = self._dataset.read_masks(unique, **kwargs)
        except RasterioError as error:
            raise DataError(f"{self.path}: unreadable or truncated image "
                            f"({gdal_message(error)})") from None
        raw = np.moveaxis(raw, 0, -1)[..., [unique.index(b) for b in self.bands]]
        valid = (masks > 0).any(axis=0)
        if self.options.nodata_color is not None:
            color = np.resize(np.asarray(self.options.nodata_color, dtype=np.float64), 3)
            valid &= ~(raw == color).all(axis=2)
        if raw.dtype.kind == "f":
            valid &= np.isfinite(raw).all(axis=2)
        return raw, valid

    def check_complete(self) -> None:
        """DataError when the file is truncated (see `_check_complete`), without a full decode."""
        _check_complete(self.path, self._dataset)

    def sample(self, pixels: int) -> tuple[np.ndarray, np.ndarray]:
        """(h, w, 3) raw values and (h, w) validity of the whole raster, every pixel when it has
        at most `pixels`, else a decimated (nearest) read of about that many."""
        height, width = self.shape
        scale = math.sqrt(pixels / (height * width))
        out_shape = None if scale >= 1 else (max(1, int(height * scale)),
                                             max(1, int(width * scale)))
        return self._read_raw(None, out_shape)

    def stretch_limits(self) -> np.ndarray:
        """(3, 2) per-band (low, high) raw values mapped to 0 and 255 (see `stretch_limits`)."""
        if self._limits is None:
            self._limits = stretch_limits(*self.sample(STRETCH_SAMPLE_PIXELS))
        return self._limits

    def read(self, window: tuple[int, int, int, int] | None = None,
             limits: np.ndarray | None = None) -> RasterImage:
        """The RGB image and validity of `window` = (row, col, height, width), clipped to the
        raster (None: all of it); its georeference is the window's own. `limits` (3, 2): stretch
        limits to use instead of the raster's own (a mosaic's, shared by all its tiles)."""
        if window is None:
            row, col, height, width = 0, 0, *self.shape
        else:
            row, col, height, width = (int(v) for v in window)
            height, width = min(height, self.shape[0] - row), min(width, self.shape[1] - col)
            if row < 0 or col < 0 or height <= 0 or width <= 0:
                raise ValueError(f"window {window} lies outside the {self.shape} raster")
        _check_size(self.path, height, width, self.options.max_pixels)
        if window is None and self._dataset.driver in ("PNG", "JPEG"):
            _check_complete(self.path, self._dataset)
        raw, valid = self._read_raw(Window(col, row, width, height))
        if self.dtype == np.uint8:
            image = np.ascontiguousarray(raw)
        else:
            image = apply_stretch(raw, self.stretch_limits() if limits is None else limits, valid)
        georeference = self.georeference
        if georeference is not None and window is not None:
            georeference = Georeference(georeference.crs, georeference.transform
                                        @ Affine.translation(col, row), (height, width))
        return RasterImage(image, valid, georeference)


def read_raster(path: Path, options: RasterOptions = RasterOptions()) -> RasterImage:
    """The whole raster as RGB with its validity and georeference (see the module docstring)."""
    path = Path(path)
    with RasterSource(path, options) as source:
        _check_size(path, *source.shape, options.max_pixels)
        return source.read()


def read_image(path: Path, options: RasterOptions = RasterOptions()) -> np.ndarray:
    """(H, W, 3) uint8 RGB image of a raster (invalid pixels as read for uint8, 0 when
    stretched); `read_raster` also gives the validity."""
    return read_raster(path, options).image


def _read_bands(path: Path, max_pixels: int) -> np.ndarray:
    """(H, W) or (H, W, bands) array of every band of a raster, as stored."""
    dataset = open_raster(path)
    with dataset:
        _check_size(path, dataset.height, dataset.width, max_pixels)
        _check_complete(path, dataset)
        try:
            array = dataset.read()
        except RasterioError as error:
            raise DataError(f"{path}: unreadable or truncated image "
                            f"({gdal_message(error)})") from None
    return array[0] if array.shape[0] == 1 else np.moveaxis(array, 0, -1)


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


def read_mask(path: Path, expected_shape: tuple[int, int] | None = None,
              max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """(H, W) bool road mask; `expected_shape` is the (H, W) of the tile's image.

    Masks should hold 0 and 255 (or 0 and 1); other values (JPEG-like noise, anti-aliased edges)
    are binarized at 127 with one warning per process, naming the first such file. Validity
    masks (`valid/<stem>.png`) are read the same way.
    """
    global _odd_mask_warned
    path = Path(path)
    mask = _single_band_mask(path, _read_bands(path, max_pixels))
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


def read_header(path: Path) -> RasterHeader:
    """Size, bands and dtype of a raster from its header, and a check that it is complete (see
    `_check_complete`), without decoding the whole image."""
    path = Path(path)
    with open_raster(path) as dataset:
        _check_complete(path, dataset)
        return RasterHeader((dataset.height, dataset.width), dataset.count,
                            np.dtype(dataset.dtypes[0]))


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
    file is attached when `geojson/<stem>.geojson` exists, a validity mask when
    `valid/<stem>.png` does.
    """
    split_dir = Path(split_dir)
    images_dir, masks_dir, geojson_dir, valid_dir = (
        split_dir / n for n in ("images", "masks", "geojson", "valid"))
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
    valids = _files_by_stem(valid_dir, MASK_SUFFIXES) if valid_dir.is_dir() else {}
    return [Tile(stem, path, masks.get(stem), geojsons.get(stem), valids.get(stem))
            for stem, path in sorted(images.items())]


def _check_mask_header(path: Path, shape: tuple[int, int]) -> None:
    mask = read_header(path)
    if mask.bands not in (1, 3) or mask.dtype != np.uint8:
        raise DataError(f"{path}: expected an 8-bit single-band mask")
    if mask.shape != shape:
        raise DataError(f"{path}: mask is {mask.shape[0]}x{mask.shape[1]} (HxW) "
                        f"but its image is {shape[0]}x{shape[1]}")


def check_tile(tile: Tile, options: RasterOptions = RasterOptions()) -> tuple[int, int]:
    """Check a tile from its file headers; returns the image's (H, W).

    Catches band counts and selections that do not give RGB, no-data colors of the wrong length,
    unsupported pixel types, absurd sizes, truncated files and mask/image size mismatches.
    Pixel values (e.g. masks with values other than 0/255) are only seen when a tile is read.
    """
    with RasterSource(tile.image_path, options) as source:
        shape = source.shape
        _check_size(tile.image_path, *shape, options.max_pixels)
        source.check_complete()
    for path in (tile.mask_path, tile.valid_path):
        if path is not None:
            _check_mask_header(path, shape)
    return shape
