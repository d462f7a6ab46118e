"""Road-direction connectivity labels derived from a road mask (SPEC 2).

Every pixel is classified by how many road directions meet there: background, dead end, ordinary
road, 3-way junction, junction of 4 or more. The mask's road graph (`utils.road_graph`) gives the
nodes and their degrees; the label is the road mask (class 2) with a filled disk at each dead end
and junction, of radius the road's half-width at the node plus a margin, so that a disk spans the
road as in the paper's figure. Classes depend on degrees only, so they are invariant under flips
and rotations and augmentation moves labels without remapping them.

Labels are derived from the whole tile (a crop border would invent dead ends) once per tile:
`LabelCache` keeps the node disks, a few hundred bytes per tile, and renders the label images
from the mask on each call (milliseconds), so that no worker holds gigabytes of label images.

Command: `python -m data_loader.connectivity MASK OUT.png [--quarter OUT4.png] [--color]`.
"""
import argparse
import hashlib
import os
import tempfile
import warnings
import zipfile
from dataclasses import dataclass, fields
from pathlib import Path

import cv2
import numpy as np

from data_loader.tiles import read_mask
from data_loader.transforms import QUARTER, quarter_mask
from utils.errors import ConfigError, DataError, run_cli
from utils.road_graph import (
    DEFAULT_HOLE_AREA,
    DEFAULT_JUNCTION_MERGE_FACTOR,
    DEFAULT_MIN_OBJECT_AREA,
    DEFAULT_SPUR_LENGTH,
    clean_mask,
    mask_to_graph,
)

CONNECTIVITY_CLASSES = 5
IGNORE_INDEX = 255
BACKGROUND, DEAD_END, ROAD, THREE_WAY, FOUR_OR_MORE = range(CONNECTIVITY_CLASSES)

# RGB per class: black background, white road, and saturated disks that stay apart on it.
PALETTE = {
    BACKGROUND: (0, 0, 0),
    DEAD_END: (230, 25, 75),
    ROAD: (255, 255, 255),
    THREE_WAY: (60, 180, 75),
    FOUR_OR_MORE: (0, 130, 200),
    IGNORE_INDEX: (128, 128, 128),
}


