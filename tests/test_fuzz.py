"""Fuzzing: mutated PNG, JPEG, TIFF, GeoJSON, config and checkpoint files through the readers the
commands use (in forked children with time and memory limits) and through the commands
themselves. Every case must end in success or a one-line error naming the file: never a
traceback, a hang or a memory blow-up. Seeded: a failure names its mutation and keeps the file."""
import functools
import io
import json
import os
import random
import shutil
import struct
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
import torch
from rasterio.enums import ColorInterp

from data_loader.datasets import channel_stats
from data_loader.label_cache import LabelCache
from data_loader.tiles import Tile, check_tile, read_image, read_mask
from evaluation.graph_metrics.apls_spacenet import read_lonlat_lines
from roads.geo import read_road_lines, write_road_lines
from roads.georeference import Georeference, write_geotiff
from roads.labels import LabelParams
from tests import fuzzing
from tests.conftest import REPO, drawn, tiny_config
from tools.toy.generate import generate
from utils.checkpoint import load_checkpoint, save_checkpoint
from utils.config import ConfigParser, read_json
from utils.errors import ConfigError, DataError

SEED = 16
SIZE = 48
GEOREFERENCE = Georeference.north_up_lonlat(-115.2, 36.2, 2.7e-6, 2.7e-6, (SIZE, SIZE))
REAL_GEOTIFF = REPO / "tests" / "data" / "spacenet-vegas-pan" / "pan_crop.tif"
REAL_MASK = REAL_GEOTIFF.with_name("spacenet_mask_crop.tif")


def seed_image() -> np.ndarray:
    rng = np.random.default_rng(SEED)
    image = rng.integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    image[20:28] = 90
    return image


def encoded(suffix: str, array: np.ndarray) -> bytes:
    ok, buffer = cv2.imencode(suffix, array)
    assert ok
    return buffer.tobytes()


def seed_geojson(tmp_path: Path, pixels: bool) -> bytes:
    """A SpaceNet-style FeatureCollection (lon/lat, or pixel x/y) with a LineString crossing."""
    lines = [np.array([[2.0, 24.0], [24.0, 24.0], [46.0, 25.0]]),
             np.array([[24.0, 2.0], [24.0, 24.0], [23.0, 46.0]])]
    if not pixels:
        lines = [GEOREFERENCE.to_lonlat(line) for line in lines]
    path = tmp_path / "seed.geojson"
    write_road_lines(path, lines, [{"lane_number": "2", "road_type": "5"}, {}])
    return path.read_bytes()


def write_raster(path: Path, bands: np.ndarray, alpha: bool = False, **options) -> None:
    """A GeoTIFF of (B, H, W) `bands` on GEOREFERENCE via rasterio; `alpha`: the last band is an
    alpha band (RGBA)."""
    count, height, width = bands.shape
    with rasterio.open(path, "w", driver="GTiff", height=height, width=width, count=count,
                       dtype=bands.dtype, crs="EPSG:4326", transform=GEOREFERENCE.transform,
                       **({"alpha": "yes"} if alpha else {}), **options) as out:
        out.write(bands)
        if alpha:
            out.colorinterp = [ColorInterp.red, ColorInterp.green, ColorInterp.blue,
                               ColorInterp.alpha]


def seed_geotiffs(folder: Path) -> dict[str, bytes]:
    """GeoTIFF seeds by name: the writer's own (deflate, 256 px tiles), LZW in strips, tiled LZW
    RGBA, SpaceNet-like 11-bit uint16, and the real SpaceNet panchromatic crop."""
    image = seed_image()
    bands = np.ascontiguousarray(image.transpose(2, 0, 1))
    write_geotiff(folder / "deflate.tif", image, GEOREFERENCE)
    write_raster(folder / "lzw.tif", bands, compress="lzw")
    alpha = np.full((1, SIZE, SIZE), 255, dtype=np.uint8)
    alpha[:, :8] = 0
    write_raster(folder / "rgba.tif", np.concatenate([bands, alpha]), alpha=True, compress="lzw",
                 tiled=True, blockxsize=16, blockysize=16)
    write_raster(folder / "uint16.tif", bands.astype(np.uint16) * 8, compress="deflate")
    seeds = {name: (folder / f"{name}.tif").read_bytes()
             for name in ("deflate", "lzw", "rgba", "uint16")}
    seeds["pan_crop"] = REAL_GEOTIFF.read_bytes()
    return seeds


