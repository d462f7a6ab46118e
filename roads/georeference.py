"""Where a raster lies on Earth: its CRS and affine transform, pixel <-> lon/lat, ground sizes.

Pixel geometry is float (x, y) = (column, row), with (0, 0) the upper-left corner of the raster
(GDAL's pixel-corner convention). Masks take integer (x, y) as pixel centres, the convention of
the skeleton pixel indices that road graphs are built from: a half-pixel shift, far below a
road's width, kept so that masks drawn before and after the move to rasterio are the same.

Lon/lat is RFC 7946 order (longitude, latitude) on WGS 84 (OGC:CRS84). Every CRS transformation
uses pyproj with `always_xy`, so positions are (easting, northing) or (lon, lat) whatever axis
order the CRS's definition declares, which is how GeoJSON and GDAL store them.

GeoTIFF writing lives here too: the 8-bit images of the preparation tool and the toy generator
(`write_geotiff`), and the Cloud-Optimized GeoTIFFs of predictions (`write_cog`).
"""
import functools
import math
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyproj
import rasterio
import rasterio.shutil
from affine import Affine
from rasterio.errors import NotGeoreferencedWarning, RasterioError
from rasterio.io import MemoryFile

from utils.errors import DataError

# GDAL caches decompressed blocks up to 5 % of the RAM by default (1.2 GB on a 24 GB machine),
# and a scene read window by window fills it: 0.6 GB more at 10000 x 10000 px. Windows are read
# row by row and reuse only the blocks of the row before, so 128 MB costs no extra decompression
# for scenes up to about 40000 px wide. Set before GDAL's first read; a user's value wins.
os.environ.setdefault("GDAL_CACHEMAX", "128")

LONLAT = pyproj.CRS.from_user_input("OGC:CRS84")
"""RFC 7946 GeoJSON coordinates: WGS 84 longitude, latitude."""

SKEW_TOLERANCE = 1e-6
"""Largest |cos| of the angle between the pixel axes on the map accepted as perpendicular."""


@functools.lru_cache(maxsize=64)
def _transformer(source: pyproj.CRS, target: pyproj.CRS) -> pyproj.Transformer:
    return pyproj.Transformer.from_crs(source, target, always_xy=True)


@dataclass(frozen=True)
class Georeference:
    """A raster's CRS, its affine transform (pixel corner (x, y) -> map (X, Y)) and its (H, W).

    The transform may be rotated (pixel axes perpendicular on the map); a skewed one is refused
    when the Georeference is made, because road widths and metric sizes assume square angles.
    """

    crs: pyproj.CRS
    transform: Affine
    shape: tuple[int, int]

    def __post_init__(self):
        a, b, _, d, e, _ = self.transform[:6]
        if not (math.isfinite(a * e - b * d) and a * e - b * d != 0):
            raise ValueError(f"transform: not invertible, got {tuple(self.transform[:6])}")
        cosine = (a * b + d * e) / (math.hypot(a, d) * math.hypot(b, e))
        if abs(cosine) > SKEW_TOLERANCE:
            angle = math.degrees(math.acos(cosine))
            raise ValueError(f"transform: skewed pixel axes ({angle:.4f} deg apart) are not "
                             "supported; warp the raster to a north-up grid first (gdalwarp)")

    @classmethod
    def north_up_lonlat(cls, lon0: float, lat0: float, dx: float, dy: float,
                        shape: tuple[int, int]) -> "Georeference":
        """EPSG:4326 grid with upper-left corner (lon0, lat0) and pixel sizes dx, dy > 0 degrees."""
        return cls(pyproj.CRS.from_epsg(4326), Affine(dx, 0.0, lon0, 0.0, -dy, lat0),
                   (int(shape[0]), int(shape[1])))

    def to_pixel(self, coords: np.ndarray, crs: pyproj.CRS | None = None) -> np.ndarray:
        """(N, 2) positions in `crs` (default RFC 7946 lon/lat) -> (N, 2) float pixel (x, y)."""
        coords = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
        source = LONLAT if crs is None else crs
        if source != self.crs:
            coords = np.column_stack(_transformer(source, self.crs).transform(
                coords[:, 0], coords[:, 1]))
        a, b, c, d, e, f = self.transform[:6]
        if b == 0 and d == 0:
            # North-up: divide instead of multiplying by the inverse, which cancels digits when the
            # origin is far from 0 (lon -115 over 2.7e-6 deg pixels).
            return np.column_stack(((coords[:, 0] - c) / a, (coords[:, 1] - f) / e))
        inverse = ~self.transform
        return np.column_stack(inverse @ (coords[:, 0], coords[:, 1]))

    def to_map(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) float pixel (x, y) -> (N, 2) map coordinates in the raster's CRS."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return np.column_stack(self.transform @ (xy[:, 0], xy[:, 1]))

    def to_lonlat(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) float pixel (x, y) -> (N, 2) RFC 7946 lon/lat."""
        world = self.to_map(xy)
        if self.crs == LONLAT:
            return world
        return np.column_stack(_transformer(self.crs, LONLAT).transform(world[:, 0], world[:, 1]))

    def pixel_size_m(self) -> tuple[float, float]:
        """(sx, sy): ground metres of one pixel step along x (columns) and y (rows), measured on the
        CRS's ellipsoid at the raster's centre.

        Geodesic lengths, not map units, so that every CRS gives ground sizes: a geographic grid
        (2.7e-6 deg in Las Vegas: 0.243 m east-west, 0.300 m north-south), UTM (the transform's
        sizes within its 0.04 % scale error) and Web Mercator (whose map metres are 1/cos(lat)
        times too long).
        """
        height, width = self.shape
        centre = np.array([width / 2.0, height / 2.0])
        points = self.to_lonlat(np.array([centre - [0.5, 0.0], centre + [0.5, 0.0],
                                          centre - [0.0, 0.5], centre + [0.0, 0.5]]))
        geod = (self.crs.get_geod() if self.crs.is_geographic else None) or pyproj.Geod(
            ellps="WGS84")
        _, _, lengths = geod.inv(points[[0, 2], 0], points[[0, 2], 1],
                                 points[[1, 3], 0], points[[1, 3], 1])
        return float(lengths[0]), float(lengths[1])

    def contains(self, xy: np.ndarray) -> np.ndarray:
        """(N,) bool: which (N, 2) pixel positions lie inside the raster (edges included)."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        height, width = self.shape
        return (xy[:, 0] >= 0) & (xy[:, 0] <= width) & (xy[:, 1] >= 0) & (xy[:, 1] <= height)


