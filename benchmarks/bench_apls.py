"""Seconds per tile of APLS in every mode (ours, authors, spacenet) and of TOPO, on a
SpaceNet-sized street network.

Ground truth: `benchmarks.synthetic.street_graph`, a random tree over a jittered 10 x 10 street
grid (70 px blocks) plus 51 loops, 150 gently curved edges, about 10,000 px of road on a
1300 x 1300 tile. Proposal: `perturbed_graph`, the same streets moved by a few pixels, a tenth of
them missing, gaps cut in some, spurs added. `ours` and `authors` score the two graphs
(`evaluation.graph_metrics.tile.score_graphs`); `spacenet` scores their edges as lines of a tile
georeferenced like SpaceNet's Las Vegas (2.7e-6 degree pixels), building the reference's graphs
from them (`score_tile`); TOPO is timed on its own with its defaults
(`evaluation.graph_metrics.topo`), on the graphs in metres of that georeference. The four take
turns, run by run; the median of each is printed.

    python -m benchmarks.bench_apls [--runs 5] [--seed 0] [--cpu]

--cpu times with the process's CPU clock instead of the wall clock, for a shared machine.
"""
import argparse
import time

import networkx as nx
import numpy as np

from benchmarks.harness import Timing, interleaved, machine_line
from benchmarks.synthetic import perturbed_graph, spacenet_georeference, street_graph
from evaluation.graph_metrics.apls import apls
from evaluation.graph_metrics.core import RoadArrays
from evaluation.graph_metrics.tile import AplsSettings, score_graphs, score_tile
from evaluation.graph_metrics.topo import TopoSettings, topo
from roads.graph import graph_to_lines
from utils.errors import run_cli


def timings(gt: nx.Graph, prop: nx.Graph, runs: int, clock=time.perf_counter
            ) -> dict[str, Timing]:
    """{mode: its seconds per tile and (as `value`) its scores} for the three APLS modes and TOPO,
    taking turns."""
    gt_lines, prop_lines = graph_to_lines(gt), graph_to_lines(prop)
    georeference = spacenet_georeference()
    pixel_size_m = georeference.pixel_size_m()
    jobs = {
        "ours": lambda: score_graphs(gt, prop, AplsSettings(), None),
        "authors": lambda: score_graphs(gt, prop, AplsSettings(mode="authors"), None),
        "spacenet": lambda: score_tile(gt_lines, prop_lines, AplsSettings(mode="spacenet"), None,
                                       to_lonlat=georeference.to_lonlat),
        "topo": lambda: topo(RoadArrays.from_graph(gt, pixel_size_m),
                             RoadArrays.from_graph(prop, pixel_size_m), TopoSettings()),
    }
    return interleaved(jobs, runs, clock=clock)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_apls",
                                     description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu", action="store_true", help="time with the process's CPU clock")
    args = parser.parse_args(argv)
    print(machine_line())
    rng = np.random.default_rng(args.seed)
    gt = street_graph(rng)
    prop = perturbed_graph(gt, rng)
    road = sum(length for _, _, length in gt.edges(data="length"))
    result = apls(gt, prop)
    print(f"ground truth: {gt.number_of_edges()} edges, {road:.0f} px of road; "
          f"proposal: {prop.number_of_edges()} edges")
    print(f"APLS (ours) {result.apls:.4f} (gt->prop {result.gt_to_prop:.4f}, "
          f"prop->gt {result.prop_to_gt:.4f}; {result.gt_pairs} and {result.prop_pairs} pairs)")
    clock = time.process_time if args.cpu else time.perf_counter
    for name, timing in timings(gt, prop, args.runs, clock).items():
        value = timing.value
        score = f"TOPO F1 {value.f1:.4f}" if name == "topo" else f"APLS {value['apls']:.4f}"
        print(f"{name:8s} {score}: {timing.median:.3f} s per tile "
              f"({'CPU, ' if args.cpu else ''}median of {args.runs}; min {timing.low:.3f} s, "
              f"max {timing.high:.3f} s)")


if __name__ == "__main__":
    run_cli(main)
