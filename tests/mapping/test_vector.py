"""Road network files (mapping/vector.py): GeoPackage, GeoJSON and GraphML of a small network,
read back with pyogrio, the repo's GeoJSON reader and networkx."""
import json
import math
import sqlite3

import networkx as nx
import numpy as np
import pyogrio
import pyogrio.raw
import pyproj
import pytest
from affine import Affine

from mapping.vector import NetworkWriter, write_network
from roads.classes import DEAD_END, ROAD, THREE_WAY
from roads.geo import read_road_lines
from roads.georeference import Georeference
from utils.errors import OutputError

SHAPE = (400, 400)
UTM = Georeference(pyproj.CRS.from_epsg(32611), Affine(0.5, 0.0, 500000.0, 0.0, -0.5, 4000000.0),
                   SHAPE)
"""0.5 m pixels on UTM zone 11's central meridian, where a map metre is 0.9996 ground metres."""
LONLAT = Georeference.north_up_lonlat(lon0=-115.2, lat0=36.18, dx=2.7e-6, dy=2.7e-6, shape=SHAPE)

# A T junction (node 0) with a bent right arm, a stem ending in a dead end (node 4) through an
# edge that closed a gap; the arms end on the tile's border (nodes 1 and 2).
NODES = {0: (200.0, 100.0, 3, THREE_WAY), 1: (0.0, 100.0, 1, ROAD), 2: (400.0, 100.0, 1, -1),
         3: (200.0, 260.0, 2, ROAD), 4: (200.0, 300.0, 1, DEAD_END)}
EDGES = [(1, 0, np.array([[0.0, 100.0], [200.0, 100.0]]), False),
         (0, 2, np.array([[200.0, 100.0], [300.0, 50.0], [400.0, 100.0]]), False),
         (0, 3, np.array([[200.0, 100.0], [200.0, 260.0]]), False),
         (3, 4, np.array([[200.0, 260.0], [200.0, 300.0]]), True)]
NAMES = {0: "3-way junction", 1: "road", 2: "", 3: "road", 4: "dead end"}


def ground_length(pts: np.ndarray, georeference: Georeference) -> float:
    """Metres along a pixel polyline, from the grid's known scale rather than a geodesic."""
    steps = np.diff(georeference.to_map(pts), axis=0)
    if georeference is UTM:
        return float(np.hypot(*steps.T).sum())
    # Metres per degree on WGS 84 at the line's latitude: radii of curvature along the meridian
    # and the parallel.
    a, e2 = 6378137.0, 0.00669437999014
    lat = math.radians(float(georeference.to_map(pts)[:, 1].mean()))
    w = 1 - e2 * math.sin(lat) ** 2
    per_lat = math.pi / 180 * a * (1 - e2) / w ** 1.5
    per_lon = math.pi / 180 * a * math.cos(lat) / math.sqrt(w)
    return float(np.hypot(steps[:, 0] * per_lon, steps[:, 1] * per_lat).sum())


def write(tmp_path, georeference, blocks=((NODES, EDGES),), name="city"):
    with NetworkWriter(tmp_path, georeference, name) as writer:
        for nodes, edges in blocks:
            writer.add(nodes, edges)
    return writer.paths


def wkb_coords(wkb: bytes) -> np.ndarray:
    """(N, 2) coordinates of a little-endian WKB Point or LineString."""
    kind = int.from_bytes(wkb[1:5], "little")
    return np.frombuffer(wkb[5 if kind == 1 else 9:], "<f8").reshape(-1, 2)


def read_layer(path, layer) -> tuple[dict, list, dict]:
    meta, _, geometry, columns = pyogrio.raw.read(path, layer=layer)
    return meta, list(geometry), dict(zip(meta["fields"], columns))