@dataclass(frozen=True)
class LabelParams:
    """How labels derive from a mask; lengths in full-resolution pixels (defaults chosen for
    SpaceNet at 0.3 m/px, roads 20-46 px wide).

    min_object_area, hole_area, spur_length, junction_merge_factor: the road graph's cleaning,
        spur pruning and junction merging (see `utils.road_graph` for the reasons of the defaults).
    border_margin: a degree-1 node is a road cut by the tile border, not a dead end, when its
        inscribed circle (the road's cross-section, the area outside the tile counting as road)
        comes within this many pixels of the border. The skeleton of a cut road stops about a
        half-width short of the border, so a fixed distance would not do for every road width;
        4 px absorbs the skeleton's one- or two-pixel jitter.
    disk_margin: pixels added to the half-width so that a disk covers the road's edges (3 px,
        about 1 m, chosen).
    min_quarter_radius: smallest disk radius at 1/4 resolution; a disk of radius >= 1 always
        holds a pixel, so no node is lost there.
    """

    min_object_area: int = DEFAULT_MIN_OBJECT_AREA
    hole_area: int = DEFAULT_HOLE_AREA
    spur_length: float = DEFAULT_SPUR_LENGTH
    junction_merge_factor: float = DEFAULT_JUNCTION_MERGE_FACTOR
    border_margin: float = 4.0
    disk_margin: float = 3.0
    min_quarter_radius: float = 1.0

    def __post_init__(self):
        for field in fields(self):
            value = getattr(self, field.name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise ConfigError(f"data_loader.args.labels.{field.name}: expected a number >= 0, "
                                  f"got {value!r}")
        if self.min_quarter_radius < 1:
            raise ConfigError("data_loader.args.labels.min_quarter_radius: must be >= 1 so that "
                              "every disk keeps a pixel at 1/4 resolution, "
                              f"got {self.min_quarter_radius}")


def node_disks(mask: np.ndarray, params: LabelParams = LabelParams()) -> np.ndarray:
    """(K, 4) float disks (x, y, radius, class) at the dead ends and junctions of an (H, W) mask
    (bool, 0/1 or 0/255); degree-2 nodes and cut road ends get none."""
    road = clean_mask(mask, params.min_object_area, params.hole_area)
    graph = mask_to_graph(road, min_object_area=0, hole_area=0, spur_length=params.spur_length,
                          simplify_epsilon=None, junction_merge_factor=params.junction_merge_factor)
    # Pixels outside the image count as road for cv2's distance transform, which is what the
    # border test wants: a road cut by the border keeps its full width up to the border.
    half_width = cv2.distanceTransform(road.astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_5)
    height, width = road.shape
    disks = []
    for node, degree in graph.degree():
        x, y = graph.nodes[node]["pos"]
        row, col = min(int(round(y)), height - 1), min(int(round(x)), width - 1)
        radius = float(half_width[row, col])
        if degree == 1:
            to_border = min(x, y, width - 1 - x, height - 1 - y)
            if to_border <= radius + params.border_margin:
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


def render_labels(mask: np.ndarray, disks: np.ndarray,
                  params: LabelParams = LabelParams()) -> tuple[np.ndarray, np.ndarray]:
    """Label images of an (H, W) mask and its (K, 4) `node_disks`: (H, W) uint8 and
    (ceil(H/4), ceil(W/4)) uint8, classes 0..4.

    The 1/4 label is drawn from the same disks, not subsampled: road where the 4x4 area average
    of the mask is >= 0.5 (the segmentation's 1/4 target), then the disks scaled by 1/4 about
    pixel centres with radius at least `min_quarter_radius`, so every disk survives.
    """
    road = np.asarray(mask) > 0
    full = np.where(road, ROAD, BACKGROUND).astype(np.uint8)
    _draw_disks(full, disks[:, :2], disks[:, 2], disks[:, 3])
    quarter = np.where(quarter_mask(road), ROAD, BACKGROUND).astype(np.uint8)
    # Full pixel centre c lies at (c + 0.5) / 4 - 0.5 in quarter pixels (4x4 blocks).
    _draw_disks(quarter, (disks[:, :2] + 0.5) / QUARTER - 0.5,
                np.maximum(disks[:, 2] / QUARTER, params.min_quarter_radius), disks[:, 3])
    return full, quarter


def connectivity_labels(mask: np.ndarray,
                        params: LabelParams = LabelParams()) -> tuple[np.ndarray, np.ndarray]:
    """(full (H, W) uint8, quarter (ceil(H/4), ceil(W/4)) uint8) connectivity labels, classes 0..4,
    of an (H, W) mask (bool, 0/1 or 0/255)."""
    return render_labels(mask, node_disks(mask, params), params)


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


class LabelCache:
    """Connectivity labels per mask file: node disks cached in memory and, if `cache_dir` is
    given, in `<cache_dir>/<key>.npz`, where the key hashes the file's path, mtime and size and
    the label parameters, so that an edited mask or changed parameters derive anew. Files are
    written to a temporary name and renamed, so parallel workers never read half a file."""

    FORMAT = "node-disks-v1"

    def __init__(self, params: LabelParams, cache_dir: Path | None = None) -> None:
        self.params = params
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self._disks: dict[str, np.ndarray] = {}

    def labels(self, mask_path: Path, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(full, quarter) labels of `mask`, the content of `mask_path` (see `render_labels`)."""
        key = self._key(Path(mask_path))
        disks = self._disks.get(key)
        if disks is None:
            disks = self._load(key)
            if disks is None:
                disks = node_disks(mask, self.params)
                self._store(key, disks)
            self._disks[key] = disks
        return render_labels(mask, disks, self.params)

    def _key(self, mask_path: Path) -> str:
        try:
            stat = mask_path.stat()
        except OSError as error:
            raise DataError(f"{mask_path}: cannot read file ({error.strerror})") from None
        text = (f"{self.FORMAT}|{mask_path.resolve()}|{stat.st_mtime_ns}|{stat.st_size}"
                f"|{self.params!r}")
        return hashlib.sha1(text.encode()).hexdigest()

    def _load(self, key: str) -> np.ndarray | None:
        if self.cache_dir is None:
            return None
        try:
            with np.load(self.cache_dir / f"{key}.npz") as archive:
                return archive["disks"]
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, zipfile.BadZipFile):
            # A damaged cache file (disk full, foreign file): derive anew and overwrite it.
            return None

    def _store(self, key: str, disks: np.ndarray) -> None:
        if self.cache_dir is None:
            return
        try:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            handle, temporary = tempfile.mkstemp(dir=self.cache_dir, suffix=".tmp")
        except OSError as error:
            # A read-only dataset still trains: the labels stay in this process's memory cache.
            warnings.warn(f"{self.cache_dir}: label cache not writable ({error.strerror}); set "
                          "data_loader.args.label_cache_dir to keep labels between runs",
                          stacklevel=2)
            self.cache_dir = None
            return
        try:
            with os.fdopen(handle, "wb") as file:
                np.savez(file, disks=disks)
            os.replace(temporary, self.cache_dir / f"{key}.npz")
        except BaseException:
            os.unlink(temporary)
            raise


def colorize(labels: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB picture of (H, W) integer labels (classes 0..4, 255 grey)."""
    labels = np.asarray(labels)
    unknown = np.setdiff1d(np.unique(labels), list(PALETTE))
    if unknown.size:
        raise ValueError(f"labels hold values outside the classes: {unknown.tolist()}")
    lookup = np.zeros((256, 3), dtype=np.uint8)
    for value, rgb in PALETTE.items():
        lookup[value] = rgb
    return lookup[labels.astype(np.uint8)]


def _write(path: Path, labels: np.ndarray, color: bool) -> None:
    picture = cv2.cvtColor(colorize(labels), cv2.COLOR_RGB2BGR) if color else labels
    try:
        written = cv2.imwrite(str(path), picture)
    except cv2.error:
        written = False
    if not written:
        raise DataError(f"{path}: cannot write the image (missing folder or unknown extension)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m data_loader.connectivity",
        description="Derive the connectivity labels (0 background, 1 dead end, 2 road, "
                    "3 three-way, 4 four-or-more) of a road mask and write them as a uint8 PNG.")
    parser.add_argument("mask", type=Path, help="road mask image (0/255)")
    parser.add_argument("out", type=Path, help="output PNG of class ids at full resolution")
    parser.add_argument("--quarter", type=Path, help="also write the 1/4-resolution label here")
    parser.add_argument("--color", action="store_true",
                        help="write coloured pictures instead of class ids")
    args = parser.parse_args(argv)
    full, quarter = connectivity_labels(read_mask(args.mask))
    _write(args.out, full, args.color)
    if args.quarter is not None:
        _write(args.quarter, quarter, args.color)


if __name__ == "__main__":
    run_cli(main)
