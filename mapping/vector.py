"""Road networks as files a GIS opens directly, written block by block.

A city's network goes to disk as it is made: `NetworkWriter.add` takes one block's nodes and edges
(scene pixel coordinates) and writes them at once, so no step holds the whole network;
`write_network` writes one graph held in memory (a tile). For a georeferenced scene:

- `<name>.gpkg`, a GeoPackage in the scene's CRS, so that it overlays the image exactly. Layers:
  `roads` (LineString; `id`, `u`, `v` node ids, `length_m`, `u_class` and `v_class` the predicted
  connectivity class names at the ends (`CLASS_NAMES`, "" when unknown), `gap` true for an edge
  the connectivity method added); `junctions` (Point; `node`, `degree`, `class`; degree 3 or
  more); `dead_ends` (Point; `node`, `class`; every end of degree 1, whose `class` tells a
  predicted dead end from a road that stops where the prediction does). Each layer has its
  spatial index.
- `<name>.geojson`: the roads in lon/lat (RFC 7946), the feature format of
  `roads.geo.write_road_lines` with the `roads` layer's fields as properties (`tools.apls` reads
  it as a prediction).
- `<name>.graphml`: a routable graph in osmnx's layout. Nodes have `x`, `y` (lon, lat),
  `street_count` (degree) and `class`; each road is two directed edges, u -> v and v -> u
  (`oneway` False, `reversed` True on the second: osmnx's two-way street), with `length` (m),
  `geometry` (WKT LineString in lon/lat, from source to target), `gap` and `road_id` (the `id`
  of the `roads` layer); graph attributes `crs` "epsg:4326" and `simplified` True (edges already
  carry their geometry). Every value is stored as a string, as in osmnx's own files:
  `osmnx.load_graphml` converts them (and fails on typed values); with networkx alone, read
  `float(data["length"])`.

Lengths are geodesic, on the WGS 84 ellipsoid from lon/lat, right in every CRS (a UTM or Web
Mercator map metre is not a ground metre).

Without a Georeference (a plain PNG) only `<name>.geojson` and `<name>.graphml` are written, in
pixel (x, y) (y down), with lengths in pixels (`length_px` in the GeoJSON, `length` in the
GraphML), no `crs` anywhere: a GeoPackage needs a CRS.

Each file is written under a hidden temporary name beside its target (`.<name>.partial.<ext>`)
and renamed at `close`, so an interrupted run never leaves a half file under a final name; the
next writer of the same name removes such leftovers.
"""
import contextlib
import json
import logging
import math
import os
import struct
from pathlib import Path

import networkx as nx
import numpy as np
import pyogrio
import pyogrio.errors
import pyogrio.raw
import pyproj

from roads.classes import DEAD_END, FOUR_OR_MORE, ROAD, THREE_WAY
from roads.geo import CRS84_MEMBER
from roads.georeference import Georeference
from roads.polyline import as_polyline, oriented, polyline_length
from utils.checkpoint import fsync_folder
from utils.errors import OutputError

# pyogrio logs a line per write ("Created 12 records") at INFO, the level the commands log at.
logging.getLogger("pyogrio").setLevel(logging.WARNING)

CLASS_NAMES = {DEAD_END: "dead end", ROAD: "road", THREE_WAY: "3-way junction",
               FOUR_OR_MORE: "4+ junction"}
"""Names of the connectivity classes in the files; any other value (None, -1, background,
ignore) is written as "" (unknown)."""

WGS84 = pyproj.Geod(ellps="WGS84")
"""The ellipsoid of RFC 7946 lon/lat, which `Georeference.to_lonlat` gives."""

GRAPHML_KEYS = (("graph", "crs"), ("graph", "simplified"), ("node", "x"), ("node", "y"),
                ("node", "street_count"), ("node", "class"), ("edge", "length"),
                ("edge", "geometry"), ("edge", "oneway"), ("edge", "reversed"), ("edge", "gap"),
                ("edge", "road_id"))

ROAD_FIELDS = ("id", "u", "v", "length_m", "u_class", "v_class", "gap")
ROAD_DTYPES = (np.int32, np.int64, np.int64, np.float64, object, object, bool)
JUNCTION_FIELDS = ("node", "degree", "class")
JUNCTION_DTYPES = (np.int64, np.int32, object)
DEAD_END_FIELDS = ("node", "class")
DEAD_END_DTYPES = (np.int64, object)

WRITE_ERRORS = (OSError, pyogrio.errors.DataSourceError, pyogrio.errors.DataLayerError)

Node = tuple[float, float, int, int | None]
"""(x, y, degree, class): pixel position, degree in the whole network, predicted class id
(None or -1: unknown)."""
Edge = tuple[int, int, np.ndarray, bool]
"""(u, v, pts, gap): end node ids, (N, 2) pixel polyline from u to v, whether the connectivity
method added the edge."""


