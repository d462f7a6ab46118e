"""Time to derive the connectivity labels (full + 1/4) of one SpaceNet-sized tile, single thread.

    python -m benchmarks.bench_labels [--size 1300] [--roads 20] [--runs 7] [--seed 0]

The tile is `benchmarks.synthetic.straight_roads_mask`: `--roads` straight roads 20-45 px wide
(the SpaceNet range at 0.3 m/px) between random points on the tile's edges and inside it, so it has
crossings, T-junctions, dead ends and roads cut by the border. The first derivation is a warm-up
(the skeleton graph's numba code is compiled or loaded from its cache); the median of the timed
runs is printed. Target: under 0.3 s per tile.
"""
import argparse

import cv2
import numpy as np
import torch

from benchmarks.harness import machine_line, time_call
from benchmarks.synthetic import SPACENET_TILE_PX, straight_roads_mask
from roads.labels import connectivity_labels, node_disks
from utils.errors import ConfigError, run_cli


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_labels",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=SPACENET_TILE_PX)
    parser.add_argument("--roads", type=int, default=20)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.runs < 1 or args.size < 64:
        raise ConfigError("--runs must be >= 1 and --size >= 64")
    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    print(machine_line())
    mask = straight_roads_mask(args.size, args.roads, np.random.default_rng(args.seed))
    timing = time_call(lambda: connectivity_labels(mask), args.runs, warmup=1)
    full, quarter = timing.value
    classes = np.bincount(node_disks(mask)[:, 3].astype(int), minlength=5)
    print(f"{args.size}x{args.size} tile, {args.roads} roads: {classes[1]} dead ends, "
          f"{classes[3]} three-way, {classes[4]} four-or-more junctions")
    print(f"labels (full {full.shape} + quarter {quarter.shape}): {timing.summary()}, "
          "single thread")


if __name__ == "__main__":
    run_cli(main)
