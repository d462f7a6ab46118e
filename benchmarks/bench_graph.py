"""Seconds per tile of the two graph methods, skeleton (`roads.graph.mask_to_graph`) and
connectivity (`roads.connectivity_graph.connectivity_graph`), on occluded toy-spacenet masks.

    python -m benchmarks.bench_graph [--masks dataset/toy-spacenet/test/masks] [--occlusions 8]
        [--runs 5] [--seed 0] [--apls] [--figures DIR]

Each 1300x1300 mask is occluded: `--occlusions` roads (edges of its graph longer than 40 m) are
cut across at their middle by a 10 m long band, as a tree or a shadow would. The "prediction" is
synthetic: road probability 0.95 on the occluded mask, 0.25 in the occlusions, 0.03 elsewhere,
softened by a Gaussian blur; the mask is that probability > 0.5; the connectivity map is the
labels of the unoccluded mask (`roads.labels.connectivity_labels`), i.e. a perfect head. Both
methods run side by side in one process, single thread, taking turns, after a warm-up (sknw's
numba JIT); medians of `--runs` runs per tile. Target: connectivity graph under 0.5 s per tile.

--apls adds APLS (0.3 m/px) of both graphs against the graph of the unoccluded mask; --figures
writes one PNG per tile: the occluded mask in grey, occlusions in dark red, the skeleton graph's
edges in blue (left) and the connectivity graph's in blue with closed gaps in orange (right),
nodes in yellow.
"""
import argparse
import os
import statistics
import time
from functools import partial
from pathlib import Path

import cv2
import networkx as nx
import numpy as np

from evaluation.graph_metrics.apls import apls
from roads.connectivity_graph import ConnectivityGraphSettings, connectivity_graph
from roads.graph import mask_to_graph
from roads.labels import connectivity_labels
from utils.errors import DataError, run_cli

PIXEL_SIZE_M = (0.3, 0.3)
GAP_M = 10.0


def occlude(mask: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W) bool occlusions: bands 10 m long across the middle of `count` random roads (graph
    edges longer than 40 m) of the (H, W) bool `mask`, wide enough to cut the road."""
    graph = mask_to_graph(mask, simplify_epsilon=None)
    half_width = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)
    edges = [pts for _, _, pts in graph.edges(data="pts") if len(pts) >= 4
             and float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum()) > 40 / PIXEL_SIZE_M[0]]
    occlusion = np.zeros(mask.shape, dtype=np.uint8)
    for index in rng.permutation(len(edges))[:count]:
        pts = edges[index]
        along = np.concatenate([[0], np.cumsum(np.linalg.norm(np.diff(pts, axis=0), axis=1))])
        middle = np.interp(along[-1] / 2, along, np.arange(len(pts)))
        centre = pts[int(round(middle))]
        ahead = pts[min(int(round(middle)) + 5, len(pts) - 1)] - pts[max(int(round(middle)) - 5, 0)]
        angle = float(np.degrees(np.arctan2(ahead[1], ahead[0])))
        x, y = np.rint(centre).astype(int)
        across = 2 * float(half_width[y, x]) + 12
        box = cv2.boxPoints(((float(centre[0]), float(centre[1])),
                             (GAP_M / PIXEL_SIZE_M[0], across), angle))
        cv2.fillPoly(occlusion, [np.rint(box).astype(np.int32)], 1)
    return occlusion.astype(bool)


def synthetic_prediction(mask: np.ndarray, occlusion: np.ndarray):
    """(probability (H, W) float, road mask (H, W) bool) of an occluded mask."""
    probability = np.where(mask & ~occlusion, 0.95, np.where(mask, 0.25, 0.03)).astype(np.float32)
    probability = cv2.GaussianBlur(probability, (0, 0), 1.5)
    return probability, probability > 0.5


def interleaved_seconds(functions: list, runs: int) -> list[list[float]]:
    """Seconds of each of `functions` over `runs` rounds, the functions taking turns within a
    round so that a shared machine's load weighs on all of them alike."""
    times = [[] for _ in functions]
    for _ in range(runs):
        for function, seconds in zip(functions, times, strict=True):
            start = time.perf_counter()
            function()
            seconds.append(time.perf_counter() - start)
    return times


