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
and skeletonised into a graph."""


@dataclass(frozen=True)
class GraphSettings:
    """How a road mask becomes a road graph (config section `graph`); lengths in pixels.

    The skeleton parameters (SKELETON_KEYS) also derive the connectivity labels, so the labels
    and the predicted graphs see roads the same way. `simplify_epsilon` None keeps the skeleton's
    pixel polylines; `border_pad` see `mask_to_graph` (skeleton method only). `method` selects
    the extraction of predicted graphs (see the module docstring); `connectivity` holds the
    connectivity method's own settings, in metres.
    """

    min_object_area: int = DEFAULT_MIN_OBJECT_AREA
    hole_area: int = DEFAULT_HOLE_AREA
    spur_length: float = DEFAULT_SPUR_LENGTH
    junction_merge_factor: float = DEFAULT_JUNCTION_MERGE_FACTOR
    simplify_epsilon: float | None = DEFAULT_SIMPLIFY_EPSILON
    border_pad: int = 0
    method: Literal["skeleton", "connectivity"] = "skeleton"
    connectivity: ConnectivityGraphSettings = ConnectivityGraphSettings()

    def __post_init__(self) -> None:
        for name in SKELETON_KEYS:
            check(getattr(self, name) >= 0, name, f"must be >= 0, got {getattr(self, name)}")
        if self.simplify_epsilon is not None:
            check(self.simplify_epsilon >= 0, "simplify_epsilon",
                  f"must be >= 0 or null, got {self.simplify_epsilon}")
        check(self.border_pad >= 0, "border_pad", f"must be >= 0, got {self.border_pad}")

    def skeleton(self) -> dict[str, Any]:
        """The shared skeleton parameters by name (SKELETON_KEYS)."""
        return {name: getattr(self, name) for name in SKELETON_KEYS}


def extract_graph(mask: np.ndarray, settings: GraphSettings, *,
                  probability: np.ndarray | None = None, connectivity: np.ndarray | None = None,
                  valid: np.ndarray | None = None,
                  pixel_size_m: tuple[float, float] | None = None) -> nx.Graph:
    """The road graph of an (H, W) road mask by `settings.method`.

    The connectivity method also needs the (H, W) road probability in [0, 1], the (H, W)
    connectivity classes, the ground size of a pixel and, where the tile has no-data, the (H, W)
    validity mask.
    """
    if settings.method == "skeleton":
        return mask_to_graph(mask if valid is None else mask & valid,
                             simplify_epsilon=settings.simplify_epsilon,
                             border_pad=settings.border_pad, **settings.skeleton())
    if probability is None or connectivity is None or pixel_size_m is None:
        raise ValueError("method: 'connectivity' needs the road probability, the connectivity "
                         "classes and the pixel size")
    return connectivity_graph(probability, mask, connectivity, valid, pixel_size_m=pixel_size_m,
                              settings=settings.connectivity,
                              simplify_epsilon=settings.simplify_epsilon, **settings.skeleton())
