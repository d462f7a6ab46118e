"""DeepGlobe Road Extraction preparation: `<id>_sat.jpg` / `<id>_mask.png` -> split folders.

    python -m tools.deepglobe SRC DST [--val-fraction 0.1] [--test-fraction 0.1] [--copy]

SRC is DeepGlobe's `train/` folder (or the folder above it): 1024x1024 RGB JPEG tiles at 0.5 m per
pixel, `<id>_sat.jpg`, each with its road mask `<id>_mask.png` (white = road). DeepGlobe never
released the labels of its valid and test splits, so all three splits are cut from these tiles,
by the rule of `split_of`: the first 8 bytes of SHA-256(id), read as a number in [0, 1), below
`val_fraction` is val, below `val_fraction + test_fraction` test, else train. An id's split
depends on its name alone (not on the file system's order, the other files or the Python
version), so every user and every rerun gets the same split; the fractions are met up to the
randomness of the hash (one standard deviation: 24 tiles, 0.4 %, of DeepGlobe's 6226 at 0.1).

Writes `<DST>/<split>/images/<id>.jpg`, a symbolic link to the source image (`--copy` copies it),
and `<DST>/<split>/masks/<id>.png`, the mask binarised: road where the mean of its bands is >= 128
(the masks' edges carry JPEG-like noise), written 0/255 single-band as the loaders expect.

A preparation step rather than a loader option: the loaders, `test.py --split`, `tools.stats` and
the label cache keep reading the one split layout, the split is fixed on disk where it can be
inspected, and links cost no space. Every pair is checked before anything is written (an image
without its mask, a mask without its image, a mask of another size, a truncated file): the first
problem stops the command in one line naming the source file. A rerun replaces the files it
wrote; a file of DST that this split would not write (DST prepared with other fractions) stops it,
as keeping it would put a tile in two splits.
"""
import argparse
import hashlib
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from data_loader.tiles import Tile, check_tile, read_raster
from utils.errors import ConfigError, DataError, OutputError, run_cli

IMAGE_NAME = re.compile(r"(.+)_sat\.jpg$")
MASK_NAME = re.compile(r"(.+)_mask\.png$")
SPLITS = ("train", "val", "test")
MASK_THRESHOLD = 128


def split_of(tile_id: str, val_fraction: float, test_fraction: float) -> str:
    """The split of a DeepGlobe id (see the module docstring)."""
    digest = hashlib.sha256(tile_id.encode("utf-8")).digest()
    position = int.from_bytes(digest[:8], "big") / 2**64
    if position < val_fraction:
        return "val"
    return "test" if position < val_fraction + test_fraction else "train"


def find_pairs(src: Path) -> dict[str, tuple[Path, Path]]:
    """{id: (image, mask)} of the DeepGlobe tiles in `src` (or `src/train`), every one paired."""
    if not src.is_dir():
        raise DataError(f"{src}: source folder not found")
    if not any(src.glob("*_sat.jpg")) and (src / "train").is_dir():
        src = src / "train"
    images, masks = {}, {}
    for path in sorted(src.iterdir()):
        for pattern, files in ((IMAGE_NAME, images), (MASK_NAME, masks)):
            match = pattern.fullmatch(path.name)
            if match and path.is_file():
                files[match.group(1)] = path
    if not images:
        raise DataError(f"{src}: no DeepGlobe tiles (<id>_sat.jpg with <id>_mask.png)")
    for tile_id, path in images.items():
        if tile_id not in masks:
            raise DataError(f"{path}: image without its mask {tile_id}_mask.png")
    for tile_id, path in masks.items():
        if tile_id not in images:
            raise DataError(f"{path}: mask without its image {tile_id}_sat.jpg")
    return {tile_id: (images[tile_id], masks[tile_id]) for tile_id in images}


def binary_mask(path: Path) -> np.ndarray:
    """(H, W) uint8 0/255: road where the mean of the mask's bands is >= MASK_THRESHOLD."""
    bands = read_raster(path).image
    return np.where(bands.mean(axis=2) >= MASK_THRESHOLD, 255, 0).astype(np.uint8)


def planned_files(dst: Path, splits: dict[str, str]) -> dict[str, tuple[Path, Path]]:
    """{id: (image, mask)} paths under `dst`, after checking that `dst` holds no other tile."""
    planned = {tile_id: (dst / split / "images" / f"{tile_id}.jpg",
                         dst / split / "masks" / f"{tile_id}.png")
               for tile_id, split in splits.items()}
    expected = {path for pair in planned.values() for path in pair}
    for split in SPLITS:
        for folder in ("images", "masks"):
            directory = dst / split / folder
            for path in sorted(directory.iterdir()) if directory.is_dir() else []:
                if path not in expected:
                    raise DataError(f"{path}: not a tile of this split (prepared with other "
                                    f"fractions?); remove {dst} or choose another DST")
    return planned


def prepare(src: Path, dst: Path, val_fraction: float = 0.1, test_fraction: float = 0.1,
            copy: bool = False) -> Counter:
    """Link (or copy) the images and write the binarised masks of `src` into the split folders
    of `dst`; returns the number of tiles per split."""
    pairs = find_pairs(src)
    for tile_id, (image, mask) in tqdm(pairs.items(), desc="checking", unit="tile"):
        check_tile(Tile(tile_id, image, mask, None))
    splits = {tile_id: split_of(tile_id, val_fraction, test_fraction) for tile_id in pairs}
    planned = planned_files(dst, splits)
    for tile_id, (image, mask) in tqdm(pairs.items(), desc="writing", unit="tile"):
        image_out, mask_out = planned[tile_id]
        try:
            for folder in (image_out.parent, mask_out.parent):
                folder.mkdir(parents=True, exist_ok=True)
            image_out.unlink(missing_ok=True)
            if copy:
                shutil.copyfile(image, image_out)
            else:
                image_out.symlink_to(image.resolve())
            mask_out.unlink(missing_ok=True)
        except OSError as error:
            raise OutputError(f"{error.filename}: cannot write ({error.strerror})") from None
        if not cv2.imwrite(str(mask_out), binary_mask(mask)):
            raise OutputError(f"{mask_out}: cannot write the mask")
    return Counter(splits.values())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.deepglobe",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("src", type=Path, help="DeepGlobe's train/ folder (<id>_sat.jpg, "
                                               "<id>_mask.png) or the folder above it")
    parser.add_argument("dst", type=Path, help="dataset root to write (<dst>/<split>/...)")
    parser.add_argument("--val-fraction", type=float, default=0.1, help="share for val (0.1)")
    parser.add_argument("--test-fraction", type=float, default=0.1, help="share for test (0.1)")
    parser.add_argument("--copy", action="store_true", help="copy the images instead of linking")
    args = parser.parse_args(argv)
    if not (0 <= args.val_fraction and 0 <= args.test_fraction
            and args.val_fraction + args.test_fraction <= 1):
        raise ConfigError("--val-fraction and --test-fraction must be >= 0 and sum to at most 1")
    counts = prepare(args.src, args.dst, args.val_fraction, args.test_fraction, args.copy)
    print(f"wrote {sum(counts.values())} tiles to {args.dst} ("
          + ", ".join(f"{split} {counts[split]}" for split in SPLITS) + ")")
    fractions = {"val": args.val_fraction, "test": args.test_fraction}
    for split, fraction in fractions.items():
        if fraction > 0 and counts[split] == 0:
            print(f"warning: no tile fell in {split} (too few tiles for --{split}-fraction "
                  f"{fraction})", file=sys.stderr)


if __name__ == "__main__":
    run_cli(main)
