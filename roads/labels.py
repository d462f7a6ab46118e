"""Road-direction connectivity labels derived from a road mask, the connectivity task's targets.

Every pixel is classified by how many road directions meet there: background, dead end, ordinary
road, 3-way junction, junction of 4 or more. The mask's road graph (`roads.graph`) gives the
nodes and their degrees; the label is the road mask (class 2) with a filled disk at each dead end
and junction, of radius the road's half-width at the node plus a margin, so that a disk spans the
road as in the paper's figure. Classes depend on degrees only, so they are invariant under flips
and rotations and augmentation moves labels without remapping them.

Pixels without image data (`valid` False: outside the scene, an alpha of 0) are labelled
IGNORE_INDEX, and a road that runs into them is cut like a road at the tile border, not a dead end
(`roads.ends`).

Labels are derived from the whole tile (a crop border would invent dead ends) once per tile:
`LabelCache` keeps the node disks, a few hundred bytes per tile, and renders the label images
from the mask on each call (milliseconds), so that no worker holds gigabytes of label images.

Inspect the labels of a mask with `python -m tools.labels MASK OUT.png --color`.
"""
from dataclasses import dataclass, fields

import numpy as np

from roads.classes import BACKGROUND, DEAD_END, FOUR_OR_MORE, IGNORE_INDEX, ROAD, THREE_WAY
from roads.ends import DEFAULT_BORDER_MARGIN, CutEnds
from roads.extraction import (
    REFERENCE_METRES_PER_PIXEL,
    SKELETON_KEYS,
    GraphSettings,
    mean_pixel_size,
)
from roads.graph import (
    DEFAULT_HOLE_AREA,
    DEFAULT_JUNCTION_MERGE_FACTOR,
    DEFAULT_MIN_OBJECT_AREA,
    DEFAULT_SPUR_LENGTH,
    clean_mask,
    mask_to_graph,
)
from utils.settings import check

QUARTER = 4
"""The intermediate heads predict at 1/4 resolution."""


def quarter_mask(mask: np.ndarray) -> np.ndarray:
    """(ceil(H/4), ceil(W/4)) bool mask from an (H, W) mask (bool, 0/1 or 0/255): 4x4 area
    average >= 0.5.

    Edges are padded by replication to a multiple of 4. A tie (8 of 16 pixels) counts as road
    (chosen: a road covering half a block, e.g. 2 px wide along it, stays road at 1/4).
    """
    road = np.asarray(mask, dtype=bool).view(np.uint8)
    height, width = road.shape
    if height % QUARTER or width % QUARTER:
        road = np.pad(road, ((0, -height % QUARTER), (0, -width % QUARTER)), mode="edge")
    # Adding strided views in uint8 (a block sums to at most 16) is some 30x faster than a float
    # mean over reshaped block axes, and this runs on the whole tile for every training crop.
    rows = sum(road[offset::QUARTER] for offset in range(QUARTER))
    counts = sum(rows[:, offset::QUARTER] for offset in range(QUARTER))
    return counts >= QUARTER * QUARTER // 2


@dataclass(frozen=True)
class LabelParams:
    """How labels derive from a mask; lengths in full-resolution pixels (defaults chosen for
    SpaceNet at 0.3 m/px, roads 20-46 px wide).

    min_object_area, hole_area, spur_length, junction_merge_factor: the road graph's cleaning,
        spur pruning and junction merging (see `roads.graph` for the reasons of the defaults).
    border_margin: the margin of the road-end rule (`roads.ends`): a degree-1 node this close to
        the tile or no-data border, beyond the road's half-width, is a cut road, not a dead end.
    disk_margin: pixels added to the half-width so that a disk covers the road's edges (3 px,
        about 1 m, chosen).
    min_quarter_radius: smallest disk radius at 1/4 resolution; a disk of radius >= 1 always
        holds a pixel, so no node is lost there.
    """

    min_object_area: int = DEFAULT_MIN_OBJECT_AREA
    hole_area: int = DEFAULT_HOLE_AREA
    spur_length: float = DEFAULT_SPUR_LENGTH
    junction_merge_factor: float = DEFAULT_JUNCTION_MERGE_FACTOR
    border_margin: float = DEFAULT_BORDER_MARGIN
    disk_margin: float = 3.0
    min_quarter_radius: float = 1.0

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            check(isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0,
                  field.name, f"expected a number >= 0, got {value!r}")
        check(self.min_quarter_radius >= 1, "min_quarter_radius", "must be >= 1 so that every "
              f"disk keeps a pixel at 1/4 resolution, got {self.min_quarter_radius}")


@dataclass(frozen=True)
class LabelSettings:
    """The config's `data_loader.args.labels`: the label-only settings, in ground units; the
    skeleton parameters and the road-end margin come from the `graph` section, shared with the
    predicted graphs, so that labels and graphs see roads the same way. `params` gives a tile's
    LabelParams in pixels.

    disk_margin_m: 0.9 m (3 px at 0.3 m), see LabelParams; min_quarter_radius: pixels at 1/4.
    """

    disk_margin_m: float = 0.9
    min_quarter_radius: float = 1.0

    def __post_init__(self) -> None:
        check(self.disk_margin_m >= 0, "disk_margin_m", f"must be >= 0, got {self.disk_margin_m}")

    def params(self, graph: GraphSettings, pixel_size_m: tuple[float, float] | None
               ) -> LabelParams:
        """LabelParams in pixels for a tile of ground size `pixel_size_m` (None: the reference
        0.3 m/px)."""
        size = (mean_pixel_size(pixel_size_m) if pixel_size_m is not None
                else REFERENCE_METRES_PER_PIXEL)
        skeleton = {key: value for key, value in graph.pixels(pixel_size_m).items()
                    if key in SKELETON_KEYS}
        return LabelParams(**skeleton, border_margin=graph.border_margin_m / size,
                           disk_margin=self.disk_margin_m / size,
                           min_quarter_radius=self.min_quarter_radius)


