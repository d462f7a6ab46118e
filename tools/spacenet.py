"""SpaceNet 3 preparation: raw tiles and road GeoJSON -> 8-bit images, masks, validity and labels.

    python -m tools.spacenet --src AOI_2_Vegas_Roads_Train --dst data/spacenet3
                                   [--split NAME | --val-fraction F --test-fraction F --seed S]
                                   [--image-folder RGB-PanSharpen] [--bands 5,3,2]
                                   [--nodata-color 0,0,0] [--workers N]

Reads `<image-folder>/<prefix>_AOI_<n>_<City>_img<N>.tif` (default RGB-PanSharpen; PAN, MUL and
PS-MS folders work too, `--bands` choosing the three bands of multispectral tiles) and the road
labels from `geojson_roads/SN3_roads_train_AOI_<n>_<City>_geojson_roads_img<N>.geojson` or
`geojson/spacenetroads/spacenetroads_AOI_<n>_<City>_img<N>.geojson`, pairs them by AOI and image
number into the stem `AOI_<n>_<City>_img<N>`, and writes under `<dst>/<split>/`:
`images/<stem>.tif` (8-bit RGB GeoTIFF with the tile's CRS and transform, no-data in its internal
mask), `masks/<stem>.png` (0/255, `render_tile_mask`), `valid/<stem>.png` (0/255, 255 where the
tile has image data) and `geojson/<stem>.geojson` (a copy).

Images are read by `data_loader.tiles` (any GDAL raster: LZW, alpha bands, 1-band PAN, uint16
stretched per band over the valid pixels); invalid pixels are the alpha/mask/nodata value of the
raster and those of `--nodata-color` (SpaceNet: black, 0 in every band). A tile that cannot be
prepared is skipped with a warning naming the file, and the summary counts the skips by reason.
"""
import argparse
import multiprocessing
import re
import shutil
import sys
import warnings
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from data_loader.tiles import BandError, RasterOptions, RasterSource
from roads.geo import read_road_lines, render_tile_mask
from roads.georeference import write_geotiff
from utils.errors import ConfigError, DataError, run_cli

IMAGE_FOLDER = "RGB-PanSharpen"
LABEL_FOLDERS = ("geojson_roads", "geojson/spacenetroads")
IMAGE_NAME = re.compile(r"(AOI_\d+_[A-Za-z]+)_img(\d+)\.tiff?$", re.IGNORECASE)
LABEL_NAME = re.compile(r"(AOI_\d+_[A-Za-z]+)_(?:\w*_)?img(\d+)\.geojson$", re.IGNORECASE)
SPACENET_NODATA_COLOR = (0.0, 0.0, 0.0)
"""SpaceNet tiles are black (0 in every band) outside the scene."""


