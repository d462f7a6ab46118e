"""One scene from a raster, a VRT or a folder of adjacent GeoTIFFs (a mosaic), read in windows.

A `Mosaic` places its tiles on one pixel grid, that of the first file in sorted order: the tiles
must share its CRS, pixel size and north-up orientation, and their origins must lie on its grid,
so that every tile is an integer offset of it and no pixel is resampled. The scene is the union of
the tiles' extents; pixels that no tile covers (gaps, a mosaic that is not a rectangle) are
invalid, and where tiles overlap the later file in sorted order wins where it is valid. A single
raster file (GeoTIFF, VRT, or PNG/JPEG without georeference) is a mosaic of one tile, read exactly
as `RasterSource` reads it.

A city is thousands of tiles: a read opens only the tiles its window meets, found from their
extents in pixels, and keeps at most `max_open` of them open (least recently used closed first).
Tiles that are not 8-bit share one stretch (`stretch_limits`), from a decimated read of every
tile, so that brightness does not jump at tile borders.
"""
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyproj
from affine import Affine

from data_loader import tiles
from data_loader.tiles import IMAGE_SUFFIXES, RasterImage, RasterOptions, RasterSource
from roads.georeference import Georeference, open_raster
from utils.errors import DataError

TILE_SUFFIXES = (".tif", ".tiff", ".vrt")

MAX_OPEN = 64
"""Tiles kept open at once: a window of a few thousand pixels meets at most a few tiles, and a row
of windows a few dozen; each open GeoTIFF costs a file handle and its header."""

PIXEL_SIZE_TOLERANCE = 1e-6
"""Largest relative difference between the pixel sizes of two tiles of one grid (the rounding of
sizes stored as decimal text, far below a pixel over a city)."""

GRID_TOLERANCE = 1e-3
"""Largest distance (pixels) between a tile's origin and the grid of the first tile."""


@dataclass(frozen=True)
class _Tile:
    """What the header of one tile file says, checked when the mosaic opens."""

    path: Path
    shape: tuple[int, int]
    count: int
    dtype: np.dtype
    bands: tuple[int, ...]
    georeference: Georeference | None


def _scan(path: Path, options: RasterOptions) -> _Tile:
    with RasterSource(path, options) as source:
        # A truncated tile fails here, when the mosaic opens, not in a window hours later.
        source.check_complete()
        return _Tile(path, source.shape, source.count, source.dtype, source.bands,
                     source.georeference)


