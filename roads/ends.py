"""The one rule for road ends: a road cut by the tile border or by no-data is not a dead end.

A road that runs out of the tile, or into pixels without image data, goes on where nobody sees
it; its skeleton stops about a half-width short of the cut. So a degree-1 node is a cut road, not
a dead end, when its cross-section (the circle inscribed in the road there, pixels outside the
tile and without data counting as road, so that the road keeps its full width up to the cut)
comes within `margin` pixels of the border or of a no-data pixel; the margin absorbs the
skeleton's pixel jitter. The connectivity labels (`roads.labels`) and the connectivity graph
method (`roads.connectivity_graph`) both ask this rule, with the one setting
`graph.border_margin_m`.
"""
import numpy as np

from roads.graph import road_half_width

DEFAULT_BORDER_MARGIN = 4.0
"""Pixels (at 0.3 m: 1.2 m): the skeleton of a cut road ends one or two pixels off the half-width,
so a fixed distance alone would not do for every road width and a margin of 4 px absorbs the
jitter."""


class CutEnds:
    """The rule for the ends of an (H, W) bool `road` mask with (H, W) bool `valid` pixels (None:
    all valid), `margin` in pixels; `half_width` is the road's inscribed radius map."""

    def __init__(self, road: np.ndarray, valid: np.ndarray | None, margin: float) -> None:
        self.half_width = road_half_width(road)
        self.margin = margin
        self.shape = road.shape
        if valid is not None and not valid.all():
            self.to_invalid = road_half_width(valid)
            self.cut_width = road_half_width(road | ~valid)
        else:
            self.to_invalid = self.cut_width = None

    def pixel(self, x: float, y: float) -> tuple[int, int]:
        """The (row, col) of position (x, y), inside the image."""
        height, width = self.shape
        return (min(max(int(round(y)), 0), height - 1), min(max(int(round(x)), 0), width - 1))

    def is_cut(self, x: float, y: float) -> bool:
        """Whether a road end at (x, y) is cut by the tile border or by no-data."""
        height, width = self.shape
        row, col = self.pixel(x, y)
        if min(x, y, width - 1 - x, height - 1 - y) <= self.half_width[row, col] + self.margin:
            return True
        return (self.to_invalid is not None
                and self.to_invalid[row, col] <= self.cut_width[row, col] + self.margin)
