"""SpaceNet 3 preparation: raw 16-bit tiles and road GeoJSON -> 8-bit images, masks and labels.

    python -m tools.spacenet --src AOI_2_Vegas_Roads_Train --dst data/spacenet3
                                   [--split NAME | --val-fraction F --test-fraction F --seed S]

Reads `RGB-PanSharpen/RGB-PanSharpen_AOI_<n>_<City>_img<N>.tif` and the road labels from
`geojson_roads/SN3_roads_train_AOI_<n>_<City>_geojson_roads_img<N>.geojson` or
`geojson/spacenetroads/spacenetroads_AOI_<n>_<City>_img<N>.geojson`, pairs them by AOI and image
number into the stem `AOI_<n>_<City>_img<N>`, and writes `<dst>/<split>/images/<stem>.tif` (8-bit
RGB GeoTIFF keeping the georeference), `masks/<stem>.png` (0/255, `render_tile_mask`) and
`geojson/<stem>.geojson` (a copy). A tile that cannot be prepared is skipped with a warning naming
the file, and the summary counts the skips by reason.
"""
import argparse
import re
import shutil
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import tifffile
from tqdm import tqdm

from roads.geo import read_geotransform, read_road_lines, render_tile_mask, write_geotiff
from utils.errors import ConfigError, DataError, run_cli

IMAGE_FOLDER = "RGB-PanSharpen"
LABEL_FOLDERS = ("geojson_roads", "geojson/spacenetroads")
IMAGE_NAME = re.compile(r"(AOI_\d+_[A-Za-z]+)_img(\d+)\.tiff?$", re.IGNORECASE)
LABEL_NAME = re.compile(r"(AOI_\d+_[A-Za-z]+)_(?:\w*_)?img(\d+)\.geojson$", re.IGNORECASE)
STRETCH_PERCENTILES = (2.0, 98.0)


class SkippedTile(Exception):
    """A tile that cannot be prepared; `reason` is its summary category, the message names a file."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason


def tile_stem(name: str, pattern: re.Pattern) -> str | None:
    """`AOI_<n>_<City>_img<N>` from a raw file name, or None when the name does not match."""
    match = pattern.search(name)
    return f"{match.group(1)}_img{int(match.group(2))}" if match else None


def find_files(folders: list[Path], pattern: re.Pattern, glob: str) -> dict[str, Path]:
    """{stem: path} of the files named like `pattern` in `folders`; the first folder wins a tie."""
    files: dict[str, Path] = {}
    for folder in folders:
        for path in sorted(folder.glob(glob)) if folder.is_dir() else []:
            stem = tile_stem(path.name, pattern)
            if stem is not None:
                files.setdefault(stem, path)
    return files


def stretch_to_uint8(image: np.ndarray) -> np.ndarray:
    """(H, W, 3) raw bands -> (H, W, 3) uint8 by a per-band 2nd..98th percentile stretch (chosen).

    The percentile stretch is the usual SpaceNet visualisation: it maps each band's bulk of 11-bit
    values onto 0..255 and clips the few saturated pixels (roofs, sun glints) instead of letting
    them compress the range. Pixels that are 0 in every band are no-data (outside the scene): they
    are left out of the percentiles and stay 0.
    """
    image = image.astype(np.float32)
    valid = image.max(axis=2) > 0
    out = np.zeros(image.shape, dtype=np.uint8)
    if not valid.any():
        return out
    for band in range(image.shape[2]):
        low, high = np.percentile(image[..., band][valid], STRETCH_PERCENTILES)
        scaled = (image[..., band] - low) * (255.0 / max(high - low, 1e-6))
        out[..., band] = np.clip(np.round(scaled), 0, 255)
    out[~valid] = 0
    return out


def read_raw_image(path: Path) -> np.ndarray:
    """(H, W, 3) raw bands of a SpaceNet GeoTIFF; SkippedTile when unreadable or not 3 bands."""
    try:
        with tifffile.TiffFile(path) as tif:
            axes = tif.series[0].axes
            image = tif.asarray()
    except Exception as error:  # a damaged TIFF raises ValueError, EOFError, zlib.error, ...
        raise SkippedTile("unreadable or truncated TIFF",
                          f"{path}: unreadable TIFF ({error})") from None
    if axes == "SYX":
        image = np.moveaxis(image, 0, -1)
    bands = image.shape[2] if image.ndim == 3 else 1
    if image.ndim not in (2, 3) or bands != 3:
        raise SkippedTile("wrong band count", f"{path}: expected 3 bands, found {bands}")
    return image


def prepare_tile(image_path: Path, label_path: Path, split_dir: Path, stem: str) -> None:
    """Write one tile's 8-bit image, mask and GeoJSON under `split_dir`; SkippedTile if bad."""
    try:
        lines = read_road_lines(label_path)
    except DataError as error:
        raise SkippedTile("invalid GeoJSON", str(error)) from None
    try:
        transform = read_geotransform(image_path)
    except DataError as error:
        raise SkippedTile("unreadable or truncated TIFF", str(error)) from None
    if transform is None:
        raise SkippedTile("no georeference tags",
                          f"{image_path}: no ModelTiepoint/ModelPixelScale tags")
    image = stretch_to_uint8(read_raw_image(image_path))
    mask = render_tile_mask(lines, transform, image.shape[:2])
    for folder in ("images", "masks", "geojson"):
        (split_dir / folder).mkdir(parents=True, exist_ok=True)
    write_geotiff(split_dir / "images" / f"{stem}.tif", image, transform)
    cv2.imwrite(str(split_dir / "masks" / f"{stem}.png"), mask)
    shutil.copyfile(label_path, split_dir / "geojson" / f"{stem}.geojson")


