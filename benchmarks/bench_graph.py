"""Seconds per tile of the two graph methods, skeleton (`roads.graph.mask_to_graph`) and
connectivity (`roads.connectivity_graph.connectivity_graph`), on occluded toy-spacenet masks.

    python -m benchmarks.bench_graph [--masks dataset/toy-spacenet/test/masks] [--occlusions 8]
        [--runs 5] [--seed 0] [--apls] [--figures DIR]

Each 1300x1300 mask is occluded (`benchmarks.synthetic.occlusion_bands`): `--occlusions` roads
(edges of its graph longer than 40 m) are cut across at their middle by a 10 m long band, as a
tree or a shadow would. The "prediction" is synthetic (`occluded_probability`): road probability
0.95 on the occluded mask, 0.25 in the occlusions, 0.03 elsewhere, softened by a Gaussian blur;
the mask is that probability above the predictor's threshold (`PredictorSettings.threshold`,
0.5); the connectivity map is the labels of the unoccluded mask
(`roads.labels.connectivity_labels`), i.e. a perfect head. Both methods run side by side in one
process, single thread, taking turns, after a warm-up (the skeleton graph's numba code is
compiled or loaded from its cache); medians of `--runs` runs per tile. Target: connectivity graph
under 0.5 s per tile.

--apls adds APLS (0.3 m/px) of both graphs against the graph of the unoccluded mask; --figures
writes one PNG per tile: the occluded mask in grey, occlusions in dark red, the skeleton graph's
edges in blue (left) and the connectivity graph's in blue with closed gaps in orange (right),
nodes in yellow.
"""
import argparse
import os
import statistics
from functools import partial
from pathlib import Path

import cv2
import networkx as nx
import numpy as np

from benchmarks.harness import interleaved, machine_line
from benchmarks.synthetic import SPACENET_METRES_PER_PIXEL, occluded_probability, occlusion_bands
from evaluation.graph_metrics.apls import apls
from evaluation.predictor import PredictorSettings
from roads.connectivity_graph import ConnectivityGraphSettings, connectivity_graph
from roads.graph import mask_to_graph
from roads.labels import connectivity_labels
from utils.errors import DataError, run_cli


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
    print(machine_line())
    rng = np.random.default_rng(args.seed)
    settings = ConnectivityGraphSettings()
    threshold = PredictorSettings().threshold
    pixel_size_m = (SPACENET_METRES_PER_PIXEL, SPACENET_METRES_PER_PIXEL)
    if args.figures:
        args.figures.mkdir(parents=True, exist_ok=True)
    ratios, connectivity_times, fastest = [], [], []
    for path in paths:
        image = cv2.imread(str(path), cv2.IMREAD_GRAYSCALE)
        if image is None:
            raise DataError(f"{path}: not a readable image")
        mask = image > 0
        occlusion = occlusion_bands(mask, args.occlusions, rng)
        probability = occluded_probability(mask, occlusion)
        road = probability > threshold
        classes, _ = connectivity_labels(mask)

        timings = interleaved({
            "skeleton": partial(mask_to_graph, road),
            "connectivity": partial(connectivity_graph, probability, road, classes,
                                    pixel_size_m=pixel_size_m, settings=settings),
        }, args.runs, warmup=0 if ratios else 1)
        skeleton_s, connectivity_s = (timings["skeleton"].median,
                                      timings["connectivity"].median)
        ratios.append(connectivity_s / skeleton_s)
        connectivity_times.append(connectivity_s)
        fastest.append(timings["connectivity"].low)
        skeleton, connected = timings["skeleton"].value, timings["connectivity"].value
        closed = sum(1 for _, _, gap in connected.edges(data="gap") if gap)
        line = (f"{path.name} {mask.shape[1]}x{mask.shape[0]}: skeleton {skeleton_s:.3f} s, "
                f"connectivity {connectivity_s:.3f} s ({connectivity_s / skeleton_s:.2f}x); "
                f"{args.occlusions} occlusions, {closed} gaps closed; components "
                f"{nx.number_connected_components(skeleton)} -> "
                f"{nx.number_connected_components(connected)}")
        if args.apls:
            truth = mask_to_graph(mask)
            scores = [apls(truth, graph, metres_per_pixel=SPACENET_METRES_PER_PIXEL).apls
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
