"""Synthetic SpaceNet-format dataset: suburban overhead tiles with GeoJSON road labels and masks.

    python -m tools.toy --out dataset/toy-spacenet [--seed 0] [--train 12 --val 2 --test 4]
                              [--size 1300]

Every tile is what `tools.spacenet` writes for a real SpaceNet 3 tile: an 8-bit RGB GeoTIFF
near Las Vegas at 2.7e-6 deg/px, a GeoJSON of lon/lat LineStrings with string-typed SpaceNet
properties, and the mask that `render_tile_mask` draws from that GeoJSON. Tile N is a function of
(seed, N, size) alone, drawn from its own numpy Generator. The road network comes from
`tools.toy.roads`, the imagery from `tools.toy.imagery`.
"""
import argparse
import math
from pathlib import Path

import cv2
import numpy as np

from roads.geo import read_road_lines, render_tile_mask, write_road_lines
from roads.georeference import Georeference, write_geotiff
from tools.toy.imagery import TilePainter
from tools.toy.roads import road_network
from utils.errors import ConfigError, run_cli

SPLITS = ("train", "val", "test")
AOI = "AOI_2_Vegas"
DEGREES_PER_PIXEL = 2.7e-6
ORIGIN_LONLAT = (-115.32, 36.25)   # north-west corner of the mosaic of toy tiles, Las Vegas
MOSAIC_COLUMNS = 10
PIXEL_SIZE_M = math.radians(DEGREES_PER_PIXEL) * 6_371_008.8
"""Toy pixels are painted and masked as 0.300 m squares (2.7e-6 deg of latitude on the mean Earth
radius): the toy world is drawn on a square grid although its lon/lat tags put 0.24 m east-west
pixels in Las Vegas. Kept so that the shipped toy dataset stays as generated."""


def tile_transform(number: int, size: int) -> Georeference:
    """Georeference of toy tile `number` (1-based): tiles side by side near Las Vegas."""
    column, row = (number - 1) % MOSAIC_COLUMNS, (number - 1) // MOSAIC_COLUMNS
    return Georeference.north_up_lonlat(lon0=ORIGIN_LONLAT[0] + column * size * DEGREES_PER_PIXEL,
                                        lat0=ORIGIN_LONLAT[1] - row * size * DEGREES_PER_PIXEL,
                                        dx=DEGREES_PER_PIXEL, dy=DEGREES_PER_PIXEL,
                                        shape=(size, size))


def write_tile(root: Path, split: str, number: int, seed: int, size: int) -> None:
    """Generate tile `number` and write its image, GeoJSON and mask under `root/split`."""
    rng = np.random.default_rng([seed, number])
    transform = tile_transform(number, size)
    roads = road_network(rng, size)
    image = TilePainter(rng, roads, size, PIXEL_SIZE_M).paint()
    stem = f"{AOI}_img{number}"
    folders = {name: root / split / name for name in ("images", "masks", "geojson")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    geojson_path = folders["geojson"] / f"{stem}.geojson"
    write_road_lines(geojson_path, [transform.to_lonlat(road.xy) for road in roads],
                     [road.properties for road in roads])
    write_geotiff(folders["images"] / f"{stem}.tif", image, transform, level=9)  # smaller repo
    # The mask comes from the written GeoJSON, exactly as for real SpaceNet labels.
    mask = render_tile_mask(read_road_lines(geojson_path), transform,
                            (PIXEL_SIZE_M, PIXEL_SIZE_M))
    cv2.imwrite(str(folders["masks"] / f"{stem}.png"), mask)


README = """# toy-spacenet: a synthetic SpaceNet 3 stand-in

Synthetic data, not imagery of any real place. It has the layout and file formats of a SpaceNet 3
road dataset prepared by `python -m tools.spacenet`, so that the whole pipeline (training,
connectivity labels, prediction, APLS) can be run and tested without the real data.

- Splits: {counts}; tiles {size} x {size} px; seed {seed}.
- `<split>/images/<stem>.tif`: 8-bit RGB GeoTIFF (deflate), EPSG:4326 tags, 2.7e-6 deg/px near Las
  Vegas (about 0.30 m/px north-south), tiles laid side by side.
- `<split>/geojson/<stem>.geojson`: lon/lat LineStrings with string-typed SpaceNet properties
  (`road_type`, `lane_number`, `paved`, `bridge_typ`, `road_id`, ...); lines meet at junctions.
- `<split>/masks/<stem>.png`: 0/255 road mask drawn from the GeoJSON by
  `roads.geo.render_tile_mask` (road widths by `road_type`), the same code as for SpaceNet.

How it is made (`tools/toy/generate.py`): a street lattice, rotated and bent into curves by a smooth
warp, thinned into T-junctions and dead ends, with an arterial road in most tiles and short
cul-de-sacs, clipped by the tile border; then desert ground, houses with shadows, driveways, pools,
trees overhanging the roads and cars are painted around sidewalk-lined asphalt roads. The asphalt
is exactly as wide as the mask.

What it lacks: sensor noise and haze, parking lots, highways, bridges, other cities. It is meant
for testing the pipeline end to end and for quick training runs, not for comparing methods.

Regenerate (deterministic for a seed):

    python -m tools.toy --out dataset/toy-spacenet --seed {seed} {count_args} --size {size}
"""


def generate(out: Path, seed: int, counts: dict[str, int], size: int) -> None:
    """Write all splits (tiles numbered 1, 2, ... across train, val, test) and the README."""
    number = 0
    for split in SPLITS:
        for folder in ("images", "masks", "geojson"):
            for stale in (out / split / folder).glob(f"{AOI}_img*.*"):
                stale.unlink()
        for _ in range(counts[split]):
            number += 1
            write_tile(out, split, number, seed, size)
    count_args = " ".join(f"--{split} {counts[split]}" for split in SPLITS)
    (out / "README.md").write_text(README.format(
        counts=", ".join(f"{split} {counts[split]}" for split in SPLITS), size=size, seed=seed,
        count_args=count_args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="dataset root to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=1300, help="tile side in pixels")
    for split, count in zip(SPLITS, (12, 2, 4), strict=False):
        parser.add_argument(f"--{split}", type=int, default=count, help=f"number of {split} tiles")
    args = parser.parse_args()
    if args.size < 64:
        raise ConfigError(f"--size must be at least 64 pixels, got {args.size}")
    counts = {split: getattr(args, split) for split in SPLITS}
    if min(counts.values()) < 0:
        raise ConfigError(f"tile counts must not be negative, got {counts}")
    args.out.mkdir(parents=True, exist_ok=True)
    generate(args.out, args.seed, counts, args.size)
    print(f"wrote {sum(counts.values())} tiles to {args.out}")


if __name__ == "__main__":
    run_cli(main)