def seed_checkpoint(tmp_path: Path) -> bytes:
    """A checkpoint shaped like the trainer's: weights, Adam state, config, epoch, RNG state."""
    network = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    optimizer = torch.optim.Adam(network.parameters())
    network(torch.zeros(1, 3, 5, 5)).sum().backward()
    optimizer.step()
    path = tmp_path / "seed.pth"
    save_checkpoint({"arch": "Sequential", "epoch": 3, "state_dict": network.state_dict(),
                     "optimizer": optimizer.state_dict(), "monitor_best": 0.5,
                     "config": json.loads((REPO / "config.json").read_text()),
                     "rng": {"torch": torch.get_rng_state(), "python": [1, 2, 3]}}, path)
    return path.read_bytes()


def checkpoint_objects(rng: random.Random, count: int) -> Iterator[fuzzing.Mutant]:
    """Well-formed archives holding wrong types where the trainer expects a checkpoint."""
    wrong = [[], "text", 3, None, {"state_dict": [1, 2]}, {"state_dict": {"w": "x"}},
             {"state_dict": {1: torch.zeros(2)}}, {"state_dict": {}, "epoch": "3"},
             {"state_dict": {}, "epoch": 1.5}, {"state_dict": {}, "config": [1]},
             {"state_dict": {"w": torch.full((2,), float("nan"))}, "epoch": 1},
             {"state_dict": {}, "optimizer": "adam"}, {"state_dict": {"w": torch.zeros(0, 5)}},
             {"state_dict": {}, "epoch": True}]
    for _ in range(count):
        value = rng.choice(wrong)
        buffer = io.BytesIO()
        torch.save(value, buffer)
        yield f"holds {str(value)[:40]}", buffer.getvalue()


