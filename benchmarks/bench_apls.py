"""Seconds per tile of `evaluation.apls.apls` on a SpaceNet-sized street network.

Ground truth: a random tree over a jittered 10 x 10 street grid (70 px blocks) plus 51 loops,
150 gently curved edges, about 10,000 px of road on a 1300 x 1300 tile. Proposal: the same
streets moved by a few pixels, a tenth of them missing, gaps cut in some, spurs added.

    python -m benchmarks.bench_apls [--runs 5] [--seed 0]
"""
import argparse
import statistics
import time

import networkx as nx
import numpy as np

from evaluation.apls import apls
from utils.errors import run_cli

TILE, GRID, BLOCK, EDGES = 1300, 10, 70.0, 150


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    gt = street_network(rng)
    prop = perturbed(gt, rng)
    road = sum(length for _, _, length in gt.edges(data="length"))
    seconds = []
    for _ in range(args.runs):
        start = time.perf_counter()
        result = apls(gt, prop)
        seconds.append(time.perf_counter() - start)
    print(f"ground truth: {gt.number_of_edges()} edges, {road:.0f} px of road; "
          f"proposal: {prop.number_of_edges()} edges")
    print(f"APLS {result.apls:.4f} (gt->prop {result.gt_to_prop:.4f}, "
          f"prop->gt {result.prop_to_gt:.4f}; {result.gt_pairs} and {result.prop_pairs} pairs)")
    print(f"{statistics.median(seconds):.3f} s per tile (median of {args.runs})")


if __name__ == "__main__":
    run_cli(main)
