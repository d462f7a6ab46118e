"""City-scale mapping commands: a raster of any size to one road network, block by block."""
import collections
import json

import cv2
import numpy as np
import pyogrio
import pytest
import rasterio
import torch

from mapping import pipeline
from mapping.stitch import block_graph as real_block_graph
from model.network import StackedHourglassRoadNet
from roads.georeference import Georeference, write_geotiff
from tests.conftest import REPO, run_command
from tools import graph_roads
from utils.errors import UserError

LON0, LAT0, STEP = -115.30, 36.20, 2.7e-6  # SpaceNet Las Vegas: about 0.24 x 0.30 m pixels


def write_raster(path, array: np.ndarray, georeference: Georeference | None = None) -> None:
    profile = {"driver": "GTiff", "height": array.shape[0], "width": array.shape[1], "count": 1,
               "dtype": array.dtype.name, "tiled": True, "blockxsize": 256, "blockysize": 256,
               "compress": "deflate"}
    if georeference is not None:
        profile |= {"crs": georeference.crs.to_wkt(), "transform": georeference.transform}
    with rasterio.open(path, "w", **profile) as dataset:
        dataset.write(array, 1)


def roads_mask(size: int = 600) -> np.ndarray:
    """0/255 roads crossing the seams of 256 px blocks: a grid, a diagonal, a ring."""
    mask = np.zeros((size, size), np.uint8)
    for at in (70, 255, 430):
        cv2.line(mask, (0, at), (size - 1, at + 9), 255, 15)
        cv2.line(mask, (at, 0), (at - 13, size - 1), 255, 13)
    cv2.line(mask, (0, 0), (size - 1, size - 1), 255, 15)
    cv2.circle(mask, (400, 180), 70, 255, 14)
    return mask


def features(path) -> list[dict]:
    return json.loads(path.read_text())["features"]


def test_a_road_past_column_32767_is_written_at_its_true_lon_lat(tmp_path):
    """A thin 8 x 40,000 px georeferenced strip, a road at columns 39,000-39,899: int16 pixel
    coordinates would put it 65,536 columns west."""
    georeference = Georeference.north_up_lonlat(LON0, LAT0, STEP, STEP, (8, 40_000))
    mask = np.zeros((8, 40_000), np.uint8)
    mask[1:7, 39_000:39_900] = 255
    write_raster(tmp_path / "strip.tif", mask, georeference)
    graph_roads.main([str(tmp_path / "strip.tif"), "--out", str(tmp_path / "out")])
    (road,) = features(tmp_path / "out" / "strip.geojson")
    lons = np.array(road["geometry"]["coordinates"])[:, 0]
    # Pixel centre of column c: LON0 + (c + 0.5) * STEP; within a pixel of the road's ends.
    assert lons.min() == pytest.approx(LON0 + 39_000.5 * STEP, abs=3 * STEP)
    assert lons.max() == pytest.approx(LON0 + 39_899.5 * STEP, abs=3 * STEP)
    assert not (tmp_path / "out" / "work").exists(), "the work folder goes once the run is done"


def run_graph(tmp_path, *extra: str, name: str = "out") -> dict:
    graph_roads.main([str(tmp_path / "roads.tif"), "--out", str(tmp_path / name),
                      "--block", "256", *extra])
    return {path.name: path for path in (tmp_path / name).iterdir()}


@pytest.fixture
def roads_raster(tmp_path):
    georeference = Georeference.north_up_lonlat(LON0, LAT0, STEP, STEP, (600, 600))
    write_raster(tmp_path / "roads.tif", roads_mask(), georeference)
    return tmp_path / "roads.tif"


def test_block_size_does_not_change_the_network(tmp_path, roads_raster):
    one = run_graph(tmp_path, "--block", "1024", name="one")
    nine = run_graph(tmp_path, "--block", "256", name="nine")
    assert {"roads.gpkg", "roads.geojson", "roads.graphml"} <= set(one)
    lines = [features(files["roads.geojson"]) for files in (one, nine)]
    assert len(lines[0]) == len(lines[1]) > 10
    total = [sum(f["properties"]["length_m"] for f in group) for group in lines]
    assert total[1] == pytest.approx(total[0], rel=5e-3)


def test_an_interrupted_run_resumes_with_the_blocks_it_had_done(tmp_path, roads_raster,
                                                                monkeypatch):
    reference = run_graph(tmp_path, name="reference")
    calls = []

    def failing(*args, **kwargs):
        calls.append(args[1])
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_block_graph(*args, **kwargs)

    monkeypatch.setattr(pipeline, "block_graph", failing)
    with pytest.raises(KeyboardInterrupt):
        run_graph(tmp_path)
    done = sorted((tmp_path / "out" / "work" / "graphs").glob("*.pkl"))
    assert len(done) == 2 and not (tmp_path / "out" / "roads.geojson").exists()
    stamps = {path: path.stat().st_mtime_ns for path in done}
    calls.clear()
    monkeypatch.setattr(pipeline, "block_graph", lambda *a, **k: calls.append(a[1]) or
                        real_block_graph(*a, **k))
    run_graph(tmp_path, "--keep-work")
    assert len(calls) == 9 - 2, "the two blocks done before are not done again"
    assert all(path.stat().st_mtime_ns == stamp for path, stamp in stamps.items())
    assert ((tmp_path / "out" / "roads.geojson").read_text()
            == reference["roads.geojson"].read_text())