class NetworkWriter:
    """Writes a road network to `<out_dir>/<name>.{gpkg,geojson,graphml}` block by block (see the
    module's docstring for the files).

    Use as a context manager: leaving the block normally calls `close`, leaving it on an error
    discards the temporary files (no final file is written or replaced). `paths` holds the final
    files by kind ("gpkg", "geojson", "graphml"); they exist once `close` has returned. Memory:
    the writer keeps one class name per node added so far, so that an edge of a later block can
    name the classes at its ends (about 100 bytes a node); nothing else grows with the network.
    A failed write raises OutputError naming the files.
    """

    def __init__(self, out_dir: Path, georeference: Georeference | None, name: str = "roads"):
        self.georeference = georeference
        out_dir = Path(out_dir)
        kinds = ("geojson", "graphml") if georeference is None else ("gpkg", "geojson", "graphml")
        self.paths = {kind: out_dir / f"{name}.{kind}" for kind in kinds}
        self._base = out_dir / name
        self._crs = None if georeference is None else georeference.crs.to_wkt()
        self._partial = {kind: out_dir / f".{name}.partial.{kind}" for kind in kinds}
        self._class_of: dict[int, str] = {}
        self._next_road = 1
        self._features = 0
        self._closed = False
        self._geojson = self._graphml = None
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            for path in self._partial.values():
                path.unlink(missing_ok=True)
            self._geojson = open(self._partial["geojson"], "w", encoding="utf-8")
            self._graphml = open(self._partial["graphml"], "w", encoding="utf-8")
            self._geojson.write(self._geojson_header())
            self._graphml.write(self._graphml_header())
            if georeference is not None:
                self._create_layers()
        except WRITE_ERRORS as error:
            self.abort()
            raise self._error(error) from None

    def __enter__(self) -> "NetworkWriter":
        return self

    def __exit__(self, kind, error, traceback) -> None:
        if kind is None:
            self.close()
        else:
            self.abort()

    def add(self, nodes: dict[int, Node], edges: list[Edge]) -> None:
        """Write one block: `nodes` {id: (x, y, degree, class)} and `edges` [(u, v, pts, gap)], in
        scene pixel coordinates. Node ids are global: each node is added once, and an edge only
        once both its ends have been (in this call or an earlier one). Nothing is written when
        the block is refused (ValueError)."""
        if self._closed:
            raise ValueError("NetworkWriter.add: the writer is closed")
        nodes = {int(node): value for node, value in nodes.items()}
        repeated = [node for node in nodes if node in self._class_of]
        if repeated:
            raise ValueError(f"NetworkWriter.add: nodes {repeated[:5]} were added before")
        lines = [as_polyline(pts) for _, _, pts, _ in edges]
        if any(len(line) < 2 or not np.isfinite(line).all() for line in lines):
            raise ValueError("NetworkWriter.add: an edge polyline needs 2 or more finite points")
        if not all(math.isfinite(value[0]) and math.isfinite(value[1]) for value in nodes.values()):
            raise ValueError("NetworkWriter.add: a node position is not finite")
        names = {node: CLASS_NAMES.get(None if value[3] is None else int(value[3]), "")
                 for node, value in nodes.items()}
        missing = sorted({int(end) for u, v, _, _ in edges for end in (u, v)
                          if int(end) not in names and int(end) not in self._class_of})
        if missing:
            raise ValueError(f"NetworkWriter.add: edges reach nodes {missing[:5]} that were not "
                             "added (add each node in the call of its first edge or before)")
        self._class_of.update(names)
        roads = self._roads(edges, lines)
        try:
            if self.georeference is not None:
                self._write_layers(nodes, names, roads)
            self._write_geojson(roads)
            self._write_graphml(nodes, names, roads)
        except WRITE_ERRORS as error:
            raise self._error(error) from None

    def close(self) -> None:
        """Finish the files and rename them to their final names (a second call does nothing)."""
        if self._closed:
            return
        try:
            self._geojson.write("\n]}\n")
            self._graphml.write("</graph>\n</graphml>\n")
            for file in (self._geojson, self._graphml):
                file.flush()
                os.fsync(file.fileno())
                file.close()
            if "gpkg" in self._partial:
                with open(self._partial["gpkg"], "rb") as file:
                    os.fsync(file.fileno())
            for kind, path in self.paths.items():
                os.replace(self._partial[kind], path)
            fsync_folder(self._base.parent)
        except OSError as error:
            self.abort()
            raise self._error(error) from None
        self._closed = True

    def abort(self) -> None:
        """Stop without writing any final file: the temporary files are removed."""
        self._closed = True
        for file in (self._geojson, self._graphml):
            if file is not None:
                file.close()
        for path in self._partial.values():
            with contextlib.suppress(OSError):
                path.unlink(missing_ok=True)

    def _roads(self, edges: list[Edge], lines: list[np.ndarray]) -> list[dict]:
        """One dict per edge: its ids, classes, gap, geometries (map CRS and lon/lat, or pixels)
        and length; the coordinate transformations run once over the whole block."""
        counts = [len(line) for line in lines]
        points = np.concatenate(lines) if lines else np.zeros((0, 2))
        splits = np.cumsum(counts)[:-1]
        if self.georeference is None:
            maps = lonlats = lines
        else:
            maps = np.split(self.georeference.to_map(points), splits)
            lonlats = np.split(self.georeference.to_lonlat(points), splits)
        roads = []
        for (u, v, _, gap), line, world, lonlat in zip(edges, lines, maps, lonlats):
            length = (polyline_length(line) if self.georeference is None
                      else float(WGS84.line_length(lonlat[:, 0], lonlat[:, 1])))
            roads.append({"id": self._next_road, "u": int(u), "v": int(v), "length": length,
                          "u_class": self._class_of[int(u)], "v_class": self._class_of[int(v)],
                          "gap": bool(gap), "map": world, "lonlat": lonlat})
            self._next_road += 1
        return roads

    def _create_layers(self) -> None:
        """The three layers, empty: a network without junctions still has all of them."""
        empty = np.zeros(0, dtype=object)
        for layer, fields, dtypes, geometry in (
                ("roads", ROAD_FIELDS, ROAD_DTYPES, "LineString"),
                ("junctions", JUNCTION_FIELDS, JUNCTION_DTYPES, "Point"),
                ("dead_ends", DEAD_END_FIELDS, DEAD_END_DTYPES, "Point")):
            self._write_layer(layer, empty, [np.zeros(0, dtype) for dtype in dtypes], fields,
                              geometry, {"SPATIAL_INDEX": "YES"})

    def _write_layers(self, nodes: dict[int, Node], names: dict[int, str],
                      roads: list[dict]) -> None:
        if roads:
            columns = [[road[field] for road in roads] for field in
                       ("id", "u", "v", "length", "u_class", "v_class", "gap")]
            self._write_layer("roads", _objects(_wkb_linestring(road["map"]) for road in roads),
                              [np.array(column, dtype) for column, dtype in
                               zip(columns, ROAD_DTYPES)], ROAD_FIELDS, "LineString")
        ids = np.array(list(nodes), dtype=np.int64)
        if not len(ids):
            return
        values = list(nodes.values())
        degree = np.array([value[2] for value in values], dtype=np.int32)
        where = self.georeference.to_map(np.array([value[:2] for value in values], dtype=float))
        points = _objects(_wkb_point(point) for point in where)
        classes = np.array([names[node] for node in nodes.keys()], dtype=object)
        junction, dead_end = degree >= 3, degree == 1
        if junction.any():
            self._write_layer("junctions", points[junction],
                              [ids[junction], degree[junction], classes[junction]],
                              JUNCTION_FIELDS, "Point")
        if dead_end.any():
            self._write_layer("dead_ends", points[dead_end], [ids[dead_end], classes[dead_end]],
                              DEAD_END_FIELDS, "Point")

    def _write_layer(self, layer: str, geometry: np.ndarray, columns: list[np.ndarray],
                     fields: tuple[str, ...], geometry_type: str,
                     options: dict | None = None) -> None:
        # SQLite syncs each write's transaction to disk, half the time of writing a block; the
        # file is a temporary one until `close` syncs and renames it, so a crash spoils nothing.
        previous = pyogrio.get_gdal_config_option("OGR_SQLITE_SYNCHRONOUS")
        pyogrio.set_gdal_config_options({"OGR_SQLITE_SYNCHRONOUS": "OFF"})
        try:
            pyogrio.raw.write(self._partial["gpkg"], geometry, columns, list(fields), layer=layer,
                              driver="GPKG", geometry_type=geometry_type, crs=self._crs,
                              append=True, layer_options=options)
        finally:
            pyogrio.set_gdal_config_options({"OGR_SQLITE_SYNCHRONOUS": previous})

    def _write_geojson(self, roads: list[dict]) -> None:
        length = "length_px" if self.georeference is None else "length_m"
        for road in roads:
            feature = {"type": "Feature",
                       "properties": {"id": road["id"], "u": road["u"], "v": road["v"],
                                      length: road["length"], "u_class": road["u_class"],
                                      "v_class": road["v_class"], "gap": road["gap"]},
                       "geometry": {"type": "LineString",
                                    "coordinates": np.asarray(road["lonlat"]).tolist()}}
            self._geojson.write((",\n" if self._features else "") + json.dumps(feature))
            self._features += 1

    def _write_graphml(self, nodes: dict[int, Node], names: dict[int, str],
                       roads: list[dict]) -> None:
        if self.georeference is None:
            where = np.array([value[:2] for value in nodes.values()], dtype=float)
        else:
            where = self.georeference.to_lonlat(
                np.array([value[:2] for value in nodes.values()], dtype=float))
        for node, (x, y), value in zip(nodes, where.tolist(), nodes.values()):
            self._graphml.write(f'<node id="{node}">{_data("x", repr(x))}{_data("y", repr(y))}'
                                f'{_data("street_count", int(value[2]))}'
                                f'{_data("class", names[node])}</node>\n')
        for road in roads:
            line = np.asarray(road["lonlat"])
            for source, target, pts, reverse in ((road["u"], road["v"], line, False),
                                                 (road["v"], road["u"], line[::-1], True)):
                self._graphml.write(
                    f'<edge source="{source}" target="{target}">'
                    f'{_data("length", repr(road["length"]))}'
                    f'{_data("geometry", _wkt_linestring(pts))}{_data("oneway", False)}'
                    f'{_data("reversed", reverse)}{_data("gap", road["gap"])}'
                    f'{_data("road_id", road["id"])}</edge>\n')

    def _geojson_header(self) -> str:
        crs = "" if self.georeference is None else f'"crs": {json.dumps(CRS84_MEMBER)}, '
        return '{"type": "FeatureCollection", ' + crs + '"features": [\n'

    def _graphml_header(self) -> str:
        keys = "".join(f'<key id="{name}" for="{domain}" attr.name="{name}" '
                       'attr.type="string"/>\n' for domain, name in GRAPHML_KEYS)
        graph = ("" if self.georeference is None
                 else _data("crs", "epsg:4326") + _data("simplified", True) + "\n")
        return ("<?xml version='1.0' encoding='utf-8'?>\n"
                '<graphml xmlns="http://graphml.graphdrawing.org/xmlns" '
                'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
                'xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns '
                'http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">\n'
                f'{keys}<graph edgedefault="directed">\n{graph}')

    def _error(self, error: Exception) -> OutputError:
        reason = " ".join(str(error).split())[:200]
        return OutputError(f"cannot write the road network {self._base}.{{{','.join(self.paths)}}}"
                           f": {reason}; files of that name from before, if any, are unchanged")