class Mosaic:
    """A scene of one or more raster tiles on one pixel grid, read as RGB window by window.

    `shape` (H, W) of the union of the tiles, `georeference` (its upper-left corner; None only for
    one image without georeference), `paths` the tile files in sorted order, `extents` (N, 4)
    int64 rows [top, left, bottom, right) of each tile in mosaic pixels, `dtype` their pixel type.
    Make one with `Mosaic.open`; use as a context manager or call `close`. A mosaic pickles
    without its open files (DataLoader workers reopen them).
    """

    def __init__(self, paths: list[Path], extents: np.ndarray,
                 georeference: Georeference | None, shape: tuple[int, int], dtype: np.dtype,
                 options: RasterOptions, max_open: int = MAX_OPEN) -> None:
        if max_open < 1:
            raise ValueError(f"max_open: must be >= 1, got {max_open}")
        self.paths = list(paths)
        self.extents = np.asarray(extents, dtype=np.int64).reshape(-1, 4)
        self.georeference = georeference
        self.shape = (int(shape[0]), int(shape[1]))
        self.dtype = np.dtype(dtype)
        self.options = options
        self.max_open = max_open
        self._open: OrderedDict[int, RasterSource] = OrderedDict()
        self._limits: np.ndarray | None = None

    @classmethod
    def open(cls, path: Path, options: RasterOptions, max_open: int = MAX_OPEN) -> "Mosaic":
        """The mosaic of a raster file, or of a folder's `.tif`/`.tiff`/`.vrt` tiles.

        Tiles a VRT of the folder reads are left out: the VRT composes them (the folder where
        `gdalbuildvrt` was run). DataError, one line naming the files, for tiles that do not
        share one grid, bands or pixel type, for a folder without tiles, and for tiles without
        georeference in a folder (nothing places them).
        """
        path = Path(path)
        if not path.is_dir():
            tile = _scan(path, options)
            height, width = tile.shape
            return cls([path], [[0, 0, height, width]], tile.georeference, tile.shape,
                       tile.dtype, options, max_open)
        tile_list = [_scan(p, options) for p in _tile_paths(path)]
        extents, georeference = _place(path, tile_list)
        return cls([t.path for t in tile_list], extents, georeference, georeference.shape,
                   tile_list[0].dtype, options, max_open)

    def __enter__(self) -> "Mosaic":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()

    def close(self) -> None:
        """Close the open tiles (a later read reopens them)."""
        while self._open:
            self._open.popitem()[1].close()

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_open": OrderedDict()}

    def _source(self, index: int) -> RasterSource:
        """Tile `index`, opened if needed, the least recently used closed beyond `max_open`."""
        source = self._open.get(index)
        if source is not None:
            self._open.move_to_end(index)
            return source
        while len(self._open) >= self.max_open:
            self._open.popitem(last=False)[1].close()
        source = self._open[index] = RasterSource(self.paths[index], self.options)
        return source

    def intersecting(self, row: int, col: int, height: int, width: int) -> np.ndarray:
        """Indexes, in file order, of the tiles that overlap the window (row, col, height, width):
        a vectorised test of every extent, microseconds for thousands of tiles."""
        top, left, bottom, right = self.extents.T
        hits = (top < row + height) & (bottom > row) & (left < col + width) & (right > col)
        return np.flatnonzero(hits)

    def stretch_limits(self) -> np.ndarray | None:
        """(3, 2) per-band (low, high) raw values mapped to 0 and 255, one set for the whole
        mosaic (None for 8-bit tiles): the rule of `data_loader.tiles.stretch_limits` over a
        decimated read of every tile, each sampled in proportion to its area, about
        `STRETCH_SAMPLE_PIXELS` in all (every pixel of a smaller mosaic, so that one raster gets
        the limits `RasterSource` gives it)."""
        if self.dtype == np.uint8:
            return None
        if self._limits is None:
            areas = (self.extents[:, 2] - self.extents[:, 0]) * (self.extents[:, 3] -
                                                                 self.extents[:, 1])
            share = min(1.0, tiles.STRETCH_SAMPLE_PIXELS / float(areas.sum()))
            values = []
            for index, area in enumerate(areas):
                raw, valid = self._source(index).sample(max(1, round(float(area) * share)))
                values.append(raw[valid])
            pixels = np.concatenate(values)[:, None, :]
            self._limits = tiles.stretch_limits(pixels, np.ones(pixels.shape[:2], dtype=bool))
        return self._limits

    def read(self, row: int, col: int, height: int, width: int) -> RasterImage:
        """(h, w, 3) uint8 RGB, (h, w) validity and the georeference of the window (row, col,
        height, width) clipped to the mosaic; pixels that no tile covers are invalid and 0."""
        row, col, height, width = int(row), int(col), int(height), int(width)
        height, width = min(height, self.shape[0] - row), min(width, self.shape[1] - col)
        if row < 0 or col < 0 or height <= 0 or width <= 0:
            raise ValueError(f"window {(row, col, height, width)} lies outside the {self.shape} "
                             "mosaic")
        if height * width > self.options.max_pixels:
            raise ValueError(f"window of {height}x{width} px is more than the "
                             f"{self.options.max_pixels} read at once (max_pixels)")
        image = np.zeros((height, width, 3), dtype=np.uint8)
        valid = np.zeros((height, width), dtype=bool)
        limits = self.stretch_limits()
        for index in self.intersecting(row, col, height, width):
            tile_top, tile_left, tile_bottom, tile_right = (int(v) for v in self.extents[index])
            top, left = max(row, tile_top), max(col, tile_left)
            bottom, right = min(row + height, tile_bottom), min(col + width, tile_right)
            tile = self._source(index).read(
                (top - tile_top, left - tile_left, bottom - top, right - left), limits)
            region = (slice(top - row, bottom - row), slice(left - col, right - col))
            # A tile writes where it is valid, and where no earlier tile is: the invalid pixels of
            # a single 8-bit raster keep the values `RasterSource` reads there.
            write = tile.valid | ~valid[region]
            image[region][write] = tile.image[write]
            valid[region] |= tile.valid
        georeference = self.georeference
        if georeference is not None:
            georeference = Georeference(georeference.crs, georeference.transform
                                        @ Affine.translation(col, row), (height, width))
        return RasterImage(image, valid, georeference)


def _names(paths: list[Path]) -> str:
    shown = ", ".join(p.name for p in paths[:3])
    return shown if len(paths) <= 3 else f"{shown}, ... ({len(paths)} files)"


