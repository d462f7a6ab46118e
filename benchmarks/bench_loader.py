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
import time
from pathlib import Path

from base.base_data_loader import BaseDataLoader
from data_loader.datasets import RoadDataset
from utils.errors import run_cli


def crops_per_second(loader: BaseDataLoader, epoch: int) -> float:
    loader.set_epoch(epoch)
    start = time.perf_counter()
    crops = sum(len(batch["stem"]) for batch in loader)
    return crops / (time.perf_counter() - start)


def benchmark(args: argparse.Namespace, workers: int, cache_dir: Path) -> dict[str, float]:
    def loader() -> BaseDataLoader:
        dataset = RoadDataset(args.data_dir, args.split, training=True,
                                  crop_size=args.crop_size, crops_per_tile=args.crops_per_tile,
                                  label_cache_dir=cache_dir)
        return BaseDataLoader(dataset, args.batch_size, shuffle=True, num_workers=workers)

    results = {"cold": crops_per_second(loader(), 0)}
    warm = loader()
    results["warm disk"] = crops_per_second(warm, 1)
    results["warm memory"] = crops_per_second(warm, 2)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--split", default="train")
    parser.add_argument("--crop-size", type=int, default=256)
    parser.add_argument("--crops-per-tile", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--workers", type=int, nargs="+", default=[0, 2])
    args = parser.parse_args()
    print(f"{args.data_dir}/{args.split}: {args.crop_size}px crops, "
          f"{args.crops_per_tile} per tile, batch {args.batch_size}")
    print(f"{'workers':>7} {'cold':>10} {'warm disk':>10} {'warm memory':>12}  (crops/s)")
    for workers in args.workers:
        with tempfile.TemporaryDirectory() as cache_dir:
            results = benchmark(args, workers, Path(cache_dir))
        print(f"{workers:>7} {results['cold']:>10.1f} {results['warm disk']:>10.1f} "
              f"{results['warm memory']:>12.1f}")


if __name__ == "__main__":
    run_cli(main)
