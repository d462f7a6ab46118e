"""From network outputs to what is evaluated and written: the road probability, the one
threshold that makes the mask, connectivity classes, and the road graphs."""
import warnings
from dataclasses import dataclass, replace
from pathlib import Path

import networkx as nx
import numpy as np
import torch

from roads.extraction import GraphSettings, extract_graph
from roads.geo import project_lines, read_road_lines
from roads.georeference import Georeference
from roads.graph import graph_to_lines


@dataclass(frozen=True)
class Prediction:
    """A tile's post-processed prediction, assembled window by window.

    probability (H, W) uint8 road probability x 255 (rounded); mask (H, W) bool, road probability
    > threshold (decided before rounding); connectivity (H, W) uint8 classes 0..4 (argmax of the
    connectivity logits). One byte a pixel each, so that scenes of any size fit.
    """

    probability: np.ndarray
    mask: np.ndarray
    connectivity: np.ndarray

    @classmethod
    def empty(cls, shape: tuple[int, int]) -> "Prediction":
        return cls(np.zeros(shape, np.uint8), np.zeros(shape, bool), np.zeros(shape, np.uint8))

    def paste(self, region: tuple[slice, slice], segmentation: torch.Tensor,
              connectivity: torch.Tensor, threshold: float) -> None:
        """Post-process the logits of one window, segmentation (2, h, w) and connectivity
        (5, h, w), into `region` (rows, columns).

        The road mask is `probability > threshold`; at 0.5, the default, it is the argmax of the
        two logits.
        """
        probability = segmentation.float().softmax(0)[1].numpy()
        self.probability[region] = np.round(probability * 255)
        self.mask[region] = probability > threshold
        self.connectivity[region] = connectivity.argmax(0).numpy()


def predicted_graph(prediction: Prediction, settings: GraphSettings,
                    pixel_size_m: tuple[float, float] | None,
                    valid: np.ndarray | None = None) -> nx.Graph:
    """The road graph of a prediction, by `settings.method`, its ground-unit settings converted
    with the tile's `pixel_size_m`; no road crosses invalid pixels ((H, W) bool `valid`, None:
    all valid)."""
    return extract_graph(prediction.mask, settings, pixel_size_m=pixel_size_m,
                         probability=prediction.probability,
                         connectivity=prediction.connectivity, valid=valid)


def truth_lines(true_mask: np.ndarray, geojson_path: str | Path | None,
                georeference: Georeference | None, settings: GraphSettings,
                pixel_size_m: tuple[float, float] | None = None
                ) -> tuple[list[np.ndarray], str]:
    """The true roads as (N, 2) pixel polylines, and their source: the tile's GeoJSON projected
    into its pixels through the raster's CRS and transform when it has both, else the edges of
    the skeleton graph of its true mask, cleaned like the predicted ones. GeoJSON labels beside a
    raster without georeference cannot be placed: that is said once per file."""
    if geojson_path and georeference is not None:
        return project_lines(read_road_lines(geojson_path), georeference, geojson_path), "geojson"
    if geojson_path:
        warnings.warn(f"{geojson_path}: its image has no georeference, so the GeoJSON cannot be "
                      "projected; the APLS truth comes from the mask", stacklevel=2)
    graph = extract_graph(true_mask, replace(settings, method="skeleton"),
                          pixel_size_m=pixel_size_m)
    return graph_to_lines(graph), "mask"
