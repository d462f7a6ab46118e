"""The benchmarks' synthetic inputs, one generator per kind.

Argument order, every generator: what it draws from (a size, a mask, a graph, an image), then how
much of it, then the random generator (numpy's, or torch's for tensors); a writer takes its output
path last. Pixels are SpaceNet's (`SPACENET_METRES_PER_PIXEL`) unless a docstring says otherwise.

The toy dataset (`tools.toy`) is the library's stand-in for SpaceNet, imagery and GeoJSON
included; these inputs are cheaper and aimed at one cost each, and where they need SpaceNet's
georeference they take the toy's.
"""
from pathlib import Path

import cv2
import networkx as nx
import numpy as np
import rasterio
import torch
from affine import Affine

from roads.extraction import REFERENCE_METRES_PER_PIXEL as SPACENET_METRES_PER_PIXEL
from roads.georeference import Georeference
from roads.graph import mask_to_graph
from roads.labels import connectivity_labels, quarter_mask
from tools.toy.generate import tile_transform

SPACENET_TILE_PX = 1300
"""Side of a SpaceNet 3 tile in pixels: 390 m at 0.3 m per pixel."""

GRID, BLOCK_PX, STREET_EDGES = 10, 70.0, 150
OCCLUSION_M = 10.0


def tile_km2(height: int, width: int) -> float:
    """Ground area of a (height, width) tile of SpaceNet pixels, in km2."""
    return height * width * (SPACENET_METRES_PER_PIXEL / 1000) ** 2


def spacenet_georeference() -> Georeference:
    """A SpaceNet-sized tile on SpaceNet's Las Vegas grid (2.7e-6 degree pixels: 0.243 m
    east-west, 0.300 m north-south): the first tile of the toy dataset."""
    return tile_transform(1, SPACENET_TILE_PX)


def straight_roads_mask(size: int, roads: int, rng: np.random.Generator) -> np.ndarray:
    """(size, size) uint8 0/255 mask of `roads` straight roads 20-45 px wide (SpaceNet's range),
    each from a point on the tile's edge (most roads leave the tile) to a point inside it or on
    another edge: crossings, T-junctions, dead ends and roads cut by the border."""
    mask = np.zeros((size, size), dtype=np.uint8)
    for _ in range(roads):
        side, along = rng.integers(0, 4), int(rng.integers(0, size))
        start = [(along, 0), (along, size - 1), (0, along), (size - 1, along)][side]
        end = tuple(int(v) for v in rng.integers(0, size, 2))
        cv2.line(mask, start, end, 255, thickness=int(rng.integers(20, 46)))
    return mask


def _add_road(graph: nx.Graph, first: int, last: int, points: np.ndarray) -> None:
    graph.add_node(first, pos=points[0])
    graph.add_node(last, pos=points[-1])
    length = float(np.linalg.norm(np.diff(points, axis=0), axis=1).sum())
    graph.add_edge(first, last, pts=points, length=length)


