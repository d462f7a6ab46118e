"""Throughput of the training loader in crops per second.

    python -m benchmarks.bench_loader --data-dir dataset/toy-spacenet [--split train]
        [--crop-size 256] [--crops-per-tile 8] [--batch-size 4] [--workers 0 2]

For each worker count, three passes over one epoch:
  cold         empty label cache: connectivity labels are derived from the masks on the way;
  warm disk    a fresh dataset whose labels come from the disk cache filled by the cold pass;
  warm memory  the next epoch of the same loader (persistent workers, their memory caches full).
The cold passes use a temporary cache folder, so the dataset's own cache is left as it is.
"""
import argparse
import tempfile
from pathlib import Path

from base.base_data_loader import BaseDataLoader
from benchmarks.harness import machine_line, time_call
from data_loader.datasets import RoadDataset
from utils.errors import run_cli


def crops_per_second(loader: BaseDataLoader, epoch: int) -> float:
    """Crops per second of one pass over `loader`'s epoch `epoch` (each pass depends on the one
    before, through the caches, so it is timed once)."""
    loader.set_epoch(epoch)
    timing = time_call(lambda: sum(len(batch["stem"]) for batch in loader))
    return timing.value / timing.median


def loader_passes(data_dir: Path, split: str, crop_size: int, crops_per_tile: int,
                  batch_size: int, workers: int, cache_dir: Path) -> dict[str, float]:
    """Crops per second of the cold, warm disk and warm memory passes (see the module's
    docstring) of a training loader with `workers` workers and an empty `cache_dir`."""
    def loader() -> BaseDataLoader:
        dataset = RoadDataset(data_dir, split, training=True, crop_size=crop_size,
                              crops_per_tile=crops_per_tile, label_cache_dir=cache_dir)
        return BaseDataLoader(dataset, batch_size, shuffle=True, num_workers=workers)

    results = {"cold": crops_per_second(loader(), 0)}
    warm = loader()
    results["warm disk"] = crops_per_second(warm, 1)
    results["warm memory"] = crops_per_second(warm, 2)
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_loader",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--crop-size", type=int, default=256)
    parser.add_argument("--crops-per-tile", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args(argv)
    print(machine_line())
    print(f"{args.data_dir}/{args.split}: {args.crop_size}px crops, "
          f"{args.crops_per_tile} per tile, batch {args.batch_size}")
    print(f"{'workers':>7} {'cold':>10} {'warm disk':>10} {'warm memory':>12}  (crops/s)")
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as cache_dir:
            results = loader_passes(args.data_dir, args.split, args.crop_size,
                                    args.crops_per_tile, args.batch_size, workers,
                                    Path(cache_dir))
        print(f"{workers:>7} {results['cold']:>10.1f} {results['warm disk']:>10.1f} "
              f"{results['warm memory']:>12.1f}")


if __name__ == "__main__":
    run_cli(main)
