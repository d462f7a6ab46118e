"""Road graphs from predictions, by the configured method (config section `graph`).

- `skeleton`: the mask's skeleton alone (`roads.graph.mask_to_graph`), as the paper does.
- `connectivity`: the skeleton shaped by the connectivity head's classes: junction regions,
  gap closing, spurs (`roads.connectivity_graph`).
"""
from dataclasses import dataclass
from typing import Any, Literal

import networkx as nx
import numpy as np

from roads.connectivity_graph import ConnectivityGraphSettings, connectivity_graph
from roads.graph import (
    DEFAULT_HOLE_AREA,
    DEFAULT_JUNCTION_MERGE_FACTOR,
    DEFAULT_MIN_OBJECT_AREA,
    DEFAULT_SIMPLIFY_EPSILON,
    DEFAULT_SPUR_LENGTH,
    mask_to_graph,
)
from utils.settings import check

SKELETON_KEYS = ("min_object_area", "hole_area", "spur_length", "junction_merge_factor")
"""The parameters shared by the connectivity labels and the predicted graphs: how a mask is cleaned
and skeletonised into a graph (pixel names of `roads.graph.mask_to_graph`)."""

REFERENCE_METRES_PER_PIXEL = 0.3
"""SpaceNet's ground size: the metre defaults below are the pixel defaults of `roads.graph`
(chosen on SpaceNet) at 0.3 m/px, and rasters of unknown ground size are taken to have it."""


def mean_pixel_size(pixel_size_m: tuple[float, float]) -> float:
    """One length for thresholds that are the same in every direction (spur lengths, margins):
    the mean of the x and y ground sizes (0.27 m for SpaceNet Las Vegas' 0.243 x 0.300 m)."""
    return (float(pixel_size_m[0]) + float(pixel_size_m[1])) / 2


@dataclass(frozen=True)
class GraphSettings:
    """How a road mask becomes a road graph (config section `graph`), in ground units, so that
    0.3 m SpaceNet tiles and 1 m Massachusetts tiles are cleaned and pruned at the same ground
    size; converted per tile with its ground size (`pixels`).

    min_object_area_m2, hole_area_m2: blobs and holes smaller than this are removed (18 and
        36 m2: 200 and 400 px at 0.3 m, reasons in `roads.graph`); spur_length_m: terminal
        skeleton branches shorter than this are artefacts (9 m: 30 px at 0.3 m);
        simplify_epsilon_m: Ramer-Douglas-Peucker tolerance (0.6 m: 2 px at 0.3 m; null keeps
        the skeleton's pixel polylines); junction_merge_factor: a ratio of road widths.
    min_object_area, hole_area, spur_length, simplify_epsilon: the same in pixels; when given,
        they win (a protocol stated in pixels, e.g. the authors' preset).
    border_margin_m: the margin of the road-end rule (`roads.ends`): a road end this close to the
        tile or no-data border, beyond the road's half-width, is a cut road, not a dead end (1.2 m:
        4 px at 0.3 m), for the labels and the connectivity method alike.
    The skeleton parameters (SKELETON_KEYS) and the road-end margin also derive the connectivity
    labels, so the labels and the predicted graphs see roads the same way. `border_pad` (pixels) see `mask_to_graph`
    (skeleton method only). `method` selects the extraction of predicted graphs (see the module
    docstring); `connectivity` holds the connectivity method's own settings, in metres.
    """

    min_object_area_m2: float = DEFAULT_MIN_OBJECT_AREA * REFERENCE_METRES_PER_PIXEL ** 2
    hole_area_m2: float = DEFAULT_HOLE_AREA * REFERENCE_METRES_PER_PIXEL ** 2
    spur_length_m: float = DEFAULT_SPUR_LENGTH * REFERENCE_METRES_PER_PIXEL
    junction_merge_factor: float = DEFAULT_JUNCTION_MERGE_FACTOR
    simplify_epsilon_m: float | None = DEFAULT_SIMPLIFY_EPSILON * REFERENCE_METRES_PER_PIXEL
    min_object_area: int | None = None
    hole_area: int | None = None
    spur_length: float | None = None
    simplify_epsilon: float | None = None
    border_margin_m: float = 1.2
    border_pad: int = 0
    method: Literal["skeleton", "connectivity"] = "skeleton"
    connectivity: ConnectivityGraphSettings = ConnectivityGraphSettings()

    def __post_init__(self) -> None:
        for name in ("min_object_area_m2", "hole_area_m2", "spur_length_m",
                     "junction_merge_factor", "simplify_epsilon_m", "min_object_area",
                     "hole_area", "spur_length", "simplify_epsilon", "border_margin_m",
                     "border_pad"):
            value = getattr(self, name)
            if value is not None:
                check(value >= 0, name, f"must be >= 0, got {value}")

    def pixels(self, pixel_size_m: tuple[float, float] | None) -> dict[str, Any]:
        """The keyword arguments of `mask_to_graph` in pixels for a tile of this ground size
        (None: REFERENCE_METRES_PER_PIXEL): SKELETON_KEYS and simplify_epsilon."""
        size = (mean_pixel_size(pixel_size_m) if pixel_size_m is not None
                else REFERENCE_METRES_PER_PIXEL)

        def pick(pixels: float | None, ground: float | None, power: int) -> float | None:
            if pixels is not None:
                return pixels
            return None if ground is None else ground / size ** power

        return {"min_object_area": round(pick(self.min_object_area, self.min_object_area_m2, 2)),
                "hole_area": round(pick(self.hole_area, self.hole_area_m2, 2)),
                "spur_length": pick(self.spur_length, self.spur_length_m, 1),
                "junction_merge_factor": self.junction_merge_factor,
                "simplify_epsilon": pick(self.simplify_epsilon, self.simplify_epsilon_m, 1)}


def extract_graph(mask: np.ndarray, settings: GraphSettings, *,
                  pixel_size_m: tuple[float, float] | None = None,
                  probability: np.ndarray | None = None, connectivity: np.ndarray | None = None,
                  valid: np.ndarray | None = None) -> nx.Graph:
    """The road graph of an (H, W) road mask by `settings.method`, for a tile of ground size
    `pixel_size_m` (None: REFERENCE_METRES_PER_PIXEL).

    The connectivity method also needs the (H, W) road probability (float in [0, 1] or uint8
    p x 255) and the (H, W) connectivity classes; `valid` ((H, W) bool) marks the pixels with
    image data.
    """
    pixels = settings.pixels(pixel_size_m)
    if settings.method == "skeleton":
        return mask_to_graph(mask if valid is None else mask & valid,
                             border_pad=settings.border_pad, **pixels)
    if probability is None or connectivity is None:
        raise ValueError("method: 'connectivity' needs the road probability and the "
                         "connectivity classes")
    size = pixel_size_m or (REFERENCE_METRES_PER_PIXEL,) * 2
    return connectivity_graph(probability, mask, connectivity, valid, pixel_size_m=size,
                              settings=settings.connectivity,
                              border_margin=settings.border_margin_m / mean_pixel_size(size),
                              **pixels)