def test_a_resumed_run_with_other_settings_is_refused(tmp_path, roads_raster):
    run_graph(tmp_path, "--keep-work")
    with pytest.raises(UserError, match="other block"):
        run_graph(tmp_path, "--block", "300")


def test_too_small_a_disk_is_refused_before_any_work(tmp_path, roads_raster, monkeypatch):
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(pipeline.shutil, "disk_usage", lambda path: usage(10**9, 10**9, 1000))
    with pytest.raises(UserError, match="GB needed"):
        run_graph(tmp_path)
    assert not (tmp_path / "out" / "work").exists()


def test_a_raster_of_two_bands_is_one_line_naming_it(tmp_path):
    with rasterio.open(tmp_path / "two.tif", "w", driver="GTiff", height=8, width=8, count=2,
                       dtype="uint8") as dataset:
        dataset.write(np.zeros((2, 8, 8), np.uint8))
    result = run_command("-m", "tools.graph_roads", str(tmp_path / "two.tif"), "--out",
                         str(tmp_path / "out"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'two.tif'}: expected one band (a road probability or mask), found 2"]


@pytest.mark.slow
def test_torchrun_two_processes_write_what_one_process_writes(tmp_path, roads_raster):
    outputs = {}
    for name, launcher in (("one", []), ("two", ["-m", "torch.distributed.run", "--standalone",
                                                 "--nproc_per_node=2"])):
        result = run_command(*launcher, "-m", "tools.graph_roads", str(roads_raster), "--out",
                             str(tmp_path / name), "--block", "256", timeout=400)
        assert result.returncode == 0, result.stderr[-3000:]
        outputs[name] = tmp_path / name
    for kind in ("roads.geojson", "roads.graphml"):
        assert (outputs["one"] / kind).read_text() == (outputs["two"] / kind).read_text(), kind


@pytest.fixture
def mosaic_and_checkpoint(tmp_path):
    """A 2 x 2 mosaic of 96 x 128 px RGB GeoTIFFs (roads drawn across their borders), and a tiny
    network with random weights in a checkpoint with config.json's settings."""
    picture = np.full((192, 256, 3), 90, np.uint8)
    cv2.line(picture, (0, 100), (255, 80), (200, 200, 200), 9)
    cv2.line(picture, (120, 0), (140, 191), (200, 200, 200), 9)
    folder = tmp_path / "mosaic"
    folder.mkdir()
    for row in (0, 96):
        for col in (0, 128):
            tile = Georeference.north_up_lonlat(LON0 + col * STEP, LAT0 - row * STEP, STEP, STEP,
                                                (96, 128))
            write_geotiff(folder / f"tile_{row}_{col}.tif", picture[row:row + 96, col:col + 128],
                          tile)
    config = json.loads((REPO / "config.json").read_text())
    config["arch"]["args"].update(num_blocks=1, num_feats=16)
    config["predictor"] = {"window": 64, "margin": 8, "precision": "fp32"}
    torch.manual_seed(0)
    checkpoint = tmp_path / "tiny.pth"
    torch.save({"state_dict": StackedHourglassRoadNet(**config["arch"]["args"]).state_dict(),
                "config": config}, checkpoint)
    return folder, checkpoint


def map_command(folder, checkpoint, out, *launcher: str):
    result = run_command(*launcher, "-m", "tools.map_roads", "-r", str(checkpoint), str(folder),
                         "--out", str(out), "--block", "64", timeout=400)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_a_mosaic_becomes_one_network_and_georeferenced_rasters(tmp_path, mosaic_and_checkpoint):
    folder, checkpoint = mosaic_and_checkpoint
    map_command(folder, checkpoint, tmp_path / "out")
    out = tmp_path / "out"
    assert sorted(path.name for path in out.iterdir()) == [
        "mosaic-conn.tif", "mosaic-mask.tif", "mosaic-prob.tif", "mosaic.geojson", "mosaic.gpkg",
        "mosaic.graphml"]
    for kind in ("prob", "mask", "conn"):
        with rasterio.open(out / f"mosaic-{kind}.tif") as raster:
            assert (raster.height, raster.width) == (192, 256)
            assert raster.crs.to_epsg() == 4326
            assert raster.transform.c == pytest.approx(LON0)
            assert raster.transform.f == pytest.approx(LAT0)
    layers = {name for name, _ in pyogrio.list_layers(out / "mosaic.gpkg")}
    assert layers == {"roads", "junctions", "dead_ends"}
    roads = features(out / "mosaic.geojson")
    assert len(roads) == pyogrio.read_info(out / "mosaic.gpkg", layer="roads")["features"]


@pytest.mark.slow
def test_torchrun_two_processes_map_what_one_process_maps(tmp_path, mosaic_and_checkpoint):
    folder, checkpoint = mosaic_and_checkpoint
    map_command(folder, checkpoint, tmp_path / "one")
    map_command(folder, checkpoint, tmp_path / "two", "-m", "torch.distributed.run",
                "--standalone", "--nproc_per_node=2")
    for kind in ("mosaic.geojson", "mosaic.graphml"):
        assert (tmp_path / "one" / kind).read_text() == (tmp_path / "two" / kind).read_text()
    for kind in ("prob", "mask", "conn"):
        with rasterio.open(tmp_path / "one" / f"mosaic-{kind}.tif") as one, \
                rasterio.open(tmp_path / "two" / f"mosaic-{kind}.tif") as two:
            np.testing.assert_array_equal(one.read(), two.read())