@pytest.mark.parametrize("georeference", [UTM, LONLAT], ids=["utm", "lonlat"])
def test_geopackage_overlays_the_scene_with_ground_lengths_and_classes(tmp_path, georeference):
    paths = write(tmp_path, georeference)
    assert sorted(paths) == ["geojson", "gpkg", "graphml"]
    layers = {name: kind for name, kind in pyogrio.list_layers(paths["gpkg"])}
    assert layers == {"roads": "LineString", "junctions": "Point", "dead_ends": "Point"}
    epsg = "EPSG:32611" if georeference is UTM else "EPSG:4326"
    for layer, count in (("roads", 4), ("junctions", 1), ("dead_ends", 3)):
        info = pyogrio.read_info(paths["gpkg"], layer=layer)
        assert (info["crs"], info["features"]) == (epsg, count)

    meta, geometry, roads = read_layer(paths["gpkg"], "roads")
    assert dict(zip(meta["fields"], meta["dtypes"])) == {
        "id": "int32", "u": "int64", "v": "int64", "length_m": "float64", "u_class": "object",
        "v_class": "object", "gap": "bool"}
    assert roads["id"].tolist() == [1, 2, 3, 4]
    assert list(zip(roads["u"], roads["v"])) == [(u, v) for u, v, _, _ in EDGES]
    assert roads["gap"].tolist() == [False, False, False, True]
    assert roads["u_class"].tolist() == [NAMES[u] for u, _, _, _ in EDGES]
    assert roads["v_class"].tolist() == [NAMES[v] for _, v, _, _ in EDGES]
    for (_, _, pts, _), length, wkb in zip(EDGES, roads["length_m"], geometry):
        assert length == pytest.approx(ground_length(pts, georeference), rel=1e-3)
        np.testing.assert_allclose(wkb_coords(wkb), georeference.to_map(pts), rtol=0, atol=1e-9)
    if georeference is UTM:
        # Geodesic, not map, metres: the 0.5 m pixels are 0.5 / 0.9996 m on the ground.
        assert roads["length_m"][0] == pytest.approx(100.0 / 0.9996, rel=2e-5)

    _, geometry, junctions = read_layer(paths["gpkg"], "junctions")
    assert (junctions["node"].tolist(), junctions["degree"].tolist(),
            junctions["class"].tolist()) == ([0], [3], ["3-way junction"])
    np.testing.assert_allclose(wkb_coords(geometry[0]), georeference.to_map([NODES[0][:2]]))
    _, _, dead_ends = read_layer(paths["gpkg"], "dead_ends")
    assert dict(zip(dead_ends["node"], dead_ends["class"])) == {1: "road", 2: "", 4: "dead end"}

    with sqlite3.connect(paths["gpkg"]) as database:
        for layer, count in (("roads", 4), ("junctions", 1), ("dead_ends", 3)):
            assert database.execute(f"SELECT COUNT(*) FROM rtree_{layer}_geom").fetchone() == (
                count,)


def test_geojson_is_lonlat_with_the_road_fields(tmp_path):
    paths = write(tmp_path, UTM)
    lines = read_road_lines(paths["geojson"])
    assert len(lines) == len(EDGES)
    for line, (u, v, pts, gap), road_id in zip(lines, EDGES, range(1, 5)):
        assert line.crs is None
        np.testing.assert_allclose(line.coords, UTM.to_lonlat(pts), rtol=0, atol=1e-12)
        assert line.properties["length_m"] == pytest.approx(ground_length(pts, UTM), rel=1e-3)
        assert {key: line.properties[key] for key in ("id", "u", "v", "gap", "u_class")} == {
            "id": road_id, "u": u, "v": v, "gap": gap, "u_class": NAMES[u]}
    collection = json.loads(paths["geojson"].read_text())
    assert collection["crs"]["properties"]["name"] == "urn:ogc:def:crs:OGC:1.3:CRS84"


