"""Road labels: SpaceNet GeoJSON reading and writing, road widths and road-mask rendering.

Pixel geometry is float (x, y) = (column, row), placed on a raster by `roads.georeference`.
Masks take integer (x, y) as pixel centres, the convention of the skeleton pixel indices that road
graphs are built from (a half-pixel shift against GDAL's pixel-corner convention, far below a
road's width).

`render_tile_mask` is the single place where road masks are made from labels: the synthetic toy
generator and the SpaceNet 3 preparation both call it. Road widths are in metres and pixels need
not be square: a road w m wide is w / sx px across along x and w / sy px along y.
"""
import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyproj

from roads.georeference import LONLAT, Georeference
from utils.errors import DataError

OUTSIDE_TOLERANCE_PX = 1.0
"""Label positions this far outside the raster still count as on it (SpaceNet's lines end on the
tile's edge, a rounding away from either side)."""

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


CRS84_MEMBER = {"type": "name", "properties": {"name": "urn:ogc:def:crs:OGC:1.3:CRS84"}}
"""The `crs` member of the GeoJSON files the repo writes: RFC 7946 lon/lat, said explicitly for
readers that assume another CRS without it."""


@dataclass
class RoadLine:
    """One road polyline: (N, 2) float positions and its GeoJSON properties.

    `crs` is the CRS the file declares for its positions (a pre-RFC 7946 `crs` member such as
    "urn:ogc:def:crs:EPSG::32611"); None means RFC 7946 lon/lat.
    """

    coords: np.ndarray
    properties: dict = field(default_factory=dict)
    crs: pyproj.CRS | None = None


def _declared_crs(path: Path, collection: dict) -> pyproj.CRS | None:
    """The CRS named by a FeatureCollection's `crs` member; None for none or lon/lat (CRS84, and
    EPSG:4326, which GeoJSON writers store in lon/lat order too)."""
    member = collection.get("crs")
    if member is None:
        return None
    properties = member.get("properties") if isinstance(member, dict) else None
    name = properties.get("name") if isinstance(properties, dict) else None
    if not isinstance(name, str) or member.get("type") != "name":
        raise DataError(f"{path}: unsupported GeoJSON 'crs' member {json.dumps(member)[:80]} "
                        "(expected {\"type\": \"name\", \"properties\": {\"name\": ...}})")
    try:
        crs = pyproj.CRS.from_user_input(name)
    except pyproj.exceptions.CRSError:
        raise DataError(f"{path}: unknown CRS '{name}' in the GeoJSON 'crs' member") from None
    return None if crs.equals(LONLAT, ignore_axis_order=True) else crs


