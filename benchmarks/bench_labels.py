"""Time to derive the connectivity labels (full + 1/4) of one SpaceNet-sized tile, single thread.

    python -m benchmarks.bench_labels [--size 1300] [--roads 20] [--runs 7] [--seed 0]

The tile is a drawn road network: `--roads` straight roads 20-45 px wide (the SpaceNet range at
0.3 m/px) between random points on the tile's edges and inside it, so it has crossings, T-junctions,
dead ends and roads cut by the border. The first derivation is a warm-up (sknw's numba JIT);
the median of the timed runs is printed. Target: under 0.3 s per tile.
"""
import argparse
import statistics
import time

import cv2
import numpy as np
import torch

from roads.labels import connectivity_labels, node_disks
from utils.errors import ConfigError, run_cli


def road_network(size: int, roads: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size) uint8 0/255 mask of `roads` straight roads, each from a point on the tile's
    edge (most roads leave the tile) to a point inside it or on another edge."""
    mask = np.zeros((size, size), dtype=np.uint8)
    for _ in range(roads):
        side, along = rng.integers(0, 4), int(rng.integers(0, size))
        start = [(along, 0), (along, size - 1), (0, along), (size - 1, along)][side]
        end = tuple(int(v) for v in rng.integers(0, size, 2))
        cv2.line(mask, start, end, 255, thickness=int(rng.integers(20, 46)))
    return mask


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_labels",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1300)
    parser.add_argument("--roads", type=int, default=20)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.runs < 1 or args.size < 64:
        raise ConfigError("--runs must be >= 1 and --size >= 64")
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    mask = road_network(args.size, args.roads, np.random.default_rng(args.seed))
    connectivity_labels(mask)
    times = []
    for _ in range(args.runs):
        start = time.perf_counter()
        full, quarter = connectivity_labels(mask)
        times.append(time.perf_counter() - start)
    classes = np.bincount(node_disks(mask)[:, 3].astype(int), minlength=5)
    print(f"{args.size}x{args.size} tile, {args.roads} roads: {classes[1]} dead ends, "
          f"{classes[3]} three-way, {classes[4]} four-or-more junctions")
    print(f"labels (full {full.shape} + quarter {quarter.shape}): "
          f"median {statistics.median(times):.3f} s over {args.runs} runs "
          f"(min {min(times):.3f} s, max {max(times):.3f} s), single thread")


if __name__ == "__main__":
    run_cli(main)
