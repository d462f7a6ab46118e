"""Georeferenced tiles and road labels: GeoTIFF tags, SpaceNet GeoJSON, road-mask rendering.

Pixel geometry is float (x, y) = (column, row). A GeoTIFF's upper-left corner is pixel (0, 0):
col = (lon - lon0) / dx, row = (lat0 - lat) / dy, the SpaceNet convention. Masks take integer
(x, y) as pixel centres, the convention of the skeleton pixel indices that road graphs are built
from (a half-pixel shift against GDAL's pixel-corner convention, far below a road's width).

`render_tile_mask` is the single place where road masks are made from labels: the synthetic toy
generator and the SpaceNet 3 preparation both call it.
"""
import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tifffile

from utils.errors import DataError

EARTH_RADIUS_M = 6_371_008.8
"""Mean Earth radius: one degree of latitude is 111.2 km, so SpaceNet's 2.7e-6 deg is 0.30 m."""

MODEL_PIXEL_SCALE_TAG = 33550
MODEL_TIEPOINT_TAG = 33922
GEO_KEY_DIRECTORY_TAG = 34735

# GeoKeyDirectory for WGS84 lon/lat (EPSG:4326), raster pixels as areas:
# header (version 1, revision 1.0, 3 keys), then (key, location 0 = inline, count 1, value).
WGS84_GEO_KEYS = (1, 1, 0, 3,
                  1024, 0, 1, 2,      # GTModelTypeGeoKey = ModelTypeGeographic
                  1025, 0, 1, 1,      # GTRasterTypeGeoKey = RasterPixelIsArea
                  2048, 0, 1, 4326)   # GeographicTypeGeoKey = EPSG:4326

ROAD_WIDTH_M = {
    1: 13.0,   # motorway
    2: 13.0,   # primary
    3: 10.5,   # secondary
    4: 8.5,    # tertiary
    5: 6.6,    # residential
    6: 6.6,    # unclassified: in SpaceNet Las Vegas these are mostly residential-like streets
    7: 4.5,    # cart track
}
"""Road width in metres by SpaceNet `road_type` (chosen).

Anchored on the authors' masks at 0.3 m/px: type 5 is about 20-24 px (6.6 m = 22 px) and types 1
and 2 about 40-46 px (13 m = 43 px). Types 3 and 4 are interpolated between them, type 6 is drawn
like type 5, type 7 (unpaved tracks) narrower.
"""

DEFAULT_ROAD_WIDTH_M = ROAD_WIDTH_M[5]
"""Width for a missing or unreadable `road_type`: residential, SpaceNet's commonest class."""


@dataclass(frozen=True)
class GeoTransform:
    """North-up lon/lat georeference: upper-left corner and positive pixel sizes, in degrees."""

    lon0: float
    lat0: float
    dx: float
    dy: float

    def to_pixel(self, lonlat: np.ndarray) -> np.ndarray:
        """(N, 2) lon/lat -> (N, 2) float pixel (x, y)."""
        lonlat = np.asarray(lonlat, dtype=np.float64).reshape(-1, 2)
        return np.column_stack(((lonlat[:, 0] - self.lon0) / self.dx,
                                (self.lat0 - lonlat[:, 1]) / self.dy))

    def to_lonlat(self, xy: np.ndarray) -> np.ndarray:
        """(N, 2) float pixel (x, y) -> (N, 2) lon/lat."""
        xy = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
        return np.column_stack((self.lon0 + xy[:, 0] * self.dx, self.lat0 - xy[:, 1] * self.dy))

    def metres_per_pixel(self) -> float:
        """Ground size of a pixel north-south (from dy), used to turn widths in metres into pixels.

        East-west pixels are narrower by cos(latitude) (0.24 m in Las Vegas); road widths use the
        north-south size for both directions, as a single round brush must.
        """
        return math.radians(self.dy) * EARTH_RADIUS_M