def fuzz_cases(tmp_path: Path) -> Iterator[tuple[str, str, bytes, Callable[[Path], object]]]:
    """(target, mutation, mutant bytes, call on the mutant's path) for every in-process case."""
    rng = random.Random(SEED)
    image, mask = seed_image(), drawn(((2, 24), (46, 24), 5), ((24, 2), (24, 46), 5),
                                      size=(SIZE, SIZE))
    png, mask_png, jpeg = encoded(".png", image), encoded(".png", mask), encoded(".jpg", image)
    geotiffs = seed_geotiffs(tmp_path)
    good_image, good_mask = tmp_path / "good.png", tmp_path / "good_mask.png"
    good_image.write_bytes(png)
    good_mask.write_bytes(mask_png)
    geojson = json.loads(seed_geojson(tmp_path, pixels=False))
    config = json.loads((REPO / "config.json").read_text())
    checkpoint = seed_checkpoint(tmp_path)

    def cases(target, suffix, mutants, call):
        for name, data in mutants:
            yield target, suffix, name, data, call

    png_extra, ckpt_extra = fuzzing.PNG_MUTATIONS * 2, fuzzing.CHECKPOINT_MUTATIONS * 2
    yield from cases("read_image png", ".png", fuzzing.byte_mutants(png, rng, 50, png_extra),
                     read_image)
    yield from cases("read_image jpeg", ".jpg", fuzzing.byte_mutants(jpeg, rng, 25), read_image)
    for name, tiff in geotiffs.items():
        yield from cases(f"read_image geotiff {name}", ".tif", fuzzing.byte_mutants(
            tiff, rng, 15, fuzzing.TIFF_MUTATIONS), read_image)
    yield from cases("read_mask geotiff", ".tif", fuzzing.byte_mutants(
        REAL_MASK.read_bytes(), rng, 10, fuzzing.TIFF_MUTATIONS), read_mask)
    yield from cases("check_tile geotiff", ".tif", fuzzing.byte_mutants(geotiffs["lzw"], rng, 10),
                     lambda path: check_tile(Tile("t", path, good_mask, None)))
    yield from cases("read_mask png", ".png", fuzzing.byte_mutants(mask_png, rng, 35, png_extra),
                     lambda path: read_mask(path, (SIZE, SIZE)))
    yield from cases("check_tile image", ".png", fuzzing.byte_mutants(png, rng, 20, png_extra),
                     lambda path: check_tile(Tile("t", path, good_mask, None)))
    yield from cases("check_tile mask", ".png",
                     fuzzing.byte_mutants(mask_png, rng, 20, png_extra),
                     lambda path: check_tile(Tile("t", good_image, path, None)))
    yield from cases("read_road_lines", ".geojson", fuzzing.json_mutants(geojson, rng, 60),
                     read_road_lines)
    yield from cases("read_lonlat_lines", ".geojson", fuzzing.json_mutants(geojson, rng, 30),
                     read_lonlat_lines)
    yield from cases("ConfigParser", ".json", fuzzing.json_mutants(config, rng, 50),
                     lambda path: ConfigParser(read_json(path)))
    yield from cases("load_checkpoint", ".pth",
                     fuzzing.byte_mutants(checkpoint, rng, 30, ckpt_extra), load_checkpoint)
    yield from cases("load_checkpoint objects", ".pth", checkpoint_objects(rng, 15),
                     load_checkpoint)
    cache = LabelCache(LabelParams(), tmp_path / "cache")
    cache.labels(good_mask, read_mask(good_mask))
    cache_file = next((tmp_path / "cache").iterdir())
    expected = cache.labels(good_mask, read_mask(good_mask))[0]

    def cached_labels(path: Path) -> None:
        # The mutant replaces the mask's cache file: the labels must come out right regardless.
        shutil.copyfile(path, cache_file)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            full, _ = LabelCache(LabelParams(), cache_file.parent).labels(
                good_mask, read_mask(good_mask))
        if not np.array_equal(full, expected):
            raise AssertionError("a damaged label-cache file gave other labels")

    yield from cases("LabelCache", ".npz", fuzzing.byte_mutants(cache_file.read_bytes(), rng, 20),
                     cached_labels)


@pytest.mark.slow
def test_readers_survive_mutated_inputs(tmp_path):
    failures, count, slowest = [], 0, 0.0
    for number, (target, suffix, name, data, call) in enumerate(fuzz_cases(tmp_path)):
        path = tmp_path / "cases" / f"case{number}{suffix}"
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        outcome = fuzzing.run_isolated(functools.partial(call, path), time_limit=20)
        count += 1
        slowest = max(slowest, outcome.seconds)
        # A config's content errors name the key (the config layer's convention), not the file.
        name_in_message = "config" if target == "ConfigParser" else path.name
        good = outcome.kind == "ok" or (
            outcome.kind == "error" and fuzzing.is_one_line_naming(outcome.message,
                                                                   name_in_message))
        if not good:
            failures.append(f"{target} [{name}] {path}: {outcome.kind}: "
                            f"{outcome.message.strip().splitlines()[-1][:300]}")
    print(f"{count} in-process fuzz cases, slowest {slowest:.1f} s")
    assert count >= 300
    assert not failures, f"{len(failures)} of {count} cases failed:\n" + "\n".join(failures)


def command_ok(result: subprocess.CompletedProcess, names: tuple[str, ...]) -> bool:
    """Success, or exit 2 with a last line `error: ...` naming one of `names`; no traceback."""
    if "Traceback" in result.stderr:
        return False
    if result.returncode == 0:
        return True
    last = result.stderr.strip().splitlines()[-1] if result.stderr.strip() else ""
    return result.returncode == 2 and last.startswith("error: ") and any(n in last for n in names)


def run(*args: str, cwd: Path = REPO, timeout: int = 120) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=environment)