def _curved(start: np.ndarray, end: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A polyline from start to end with up to two jittered inner vertices."""
    inner = rng.integers(0, 3)
    steps = np.linspace(0.0, 1.0, inner + 2)[1:-1, None]
    middle = start + steps * (end - start) + rng.normal(0.0, 3.0, (inner, 2))
    return np.vstack([start, middle, end])


def street_graph(rng: np.random.Generator) -> nx.Graph:
    """A SpaceNet tile's streets as a road graph (pixel `pos` and `pts`, `length`): a random
    spanning tree of a jittered 10 x 10 grid of 70 px blocks plus loops, 150 gently curved edges,
    about 10,000 px of road."""
    grid = nx.grid_2d_graph(GRID, GRID)
    for u, v in grid.edges:
        grid.edges[u, v]["weight"] = rng.random()
    tree = nx.minimum_spanning_tree(grid)
    extra = [edge for edge in grid.edges if not tree.has_edge(*edge)]
    loops = [extra[i] for i in rng.choice(len(extra), STREET_EDGES - tree.number_of_edges(),
                                          replace=False)]
    offset = (SPACENET_TILE_PX - (GRID - 1) * BLOCK_PX) / 2
    position = {node: offset + BLOCK_PX * np.array(node[::-1], dtype=float) + rng.normal(0, 6, 2)
                for node in grid.nodes}
    index = {node: i for i, node in enumerate(grid.nodes)}
    graph = nx.Graph()
    for u, v in list(tree.edges) + loops:
        _add_road(graph, index[u], index[v], _curved(position[u], position[v], rng))
    return graph


def perturbed_graph(graph: nx.Graph, rng: np.random.Generator) -> nx.Graph:
    """A proposal for `graph` (a `street_graph`): streets moved by ~2 px, 10 % missing, 5 cut by a
    25 px gap, 10 spurs added."""
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
            _add_road(proposal, u, next_node, np.vstack([points[0], middle - step]))
            _add_road(proposal, next_node + 1, v, np.vstack([middle + step, points[-1]]))
            next_node += 2
        else:
            _add_road(proposal, u, v, points)
    for node in rng.choice(list(proposal.nodes), 10, replace=False):
        start = proposal.nodes[node]["pos"]
        angle = rng.uniform(0, 2 * np.pi)
        end = start + rng.uniform(20, 40) * np.array([np.cos(angle), np.sin(angle)])
        _add_road(proposal, node, next_node, np.vstack([start, end]))
        next_node += 1
    return proposal


def occlusion_bands(mask: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """(H, W) bool occlusions, as a tree or a shadow makes them: bands 10 m long across the middle
    of `count` random roads (graph edges longer than 40 m) of the (H, W) bool `mask`, wide enough
    to cut the road."""
    metres = SPACENET_METRES_PER_PIXEL
    graph = mask_to_graph(mask, simplify_epsilon=None)
    half_width = cv2.distanceTransform(mask.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)
    edges = [pts for _, _, pts in graph.edges(data="pts") if len(pts) >= 4
             and float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum()) > 40 / metres]
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
                             (OCCLUSION_M / metres, across), angle))
        cv2.fillPoly(occlusion, [np.rint(box).astype(np.int32)], 1)
    return occlusion.astype(bool)


def occluded_probability(mask: np.ndarray, occlusion: np.ndarray) -> np.ndarray:
    """(H, W) float32 road probability a network might give an occluded (H, W) bool `mask`: 0.95
    on the visible road, 0.25 in the occlusions, 0.03 elsewhere, softened by a Gaussian blur."""
    probability = np.where(mask & ~occlusion, 0.95, np.where(mask, 0.25, 0.03)).astype(np.float32)
    return cv2.GaussianBlur(probability, (0, 0), 1.5)


def training_batch(crop_size: int, batch_size: int,
                   rng: np.random.Generator) -> dict[str, torch.Tensor]:
    """A training batch as the loader yields it, on the CPU: image (B, 3, S, S) normal noise (the
    content does not change the cost), mask / conn (B, S, S) and mask_quarter / conn_quarter
    (B, S/4, S/4) derived from `straight_roads_mask`s of 3 roads, so that the loss sees a real
    class mix."""
    masks = [straight_roads_mask(crop_size, 3, rng) for _ in range(batch_size)]
    labels = [connectivity_labels(mask) for mask in masks]

    def as_tensor(arrays: list[np.ndarray]) -> torch.Tensor:
        return torch.from_numpy(np.stack(arrays).astype(np.int64))

    return {
        "image": torch.from_numpy(rng.standard_normal((batch_size, 3, crop_size, crop_size),
                                                      dtype=np.float32)),
        "mask": as_tensor([mask > 0 for mask in masks]),
        "mask_quarter": as_tensor([quarter_mask(mask > 0) for mask in masks]),
        "conn": as_tensor([full for full, _ in labels]),
        "conn_quarter": as_tensor([quarter for _, quarter in labels]),
    }


def noise_tiles(size: int, count: int, generator: torch.Generator) -> list[torch.Tensor]:
    """`count` (3, size, size) float32 tiles of standard normal noise, as a normalized image: the
    network's cost does not depend on what the pixels show."""
    return [torch.randn(3, size, size, generator=generator) for _ in range(count)]


def write_mirrored_mosaic(tile: np.ndarray, size: int, path: Path) -> None:
    """Write a size x size RGB GeoTIFF (UTM, 1 m pixels, tiled, deflate) that repeats the (H, W, 3)
    uint8 `tile`, mirrored at every other repeat so that roads run on across the seams; block row
    by block row, so that the writer never holds the scene."""
    height, width = tile.shape[:2]
    flipped = {(i, j): tile[:: -1 if i else 1, :: -1 if j else 1] for i in (0, 1) for j in (0, 1)}
    profile = dict(driver="GTiff", width=size, height=size, count=3, dtype="uint8", tiled=True,
                   blockxsize=512, blockysize=512, compress="deflate", crs="EPSG:32619",
                   transform=Affine(1.0, 0.0, 300_000.0, 0.0, -1.0, 4_700_000.0),
                   BIGTIFF="IF_SAFER")
    with rasterio.open(path, "w", **profile) as scene:
        for row in range(0, size, height):
            rows = min(height, size - row)
            strip = np.concatenate([flipped[(row // height) % 2, (col // width) % 2][:rows]
                                    for col in range(0, size, width)], axis=1)[:, :size]
            scene.write(strip.transpose(2, 0, 1), window=((row, row + rows), (0, size)))


def write_road_probability_scene(size: int, seed: int, path: Path, window: int = 2048) -> None:
    """Write a size x size uint8 road probability GeoTIFF (p x 255; UTM, SpaceNet's 0.3 m pixels,
    tiled, deflate) the way a poorly trained network predicts a city: a street lattice (an
    irregular grid, 16-20 px wide roads every 130-190 px, with arterials along the diagonals),
    broken by occlusions, among blobs of false positives; window by window, so that the writer
    never holds the scene. Roads are drawn from scene coordinates, so they run on across
    windows; blobs and occlusions are seeded per window."""
    rng = np.random.default_rng(seed)
    rows = np.cumsum(rng.integers(130, 190, size // 130 + 2))
    cols = np.cumsum(rng.integers(130, 190, size // 130 + 2))
    step = 8 * 160
    diagonals = range(-size, size, step)
    profile = dict(driver="GTiff", width=size, height=size, count=1, dtype="uint8", tiled=True,
                   blockxsize=512, blockysize=512, compress="deflate", crs="EPSG:32611",
                   transform=Affine(SPACENET_METRES_PER_PIXEL, 0.0, 600_000.0, 0.0,
                                    -SPACENET_METRES_PER_PIXEL, 4_000_000.0),
                   BIGTIFF="IF_SAFER")
    with rasterio.open(path, "w", **profile) as scene:
        for top in range(0, size, window):
            for left in range(0, size, window):
                height, width = min(window, size - top), min(window, size - left)
                local = np.random.default_rng([seed, top, left])
                picture = np.full((height, width), 12, np.uint8)
                for y in rows[(rows > top - 40) & (rows < top + height + 40)]:
                    cv2.line(picture, (-10, int(y - top)), (width + 10, int(y - top + 6)), 225, 18)
                for x in cols[(cols > left - 40) & (cols < left + width + 40)]:
                    cv2.line(picture, (int(x - left), -10), (int(x - left - 5), height + 10),
                             225, 16)
                for offset in diagonals:
                    start = (offset - left, -top)
                    cv2.line(picture, start, (start[0] + size, start[1] + size), 235, 22)
                for _ in range(height * width // 60_000):  # occlusions: trees, shadows
                    x, y = local.integers(0, width), local.integers(0, height)
                    cv2.circle(picture, (int(x), int(y)), int(local.integers(8, 25)), 40, -1)
                for _ in range(height * width // 25_000):  # false positives
                    centre = (int(local.integers(0, width)), int(local.integers(0, height)))
                    axes = (int(local.integers(5, 40)), int(local.integers(4, 12)))
                    cv2.ellipse(picture, centre, axes, float(local.integers(0, 180)), 0, 360,
                                170, -1)
                picture = cv2.GaussianBlur(picture, (0, 0), 1.5)
                scene.write(picture, 1, window=((top, top + height), (left, left + width)))