def read_geotransform(path: Path) -> GeoTransform | None:
    """Georeference from a GeoTIFF's ModelTiepoint and ModelPixelScale tags.

    Returns None for a file that is not a TIFF (PNG, JPEG) or a TIFF without both tags.
    Raises DataError for an unreadable TIFF or a non-positive pixel scale.
    """
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        return None
    try:
        with tifffile.TiffFile(path) as tif:
            tags = tif.pages.first.tags
            scale = tags.get(MODEL_PIXEL_SCALE_TAG)
            tiepoint = tags.get(MODEL_TIEPOINT_TAG)
            if scale is None or tiepoint is None:
                return None
            scale, tiepoint = tuple(scale.value), tuple(tiepoint.value)
    except (tifffile.TiffFileError, OSError, ValueError, IndexError) as error:
        raise DataError(f"{path}: unreadable TIFF ({error})") from None
    if len(scale) < 2 or len(tiepoint) < 6:
        raise DataError(f"{path}: malformed ModelPixelScale/ModelTiepoint tags")
    dx, dy = float(scale[0]), float(scale[1])
    if not (dx > 0 and dy > 0):
        raise DataError(f"{path}: GeoTIFF pixel scale must be positive, got {dx}, {dy}")
    # The tiepoint maps raster point (i, j) to model point (x, y); move it to the corner (0, 0).
    i, j, _, lon, lat, _ = (float(v) for v in tiepoint[:6])
    return GeoTransform(lon0=lon - i * dx, lat0=lat + j * dy, dx=dx, dy=dy)


def write_geotiff(path: Path, image: np.ndarray, transform: GeoTransform, level: int = 6) -> None:
    """Write (H, W, 3) uint8 RGB as a deflate-compressed GeoTIFF in EPSG:4326.

    Deflate with the horizontal-differencing predictor is chosen because tifffile encodes and
    decodes it with the standard library alone (no `imagecodecs`) and OpenCV and GDAL read it.
    `level` is zlib's: 9 makes 1300 px tiles about 9 % smaller than 6 but takes ten times longer.
    """
    if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(f"expected (H, W, 3) uint8, got {image.shape} {image.dtype}")
    extratags = [
        (MODEL_PIXEL_SCALE_TAG, "d", 3, (transform.dx, transform.dy, 0.0), True),
        (MODEL_TIEPOINT_TAG, "d", 6, (0.0, 0.0, 0.0, transform.lon0, transform.lat0, 0.0), True),
        (GEO_KEY_DIRECTORY_TAG, "H", len(WGS84_GEO_KEYS), WGS84_GEO_KEYS, True),
    ]
    tifffile.imwrite(Path(path), image, photometric="rgb", compression="zlib",
                     compressionargs={"level": level}, predictor=True, metadata=None,
                     extratags=extratags)


@dataclass
class RoadLine:
    """One road polyline: (N, 2) float lon/lat (or pixel x, y) and its GeoJSON properties."""

    coords: np.ndarray
    properties: dict = field(default_factory=dict)


def read_road_lines(path: Path) -> list[RoadLine]:
    """Road polylines of a GeoJSON FeatureCollection, one RoadLine per LineString part.

    MultiLineStrings give one RoadLine per part, all with the feature's properties. Features with a
    null or non-line geometry and parts with fewer than two positions are skipped; a third (z)
    coordinate is dropped. Raises DataError naming the file for unreadable or malformed GeoJSON.
    """
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as file:
            collection = json.load(file)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: invalid GeoJSON ({error})") from None
    if not isinstance(collection, dict) or not isinstance(collection.get("features"), list):
        raise DataError(f"{path}: invalid GeoJSON (not a FeatureCollection with a 'features' list)")
    lines = []
    for index, feature in enumerate(collection["features"]):
        geometry = feature.get("geometry") if isinstance(feature, dict) else None
        if not isinstance(geometry, dict):
            continue
        if geometry.get("type") == "LineString":
            parts = [geometry.get("coordinates")]
        elif geometry.get("type") == "MultiLineString":
            parts = geometry.get("coordinates")
        else:
            continue
        properties = feature.get("properties") or {}
        try:
            arrays = [_line_coordinates(part) for part in parts]
        except (TypeError, ValueError) as error:
            raise DataError(f"{path}: invalid GeoJSON (feature {index}: {error})") from None
        lines.extend(RoadLine(coords, dict(properties)) for coords in arrays if len(coords) >= 2)
    return lines