@pytest.mark.slow
def test_commands_survive_mutated_inputs(tmp_path):
    """APLS CLI and SpaceNet preparation on mutated GeoJSON, train.py on mutated configs, test.py
    --images on mutated GeoTIFFs."""
    rng = random.Random(SEED + 1)
    failures, count = [], 0

    def check(label: str, result: subprocess.CompletedProcess, names: tuple[str, ...]) -> None:
        nonlocal count
        count += 1
        if not command_ok(result, names):
            failures.append(f"{label}: exit {result.returncode}: {result.stderr.strip()[-400:]}")

    gt = tmp_path / "gt.geojson"
    gt.write_bytes(seed_geojson(tmp_path, pixels=True))
    for number, (name, data) in enumerate(
            fuzzing.json_mutants(json.loads(gt.read_bytes()), rng, 12)):
        pred = tmp_path / f"pred{number}.geojson"
        pred.write_bytes(data)
        check(f"apls [{name}] {pred}",
              run("-m", "tools.apls", "--gt", str(gt), "--pred", str(pred)), (pred.name,))

    src = tmp_path / "AOI_2_Vegas_Roads_Train"
    (src / "RGB-PanSharpen").mkdir(parents=True)
    (src / "geojson_roads").mkdir()
    raw = np.ascontiguousarray(seed_image().transpose(2, 0, 1)).astype(np.uint16) * 8
    write_raster(src / "RGB-PanSharpen" / "RGB-PanSharpen_AOI_2_Vegas_img1.tif", raw)
    labels = src / "geojson_roads" / "SN3_roads_train_AOI_2_Vegas_geojson_roads_img1.geojson"
    for number, (name, data) in enumerate(
            fuzzing.json_mutants(json.loads(seed_geojson(tmp_path, pixels=False)), rng, 10)):
        labels.write_bytes(data)
        dst = tmp_path / f"prepared{number}"
        check(f"spacenet [{name}]", run("tools/spacenet.py", "--src", str(src), "--dst", str(dst),
                                        "--split", "train"), (labels.name, str(src)))

    data_dir = tmp_path / "toy"
    generate(data_dir, seed=3, counts={"train": 1, "val": 1, "test": 0}, size=64)
    config = tiny_config(data_dir, tmp_path / "saved", epochs=1, tensorboard=False, amp=False,
                         channels_last=False, deterministic=False)
    config["arch"]["args"].update(num_stacks=1, depth=1, num_blocks=1, num_feats=8)
    config["data_loader"]["args"].update(crop_size=32, crops_per_tile=1, batch_size=1)
    config["predictor"].update(window=64, margin=8)
    quick = random.Random(SEED + 2)
    # Values that are wrong rather than merely large: a huge epoch count is just a long run.
    wrong = (None, True, -1, "", "text", [], {}, float("nan"), float("inf"))
    for number in range(10):
        name, mutant = fuzzing.json_value_mutation(config, quick, wrong)
        path = tmp_path / f"config{number}.json"
        path.write_text(json.dumps(mutant))
        check(f"train.py [{name}] {path}", run("train.py", "-c", str(path), timeout=300),
              (path.name, "config", "data_loader", "arch", "trainer"))
    # test.py --images on mutated GeoTIFFs, with a checkpoint of the unmutated config.
    good = tmp_path / "good.json"
    good.write_text(json.dumps(config))
    trained = run("train.py", "-c", str(good), timeout=300)
    assert trained.returncode == 0, trained.stderr[-2000:]
    checkpoint = next((tmp_path / "saved").rglob("checkpoint-epoch1.pth"))
    seeds = seed_geotiffs(tmp_path)
    for number in range(8):
        seed = ("deflate", "lzw", "rgba", "uint16")[number % 4]
        name, data = list(fuzzing.byte_mutants(seeds[seed], rng, 2, fuzzing.TIFF_MUTATIONS))[1]
        images = tmp_path / f"images{number}"
        images.mkdir()
        image = images / f"scene{number}.tif"
        image.write_bytes(data)
        check(f"test.py [{seed}: {name}] {image}",
              run("test.py", "-r", str(checkpoint), "--images", str(images), "--out",
                  str(tmp_path / f"predicted{number}"), timeout=300), (image.name, str(images)))
    print(f"{count} command fuzz cases")
    assert count >= 30
    assert not failures, f"{len(failures)} of {count} cases failed:\n" + "\n".join(failures)


