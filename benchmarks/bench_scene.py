"""Scenes of any size: time and peak memory of `test.py --images` on scenes of growing size.

    python -m benchmarks.bench_scene -r CHECKPOINT --tile IMAGE [--sizes 1300 5000 10000]

Each scene is a GeoTIFF (UTM, 1 m pixels, tiled, deflate) that repeats `--tile` (a real image,
mirrored at every other repeat so that roads run on across the seams) to the side length; the
command is `python test.py -r CHECKPOINT --images FOLDER`, run as a user would, one scene per
run, its peak resident memory read from the child's rusage. Time should grow with the area and
memory stay flat but for the one-byte-per-pixel outputs (mask, probability, classes).
"""
import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin

from data_loader.tiles import read_image
from utils.errors import run_cli

REPO = Path(__file__).resolve().parents[1]


def write_scene(path: Path, tile: np.ndarray, size: int) -> None:
    """A size x size RGB GeoTIFF mosaic of `tile` (H, W, 3) uint8, written block row by block
    row so that the writer never holds the scene."""
    height, width = tile.shape[:2]
    flipped = {(i, j): tile[:: -1 if i else 1, :: -1 if j else 1] for i in (0, 1) for j in (0, 1)}
    profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8", tiled=True,
                   blockxsize=512, blockysize=512, compress="deflate", crs="EPSG:32619",
                   transform=from_origin(300_000, 4_700_000, 1.0, 1.0), BIGTIFF="IF_SAFER")
    with rasterio.open(path, "w", **profile) as scene:
        for row in range(0, size, height):
            rows = min(height, size - row)
            strip = np.concatenate([flipped[(row // height) % 2, (col // width) % 2][:rows]
                                    for col in range(0, size, width)], axis=1)[:, :size]
            scene.write(strip.transpose(2, 0, 1), window=((row, row + rows), (0, size)))


def measure(checkpoint: Path, folder: Path, out: Path) -> tuple[float, float]:
    """(seconds, peak RSS in GiB) of one `test.py --images` run."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "test.py", "-r", str(checkpoint), "--images",
                             str(folder), "--out", str(out)], cwd=REPO, capture_output=True,
                            text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-2000:])
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if peak_kib <= before:
        raise RuntimeError("rusage kept the peak of an earlier, larger child: run one size per call")
    return seconds, peak_kib / 2**20


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_scene",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("-r", "--checkpoint", type=Path, required=True)
    parser.add_argument("--tile", type=Path, required=True, help="image to mosaic into scenes")
    parser.add_argument("--sizes", type=int, nargs="+", default=[1300, 5000, 10000])
    args = parser.parse_args(argv)
    tile = read_image(args.tile)
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as temporary:
            folder = Path(temporary) / "scene"
            folder.mkdir()
            write_scene(folder / f"scene{size}.tif", tile, size)
            seconds, peak = measure(args.checkpoint, folder, Path(temporary) / "out")
        rows.append({"size": size, "megapixels": size * size / 1e6, "seconds": round(seconds, 1),
                     "seconds_per_megapixel": round(seconds / (size * size / 1e6), 2),
                     "peak_rss_gib": round(peak, 2)})
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    run_cli(main)