class SkippedTile(Exception):
    """A tile that cannot be prepared; `reason` is its summary category, the message names a
    file."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason

    def __reduce__(self):
        # Raised in pool workers: pickled with both arguments.
        return type(self), (self.reason, str(self))


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


SPACENET_OPTIONS = RasterOptions(nodata_color=SPACENET_NODATA_COLOR)


def prepare_tile(image_path: Path, label_path: Path, split_dir: Path, stem: str,
                 options: RasterOptions = SPACENET_OPTIONS) -> list[str]:
    """Write one tile's 8-bit image, mask, validity and GeoJSON under `split_dir`; SkippedTile if
    bad. Returns the warnings raised on the way (labels outside the tile), one line each."""
    try:
        lines = read_road_lines(label_path)
    except DataError as error:
        raise SkippedTile("invalid GeoJSON", str(error)) from None
    try:
        with RasterSource(image_path, options) as source:
            if source.georeference is None:
                raise SkippedTile("no georeference", f"{image_path}: no CRS and geotransform, "
                                  f"cannot place the GeoJSON labels of {label_path.name}")
            raster = source.read()
    except BandError as error:
        raise SkippedTile("wrong band count", str(error)) from None
    except DataError as error:
        raise SkippedTile("unreadable or truncated TIFF", str(error)) from None
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mask = render_tile_mask(lines, raster.georeference, label_path=label_path)
    for folder in ("images", "masks", "valid", "geojson"):
        (split_dir / folder).mkdir(parents=True, exist_ok=True)
    write_geotiff(split_dir / "images" / f"{stem}.tif", raster.image, raster.georeference,
                  valid=raster.valid)
    cv2.imwrite(str(split_dir / "masks" / f"{stem}.png"), mask)
    cv2.imwrite(str(split_dir / "valid" / f"{stem}.png"), raster.valid.astype(np.uint8) * 255)
    shutil.copyfile(label_path, split_dir / "geojson" / f"{stem}.geojson")
    return [str(warning.message) for warning in caught]


def _prepare_task(task: tuple) -> tuple[str, str | None, str | None, list[str]]:
    """Pool task: (stem, skip reason or None, skip message, warnings) of one tile."""
    stem, image_path, label_path, split_dir, options = task
    try:
        return stem, None, None, prepare_tile(image_path, label_path, split_dir, stem, options)
    except SkippedTile as error:
        return stem, error.reason, str(error), []


def assign_splits(stems: list[str], split: str | None, val_fraction: float, test_fraction: float,
                  seed: int) -> dict[str, str]:
    """{stem: split}: all in `split`, or a seeded random permutation cut by the two fractions."""
    if split is not None:
        return {stem: split for stem in stems}
    order = np.random.default_rng(seed).permutation(sorted(stems))
    n_val, n_test = round(val_fraction * len(order)), round(test_fraction * len(order))
    names = ["val"] * n_val + ["test"] * n_test + ["train"] * (len(order) - n_val - n_test)
    return {str(stem): name for stem, name in zip(order, names, strict=False)}


def _numbers(text: str | None, kind: type, option: str) -> tuple | None:
    """Comma-separated numbers of a command-line option -> tuple (None or 'none' -> None)."""
    if text is None or text.strip().lower() == "none":
        return None
    try:
        return tuple(kind(value) for value in text.split(","))
    except ValueError:
        raise ConfigError(f"{option}: expected comma-separated numbers, got '{text}'") from None


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--src", type=Path, required=True, help="raw SpaceNet 3 AOI folder")
    parser.add_argument("--dst", type=Path, required=True, help="dataset root to write")
    parser.add_argument("--split", help="put every tile in this split (e.g. train)")
    parser.add_argument("--val-fraction", type=float, help="share of tiles for val (0.1)")
    parser.add_argument("--test-fraction", type=float, help="share of tiles for test (0.1)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random split")
    parser.add_argument("--image-folder", default=IMAGE_FOLDER,
                        help=f"folder of the tiles under --src ({IMAGE_FOLDER})")
    parser.add_argument("--bands", help="1-based bands read as R,G,B, e.g. 5,3,2 for 8-band MUL")
    parser.add_argument("--nodata-color", default=",".join(f"{v:g}" for v in SPACENET_NODATA_COLOR),
                        help="raw band values of no-data pixels (0,0,0); 'none' for none")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes (1)")
    args = parser.parse_args()
    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    try:
        args.options = RasterOptions(_numbers(args.bands, int, "--bands"),
                                     _numbers(args.nodata_color, float, "--nodata-color"))
    except ValueError as error:
        raise ConfigError(f"--{str(error).replace('_', '-')}") from None
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
    images = find_files([args.src / args.image_folder], IMAGE_NAME, "*.tif*")
    labels = find_files([args.src / folder for folder in LABEL_FOLDERS], LABEL_NAME, "*.geojson")
    if not images and not labels:
        raise DataError(f"{args.src}: no tiles found (expected {args.image_folder}/*.tif and "
                        f"{' or '.join(LABEL_FOLDERS)}/*.geojson)")
    skipped: Counter = Counter()

    def skip(reason: str, message: str) -> None:
        skipped[reason] += 1
        tqdm.write(f"warning: skipped {message}", file=sys.stderr)

    for stem in sorted(images.keys() - labels.keys()):
        skip("image without labels", f"{images[stem]}: no road GeoJSON for {stem}")
    for stem in sorted(labels.keys() - images.keys()):
        skip("labels without image", f"{labels[stem]}: no {args.image_folder} image for {stem}")
    splits = assign_splits(list(images.keys() & labels.keys()), args.split, args.val_fraction,
                           args.test_fraction, args.seed)
    if not splits:
        raise DataError(f"{args.src}: no image has road labels ({len(images)} images, "
                        f"{len(labels)} GeoJSON files)")
    written: Counter = Counter()
    tasks = [(stem, images[stem], labels[stem], args.dst / splits[stem], args.options)
             for stem in sorted(splits)]
    with multiprocessing.get_context("spawn").Pool(args.workers) if args.workers > 1 else \
            _InProcess() as pool:
        results = pool.imap_unordered(_prepare_task, tasks)
        for stem, reason, message, tile_warnings in tqdm(results, total=len(tasks), desc="tiles",
                                                        unit="tile"):
            for line in tile_warnings:
                tqdm.write(f"warning: {line}", file=sys.stderr)
            if reason is None:
                written[splits[stem]] += 1
            else:
                skip(reason, message)
    per_split = ", ".join(f"{name} {count}" for name, count in sorted(written.items()))
    print(f"wrote {sum(written.values())} tiles to {args.dst} ({per_split or 'none'})")
    print(f"skipped {sum(skipped.values())} tiles" + "".join(
        f"\n  {reason}: {count}" for reason, count in sorted(skipped.items())))
    if not written:
        raise DataError(f"{args.src}: every tile was skipped, nothing was written "
                        "(see the warnings)")


class _InProcess:
    """The Pool interface for --workers 1: tasks run here, in order."""

    def __enter__(self) -> "_InProcess":
        return self

    def __exit__(self, *exc_info) -> None:
        return None

    @staticmethod
    def imap_unordered(function, tasks):
        return map(function, tasks)


if __name__ == "__main__":
    run_cli(main)
