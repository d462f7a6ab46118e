"""The road network of a synthetic toy tile (see `tools.toy.generate`).

A street lattice (chosen: the grid-with-cul-de-sacs layout of Las Vegas suburbs), rotated, bent by
a smooth warp into curves, thinned by removing street segments (T-junctions and dead ends), with a
wide arterial and short mid-block dead-end streets, then clipped by the tile border. Every road runs
between two junctions, ends or border points, sharing end points at junctions as SpaceNet labels do.
"""
import math
from dataclasses import dataclass

import numpy as np

ARTERIAL_TYPES = (2, 3)
STREET_TYPES = (5, 5, 5, 6, 6, 4)  # residential streets dominate, as in SpaceNet Las Vegas
LANES = {1: "6", 2: "4", 3: "4", 4: "2", 5: "2", 6: "2", 7: "1"}


@dataclass
class ToyRoad:
    """One labelled road piece: (N, 2) float pixel (x, y) polyline and its SpaceNet properties."""

    xy: np.ndarray
    properties: dict


def street_lattice(rng: np.random.Generator, size: int) -> tuple[dict, list]:
    """Nodes {id: (u, v)} and edges [(a, b, road_type, road_id)] of a thinned street lattice.

    Coordinates are in the lattice frame, in pixels, centred on the tile; the lattice reaches past
    the tile so that streets run out of the border. Lattice nodes are (row, column); the nodes added
    for dead ends and cul-de-sacs are numbered after them.
    """
    scale = float(np.clip(size / 1300, 0.45, 1.0))  # small test tiles keep a few blocks
    reach = 0.85 * size

    def line_positions() -> np.ndarray:
        spacing = rng.uniform(220, 380) * scale
        steps = spacing * rng.uniform(0.8, 1.25, size=int(2 * reach / (0.8 * spacing)) + 2)
        positions = -reach + rng.uniform(0, spacing) + np.concatenate(([0.0], np.cumsum(steps)))
        return positions[positions <= reach]

    rows, cols = line_positions(), line_positions()
    road_ids = iter(rng.permutation(np.arange(1000, 30000)).tolist())
    row_lines = [(int(rng.choice(STREET_TYPES)), next(road_ids)) for _ in rows]
    col_lines = [(int(rng.choice(STREET_TYPES)), next(road_ids)) for _ in cols]
    if rng.random() < 0.7:
        k = int(np.argmin(np.abs(rows - rng.uniform(-0.3, 0.3) * size)))
        row_lines[k] = (int(rng.choice(ARTERIAL_TYPES)), row_lines[k][1])
    nodes = {(i, j): (cols[j], rows[i]) for i in range(len(rows)) for j in range(len(cols))}
    lattice = [((i, j), (i, j + 1), *row_lines[i])
               for i in range(len(rows)) for j in range(len(cols) - 1)]
    lattice += [((i, j), (i + 1, j), *col_lines[j])
                for j in range(len(cols)) for i in range(len(rows) - 1)]

    def add_node(position: np.ndarray) -> int:
        nodes[len(nodes)] = tuple(position)
        return len(nodes) - 1

    edges = []
    removal = rng.uniform(0.1, 0.3)
    for a, b, road_type, road_id in lattice:
        pa, pb = np.array(nodes[a]), np.array(nodes[b])
        if road_type not in ARTERIAL_TYPES and rng.random() < removal:
            if rng.random() < 0.5:  # the street stops partway: a dead end inside the block
                a, pa, pb = (a, pa, pb) if rng.random() < 0.5 else (b, pb, pa)
                end = add_node(pa + rng.uniform(0.3, 0.6) * (pb - pa))
                edges.append((a, end, road_type, road_id))
        elif road_type not in ARTERIAL_TYPES and rng.random() < 0.15:
            # A cul-de-sac leaving the middle of the block edge at a right angle.
            middle = add_node(pa + rng.uniform(0.35, 0.65) * (pb - pa))
            normal = np.array([pa[1] - pb[1], pb[0] - pa[0]]) / np.linalg.norm(pb - pa)
            depth = rng.uniform(0.25, 0.38) * 220 * scale * rng.choice([-1.0, 1.0])
            stub_end = add_node(np.array(nodes[middle]) + depth * normal)
            edges += [(a, middle, road_type, road_id), (middle, b, road_type, road_id),
                      (middle, stub_end, 5, next(road_ids))]
        else:
            edges.append((a, b, road_type, road_id))
    return nodes, edges


