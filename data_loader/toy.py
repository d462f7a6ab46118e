"""Synthetic SpaceNet-format dataset: suburban overhead tiles with GeoJSON road labels and masks.

    python -m data_loader.toy --out dataset/toy-spacenet [--seed 0] [--train 12 --val 2 --test 4]
                              [--size 1300]

Every tile is what `data_loader.spacenet` writes for a real SpaceNet 3 tile: an 8-bit RGB GeoTIFF
near Las Vegas at 2.7e-6 deg/px, a GeoJSON of lon/lat LineStrings with string-typed SpaceNet
properties, and the mask that `render_tile_mask` draws from that GeoJSON. Tile N is a function of
(seed, N, size) alone, drawn from its own numpy Generator.

The road network is a street lattice (chosen: the grid-with-cul-de-sacs layout of Las Vegas
suburbs), rotated, bent by a smooth warp into curves, thinned by removing street segments
(T-junctions and dead ends), with a wide arterial and short mid-block dead-end streets, then clipped
by the tile border. Every LineString runs between two junctions, ends or border points, sharing
end points at junctions as SpaceNet labels do. The imagery paints desert ground, houses with gabled
roofs and shadows, driveways, pools, trees (some overhanging roads) and cars on sidewalk-lined
asphalt roads.
Textures are low-frequency so that the GeoTIFFs deflate well.
"""
import argparse
import math
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from data_loader.geo import (GeoTransform, read_road_lines, render_road_mask, render_tile_mask,
                             road_width_m, write_geotiff, write_road_lines)
from utils.errors import ConfigError, run_cli

SPLITS = ("train", "val", "test")
AOI = "AOI_2_Vegas"
DEGREES_PER_PIXEL = 2.7e-6
ORIGIN_LONLAT = (-115.32, 36.25)   # north-west corner of the mosaic of toy tiles, Las Vegas
MOSAIC_COLUMNS = 10
SUBPIXEL_BITS = 4

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