def test_graphml_is_a_routable_lonlat_graph_in_osmnx_layout(tmp_path):
    paths = write(tmp_path, UTM)
    graph = nx.read_graphml(paths["graphml"], node_type=int)
    assert graph.is_directed()
    assert {key: value for key, value in graph.graph.items() if not key.endswith("_default")} == {
        "crs": "epsg:4326", "simplified": "True"}
    assert sorted(graph.nodes) == sorted(NODES)
    for node, (x, y, degree, _) in NODES.items():
        data = graph.nodes[node]
        np.testing.assert_allclose([float(data["x"]), float(data["y"])],
                                   UTM.to_lonlat([[x, y]])[0], rtol=0, atol=1e-12)
        assert (int(data["street_count"]), data["class"]) == (degree, NAMES[node])
    # osmnx.load_graphml converts strings and fails on typed values: all must be strings.
    assert all(isinstance(value, str) for _, data in graph.nodes(data=True)
               for value in data.values())
    assert all(isinstance(value, str) for _, _, data in graph.edges(data=True)
               for value in data.values())

    assert graph.number_of_edges() == 2 * len(EDGES)
    for road_id, (u, v, pts, gap) in enumerate(EDGES, start=1):
        ahead, back = graph.edges[u, v], graph.edges[v, u]
        assert float(ahead["length"]) == pytest.approx(ground_length(pts, UTM), rel=1e-3)
        assert ahead["length"] == back["length"]
        assert (ahead["oneway"], ahead["reversed"], back["reversed"]) == ("False", "False",
                                                                            "True")
        assert ahead["gap"] == str(gap) and ahead["road_id"] == str(road_id)
        wkt = ahead["geometry"].removeprefix("LINESTRING (").removesuffix(")")
        coords = np.array([point.split() for point in wkt.split(", ")], dtype=float)
        np.testing.assert_allclose(coords, UTM.to_lonlat(pts), rtol=0, atol=1e-12)
        last_x, last_y = coords[-1].tolist()
        assert back["geometry"].startswith(f"LINESTRING ({last_x!r} {last_y!r},")

    route = nx.shortest_path_length(graph, 1, 4, weight=lambda u, v, data: float(data["length"]))
    expected = sum(ground_length(pts, UTM) for u, v, pts, _ in EDGES if (u, v) != (0, 2))
    assert route == pytest.approx(expected, rel=1e-3)


def test_two_blocks_give_the_files_of_one(tmp_path):
    # The second block's first edge reaches node 0 of the first block.
    first = ({node: NODES[node] for node in (0, 1, 2)}, EDGES[:2])
    second = ({node: NODES[node] for node in (3, 4)}, EDGES[2:])
    whole = write(tmp_path / "whole", UTM)
    blocks = write(tmp_path / "blocks", UTM, [first, second])
    assert whole["geojson"].read_bytes() == blocks["geojson"].read_bytes()
    for layer in ("roads", "junctions", "dead_ends"):
        (meta_a, geometry_a, columns_a), (meta_b, geometry_b, columns_b) = (
            read_layer(paths["gpkg"], layer) for paths in (whole, blocks))
        assert str(meta_a) == str(meta_b)
        assert geometry_a == geometry_b
        assert {k: v.tolist() for k, v in columns_a.items()} == {
            k: v.tolist() for k, v in columns_b.items()}
    graph_a, graph_b = (nx.read_graphml(paths["graphml"]) for paths in (whole, blocks))
    assert graph_a.graph == graph_b.graph
    assert dict(graph_a.nodes(data=True)) == dict(graph_b.nodes(data=True))
    assert sorted(graph_a.edges(data=True), key=str) == sorted(graph_b.edges(data=True), key=str)


def test_an_interrupted_writer_leaves_no_final_file(tmp_path):
    writer = NetworkWriter(tmp_path, UTM, "city")
    writer.add(NODES, EDGES)
    # No close: the process was killed here.
    assert not any(path.exists() for path in writer.paths.values())
    leftovers = sorted(path.name for path in tmp_path.iterdir())
    assert leftovers == [".city.partial.geojson", ".city.partial.gpkg", ".city.partial.graphml"]

    # The next run of the same name clears the leftovers and ends with the final files only.
    paths = write(tmp_path, UTM)
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        path.name for path in paths.values())

    # An error inside the block: nothing is written, the files of the run before stay.
    before = paths["geojson"].read_bytes()
    with pytest.raises(RuntimeError), NetworkWriter(tmp_path, UTM, "city") as writer:
        writer.add({node: NODES[node] for node in (0, 1)}, EDGES[:1])
        raise RuntimeError("stopped")
    assert sorted(path.name for path in tmp_path.iterdir()) == sorted(
        path.name for path in paths.values())
    assert paths["geojson"].read_bytes() == before


