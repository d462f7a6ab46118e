"""Seconds per tile of APLS in every mode (ours, authors, spacenet) and of TOPO, on a
SpaceNet-sized street network.

Ground truth: a random tree over a jittered 10 x 10 street grid (70 px blocks) plus 51 loops,
150 gently curved edges, about 10,000 px of road on a 1300 x 1300 tile. Proposal: the same
streets moved by a few pixels, a tenth of them missing, gaps cut in some, spurs added.
`ours` and `authors` score the two graphs (`evaluation.apls_tile.score_graphs`); `spacenet`
scores their edges as lines of a tile georeferenced like SpaceNet's Las Vegas (2.7e-6 degree
pixels), building the reference's graphs from them (`evaluation.apls_tile.score_tile`); TOPO is
timed on its own with its defaults (`evaluation.topo`), on the graphs in metres.

    python -m benchmarks.bench_apls [--runs 5] [--seed 0] [--cpu]

--cpu times with the process's CPU clock instead of the wall clock, for a shared machine.
"""
import argparse
import statistics
import time

import networkx as nx
import numpy as np

from evaluation.graph_metrics.apls import apls
from evaluation.graph_metrics.core import RoadArrays
from evaluation.graph_metrics.tile import AplsSettings, score_graphs, score_tile
from evaluation.graph_metrics.topo import TopoSettings, topo
from roads.graph import graph_to_lines
from utils.errors import run_cli

TILE, GRID, BLOCK, EDGES = 1300, 10, 70.0, 150
LON0, LAT0, DEGREES_PER_PIXEL = -115.3, 36.2, 2.7e-6
PIXEL_SIZE_M = (0.2427, 0.2996)


def add_road(graph: nx.Graph, first: int, last: int, points: np.ndarray) -> None:
    graph.add_node(first, pos=points[0])
    graph.add_node(last, pos=points[-1])
    length = float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())
    graph.add_edge(first, last, pts=points, length=length)


def curved(start: np.ndarray, end: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A polyline from start to end with up to two jittered inner vertices."""
    inner = rng.integers(0, 3)
    steps = np.linspace(0.0, 1.0, inner + 2)[1:-1, None]
    middle = start + steps * (end - start) + rng.normal(0.0, 3.0, (inner, 2))
    return np.vstack([start, middle, end])


def street_network(rng: np.random.Generator) -> nx.Graph:
    """Ground truth: a spanning tree of a jittered grid (random edge weights) plus loops."""
    grid = nx.grid_2d_graph(GRID, GRID)
    for u, v in grid.edges:
        grid.edges[u, v]["weight"] = rng.random()
    tree = nx.minimum_spanning_tree(grid)
    extra = [edge for edge in grid.edges if not tree.has_edge(*edge)]
    chosen = [extra[i] for i in rng.choice(len(extra), EDGES - tree.number_of_edges(),
                                           replace=False)]
    offset = (TILE - (GRID - 1) * BLOCK) / 2
    position = {node: offset + BLOCK * np.array(node[::-1], dtype=float) + rng.normal(0, 6, 2)
                for node in grid.nodes}
    index = {node: i for i, node in enumerate(grid.nodes)}
    graph = nx.Graph()
    for u, v in list(tree.edges) + chosen:
        add_road(graph, index[u], index[v], curved(position[u], position[v], rng))
    return graph


def perturbed(graph: nx.Graph, rng: np.random.Generator) -> nx.Graph:
    """Proposal: streets moved by ~2 px, 10 % missing, 5 cut by a 25 px gap, 10 spurs."""
    shift = {node: rng.normal(0.0, 2.0, 2) for node in graph.nodes}
    proposal = nx.Graph()
    edges = list(graph.edges)
    order = rng.permutation(len(edges))
    missing, gaps = set(order[:len(edges) // 10]), set(order[len(edges) // 10:][:5])
    next_node = max(graph.nodes) + 1
    for i, (u, v) in enumerate(edges):
        if i in missing:
            continue
        points = graph.edges[u, v]["pts"].copy()
        if np.linalg.norm(points[0] - graph.nodes[u]["pos"]) > 0:
            points = points[::-1]
        weights = np.linspace(0.0, 1.0, len(points))[:, None]
        points = points + (1 - weights) * shift[u] + weights * shift[v]
        if i in gaps:
            direction = points[-1] - points[0]
            middle = (points[0] + points[-1]) / 2
            step = 12.5 * direction / np.linalg.norm(direction)
            add_road(proposal, u, next_node, np.vstack([points[0], middle - step]))
            add_road(proposal, next_node + 1, v, np.vstack([middle + step, points[-1]]))
            next_node += 2
        else:
            add_road(proposal, u, v, points)
    for node in rng.choice(list(proposal.nodes), 10, replace=False):
        start = proposal.nodes[node]["pos"]
        angle = rng.uniform(0, 2 * np.pi)
        end = start + rng.uniform(20, 40) * np.array([np.cos(angle), np.sin(angle)])
        add_road(proposal, node, next_node, np.vstack([start, end]))
        next_node += 1
    return proposal


def to_lonlat(xy: np.ndarray) -> np.ndarray:
    """Pixel (x, y) -> lon/lat of a tile georeferenced like SpaceNet's Las Vegas."""
    return np.column_stack([LON0 + xy[:, 0] * DEGREES_PER_PIXEL,
                            LAT0 - xy[:, 1] * DEGREES_PER_PIXEL])


def timings(gt: nx.Graph, prop: nx.Graph, runs: int, clock=time.perf_counter
            ) -> dict[str, tuple[float, dict]]:
    """{mode: (median seconds per tile, scores)} for the three APLS modes and TOPO."""
    gt_lines, prop_lines = graph_to_lines(gt), graph_to_lines(prop)
    jobs = {
        "ours": lambda: score_graphs(gt, prop, AplsSettings(), None),
        "authors": lambda: score_graphs(gt, prop, AplsSettings(mode="authors"), None),
        "spacenet": lambda: score_tile(gt_lines, prop_lines, AplsSettings(mode="spacenet"), None,
                                       to_lonlat=to_lonlat),
        "topo": lambda: topo(RoadArrays.from_graph(gt, PIXEL_SIZE_M),
                             RoadArrays.from_graph(prop, PIXEL_SIZE_M), TopoSettings()),
    }
    results = {}
    for name, job in jobs.items():
        seconds = []
        for _ in range(runs):
            start = clock()
            value = job()
            seconds.append(clock() - start)
        results[name] = (statistics.median(seconds), value)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cpu", action="store_true", help="time with the process's CPU clock")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    gt = street_network(rng)
    prop = perturbed(gt, rng)
    road = sum(length for _, _, length in gt.edges(data="length"))
    result = apls(gt, prop)
    print(f"ground truth: {gt.number_of_edges()} edges, {road:.0f} px of road; "
          f"proposal: {prop.number_of_edges()} edges")
    print(f"APLS (ours) {result.apls:.4f} (gt->prop {result.gt_to_prop:.4f}, "
          f"prop->gt {result.prop_to_gt:.4f}; {result.gt_pairs} and {result.prop_pairs} pairs)")
    clock = time.process_time if args.cpu else time.perf_counter
    for name, (seconds, value) in timings(gt, prop, args.runs, clock).items():
        score = f"TOPO F1 {value.f1:.4f}" if name == "topo" else f"APLS {value['apls']:.4f}"
        print(f"{name:8s} {score}: {seconds:.3f} s per tile "
              f"({'CPU, ' if args.cpu else ''}median of {args.runs})")


if __name__ == "__main__":
    run_cli(main)