def test_mutation_generators_are_seeded_and_keep_png_headers_signed():
    first = list(fuzzing.byte_mutants(b"\x89PNG" + bytes(100), random.Random(1), 20))
    again = list(fuzzing.byte_mutants(b"\x89PNG" + bytes(100), random.Random(1), 20))
    assert first == again and len(first) == 20
    png = encoded(".png", seed_image())
    name, mutant = fuzzing.png_header_mutation(png, random.Random(3))
    chunks = fuzzing.png_chunks(mutant)
    assert chunks[0][0] == b"IHDR" and fuzzing.png_bytes(chunks) == mutant


GEOJSON_REPRODUCERS = {
    "deep nesting": "[" * 100_000 + "]" * 100_000,
    "properties NaN": '{"type": "FeatureCollection", "features": [{"type": "Feature", '
                      '"properties": NaN, "geometry": {"type": "LineString", '
                      '"coordinates": [[0, 0], [1, 1]]}}]}',
    "properties list": '{"type": "FeatureCollection", "features": [{"properties": [1], '
                       '"geometry": {"type": "LineString", "coordinates": [[0, 0], [1, 1]]}}]}',
    "400-digit coordinate": '{"type": "FeatureCollection", "features": [{"geometry": '
                            '{"type": "LineString", "coordinates": [[1' + "0" * 400 + ', 0], '
                            '[1, 1]]}}]}',
    "crs properties a number": '{"type": "FeatureCollection", "crs": {"type": "name", '
                               '"properties": 3}, "features": []}',
}


@pytest.mark.parametrize("name", GEOJSON_REPRODUCERS)
def test_found_geojson_bugs_give_one_line_naming_the_file(tmp_path, name):
    path = tmp_path / "labels.geojson"
    path.write_text(GEOJSON_REPRODUCERS[name])
    with pytest.raises(DataError) as raised:
        read_road_lines(path)
    assert fuzzing.is_one_line_naming(str(raised.value), str(path))


@pytest.mark.parametrize("data", [b"[" * 100_000 + b"]" * 100_000, b'{"a": "\xff\xfe"}'])
def test_found_config_bugs_give_one_line_naming_the_file(tmp_path, data):
    path = tmp_path / "config.json"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as raised:
        read_json(path)
    assert fuzzing.is_one_line_naming(str(raised.value), str(path))


@pytest.mark.parametrize("mean", [[0.3, 0.3, "text"], 3, [0.3, float("nan"), 0.3], [[1], 2, 3],
                                  [True, 0.3, 0.3]])
def test_channel_stats_that_are_not_three_numbers_name_the_parameter(mean):
    with pytest.raises(ValueError, match=r"^mean: expected 3 numbers"):
        channel_stats(mean, "mean")


def test_a_huge_declared_size_is_refused_before_allocating(tmp_path):
    """A PNG and a GeoTIFF declaring 2^31 - 1 pixels a row in a few hundred bytes: refused from
    the header under a 2 GB address-space limit, in one line naming the file."""
    png = fuzzing.png_chunks(encoded(".png", seed_image()))
    png[0] = (b"IHDR", struct.pack(">II", 0x7FFFFFFF, 100_000) + png[0][1][8:])
    tiff = tmp_path / "seed.tif"
    write_raster(tiff, np.zeros((3, 8, 8), dtype=np.uint8))
    data = tiff.read_bytes()
    order, entries = fuzzing.tiff_entries(data)
    width = next(at for tag, _, at in entries if tag == 256)
    for path, content in ((tmp_path / "bomb.png", fuzzing.png_bytes(png)),
                          (tmp_path / "bomb.tif", data[:width + 4] + struct.pack(
                              order + "II", 1, 0x7FFFFFFF) + data[width + 12:])):
        path.write_bytes(content)
        for call in (read_image, read_mask):
            outcome = fuzzing.run_isolated(functools.partial(call, path), time_limit=20)
            assert outcome.kind == "error", outcome.message
            assert fuzzing.is_one_line_naming(outcome.message, str(path))
