"""Inspect the connectivity labels of a road mask.

    python -m tools.labels MASK OUT.png [--quarter OUT4.png] [--color]
"""
import argparse
from pathlib import Path

import cv2
import numpy as np

from data_loader.tiles import read_mask
from roads.classes import colorize
from roads.labels import connectivity_labels
from utils.errors import DataError, run_cli


def _write(path: Path, labels: np.ndarray, color: bool) -> None:
    picture = cv2.cvtColor(colorize(labels), cv2.COLOR_RGB2BGR) if color else labels
    try:
        written = cv2.imwrite(str(path), picture)
    except cv2.error:
        written = False
    if not written:
        raise DataError(f"{path}: cannot write the image (missing folder or unknown extension)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tools.labels",
        description="Derive the connectivity labels (0 background, 1 dead end, 2 road, "
                    "3 three-way, 4 four-or-more) of a road mask and write them as a uint8 PNG.")
    parser.add_argument("mask", type=Path, help="road mask image (0/255)")
    parser.add_argument("out", type=Path, help="output PNG of class ids at full resolution")
    parser.add_argument("--quarter", type=Path, help="also write the 1/4-resolution label here")
    parser.add_argument("--color", action="store_true",
                        help="write coloured pictures instead of class ids")
    args = parser.parse_args(argv)
    full, quarter = connectivity_labels(read_mask(args.mask))
    _write(args.out, full, args.color)
    if args.quarter is not None:
        _write(args.quarter, quarter, args.color)


if __name__ == "__main__":
    run_cli(main)