def read_feature_collection(path: Path) -> dict:
    """A GeoJSON FeatureCollection as parsed JSON, with a `features` list; DataError naming the
    file when it is unreadable, not JSON, nested too deeply or no FeatureCollection."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8") as file:
            collection = json.load(file)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise DataError(f"{path}: invalid GeoJSON ({error})") from None
    except RecursionError:
        raise DataError(f"{path}: invalid GeoJSON (nested too deeply)") from None
    if not isinstance(collection, dict) or not isinstance(collection.get("features"), list):
        raise DataError(f"{path}: invalid GeoJSON (not a FeatureCollection with a 'features' list)")
    return collection


def read_road_lines(path: Path) -> list[RoadLine]:
    """Road polylines of a GeoJSON FeatureCollection, one RoadLine per LineString part.

    MultiLineStrings give one RoadLine per part, all with the feature's properties. Features with a
    null or non-line geometry and parts with fewer than two positions are skipped; a third (z)
    coordinate is dropped. Positions are RFC 7946 lon/lat unless the file declares a `crs`.
    Raises DataError naming the file for unreadable or malformed GeoJSON or an unknown CRS.
    """
    path = Path(path)
    collection = read_feature_collection(path)
    crs = _declared_crs(path, collection)
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
        properties = feature.get("properties")
        if properties is None:
            properties = {}
        elif not isinstance(properties, dict):
            raise DataError(f"{path}: invalid GeoJSON (feature {index}: 'properties' must be an "
                            f"object or null, got {json.dumps(properties)[:40]})")
        try:
            arrays = [_line_coordinates(part) for part in parts]
        except (TypeError, ValueError, OverflowError) as error:
            raise DataError(f"{path}: invalid GeoJSON (feature {index}: {error})") from None
        lines.extend(RoadLine(coords, dict(properties), crs) for coords in arrays
                     if len(coords) >= 2)
    return lines


def project_lines(lines: list[RoadLine], georeference: Georeference,
                  label_path: Path | None = None) -> list[np.ndarray]:
    """(N_i, 2) float pixel (x, y) polylines of `lines` on the raster of `georeference`.

    With `label_path`, positions more than OUTSIDE_TOLERANCE_PX outside the raster are counted and
    reported in one warning naming the file (labels of another tile, or of a wrong CRS).
    """
    projected = [georeference.to_pixel(line.coords, line.crs) for line in lines]
    if label_path is not None and projected:
        points = np.concatenate(projected)
        height, width = georeference.shape
        margin = OUTSIDE_TOLERANCE_PX
        outside = ~((points[:, 0] >= -margin) & (points[:, 0] <= width + margin)
                    & (points[:, 1] >= -margin) & (points[:, 1] <= height + margin))
        if outside.any():
            warnings.warn(f"{label_path}: {int(outside.sum())} of {len(points)} road positions lie "
                          f"outside the {height}x{width} raster (HxW)", stacklevel=2)
    return projected


def _line_coordinates(positions: list) -> np.ndarray:
    """GeoJSON positions [[lon, lat(, z)], ...] -> (N, 2) float; ValueError (TypeError,
    OverflowError for an integer beyond float's range) when malformed."""
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
                for line, props in zip(lines, properties, strict=False)]
    collection = {"type": "FeatureCollection",
                  "crs": CRS84_MEMBER,
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


def render_road_mask(lines_xy: list[np.ndarray], widths: list[float], shape: tuple[int, int],
                     pixel_size: tuple[float, float] = (1.0, 1.0)) -> np.ndarray:
    """Rasterize polylines as roads of the given full widths, with round caps and joins.

    A pixel is road when its centre (integer x, y) lies within width / 2 of the polyline, distances
    measured on the ground: pixel steps are `pixel_size` = (sx, sy) long, in the units of `widths`
    (pixels by default; metres with `pixel_size_m`). Exact, without anti-aliasing, and the same
    rule for every segment and vertex. (OpenCV's thick lines and sub-pixel polygons are drawn to
    about half a pixel, which would make a mask depend on how a road is split into lines.) Each
    segment is measured only over its bounding box.

    lines_xy: (N_i, 2) float pixel (x, y) polylines; widths: one full width per line, at least
    one pixel along both axes. Returns (H, W) uint8 mask, 0 or 255.
    """
    if len(lines_xy) != len(widths):
        raise ValueError(f"{len(lines_xy)} lines but {len(widths)} widths")
    sx, sy = (float(v) for v in pixel_size)
    if not (sx > 0 and sy > 0):
        raise ValueError(f"pixel_size: must be positive, got {pixel_size}")
    height, width = shape[:2]
    road = np.zeros((height, width), dtype=bool)
    for line, line_width in zip(lines_xy, widths, strict=True):
        points = np.asarray(line, dtype=np.float64).reshape(-1, 2)
        radius = max(float(line_width), sx, sy) / 2.0
        reach = np.array([radius / sx, radius / sy])
        segments = (zip(points[:-1], points[1:], strict=True) if len(points) > 1
                    else [(points[0], points[0])])
        for start, end in segments:
            x0, y0 = np.maximum(np.floor(np.minimum(start, end) - reach), 0).astype(int)
            x1, y1 = np.minimum(np.ceil(np.maximum(start, end) + reach),
                                [width - 1, height - 1]).astype(int)
            if x0 > x1 or y0 > y1:
                continue
            dx = (np.arange(x0, x1 + 1)[None, :] - start[0]) * sx
            dy = (np.arange(y0, y1 + 1)[:, None] - start[1]) * sy
            direction = (end - start) * [sx, sy]
            length2 = float(direction @ direction)
            along = (np.clip((dx * direction[0] + dy * direction[1]) / length2, 0.0, 1.0)
                     if length2 > 0 else 0.0)
            distance2 = (dx - along * direction[0]) ** 2 + (dy - along * direction[1]) ** 2
            road[y0:y1 + 1, x0:x1 + 1] |= distance2 <= radius * radius
    return road.astype(np.uint8) * 255


def render_tile_mask(lines: list[RoadLine], georeference: Georeference,
                     pixel_size_m: tuple[float, float] | None = None,
                     label_path: Path | None = None) -> np.ndarray:
    """(H, W) uint8 0/255 road mask of a raster (H, W = georeference.shape) from its road lines,
    widths in metres by road_type.

    pixel_size_m: ground size (sx, sy) of a pixel; by default the raster's own
    (`Georeference.pixel_size_m`). label_path: the labels' file, named in the warning about
    positions outside the raster (`project_lines`).
    """
    sx, sy = georeference.pixel_size_m() if pixel_size_m is None else pixel_size_m
    # Measured in pixels along x, so that square pixels give the masks of pixel-unit widths bit
    # for bit (the shipped toy dataset's).
    return render_road_mask(project_lines(lines, georeference, label_path),
                            [road_width_m(line.properties) / sx for line in lines],
                            georeference.shape, (1.0, sy / sx))