def lattice_to_pixels(rng: np.random.Generator, size: int):
    """A random map from the lattice frame to tile pixels: rotation about the centre, smooth warp.

    The warp adds two plane sine waves of amplitude at most 0.07 wavelength, so its Jacobian
    differs from the identity by less than 1 in norm: straight streets become gentle curves and
    never fold over each other.
    """
    angle = math.radians(rng.uniform(-25, 25) + 90 * rng.integers(2))
    rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    wavelength = rng.uniform(800, 1600, size=2) * float(np.clip(size / 1300, 0.45, 1.0))
    amplitude = 0.0 if rng.random() < 0.3 else rng.uniform(0.02, 0.07)
    directions = rng.normal(size=(2, 2))
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    phases = rng.uniform(0, 2 * math.pi, size=2)

    def transform(uv: np.ndarray) -> np.ndarray:
        xy = uv @ rotation.T + size / 2
        waves = np.sin(2 * math.pi * (xy @ directions.T) / wavelength + phases)
        return xy + amplitude * wavelength * waves[:, ::-1]
    return transform


def clip_polyline(xy: np.ndarray, size: float) -> list[np.ndarray]:
    """Pieces of an (N, 2) polyline inside the square [0, size]^2, pieces under 2 px dropped."""
    pieces, current = [], []
    for p, q in zip(xy[:-1], xy[1:]):
        clipped = clip_segment(p, q, size)
        if clipped is None or (current and clipped[2] > 0.0):
            pieces.append(current)
            current = []
        if clipped is None:
            continue
        start, end, t_start, t_end = clipped
        current = current or [start]
        current.append(end)
        if t_end < 1.0:
            pieces.append(current)
            current = []
    pieces.append(current)
    return [np.array(piece) for piece in pieces
            if piece and np.linalg.norm(np.diff(piece, axis=0), axis=1).sum() >= 2.0]


def clip_segment(p: np.ndarray, q: np.ndarray, size: float):
    """Liang-Barsky: (start, end, t_start, t_end) of segment p -> q inside [0, size]^2, or None."""
    d = q - p
    t_start, t_end = 0.0, 1.0
    for direction, room in ((-d[0], p[0]), (d[0], size - p[0]), (-d[1], p[1]), (d[1], size - p[1])):
        if direction == 0.0:
            if room < 0.0:
                return None
        elif direction < 0.0:
            t_start = max(t_start, room / direction)
        else:
            t_end = min(t_end, room / direction)
    if t_start > t_end:
        return None
    # Clipping keeps cut ends exactly on the border despite rounding in p + t * d.
    start = p if t_start == 0.0 else np.clip(p + t_start * d, 0.0, size)
    end = q if t_end == 1.0 else np.clip(p + t_end * d, 0.0, size)
    return start, end, t_start, t_end


def road_network(rng: np.random.Generator, size: int, step: float = 20.0) -> list[ToyRoad]:
    """Road pieces of one tile in pixels, each between junctions, dead ends or the border."""
    nodes, edges = street_lattice(rng, size)
    to_pixels = lattice_to_pixels(rng, size)
    roads = []
    for a, b, road_type, road_id in edges:
        ua, ub = np.array(nodes[a]), np.array(nodes[b])
        samples = max(int(np.linalg.norm(ub - ua) / step), 1) + 1
        xy = to_pixels(ua + np.linspace(0, 1, samples)[:, None] * (ub - ua))
        for piece in clip_polyline(xy, size):
            cut = not (np.array_equal(piece[0], xy[0]) and np.array_equal(piece[-1], xy[-1]))
            lanes = LANES[road_type]
            roads.append(ToyRoad(piece, {
                "bridge_typ": "2", "heading": "0", "lane_numbe": lanes, "lane_number": lanes,
                "one_way_ty": "2", "paved": "1", "road_id": road_id, "road_type": str(road_type),
                "origarea": 0, "partialDec": 1, "truncated": int(cut)}))
    return roads