def _valid_or_none(valid: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray | None:
    """(H, W) bool validity, or None when every pixel is valid (labels as without a mask)."""
    if valid is None:
        return None
    valid = np.asarray(valid, dtype=bool)
    if valid.shape != tuple(shape):
        raise ValueError(f"valid mask is {valid.shape}, the road mask {tuple(shape)}")
    return None if valid.all() else valid


def node_disks(mask: np.ndarray, params: LabelParams = LabelParams(),
               valid: np.ndarray | None = None) -> np.ndarray:
    """(K, 4) float disks (x, y, radius, class) at the dead ends and junctions of an (H, W) mask
    (bool, 0/1 or 0/255); degree-2 nodes and road ends cut by the border or by the invalid pixels
    of `valid` ((H, W) bool, default all valid) get none."""
    road = clean_mask(mask, params.min_object_area, params.hole_area)
    graph = mask_to_graph(road, min_object_area=0, hole_area=0, spur_length=params.spur_length,
                          simplify_epsilon=None, junction_merge_factor=params.junction_merge_factor)
    ends = CutEnds(road, _valid_or_none(valid, road.shape), params.border_margin)
    disks = []
    for node, degree in graph.degree():
        x, y = graph.nodes[node]["pos"]
        radius = float(ends.half_width[ends.pixel(x, y)])
        if degree == 1:
            if ends.is_cut(x, y):
                continue
            node_class = DEAD_END
        elif degree == 3:
            node_class = THREE_WAY
        elif degree >= 4:
            node_class = FOUR_OR_MORE
        else:
            continue
        disks.append((x, y, radius + params.disk_margin, node_class))
    return np.array(disks, dtype=float).reshape(-1, 4)


def render_labels(mask: np.ndarray, disks: np.ndarray, params: LabelParams = LabelParams(),
                  valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Label images of an (H, W) mask and its (K, 4) `node_disks`: (H, W) uint8 and
    (ceil(H/4), ceil(W/4)) uint8, classes 0..4, IGNORE_INDEX where `valid` ((H, W) bool) is False.

    The 1/4 label is drawn from the same disks, not subsampled: road where the 4x4 area average
    of the mask is >= 0.5 (the segmentation's 1/4 target), then the disks scaled by 1/4 about
    pixel centres with radius at least `min_quarter_radius`, so every disk survives. A 1/4 pixel
    is ignored where the 4x4 area average of validity is < 0.5 (the rule of `quarter_mask`).
    """
    road = np.asarray(mask) > 0
    full = np.where(road, ROAD, BACKGROUND).astype(np.uint8)
    _draw_disks(full, disks[:, :2], disks[:, 2], disks[:, 3])
    quarter = np.where(quarter_mask(road), ROAD, BACKGROUND).astype(np.uint8)
    # Full pixel centre c lies at (c + 0.5) / 4 - 0.5 in quarter pixels (4x4 blocks).
    _draw_disks(quarter, (disks[:, :2] + 0.5) / QUARTER - 0.5,
                np.maximum(disks[:, 2] / QUARTER, params.min_quarter_radius), disks[:, 3])
    valid = _valid_or_none(valid, road.shape)
    if valid is not None:
        full[~valid] = IGNORE_INDEX
        quarter[~quarter_mask(valid)] = IGNORE_INDEX
    return full, quarter


def connectivity_labels(mask: np.ndarray, params: LabelParams = LabelParams(),
                        valid: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(full (H, W) uint8, quarter (ceil(H/4), ceil(W/4)) uint8) connectivity labels, classes 0..4
    (IGNORE_INDEX at invalid pixels), of an (H, W) mask (bool, 0/1 or 0/255) and its optional
    (H, W) bool validity."""
    return render_labels(mask, node_disks(mask, params, valid), params, valid)


def _draw_disks(image: np.ndarray, centers: np.ndarray, radii: np.ndarray,
                classes: np.ndarray) -> None:
    """Fill the pixels within `radii` of `centers` ((K, 2) x, y) with `classes`, in increasing
    class order so that where disks overlap the junction of more directions wins. The exact
    Euclidean test keeps disks symmetric under flips and rotations."""
    height, width = image.shape
    for i in np.argsort(classes, kind="stable"):
        (cx, cy), r = centers[i], radii[i]
        x0, x1 = max(int(np.ceil(cx - r)), 0), min(int(np.floor(cx + r)), width - 1)
        y0, y1 = max(int(np.ceil(cy - r)), 0), min(int(np.floor(cy + r)), height - 1)
        if x0 > x1 or y0 > y1:
            continue
        ys, xs = np.ogrid[y0:y1 + 1, x0:x1 + 1]
        inside = (xs - cx) ** 2 + (ys - cy) ** 2 <= r * r
        image[y0:y1 + 1, x0:x1 + 1][inside] = int(classes[i])