def draw(graph: nx.Graph, canvas: np.ndarray) -> None:
    """Draw `graph` on the (H, W, 3) BGR `canvas`: edges blue, closed gaps orange, nodes yellow."""
    for _, _, data in graph.edges(data=True):
        color = (0, 140, 255) if data.get("gap") else (255, 90, 0)
        cv2.polylines(canvas, [np.rint(data["pts"]).astype(np.int32)], False, color,
                      5 if data.get("gap") else 3)
    for _, pos in graph.nodes(data="pos"):
        cv2.circle(canvas, tuple(int(v) for v in np.rint(pos)), 6, (0, 230, 255), -1)


def figure(road: np.ndarray, occlusion: np.ndarray, skeleton: nx.Graph,
           connected: nx.Graph) -> np.ndarray:
    """(H, 2W + 10, 3) BGR picture: the skeleton graph (left) and the connectivity graph (right)."""
    base = np.full(road.shape + (3,), 30, dtype=np.uint8)
    base[road] = (110, 110, 110)
    base[occlusion] = (40, 40, 150)
    left, right = base.copy(), base.copy()
    draw(skeleton, left)
    draw(connected, right)
    return np.hstack([left, np.full((road.shape[0], 10, 3), 255, np.uint8), right])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_graph",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--masks", type=Path, default=Path("dataset/toy-spacenet/test/masks"))
    parser.add_argument("--occlusions", type=int, default=8)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--apls", action="store_true")
    parser.add_argument("--figures", type=Path)
    args = parser.parse_args(argv)
    paths = sorted(args.masks.glob("*.png"))
    if not paths:
        raise DataError(f"{args.masks}: no mask PNG found")
    cv2.setNumThreads(1)
    rng = np.random.default_rng(args.seed)
    settings = ConnectivityGraphSettings()
    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
    warmed = False
    ratios, connectivity_times, fastest = [], [], []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise DataError(f"{path}: not a readable image")
        mask = image > 0
        occlusion = occlude(mask, args.occlusions, rng)
        probability, road = synthetic_prediction(mask, occlusion)
        classes, _ = connectivity_labels(mask)

        skeleton_run = partial(mask_to_graph, road)
        connectivity_run = partial(connectivity_graph, probability, road, classes,
                                   pixel_size_m=PIXEL_SIZE_M, settings=settings)

        if not warmed:
            skeleton_run()
            connectivity_run()
            warmed = True
        skeleton_times, times = interleaved_seconds([skeleton_run, connectivity_run], args.runs)
        skeleton_s, connectivity_s = statistics.median(skeleton_times), statistics.median(times)
        ratios.append(connectivity_s / skeleton_s)
        connectivity_times.append(connectivity_s)
        fastest.append(min(times))
        skeleton, connected = skeleton_run(), connectivity_run()
        closed = sum(1 for _, _, gap in connected.edges(data="gap") if gap)
        line = (f"{path.name} {mask.shape[1]}x{mask.shape[0]}: skeleton {skeleton_s:.3f} s, "
                f"connectivity {connectivity_s:.3f} s ({connectivity_s / skeleton_s:.2f}x); "
                f"{args.occlusions} occlusions, {closed} gaps closed; components "
                f"{nx.number_connected_components(skeleton)} -> "
                f"{nx.number_connected_components(connected)}")
        if args.apls:
            truth = mask_to_graph(mask)
            scores = [apls(truth, graph, metres_per_pixel=PIXEL_SIZE_M[0]).apls
                      for graph in (skeleton, connected)]
            line += f"; APLS {scores[0]:.3f} -> {scores[1]:.3f}"
        print(line)
        if args.figures:
            cv2.imwrite(str(args.figures / f"graph_{path.stem}.png"),
                        figure(road, occlusion, skeleton, connected))
    print(f"connectivity graph: median {statistics.median(connectivity_times):.3f} s per tile "
          f"(slowest tile {max(connectivity_times):.3f} s, fastest run "
          f"{min(fastest):.3f} s), {statistics.median(ratios):.2f}x the skeleton graph; "
          f"single thread, {args.runs} interleaved runs per tile, load average "
          f"{os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    run_cli(main)