def _tile_paths(folder: Path) -> list[Path]:
    """The folder's tile files in sorted order, less those that one of its VRTs reads."""
    candidates = sorted(p for p in folder.iterdir()
                        if p.is_file() and p.suffix.lower() in TILE_SUFFIXES)
    if not candidates:
        images = sorted(p for p in folder.iterdir()
                        if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        hint = (f"; {_names(images)} have no place on a map (open one image as a file)"
                if images else "")
        raise DataError(f"{folder}: no raster tiles ({', '.join(TILE_SUFFIXES)}){hint}")
    composed: set[Path] = set()
    for path in candidates:
        if path.suffix.lower() == ".vrt":
            with open_raster(path) as dataset:
                composed.update(Path(name).resolve() for name in dataset.files[1:])
    return [p for p in candidates if p.resolve() not in composed]


def _crs_name(crs: pyproj.CRS) -> str:
    authority = crs.to_authority()
    return ":".join(authority) if authority else crs.name


def _place(folder: Path, tile_list: list[_Tile]) -> tuple[np.ndarray, Georeference]:
    """(N, 4) extents [top, left, bottom, right) of the tiles on the grid of the first one, and
    the georeference of their union; DataError when they do not share one grid."""
    unplaced = [t.path for t in tile_list if t.georeference is None]
    if unplaced:
        raise DataError(f"{folder}: {_names(unplaced)} without georeference (CRS and transform): "
                        "tiles of a folder cannot be placed without it")
    first = tile_list[0]
    reference = first.georeference
    a, _, c, _, e, f = reference.transform[:6]
    offsets = []
    for tile in tile_list:
        names = f"{folder}: {first.path.name}", tile.path.name
        if tile.count != first.count:
            raise DataError(f"{names[0]} has {first.count} bands, {names[1]} {tile.count}: the "
                            "tiles of a mosaic need the same bands")
        if tile.bands != first.bands:
            raise DataError(f"{names[0]} reads bands {list(first.bands)} as RGB, {names[1]} "
                            f"{list(tile.bands)}: the tiles of a mosaic need the same bands")
        if tile.dtype != first.dtype:
            raise DataError(f"{names[0]} is {first.dtype}, {names[1]} {tile.dtype}: the tiles of "
                            "a mosaic need one pixel type (one stretch)")
        crs = tile.georeference.crs
        if not crs.equals(reference.crs, ignore_axis_order=True):
            names = _crs_name(reference.crs), _crs_name(crs)
            if names[0] == names[1]:
                names = f"{names[0]} (one definition)", f"{names[1]} (another)"
            raise DataError(f"{folder}: {first.path.name} is {names[0]}, {tile.path.name} is "
                            f"{names[1]}: reproject to one CRS first (gdalwarp)")
        ta, tb, tc, td, te, tf = tile.georeference.transform[:6]
        if tb != 0 or td != 0:
            raise DataError(f"{folder}: {tile.path.name} has a rotated grid: warp the tiles "
                            "north-up first (gdalwarp)")
        if (abs(ta - a) > PIXEL_SIZE_TOLERANCE * abs(a)
                or abs(te - e) > PIXEL_SIZE_TOLERANCE * abs(e)):
            raise DataError(f"{folder}: {first.path.name} has pixels of {a:.9g} x {-e:.9g}, "
                            f"{tile.path.name} {ta:.9g} x {-te:.9g} (CRS units): resample to one "
                            "pixel size first (gdalwarp -tr)")
        x, y = (tc - c) / a, (tf - f) / e
        if max(abs(x - round(x)), abs(y - round(y))) > GRID_TOLERANCE:
            raise DataError(f"{folder}: {tile.path.name} lies {x - round(x):+.3f}, "
                            f"{y - round(y):+.3f} px (x, y) off the pixel grid of "
                            f"{first.path.name}: align the tiles to one grid first "
                            "(gdalwarp -tap)")
        offsets.append((round(y), round(x)))
    origin = np.array(offsets, dtype=np.int64)
    sizes = np.array([t.shape for t in tile_list], dtype=np.int64)
    top_left = origin.min(axis=0)
    extents = np.concatenate([origin - top_left, origin - top_left + sizes], axis=1)
    shape = tuple(int(v) for v in extents[:, 2:].max(axis=0))
    transform = reference.transform @ Affine.translation(int(top_left[1]), int(top_left[0]))
    return extents, Georeference(reference.crs, transform, shape)
