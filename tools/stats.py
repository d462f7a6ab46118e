"""Normalization statistics of a dataset split: the per-channel mean and standard deviation of its
images scaled to [0, 1], the values `data_loader.args.mean` and `std` take.

    python -m tools.stats DATA_DIR [--split train] [--max-images N]

Valid pixels only: where a tile has a no-data color (`--nodata-color 255 255 255`), pixels of that
exact color are left out, so that white borders do not pull the mean up.
"""
import argparse
import json
from pathlib import Path

import numpy as np
from tqdm import tqdm

from data_loader.tiles import list_tiles, read_image
from utils.errors import ConfigError, run_cli


def channel_statistics(images: list[Path], nodata_color: tuple[int, int, int] | None = None
                       ) -> tuple[list[float], list[float], int]:
    """(mean, std, pixels) per RGB channel over `images`, in [0, 1] units.

    Sums are accumulated in float64 over all valid pixels of all images (not a mean of per-image
    means), so large and small tiles weigh by their area.
    """
    total = np.zeros(3)
    squares = np.zeros(3)
    count = 0
    for path in tqdm(images, desc="images", unit="image"):
        pixels = read_image(path).reshape(-1, 3)
        if nodata_color is not None:
            pixels = pixels[~np.all(pixels == np.asarray(nodata_color, dtype=np.uint8), axis=1)]
        values = pixels.astype(np.float64) / 255.0
        total += values.sum(axis=0)
        squares += np.square(values).sum(axis=0)
        count += len(values)
    if count == 0:
        raise ConfigError("no valid pixel in the selected images")
    mean = total / count
    std = np.sqrt(np.maximum(squares / count - np.square(mean), 0.0))
    return mean.round(4).tolist(), std.round(4).tolist(), count


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.stats", description=__doc__.split("\n\n")[0])
    parser.add_argument("data_dir", type=Path, help="dataset root (<data_dir>/<split>/images)")
    parser.add_argument("--split", default="train", help="split to measure (default train)")
    parser.add_argument("--max-images", type=int, help="use the first N images (sorted by stem)")
    parser.add_argument("--nodata-color", type=int, nargs=3, metavar=("R", "G", "B"),
                        help="leave out pixels of exactly this color")
    args = parser.parse_args(argv)
    tiles = list_tiles(args.data_dir / args.split, require_masks=False)[: args.max_images]
    mean, std, count = channel_statistics([tile.image_path for tile in tiles],
                                          tuple(args.nodata_color) if args.nodata_color else None)
    print(json.dumps({"mean": mean, "std": std, "images": len(tiles), "pixels": count}))


if __name__ == "__main__":
    run_cli(main)