def assign_splits(stems: list[str], split: str | None, val_fraction: float, test_fraction: float,
                  seed: int) -> dict[str, str]:
    """{stem: split}: all in `split`, or a seeded random permutation cut by the two fractions."""
    if split is not None:
        return {stem: split for stem in stems}
    order = np.random.default_rng(seed).permutation(sorted(stems))
    n_val, n_test = round(val_fraction * len(order)), round(test_fraction * len(order))
    names = ["val"] * n_val + ["test"] * n_test + ["train"] * (len(order) - n_val - n_test)
    return {str(stem): name for stem, name in zip(order, names)}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, required=True, help="raw SpaceNet 3 AOI folder")
    parser.add_argument("--dst", type=Path, required=True, help="dataset root to write")
    parser.add_argument("--split", help="put every tile in this split (e.g. train)")
    parser.add_argument("--val-fraction", type=float, help="share of tiles for val (0.1)")
    parser.add_argument("--test-fraction", type=float, help="share of tiles for test (0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random split")
    args = parser.parse_args()
    if args.split is not None:
        if args.val_fraction is not None or args.test_fraction is not None:
            raise ConfigError("--split cannot be combined with --val-fraction/--test-fraction")
        if not re.fullmatch(r"[\w.-]+", args.split) or args.split in (".", ".."):
            raise ConfigError(f"--split must be a folder name, got '{args.split}'")
    args.val_fraction = 0.1 if args.val_fraction is None else args.val_fraction
    args.test_fraction = 0.1 if args.test_fraction is None else args.test_fraction
    if not (0 <= args.val_fraction and 0 <= args.test_fraction
            and args.val_fraction + args.test_fraction <= 1):
        raise ConfigError("--val-fraction and --test-fraction must be >= 0 and sum to at most 1")
    return args


def main() -> None:
    args = parse_args()
    if not args.src.is_dir():
        raise DataError(f"{args.src}: source folder not found")
    images = find_files([args.src / IMAGE_FOLDER], IMAGE_NAME, "*.tif*")
    labels = find_files([args.src / folder for folder in LABEL_FOLDERS], LABEL_NAME, "*.geojson")
    if not images and not labels:
        raise DataError(f"{args.src}: no tiles found (expected {IMAGE_FOLDER}/*.tif and "
                        f"{' or '.join(LABEL_FOLDERS)}/*.geojson)")
    skipped: Counter = Counter()

    def skip(reason: str, message: str) -> None:
        skipped[reason] += 1
        tqdm.write(f"warning: skipped {message}", file=sys.stderr)

    for stem in sorted(images.keys() - labels.keys()):
        skip("image without labels", f"{images[stem]}: no road GeoJSON for {stem}")
    for stem in sorted(labels.keys() - images.keys()):
        skip("labels without image", f"{labels[stem]}: no {IMAGE_FOLDER} image for {stem}")
    splits = assign_splits(list(images.keys() & labels.keys()), args.split, args.val_fraction,
                           args.test_fraction, args.seed)
    if not splits:
        raise DataError(f"{args.src}: no image has road labels ({len(images)} images, "
                        f"{len(labels)} GeoJSON files)")
    written: Counter = Counter()
    for stem in tqdm(sorted(splits), desc="tiles", unit="tile"):
        try:
            prepare_tile(images[stem], labels[stem], args.dst / splits[stem], stem)
            written[splits[stem]] += 1
        except SkippedTile as error:
            skip(error.reason, str(error))
    per_split = ", ".join(f"{name} {count}" for name, count in sorted(written.items()))
    print(f"wrote {sum(written.values())} tiles to {args.dst} ({per_split or 'none'})")
    print(f"skipped {sum(skipped.values())} tiles" + "".join(
        f"\n  {reason}: {count}" for reason, count in sorted(skipped.items())))
    if not written:
        raise DataError(f"{args.src}: every tile was skipped, nothing was written (see the warnings)")


if __name__ == "__main__":
    run_cli(main)
