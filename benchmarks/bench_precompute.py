"""Label cache precomputation (`python -m tools.labels --precompute`) in tiles per second.

    python -m benchmarks.bench_precompute [--data-dir dataset/toy-spacenet] [--workers 1 2]
        [--repeats 2]

Each repeat fills an empty temporary cache once per worker count, the counts alternating so
that other processes on the machine slow them alike; the time includes starting the worker
processes. Prints the median tiles/s per worker count and the ratio to the first count.
"""
import argparse
import statistics
import tempfile
import time
from pathlib import Path

from roads.labels import LabelParams
from tools.labels import dataset_tiles, precompute
from utils.errors import ConfigError, run_cli


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_precompute",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("dataset/toy-spacenet"))
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)
    if min(args.workers) < 1 or args.repeats < 1:
        raise ConfigError("--workers and --repeats must be >= 1")
    tiles = dataset_tiles(args.data_dir, None)
    with tempfile.TemporaryDirectory() as warm:
        precompute(tiles[:1], LabelParams(), Path(warm), progress=False)  # numba JIT of sknw
    rates: dict[int, list[float]] = {count: [] for count in args.workers}
    for _ in range(args.repeats):
        for count in args.workers:
            with tempfile.TemporaryDirectory() as cache:
                start = time.perf_counter()
                precompute(tiles, LabelParams(), Path(cache), count, progress=False)
                rates[count].append(len(tiles) / (time.perf_counter() - start))
    base = statistics.median(rates[args.workers[0]])
    print(f"{len(tiles)} tiles of {args.data_dir}, {args.repeats} repeat(s)")
    for count, values in rates.items():
        median = statistics.median(values)
        print(f"  {count} worker(s): {median:.2f} tiles/s (x{median / base:.2f}; "
              f"runs {', '.join(f'{v:.2f}' for v in values)})")


if __name__ == "__main__":
    run_cli(main)
