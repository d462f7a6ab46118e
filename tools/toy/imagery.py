"""The imagery of a synthetic toy tile (see `tools.toy.generate`): desert ground, houses with gabled
roofs and shadows, driveways, pools, trees (some overhanging roads) and cars on sidewalk-lined
asphalt roads exactly as wide as the mask. Textures are low-frequency so that the GeoTIFFs deflate
well.
"""
import cv2
import numpy as np

from roads.geo import render_road_mask, road_width_m
from tools.toy.roads import ARTERIAL_TYPES, ToyRoad

SUBPIXEL_BITS = 4


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
