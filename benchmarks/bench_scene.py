"""Scenes of any size: time and peak memory of `test.py --images` or `tools.map_roads` on scenes
of growing size.

    python -m benchmarks.bench_scene -r CHECKPOINT --tile IMAGE [--sizes 1300 5000 10000]
    python -m benchmarks.bench_scene -r CHECKPOINT --tile IMAGE --command map --sizes 10000

Each scene is a GeoTIFF (UTM, 1 m pixels, tiled, deflate) that repeats `--tile` (a real image,
mirrored at every other repeat so that roads run on across the seams) to the side length
(`benchmarks.synthetic.write_mirrored_mosaic`); the command is `python test.py -r CHECKPOINT
--images FOLDER` (whole-scene outputs in memory, one byte a pixel each) or `python -m
tools.map_roads -r CHECKPOINT SCENE` (block by block, out of core), run as a user would, one scene
per run, its peak resident memory read from its own parent's rusage
(`benchmarks.harness.measured_command`). Time should grow with the area; memory stays flat but
for the one-byte-per-pixel outputs of `test.py`, and flat for `map`.
"""
import argparse
import json
import tempfile
from pathlib import Path

from benchmarks.harness import machine_line, measured_command
from benchmarks.synthetic import SPACENET_TILE_PX, write_mirrored_mosaic
from data_loader.tiles import read_image
from utils.errors import run_cli

REPO = Path(__file__).resolve().parents[1]


def measure(checkpoint: Path, scene: Path, out: Path, command: str) -> tuple[float, float]:
    """(seconds, peak RSS in GiB) of one `test.py --images` or `tools.map_roads` run."""
    args = (["test.py", "-r", str(checkpoint), "--images", str(scene.parent), "--out", str(out)]
            if command == "test" else
            ["-m", "tools.map_roads", "-r", str(checkpoint), str(scene), "--out", str(out)])
    seconds, peak, _ = measured_command(args, REPO)
    return seconds, peak


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_scene",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("-r", "--checkpoint", type=Path, required=True)
    parser.add_argument("--tile", type=Path, required=True, help="image to mosaic into scenes")
    parser.add_argument("--sizes", type=int, nargs="+", default=[SPACENET_TILE_PX, 5000, 10000])
    parser.add_argument("--command", choices=("test", "map"), default="test",
                        help="test.py --images (default) or tools.map_roads")
    args = parser.parse_args(argv)
    print(machine_line())
    tile = read_image(args.tile)
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as temporary:
            folder = Path(temporary) / "scene"
            folder.mkdir()
            write_mirrored_mosaic(tile, size, folder / f"scene{size}.tif")
            seconds, peak = measure(args.checkpoint, folder / f"scene{size}.tif",
                                    Path(temporary) / "out", args.command)
        rows.append({"command": args.command, "size": size, "megapixels": size * size / 1e6, "seconds": round(seconds, 1),
                     "seconds_per_megapixel": round(seconds / (size * size / 1e6), 2),
                     "peak_rss_gib": round(peak, 2)})
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    run_cli(main)