def smooth_noise(rng: np.random.Generator, shape: tuple[int, int], cell: float) -> np.ndarray:
    """(H, W) float32 noise of unit scale varying over about `cell` pixels (bicubic upsampling)."""
    h, w = shape
    coarse = rng.standard_normal((int(h / cell) + 3, int(w / cell) + 3)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def fill(canvas: np.ndarray, polygon: np.ndarray, colour: tuple) -> None:
    """Fill a convex (K, 2) float (x, y) polygon on an image or a mask."""
    points = np.round(np.asarray(polygon) * (1 << SUBPIXEL_BITS)).astype(np.int32)
    cv2.fillConvexPoly(canvas, points, colour, cv2.LINE_8, SUBPIXEL_BITS)


def disk(canvas: np.ndarray, centre: np.ndarray, radius: float, colour: tuple) -> None:
    """Fill a disk centred at float (x, y) on an image or a mask."""
    centre = tuple(int(v) for v in np.round(np.asarray(centre) * (1 << SUBPIXEL_BITS)))
    cv2.circle(canvas, centre, int(round(radius * (1 << SUBPIXEL_BITS))), colour, -1, cv2.LINE_8,
               SUBPIXEL_BITS)


def rectangle(centre: np.ndarray, along: np.ndarray, length: float, width: float) -> np.ndarray:
    """(4, 2) corners of a rectangle with its `length` side along the unit vector `along`."""
    across = np.array([-along[1], along[0]])
    return centre + np.array([[1, 1], [1, -1], [-1, -1], [-1, 1]]) @ np.array(
        [along * length / 2, across * width / 2])


def jitter(rng: np.random.Generator, base: tuple, spread: float) -> tuple:
    """An RGB colour near `base` (normal jitter of `spread` levels per channel)."""
    return tuple(float(np.clip(c + rng.normal(0, spread), 0, 255)) for c in base)


GROUND, CONCRETE, ASPHALT = (176, 158, 132), (194, 192, 186), (92, 94, 100)
LAWN, POOL, CROWN = (104, 138, 72), (70, 170, 200), (64, 88, 48)
ROOFS = ((178, 104, 78), (196, 150, 112), (205, 190, 165), (150, 148, 146), (226, 224, 216),
         (120, 96, 84))
CARS = ((235, 235, 235), (30, 30, 35), (150, 150, 155), (160, 30, 30), (40, 60, 120))
SHADOW_OFFSET = np.array([0.35, 0.28])  # shadow shift per pixel of object height (sun north-west)
SHADOW_DARKENING = 0.55


class TilePainter:
    """Paints an overhead image around given roads. Object sizes are in pixels of 0.3 m.

    Layers go bottom-up: ground, yards and driveways, sidewalks, asphalt with lane markings; then
    the shadows of houses, trees and cars darken what lies below them; then roofs, cars and tree
    crowns are painted on top, so that crowns overhang roads.
    """

    def __init__(self, rng: np.random.Generator, roads: list[ToyRoad], size: int,
                 metres_per_pixel: float):
        self.rng, self.roads, self.shape = rng, roads, (size, size)
        self.widths = [road_width_m(road.properties) / metres_per_pixel for road in roads]
        self.sidewalk_width = 1.5 / metres_per_pixel
        sidewalks = [w + 2 * self.sidewalk_width for w in self.widths]
        self.sidewalk = render_road_mask([road.xy for road in roads], sidewalks, self.shape) > 0
        self.occupied = cv2.dilate(self.sidewalk.astype(np.uint8), np.ones((9, 9), np.uint8))
        self.shadow = np.zeros(self.shape, np.uint8)
        self.on_top: list = []  # (paint function, arguments) applied after the shadows

    def paint(self) -> np.ndarray:
        """(H, W, 3) uint8 RGB image."""
        rng = self.rng
        ground = np.array(jitter(rng, GROUND, 8), np.float32)
        # Rounded to whole levels: smooth float fields would dither into incompressible noise.
        image = np.round(ground * (1 + 0.06 * smooth_noise(rng, self.shape, 180)[..., None]
                                   + 0.03 * smooth_noise(rng, self.shape, 30)[..., None]))
        for road, width in zip(self.roads, self.widths):
            if not is_arterial(road):
                self.houses(image, road.xy, width)
        image[self.sidewalk] = jitter(rng, CONCRETE, 6)
        self.asphalt(image)
        self.street_trees_and_cars()
        image[self.shadow > 0] *= SHADOW_DARKENING
        for paint, args in self.on_top:
            paint(image, *args)
        image *= rng.uniform(0.93, 1.07, size=3).astype(np.float32)  # colour cast of the scene
        image = cv2.GaussianBlur(image, (0, 0), 0.7)  # the softness of pan-sharpened imagery
        return np.clip(image + 0.5, 0, 255).astype(np.uint8)

    def asphalt(self, image: np.ndarray) -> None:
        """Each road its own shade of asphalt with a faint texture, exactly as wide as its mask."""
        texture = 1 + 0.05 * smooth_noise(self.rng, self.shape, 60)
        for road, width in zip(self.roads, self.widths):
            mask = render_road_mask([road.xy], [width], self.shape) > 0
            shade = jitter(self.rng, ASPHALT, 7)
            image[mask] = np.round(np.multiply.outer(texture[mask], shade))
        for road, width in zip(self.roads, self.widths):
            if is_arterial(road):
                self.lane_markings(image, road.xy, width)

    @staticmethod
    def lane_markings(image: np.ndarray, xy: np.ndarray, width: float) -> None:
        """Double yellow centre line and dashed white lane lines on a four-lane road."""
        for p, q in zip(xy[:-1], xy[1:]):
            length = np.linalg.norm(q - p)
            along = (q - p) / length
            across = np.array([-along[1], along[0]])
            for offset in (-0.6, 0.6):
                fill(image, rectangle((p + q) / 2 + offset * across, along, length, 0.5),
                     (205, 180, 90))
            for t in np.arange(0, length - 7, 12):
                for offset in (-width / 4, width / 4):
                    fill(image, rectangle(p + (t + 3.5) * along + offset * across, along, 7, 0.6),
                         (215, 215, 210))

    def houses(self, image: np.ndarray, xy: np.ndarray, road_width: float) -> None:
        """A row of houses along each side of a street, one lot every 56-68 px, some lots vacant."""
        rng = self.rng
        segment = np.linalg.norm(np.diff(xy, axis=0), axis=1)
        arc = np.concatenate(([0.0], np.cumsum(segment)))
        for side in (-1.0, 1.0):
            if rng.random() < 0.12:
                continue
            for s in np.arange(rng.uniform(15, 45), arc[-1] - 15, rng.uniform(56, 68)):
                k = min(np.searchsorted(arc, s, side="right") - 1, len(segment) - 1)
                along = (xy[k + 1] - xy[k]) / segment[k]
                normal = side * np.array([-along[1], along[0]])
                self.house(image, xy[k] + (s - arc[k]) * along, along, normal, road_width)

    def house(self, image: np.ndarray, point: np.ndarray, along: np.ndarray, normal: np.ndarray,
              road_width: float) -> None:
        """A house facing the road point, with a driveway and maybe a lawn, a pool and a tree.

        The lot is skipped where it would touch a road, a sidewalk or another lot.
        """
        rng = self.rng
        front, depth = rng.uniform(38, 52), rng.uniform(40, 56)
        kerb = road_width / 2 + self.sidewalk_width
        setback = kerb + rng.uniform(14, 24)
        centre = point + (setback + depth / 2) * normal
        lot = np.zeros_like(self.occupied)
        fill(lot, rectangle(centre + 8 * normal, along, front + 6, depth + 30), 1)
        if (lot & self.occupied).any():
            return
        self.occupied |= lot
        drive = rectangle(point + (kerb + setback) / 2 * normal + front / 4 * along, along, 12,
                          setback - kerb)
        fill(image, drive, jitter(rng, CONCRETE, 5))
        if rng.random() < 0.25:
            fill(image, rectangle(centre - (depth / 2 + 6) * normal, along, front - 8, 8),
                 jitter(rng, LAWN, 8))
        if rng.random() < 0.3:
            pool = rectangle(centre + (depth / 2 + 12) * normal, along, rng.uniform(14, 22), 10)
            fill(image, pool, jitter(rng, POOL, 12))
        footprint = rectangle(centre, along, front, depth)
        fill(self.shadow, footprint + rng.uniform(13, 23) * SHADOW_OFFSET, 1)  # 4-7 m high
        roof = jitter(rng, ROOFS[rng.integers(len(ROOFS))], 8)
        self.on_top.append((gabled_roof, (footprint, roof)))
        if rng.random() < 0.6:
            self.tree(centre + (depth / 2 + rng.uniform(8, 20)) * normal
                      + rng.uniform(-front / 2, front / 2) * along, rng.uniform(6, 14))

    def tree(self, centre: np.ndarray, radius: float) -> None:
        disk(self.shadow, centre + 2.5 * radius * SHADOW_OFFSET, radius, 1)
        self.on_top.append((tree_crown, (centre, radius, jitter(self.rng, CROWN, 8))))

    def street_trees_and_cars(self) -> None:
        """Trees at road edges whose crowns overhang the asphalt, and cars driving in lanes."""
        rng = self.rng
        for road, width in zip(self.roads, self.widths):
            for p, q in zip(road.xy[:-1], road.xy[1:]):
                along = (q - p) / max(np.linalg.norm(q - p), 1e-9)
                normal = np.array([-along[1], along[0]]) * rng.choice([-1.0, 1.0])
                point = p + rng.uniform(0, 1) * (q - p)
                if rng.random() < 0.1:
                    radius = rng.uniform(7, 13)
                    offset = width / 2 + rng.uniform(-0.3, 0.8) * radius
                    self.tree(point + offset * normal, radius)
                if rng.random() < 0.05:
                    car = rectangle(point + width / 4 * normal, along, 15, 6.5)
                    fill(self.shadow, car + 5 * SHADOW_OFFSET, 1)
                    self.on_top.append((fill, (car, jitter(rng, CARS[rng.integers(len(CARS))], 8))))


def is_arterial(road: ToyRoad) -> bool:
    return int(road.properties["road_type"]) in ARTERIAL_TYPES


def gabled_roof(image: np.ndarray, footprint: np.ndarray, roof: tuple) -> None:
    """Two roof halves split along the ridge, the sun-facing one brighter."""
    fill(image, footprint, roof)
    sunny_half = np.array([footprint[0], footprint[1], (footprint[1] + footprint[2]) / 2,
                           (footprint[0] + footprint[3]) / 2])
    fill(image, sunny_half, tuple(min(c * 1.12, 255) for c in roof))


def tree_crown(image: np.ndarray, centre: np.ndarray, radius: float, crown: tuple) -> None:
    """A crown lit from the north-west: a brighter disk inside the darker one."""
    disk(image, centre, radius, crown)
    disk(image, centre - radius * 0.25, radius * 0.6, tuple(c * 1.2 for c in crown))


def tile_transform(number: int, size: int) -> GeoTransform:
    """Georeference of toy tile `number` (1-based): tiles side by side near Las Vegas."""
    column, row = (number - 1) % MOSAIC_COLUMNS, (number - 1) // MOSAIC_COLUMNS
    return GeoTransform(lon0=ORIGIN_LONLAT[0] + column * size * DEGREES_PER_PIXEL,
                        lat0=ORIGIN_LONLAT[1] - row * size * DEGREES_PER_PIXEL,
                        dx=DEGREES_PER_PIXEL, dy=DEGREES_PER_PIXEL)


def write_tile(root: Path, split: str, number: int, seed: int, size: int) -> None:
    """Generate tile `number` and write its image, GeoJSON and mask under `root/split`."""
    rng = np.random.default_rng([seed, number])
    transform = tile_transform(number, size)
    roads = road_network(rng, size)
    image = TilePainter(rng, roads, size, transform.metres_per_pixel()).paint()
    stem = f"{AOI}_img{number}"
    folders = {name: root / split / name for name in ("images", "masks", "geojson")}
    for folder in folders.values():
        folder.mkdir(parents=True, exist_ok=True)
    geojson_path = folders["geojson"] / f"{stem}.geojson"
    write_road_lines(geojson_path, [transform.to_lonlat(road.xy) for road in roads],
                     [road.properties for road in roads])
    write_geotiff(folders["images"] / f"{stem}.tif", image, transform, level=9)  # smaller repo
    # The mask comes from the written GeoJSON, exactly as for real SpaceNet labels.
    mask = render_tile_mask(read_road_lines(geojson_path), transform, (size, size))
    cv2.imwrite(str(folders["masks"] / f"{stem}.png"), mask)


README = """# toy-spacenet: a synthetic SpaceNet 3 stand-in

Synthetic data, not imagery of any real place. It has the layout and file formats of a SpaceNet 3
road dataset prepared by `python -m data_loader.spacenet`, so that the whole pipeline (training,
connectivity labels, prediction, APLS) can be run and tested without the real data.

- Splits: {counts}; tiles {size} x {size} px; seed {seed}.
- `<split>/images/<stem>.tif`: 8-bit RGB GeoTIFF (deflate), EPSG:4326 tags, 2.7e-6 deg/px near Las
  Vegas (about 0.30 m/px north-south), tiles laid side by side.
- `<split>/geojson/<stem>.geojson`: lon/lat LineStrings with string-typed SpaceNet properties
  (`road_type`, `lane_number`, `paved`, `bridge_typ`, `road_id`, ...); lines meet at junctions.
- `<split>/masks/<stem>.png`: 0/255 road mask drawn from the GeoJSON by
  `data_loader.geo.render_tile_mask` (road widths by `road_type`), the same code as for SpaceNet.

How it is made (`data_loader/toy.py`): a street lattice, rotated and bent into curves by a smooth
warp, thinned into T-junctions and dead ends, with an arterial road in most tiles and short
cul-de-sacs, clipped by the tile border; then desert ground, houses with shadows, driveways, pools,
trees overhanging the roads and cars are painted around sidewalk-lined asphalt roads. The asphalt
is exactly as wide as the mask.

What it lacks: sensor noise and haze, parking lots, highways, bridges, other cities. It is meant
for testing the pipeline end to end and for quick training runs, not for comparing methods.

Regenerate (deterministic for a seed):

    python -m data_loader.toy --out dataset/toy-spacenet --seed {seed} {count_args} --size {size}
"""


def generate(out: Path, seed: int, counts: dict[str, int], size: int) -> None:
    """Write all splits (tiles numbered 1, 2, ... across train, val, test) and the README."""
    number = 0
    for split in SPLITS:
        for folder in ("images", "masks", "geojson"):
            for stale in (out / split / folder).glob(f"{AOI}_img*.*"):
                stale.unlink()
        for _ in range(counts[split]):
            number += 1
            write_tile(out, split, number, seed, size)
    count_args = " ".join(f"--{split} {counts[split]}" for split in SPLITS)
    (out / "README.md").write_text(README.format(
        counts=", ".join(f"{split} {counts[split]}" for split in SPLITS), size=size, seed=seed,
        count_args=count_args))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="dataset root to write")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=1300, help="tile side in pixels")
    for split, count in zip(SPLITS, (12, 2, 4)):
        parser.add_argument(f"--{split}", type=int, default=count, help=f"number of {split} tiles")
    args = parser.parse_args()
    if args.size < 64:
        raise ConfigError(f"--size must be at least 64 pixels, got {args.size}")
    counts = {split: getattr(args, split) for split in SPLITS}
    if min(counts.values()) < 0:
        raise ConfigError(f"tile counts must not be negative, got {counts}")
    args.out.mkdir(parents=True, exist_ok=True)
    generate(args.out, args.seed, counts, args.size)
    print(f"wrote {sum(counts.values())} tiles to {args.out}")


if __name__ == "__main__":
    run_cli(main)