def georeference_of(dataset, path: Path) -> Georeference | None:
    """The Georeference of an open rasterio dataset; None without a CRS or a geotransform
    (PNG, JPEG, plain TIFF, rasters placed by GCPs or RPCs only). DataError for a skewed grid."""
    if dataset.crs is None or dataset.transform.is_identity:
        return None
    try:
        crs = pyproj.CRS.from_user_input(dataset.crs.to_wkt())
        return Georeference(crs, dataset.transform, (dataset.height, dataset.width))
    except (ValueError, pyproj.exceptions.CRSError) as error:
        raise DataError(f"{path}: unusable georeference ({error})") from None


def read_georeference(path: Path) -> Georeference | None:
    """A raster file's Georeference, from its header; None when it has none (see
    `georeference_of`). Raises DataError naming the file when it cannot be opened."""
    path = Path(path)
    with open_raster(path) as dataset:
        return georeference_of(dataset, path)


def open_raster(path: Path):
    """An open rasterio dataset (a context manager); DataError naming the file when it is
    missing or GDAL cannot read it. The one place the repo opens rasters."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: file not found")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            return rasterio.open(path)
    except RasterioError as error:
        raise DataError(f"{path}: unreadable or truncated image ({gdal_message(error)})") from None


def gdal_message(error: Exception) -> str:
    """GDAL's message on one line, at most 200 characters."""
    return " ".join(str(error).split())[:200]


def _profile(array: np.ndarray, georeference: Georeference | None) -> dict:
    height, width = array.shape[-2:]
    profile = {"driver": "GTiff", "height": height, "width": width,
               "count": 1 if array.ndim == 2 else array.shape[0], "dtype": array.dtype.name}
    if georeference is not None:
        if georeference.shape != (height, width):
            raise ValueError(f"georeference is for {georeference.shape}, "
                             f"the array is {(height, width)}")
        profile |= {"crs": rasterio.crs.CRS.from_wkt(georeference.crs.to_wkt()),
                    "transform": georeference.transform}
    return profile


def write_geotiff(path: Path, image: np.ndarray, georeference: Georeference,
                  valid: np.ndarray | None = None, level: int = 6) -> None:
    """Write (H, W, 3) uint8 RGB as a deflate-compressed GeoTIFF with its CRS and transform.

    `valid` (H, W) bool, when some pixel is invalid, is stored as the GeoTIFF's internal mask
    band, which GDAL readers (QGIS, `data_loader.tiles`) show as no-data. 256 px tiles: GDAL's
    default strips of two rows compress 1300 px toy tiles 40 % worse. `level` is zlib's: 9
    makes them 10 % smaller than 6 but takes ten times longer.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8, got {image.shape} {image.dtype}")
    bands = np.ascontiguousarray(image.transpose(2, 0, 1))
    profile = _profile(bands, georeference) | {
        "compress": "deflate", "predictor": 2, "zlevel": level, "interleave": "pixel",
        "photometric": "rgb", "tiled": True, "blockxsize": 256, "blockysize": 256}
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True):
        with rasterio.open(Path(path), "w", **profile) as dataset:
            dataset.write(bands)
            if valid is not None and not np.all(valid):
                dataset.write_mask(np.where(valid, 255, 0).astype(np.uint8))


def write_cog(path: Path, array: np.ndarray, georeference: Georeference, *,
              nodata: float | None = None, colormap: dict[int, tuple[int, int, int]] | None = None,
              resampling: str = "nearest") -> None:
    """Write a Cloud-Optimized GeoTIFF (deflate, 512 px tiles, overviews) on the raster's grid.

    array: (H, W) or (B, H, W) uint8 / float32 (masks 0/255, probabilities, class ids).
    nodata: value marking pixels without data (e.g. 255 outside the valid area of a class map).
    colormap: {value: (r, g, b)} palette of a single uint8 band (connectivity classes), shown by
        QGIS as the classes' colors. resampling: how overviews are made; "nearest" keeps class ids
        and 0/255 masks exact, "average" suits probabilities.
    """
    array = np.ascontiguousarray(array)
    if array.ndim not in (2, 3):
        raise ValueError(f"expected (H, W) or (B, H, W), got shape {array.shape}")
    profile = _profile(array, georeference) | {"nodata": nodata}
    with MemoryFile() as memory:
        with memory.open(**profile) as dataset:
            if colormap is not None:  # before the pixels: GDAL cannot change it after
                dataset.write_colormap(1, {value: (*rgb, 255) for value, rgb in colormap.items()})
            dataset.write(array if array.ndim == 3 else array[None])
        with memory.open() as dataset:
            rasterio.shutil.copy(dataset, Path(path), driver="COG", compress="deflate",
                                 blocksize=512, overview_resampling=resampling)
