"""Scenes of any size: time and peak memory of `test.py --images` on scenes of growing size.

    python -m benchmarks.bench_scene -r CHECKPOINT --tile IMAGE [--sizes 1300 5000 10000]

Each scene is a GeoTIFF (UTM, 1 m pixels, tiled, deflate) that repeats `--tile` (a real image,
mirrored at every other repeat so that roads run on across the seams) to the side length
(`benchmarks.synthetic.write_mirrored_mosaic`); the command is `python test.py -r CHECKPOINT
--images FOLDER`, run as a user would, one scene per run, its peak resident memory read from the
child's rusage (`benchmarks.harness.child_peak_rss_mib`). Time should grow with the area and
memory stay flat but for the one-byte-per-pixel outputs (mask, probability, classes).
"""
import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from benchmarks.harness import child_peak_rss_mib, machine_line, time_call
from benchmarks.synthetic import SPACENET_TILE_PX, write_mirrored_mosaic
from data_loader.tiles import read_image
from utils.errors import run_cli

REPO = Path(__file__).resolve().parents[1]


def measure(checkpoint: Path, folder: Path, out: Path) -> tuple[float, float]:
    """(seconds, peak RSS in GiB) of one `test.py --images` run."""
    before = child_peak_rss_mib()
    timing = time_call(lambda: subprocess.run(
        [sys.executable, "test.py", "-r", str(checkpoint), "--images", str(folder), "--out",
         str(out)], cwd=REPO, capture_output=True, text=True))
    if timing.value.returncode != 0:
        raise RuntimeError(timing.value.stderr[-2000:])
    peak = child_peak_rss_mib()
    if peak <= before:
        raise RuntimeError("rusage kept the peak of an earlier, larger child: "
                           "run one size per call")
    return timing.median, peak / 1024


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_scene",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("-r", "--checkpoint", type=Path, required=True)
    parser.add_argument("--tile", type=Path, required=True, help="image to mosaic into scenes")
    parser.add_argument("--sizes", type=int, nargs="+", default=[SPACENET_TILE_PX, 5000, 10000])
    args = parser.parse_args(argv)
    print(machine_line())
    tile = read_image(args.tile)
    rows = []
    for size in args.sizes:
        with tempfile.TemporaryDirectory() as temporary:
            folder = Path(temporary) / "scene"
            folder.mkdir()
            write_mirrored_mosaic(tile, size, folder / f"scene{size}.tif")
            seconds, peak = measure(args.checkpoint, folder, Path(temporary) / "out")
        rows.append({"size": size, "megapixels": size * size / 1e6, "seconds": round(seconds, 1),
                     "seconds_per_megapixel": round(seconds / (size * size / 1e6), 2),
                     "peak_rss_gib": round(peak, 2)})
        print(json.dumps(rows[-1]), flush=True)


if __name__ == "__main__":
    run_cli(main)
