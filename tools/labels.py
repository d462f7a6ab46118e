"""Inspect the connectivity labels of a road mask, or precompute those of a whole dataset.

    python -m tools.labels MASK OUT.png [--quarter OUT4.png] [--color]
    python -m tools.labels --precompute DATA_DIR [--split S ...] [--workers N] [-c CONFIG]
        [--cache-dir DIR]

--precompute fills the label cache that training reads (`<DATA_DIR>/.cache/connectivity` unless
the config's `data_loader.args.label_cache_dir` or --cache-dir names another folder), so that
no training run or loader worker derives a label: tiles already cached are skipped. It reads the
tiles through the training dataset itself, with the label, graph, band, no-data and ground-size
settings of -c CONFIG (the defaults without one), since the cache key holds what they make.
"""
import argparse
import functools
import multiprocessing
import time
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from data_loader.datasets import RoadDataset
from data_loader.tiles import read_mask
from roads.classes import colorize
from roads.labels import connectivity_labels
from utils.config import read_json
from utils.errors import ConfigError, DataError, run_cli
from utils.settings import build


def _write(path: Path, labels: np.ndarray, color: bool) -> None:
    picture = cv2.cvtColor(colorize(labels), cv2.COLOR_RGB2BGR) if color else labels
    try:
        written = cv2.imwrite(str(path), picture)
    except cv2.error:
        written = False
    if not written:
        raise DataError(f"{path}: cannot write the image (missing folder or unknown extension)")


def split_names(data_dir: Path, splits: list[str] | None) -> list[str]:
    """The named splits of `data_dir`, or every split folder holding `masks/`."""
    if splits is None:
        splits = sorted(p.name for p in Path(data_dir).iterdir() if (p / "masks").is_dir())
        if not splits:
            raise DataError(f"{data_dir}: no split folder with masks/ (e.g. train/masks)")
    return splits


_dataset: RoadDataset | None = None


def _use(dataset: RoadDataset) -> None:
    global _dataset
    _dataset = dataset


def _precompute_tile(index: int) -> bool:
    return _dataset.precompute_labels(index)


def precompute(dataset: RoadDataset, workers: int = 1, progress: bool = True) -> int:
    """Derive and cache, as `dataset`'s loader would, the labels of every tile not cached yet,
    with `workers` processes. Returns how many tiles were derived."""
    _use(dataset)
    count = len(dataset.tiles)
    bar = functools.partial(tqdm, total=count, unit="tile", disable=not progress,
                            desc=dataset.split)
    if workers == 1 or count < 2:
        return sum(bar(map(_precompute_tile, range(count))))
    # The first tile in this process compiles the skeleton graph code (numba), which forked
    # workers then inherit instead of each compiling it again; the parent has run no torch
    # operation, so no OpenMP thread pool is forked. Elsewhere workers are spawned.
    with bar() as progress_bar:
        derived = _precompute_tile(0)
        progress_bar.update()
        method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
        with multiprocessing.get_context(method).Pool(workers, initializer=_use,
                                                      initargs=(dataset,)) as pool:
            for result in pool.imap_unordered(_precompute_tile, range(1, count)):
                derived += result
                progress_bar.update()
    return derived


def dataset_args(path: Path | None) -> tuple[dict, dict | None]:
    """The dataset arguments that shape labels (labels, cache folder, bands, no-data color,
    ground size) and the `graph` section of a training config file (defaults without one)."""
    if path is None:
        return {}, None
    config = read_json(Path(path))
    args = config.get("data_loader", {}).get("args", {})
    keys = ("labels", "label_cache_dir", "bands", "nodata_color", "metres_per_pixel")
    return {key: args[key] for key in keys if key in args}, config.get("graph")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tools.labels",
        description="Derive the connectivity labels (0 background, 1 dead end, 2 road, "
                    "3 three-way, 4 four-or-more) of a road mask and write them as a uint8 PNG, "
                    "or precompute the label cache of a dataset.")
    parser.add_argument("mask", type=Path, nargs="?", help="road mask image (0/255)")
    parser.add_argument("out", type=Path, nargs="?",
                        help="output PNG of class ids at full resolution")
    parser.add_argument("--quarter", type=Path, help="also write the 1/4-resolution label here")
    parser.add_argument("--color", action="store_true",
                        help="write colored pictures instead of class ids")
    parser.add_argument("--precompute", type=Path, metavar="DATA_DIR",
                        help="fill the label cache of this dataset instead")
    parser.add_argument("--split", action="append",
                        help="split folder to precompute (repeatable; default: all with masks/)")
    parser.add_argument("--workers", type=int, default=1, help="processes (default 1)")
    parser.add_argument("-c", "--config", type=Path,
                        help="training config whose label parameters and cache folder to use")
    parser.add_argument("--cache-dir", type=Path, help="label cache folder (overrides the config)")
    args = parser.parse_args(argv)
    if args.precompute is None:
        if args.mask is None or args.out is None:
            parser.error("MASK and OUT are required (or --precompute DATA_DIR)")
        full, quarter = connectivity_labels(read_mask(args.mask))
        _write(args.out, full, args.color)
        if args.quarter is not None:
            _write(args.quarter, quarter, args.color)
        return
    if args.mask is not None:
        parser.error("--precompute takes no MASK or OUT")
    if args.workers < 1:
        raise ConfigError(f"--workers: must be >= 1, got {args.workers}")
    if not args.precompute.is_dir():
        raise DataError(f"{args.precompute}: dataset folder not found")
    loader_args, graph = dataset_args(args.config)
    if args.cache_dir is not None:
        loader_args["label_cache_dir"] = str(args.cache_dir)
    start = time.perf_counter()
    tiles = derived = 0
    for split in split_names(args.precompute, args.split):
        dataset = build(RoadDataset, loader_args, "data_loader.args", args.precompute, split,
                        training=False, graph=graph)
        tiles += len(dataset.tiles)
        derived += precompute(dataset, args.workers)
    seconds = time.perf_counter() - start
    print(f"{tiles} tiles: {derived} derived, {tiles - derived} already cached, "
          f"in {seconds:.1f} s ({tiles / seconds:.2f} tiles/s, {args.workers} worker(s)); "
          f"cache {dataset.label_cache_dir}")


if __name__ == "__main__":
    run_cli(main)
