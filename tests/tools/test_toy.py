"""The synthetic toy-spacenet generator (tools/toy/generate.py)."""
import json
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np

from data_loader.tiles import read_raster
from roads.geo import read_road_lines, render_tile_mask
from tools.toy.generate import PIXEL_SIZE_M, generate, tile_transform
from tools.toy.roads import clip_polyline, road_network

REPO = Path(__file__).resolve().parents[2]


def test_command_writes_the_layout_deterministically(tmp_path):
    command = [sys.executable, "-m", "tools.toy.generate", "--out", str(tmp_path / "a"),
               "--seed", "3",
               "--size", "256", "--train", "1", "--val", "1", "--test", "1"]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    generate(tmp_path / "b", seed=3, counts={"train": 1, "val": 1, "test": 1}, size=256)
    files = sorted(p.relative_to(tmp_path / "a") for p in (tmp_path / "a").rglob("*.*"))
    assert [str(p) for p in files] == ["README.md"] + [
        f"{split}/{folder}/AOI_2_Vegas_img{n}.{ext}"
        for split, n in (("test", 3), ("train", 1), ("val", 2))
        for folder, ext in (("geojson", "geojson"), ("images", "tif"), ("masks", "png"))]
    for path in files:
        assert (tmp_path / "a" / path).read_bytes() == (tmp_path / "b" / path).read_bytes(), path
    readme = (tmp_path / "a/README.md").read_text()
    assert "--seed 3 --train 1 --val 1 --test 1 --size 256" in readme


def test_tile_is_a_georeferenced_image_with_the_mask_of_its_geojson(tmp_path):
    generate(tmp_path, seed=0, counts={"train": 1, "val": 0, "test": 0}, size=256)
    stem = "AOI_2_Vegas_img1"
    raster = read_raster(tmp_path / "train/images" / f"{stem}.tif")
    image, transform = raster.image, raster.georeference
    assert image.shape == (256, 256, 3) and image.dtype == np.uint8 and raster.valid.all()
    assert transform.transform == tile_transform(1, 256).transform
    assert transform.crs.to_epsg() == 4326 and transform.shape == (256, 256)
    lon0, lat0 = transform.to_lonlat([[0, 0]])[0]
    assert abs(lon0 + 115.32) < 0.01 and abs(lat0 - 36.25) < 0.01
    lines = read_road_lines(tmp_path / "train/geojson" / f"{stem}.geojson")
    mask = cv2.imread(str(tmp_path / "train/masks" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
    assert mask.shape == (256, 256) and mask.dtype == np.uint8
    # Toy pixels are drawn as 0.300 m squares (see PIXEL_SIZE_M).
    assert abs(PIXEL_SIZE_M - 0.300227) < 1e-6
    np.testing.assert_array_equal(mask, render_tile_mask(lines, transform,
                                                         (PIXEL_SIZE_M, PIXEL_SIZE_M)))
    assert 0.02 < (mask > 0).mean() < 0.6
    road, ground = image[mask > 0].mean(axis=0), image[mask == 0].mean(axis=0)
    assert road.mean() < ground.mean() - 30  # asphalt is darker than the desert around it
    properties = json.loads((tmp_path / "train/geojson" / f"{stem}.geojson").read_text())
    for feature in properties["features"]:
        assert isinstance(feature["properties"]["road_type"], str)
        assert isinstance(feature["properties"]["lane_number"], str)


def test_shipped_masks_are_still_the_masks_of_their_geojson():
    """The reader and per-axis rendering leave the shipped toy dataset as it was generated."""
    split = REPO / "dataset/toy-spacenet/val"
    for stem in ("AOI_2_Vegas_img13", "AOI_2_Vegas_img14"):
        raster = read_raster(split / "images" / f"{stem}.tif")
        assert raster.georeference.transform == tile_transform(int(stem[15:]), 1300).transform
        mask = cv2.imread(str(split / "masks" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        lines = read_road_lines(split / "geojson" / f"{stem}.geojson")
        np.testing.assert_array_equal(mask, render_tile_mask(lines, raster.georeference,
                                                             (PIXEL_SIZE_M, PIXEL_SIZE_M)))


def test_road_network_has_junctions_dead_ends_and_border_cuts():
    size = 1300
    roads = road_network(np.random.default_rng([0, 1]), size)
    ends = Counter(tuple(np.round(p, 6)) for road in roads for p in (road.xy[0], road.xy[-1]))
    on_border = {p for p in ends if min(p) <= 1e-6 or max(p) >= size - 1e-6}
    inner = Counter(count for p, count in ends.items() if p not in on_border)
    assert on_border and inner[1] and inner[3] and inner[4]  # cut roads, dead ends, T and X
    assert len({road.properties["road_type"] for road in roads}) >= 3  # several widths
    for road in roads:
        assert road.xy.shape[1] == 2
        assert (road.xy >= 0).all() and (road.xy <= size).all()


def test_clip_polyline_cuts_at_the_border_and_splits_reentries():
    xy = np.array([[-10, 5], [5, 5], [15, 5], [15, -5], [8, -5], [8, 3]], dtype=float)
    pieces = clip_polyline(xy, 10)
    assert len(pieces) == 2
    np.testing.assert_allclose(pieces[0], [[0, 5], [5, 5], [10, 5]])
    np.testing.assert_allclose(pieces[1], [[8, 0], [8, 3]])
    assert clip_polyline(np.array([[20.0, 20.0], [30.0, 25.0]]), 10) == []