def test_without_georeference_the_files_are_in_pixels(tmp_path):
    paths = write(tmp_path, None)
    assert sorted(path.name for path in tmp_path.iterdir()) == ["city.geojson", "city.graphml"]
    collection = json.loads(paths["geojson"].read_text())
    assert "crs" not in collection
    feature = collection["features"][1]
    assert feature["geometry"]["coordinates"] == EDGES[1][2].tolist()
    assert feature["properties"]["length_px"] == pytest.approx(2 * math.hypot(100, 50))
    graph = nx.read_graphml(paths["graphml"], node_type=int)
    assert "crs" not in graph.graph
    assert (float(graph.nodes[2]["x"]), float(graph.nodes[2]["y"])) == (400.0, 100.0)
    assert float(graph.edges[0, 3]["length"]) == pytest.approx(160.0)


def test_write_network_reads_node_classes_from_the_class_map(tmp_path):
    graph = nx.Graph()
    for node, (x, y, _, _) in NODES.items():
        graph.add_node(node, pos=np.array([x, y]))
    for u, v, pts, gap in EDGES:
        # Stored against the u -> v order: the writer orients each polyline.
        graph.add_edge(u, v, pts=pts[::-1].copy(), gap=gap)
    classes = np.full(SHAPE, ROAD, dtype=np.uint8)
    classes[95:106, 195:206] = THREE_WAY
    classes[296:, 195:206] = DEAD_END
    paths = write_network(graph, LONLAT, tmp_path, "tile", classes=classes)
    _, geometry, roads = read_layer(paths["gpkg"], "roads")
    # Node 2 lies on the right border (x = 400): the map's last column is read.
    ends = {0: "3-way junction", 1: "road", 2: "road", 3: "road", 4: "dead end"}
    assert len(roads["u"]) == len(EDGES)
    for u, v, u_class, v_class, wkb in zip(roads["u"], roads["v"], roads["u_class"],
                                           roads["v_class"], geometry):
        assert (u_class, v_class) == (ends[u], ends[v])
        coords = wkb_coords(wkb)
        np.testing.assert_allclose([coords[0], coords[-1]],
                                   LONLAT.to_map([NODES[u][:2], NODES[v][:2]]))
    _, _, dead_ends = read_layer(paths["gpkg"], "dead_ends")
    assert dict(zip(dead_ends["node"], dead_ends["class"])) == {1: "road", 2: "road",
                                                               4: "dead end"}


def test_bad_blocks_are_refused_before_anything_is_written(tmp_path):
    with NetworkWriter(tmp_path, UTM, "city") as writer:
        with pytest.raises(ValueError, match=r"nodes \[3\] that were not added"):
            writer.add({node: NODES[node] for node in (0, 4)}, EDGES[3:])
        writer.add({0: NODES[0]}, [])
        with pytest.raises(ValueError, match=r"nodes \[0\] were added before"):
            writer.add({0: NODES[0]}, [])
        with pytest.raises(ValueError, match="2 or more finite points"):
            writer.add({1: NODES[1]}, [(1, 0, np.array([[0.0, 100.0]]), False)])
        with pytest.raises(ValueError, match="not finite"):
            writer.add({1: (math.nan, 100.0, 1, ROAD)}, [])
    assert json.loads(writer.paths["geojson"].read_text())["features"] == []
    assert pyogrio.read_info(writer.paths["gpkg"], layer="roads")["features"] == 0
    assert pyogrio.read_info(writer.paths["gpkg"], layer="junctions")["features"] == 1
    with pytest.raises(ValueError, match="closed"):
        writer.add({}, [])


def test_an_unwritable_folder_is_one_line_naming_it(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    with pytest.raises(OutputError, match=r"cannot write the road network .*file/city"):
        NetworkWriter(blocker, UTM, "city")
