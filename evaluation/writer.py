"""The one writer of evaluation outputs: per-tile files, the submission and the split tables."""
import csv
import json
from pathlib import Path

import cv2
import networkx as nx
import numpy as np

from evaluation.postprocess import Prediction
from roads.classes import IGNORE_INDEX, PALETTE, colorize
from roads.geo import write_road_lines
from roads.georeference import Georeference, write_cog
from utils.distributed import gather_objects, is_main_process

# Overlay colors (RGB): true positives green, false positives red, false negatives blue.
TRUE_POSITIVE = (0, 200, 0)
FALSE_POSITIVE = (230, 0, 0)
FALSE_NEGATIVE = (0, 90, 255)


class PredictionWriter:
    """Writes masks/, prob/, conn/, overlay/ and graphs/ under `out`, plus the submission rows.

    A georeferenced tile's mask (0/255), road probability (x 255) and connectivity classes (with
    their palette; 255 where the image has no data) are Cloud-Optimized GeoTIFFs on the input's
    grid (CRS and transform), so they overlay the image in QGIS; other tiles get PNGs (the
    classes in color). Graphs are GeoJSON: lon/lat (RFC 7946) for georeferenced tiles, else
    pixels, each LineString with `gap: true` where the connectivity method closed a gap.
    """

    def __init__(self, out: Path) -> None:
        self.out = Path(out)
        self.submission: list[tuple[str, str]] = []
        self.stems: list[str] = []
        for folder in ("masks", "prob", "conn", "overlay", "graphs"):
            (self.out / folder).mkdir(parents=True, exist_ok=True)

    def write(self, stem: str, image: np.ndarray | None, prediction: Prediction, graph: nx.Graph,
              georeference: Georeference | None, true_mask: np.ndarray | None = None,
              valid: np.ndarray | None = None) -> None:
        """Save one tile's prediction.

        image (H, W, 3) uint8 RGB and true_mask (H, W) bool, when known, for the overlay; valid
        (H, W) bool, the pixels with image data (None: all).
        """
        self.stems.append(stem)
        mask = prediction.mask.astype(np.uint8) * 255
        classes = prediction.connectivity
        if valid is not None:
            classes = np.where(valid, classes, IGNORE_INDEX).astype(np.uint8)
        if georeference is not None:
            write_cog(self.out / "masks" / f"{stem}.tif", mask, georeference)
            write_cog(self.out / "prob" / f"{stem}.tif", prediction.probability, georeference,
                      resampling="average")
            write_cog(self.out / "conn" / f"{stem}.tif", classes, georeference,
                      nodata=IGNORE_INDEX, colormap=PALETTE)
        else:
            write_picture(self.out / "masks" / f"{stem}.png", mask)
            write_picture(self.out / "prob" / f"{stem}.png", prediction.probability)
            write_picture(self.out / "conn" / f"{stem}.png", colorize(classes))
        if true_mask is not None and image is not None:
            write_picture(self.out / "overlay" / f"{stem}.jpg",
                          overlay(image, prediction.mask, true_mask))
        edges = list(graph.edges(data=True))
        lines = [np.asarray(data["pts"], dtype=float) for _, _, data in edges]
        write_road_lines(self.out / "graphs" / f"{stem}.geojson",
                         [georeference.to_lonlat(line) if georeference else line
                          for line in lines],
                         [{"gap": True} if data.get("gap") else {} for _, _, data in edges])
        rows = [(stem, wkt_linestring(line)) for line in lines]
        self.submission += rows or [(stem, "LINESTRING EMPTY")]

    def write_submission(self) -> Path:
        """`submission.csv` in the SpaceNet 3 format: ImageId,WKT_Pix, one row per LineString,
        tiles in stem order. Collective under DDP (every process's rows, written by rank 0)."""
        rows = sorted((row for part in gather_objects(self.submission) for row in part),
                      key=lambda row: row[0])
        path = self.out / "submission.csv"
        if not is_main_process():
            return path
        with open(path, "w", newline="") as file:
            table = csv.writer(file)
            table.writerow(["ImageId", "WKT_Pix"])
            table.writerows(rows)
        return path


def overlay(image: np.ndarray, prediction: np.ndarray, truth: np.ndarray,
            opacity: float = 0.6) -> np.ndarray:
    """The image with true positives, false positives and false negatives painted over it."""
    painted = image.copy()
    for color, where in ((TRUE_POSITIVE, prediction & truth), (FALSE_POSITIVE, prediction & ~truth),
                          (FALSE_NEGATIVE, ~prediction & truth)):
        painted[where] = color
    return cv2.addWeighted(painted, opacity, image, 1 - opacity, 0)


def wkt_linestring(points: np.ndarray) -> str:
    """`LINESTRING (x y, x y, ...)` of an (N, 2) polyline in pixels."""
    return "LINESTRING (" + ", ".join(f"{x:.2f} {y:.2f}" for x, y in points) + ")"


def write_picture(path: Path, picture: np.ndarray) -> None:
    """Write a grey (H, W) or RGB (H, W, 3) uint8 picture (PNG, or JPEG by the suffix)."""
    if picture.ndim == 3:
        picture = cv2.cvtColor(picture, cv2.COLOR_RGB2BGR)
    if not cv2.imwrite(str(path), picture):
        raise OSError(f"cannot write {path}")


def write_tables(out: Path, summary: dict, rows: list[dict]) -> None:
    """`metrics.json` (the split's metrics and settings) and `per_image.csv` (one row per tile)."""
    with open(out / "metrics.json", "w") as file:
        json.dump(summary, file, indent=2)
        file.write("\n")
    if rows:
        with open(out / "per_image.csv", "w", newline="") as file:
            table = csv.DictWriter(file, fieldnames=list(rows[0]))
            table.writeheader()
            table.writerows(rows)
