"""Label cache precomputation (`python -m tools.labels --precompute`) in tiles per second.

    python -m benchmarks.bench_precompute [--data-dir dataset/toy-spacenet] [--workers 1 2]
        [--repeats 2]

Each repeat fills an empty temporary cache once per worker count (every split of the dataset, the
label settings' defaults), the counts taking turns so that other processes on the machine slow
them alike; the time includes making the datasets and starting the worker processes. Prints the
median tiles/s per worker count and the ratio to the first count.
"""
import argparse
import itertools
import statistics
import tempfile
from pathlib import Path

from benchmarks.harness import interleaved, machine_line
from data_loader.datasets import RoadDataset
from tools.labels import precompute, split_names
from utils.errors import ConfigError, run_cli


def fill_cache(data_dir: Path, splits: list[str], workers: int, cache_dir: Path) -> int:
    """Derive the labels of every tile of `splits` into `cache_dir` as `python -m tools.labels
    --precompute` does, with `workers` processes; returns the number of tiles."""
    tiles = 0
    for split in splits:
        dataset = RoadDataset(data_dir, split, training=False, label_cache_dir=cache_dir)
        tiles += len(dataset.tiles)
        precompute(dataset, workers, progress=False)
    return tiles


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_precompute",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("dataset/toy-spacenet"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    if min(args.workers) < 1 or args.repeats < 1:
        raise ConfigError("--workers and --repeats must be >= 1")
    print(machine_line())
    splits = split_names(args.data_dir, None)
    with tempfile.TemporaryDirectory() as temporary:
        root = Path(temporary)
        # The first tile loads (or compiles) the skeleton graph's numba code.
        RoadDataset(args.data_dir, splits[0], training=False,
                    label_cache_dir=root / "warm-up").precompute_labels(0)
        fills = itertools.count()
        timings = interleaved({
            count: lambda count=count: fill_cache(args.data_dir, splits, count,
                                                  root / str(next(fills)))
            for count in args.workers}, args.repeats)
    tiles = timings[args.workers[0]].value
    rates = {count: [tiles / seconds for seconds in timing.seconds]
             for count, timing in timings.items()}
    base = statistics.median(rates[args.workers[0]])
    print(f"{tiles} tiles of {args.data_dir}, {args.repeats} repeat(s)")
    for count, values in rates.items():
        median = statistics.median(values)
        print(f"  {count} worker(s): {median:.2f} tiles/s (x{median / base:.2f}; "
              f"runs {', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    run_cli(main)