def _line_coordinates(positions: list) -> np.ndarray:
    """GeoJSON positions [[lon, lat(, z)], ...] -> (N, 2) float; ValueError when malformed."""
    if not isinstance(positions, list) or not all(isinstance(p, list) for p in positions):
        raise ValueError("positions must be a list of lists")
    if not positions:
        return np.zeros((0, 2))
    if min(len(p) for p in positions) < 2:
        raise ValueError("a position needs two numbers")
    coords = np.array([p[:2] for p in positions], dtype=np.float64)
    if not np.isfinite(coords).all():
        raise ValueError("non-finite coordinate")
    return coords


def write_road_lines(path: Path, lines: list[np.ndarray],
                     properties: list[dict] | None = None) -> None:
    """Write (N, 2) lon/lat polylines as a SpaceNet-style FeatureCollection of LineStrings."""
    if properties is None:
        properties = [{} for _ in lines]
    if len(properties) != len(lines):
        raise ValueError(f"{len(lines)} lines but {len(properties)} property dicts")
    features = [{"type": "Feature", "properties": props,
                 "geometry": {"type": "LineString",
                              "coordinates": np.asarray(line, dtype=np.float64).tolist()}}
                for line, props in zip(lines, properties)]
    collection = {"type": "FeatureCollection",
                  "crs": {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}},
                  "features": features}
    with open(path, "w", encoding="utf-8") as file:
        json.dump(collection, file)


def road_width_m(properties: dict) -> float:
    """Road width in metres from the string-typed `road_type` (see ROAD_WIDTH_M).

    Missing, unparsable or unknown types get DEFAULT_ROAD_WIDTH_M.
    """
    try:
        road_type = int(float(str(properties.get("road_type")).strip()))
    except (TypeError, ValueError, OverflowError):
        return DEFAULT_ROAD_WIDTH_M
    return ROAD_WIDTH_M.get(road_type, DEFAULT_ROAD_WIDTH_M)


def render_road_mask(lines_xy: list[np.ndarray], widths_px: list[float],
                     shape: tuple[int, int]) -> np.ndarray:
    """Rasterise polylines as roads of the given full widths, with round caps and joins.

    A pixel is road when its centre (integer x, y) lies within width / 2 of the polyline: exact,
    without anti-aliasing, and the same rule for every segment and vertex. (OpenCV's thick lines
    and sub-pixel polygons are drawn to about half a pixel, which would make a mask depend on how
    a road is split into lines.) Each segment is measured only over its bounding box.

    lines_xy: (N_i, 2) float pixel (x, y) polylines; widths_px: one full width per line, at least 1.
    Returns (H, W) uint8 mask, 0 or 255.
    """
    if len(lines_xy) != len(widths_px):
        raise ValueError(f"{len(lines_xy)} lines but {len(widths_px)} widths")
    height, width = shape[:2]
    road = np.zeros((height, width), dtype=bool)
    for line, line_width in zip(lines_xy, widths_px):
        points = np.asarray(line, dtype=np.float64).reshape(-1, 2)
        radius = max(float(line_width), 1.0) / 2.0
        segments = zip(points[:-1], points[1:]) if len(points) > 1 else [(points[0], points[0])]
        for start, end in segments:
            x0, y0 = np.maximum(np.floor(np.minimum(start, end) - radius), 0).astype(int)
            x1, y1 = np.minimum(np.ceil(np.maximum(start, end) + radius),
                                [width - 1, height - 1]).astype(int)
            if x0 > x1 or y0 > y1:
                continue
            dx = np.arange(x0, x1 + 1)[None, :] - start[0]
            dy = np.arange(y0, y1 + 1)[:, None] - start[1]
            direction = end - start
            length2 = float(direction @ direction)
            along = (np.clip((dx * direction[0] + dy * direction[1]) / length2, 0.0, 1.0)
                     if length2 > 0 else 0.0)
            distance2 = (dx - along * direction[0]) ** 2 + (dy - along * direction[1]) ** 2
            road[y0:y1 + 1, x0:x1 + 1] |= distance2 <= radius * radius
    return road.astype(np.uint8) * 255


def render_tile_mask(lines: list[RoadLine], transform: GeoTransform,
                     shape: tuple[int, int]) -> np.ndarray:
    """(H, W) uint8 0/255 road mask of a tile from its lon/lat road lines, widths by road_type."""
    metres_per_pixel = transform.metres_per_pixel()
    return render_road_mask([transform.to_pixel(line.coords) for line in lines],
                            [road_width_m(line.properties) / metres_per_pixel for line in lines],
                            shape)