def write_network(graph: nx.Graph, georeference: Georeference | None, out_dir: Path,
                  name: str = "roads", classes: np.ndarray | None = None) -> dict[str, Path]:
    """Write a road graph held in memory (the contract of `roads.graph`) with a NetworkWriter;
    returns its files by kind.

    The class of a node is read from `classes`, an (H, W) map of predicted connectivity classes
    (`Prediction.connectivity`), at the node's pixel; without it, from the node's `node_class`
    attribute (as `mapping.stitch.assemble` sets it); else it is unknown.
    """
    nodes = {}
    for node, data in graph.nodes(data=True):
        x, y = (float(value) for value in data["pos"])
        if classes is not None:
            height, width = classes.shape[:2]
            node_class = int(classes[min(max(round(y), 0), height - 1),
                                     min(max(round(x), 0), width - 1)])
        else:
            node_class = data.get("node_class")
        nodes[node] = (x, y, graph.degree(node), node_class)
    edges = [(u, v, oriented(as_polyline(data["pts"]), graph.nodes[u]["pos"],
                             graph.nodes[v]["pos"]), bool(data.get("gap", False)))
             for u, v, data in graph.edges(data=True)]
    with NetworkWriter(out_dir, georeference, name) as writer:
        writer.add(nodes, edges)
    return writer.paths


def _data(key: str, value) -> str:
    """A GraphML <data> element; values need no escaping (numbers, booleans, class names, WKT)."""
    return f'<data key="{key}">{value}</data>'


def _wkt_linestring(coords: np.ndarray) -> str:
    return "LINESTRING (" + ", ".join(f"{x!r} {y!r}" for x, y in coords.tolist()) + ")"


def _wkb_linestring(coords: np.ndarray) -> bytes:
    """Little-endian ISO WKB of an (N, 2) LineString."""
    coords = np.ascontiguousarray(coords, dtype="<f8")
    return struct.pack("<BII", 1, 2, len(coords)) + coords.tobytes()


def _wkb_point(point: np.ndarray) -> bytes:
    return struct.pack("<BIdd", 1, 1, float(point[0]), float(point[1]))


def _objects(items) -> np.ndarray:
    """A 1-D object array of `items` (np.array would make a bytes array of WKB)."""
    items = list(items)
    array = np.empty(len(items), dtype=object)
    array[:] = items
    return array
