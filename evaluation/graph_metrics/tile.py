"""APLS and TOPO of one tile under a named preset, so that "APLS (spacenet)" says how it was made.

Presets (`AplsSettings.mode`; delta, snap and min_path left at None take the preset's values):
- `ours` (default): our scorer on the road-graph contract (`graph_metrics.apls.apls`): the graphs
  as given (proposal: our predicted graph; truth: GeoJSON lines projected to pixels, or the mask's
  graph), control points every 20 px on every edge, snap 10 px, shortest path compared 3 px, every
  tile scored (no roads in truth and proposal: 1; see `graph_metrics.apls`). With units "metres"
  the tile's per-axis ground size (`pixel_size_m`) turns pixels into metres, or, for a raster
  without georeference, `metres_per_pixel`; the same numbers are then metres, as `apls` reads
  them whenever it is given a ground size.
- `spacenet`: the SpaceNet 3 reference scorer's whole pipeline (`graph_metrics.apls_spacenet`):
  its own graph construction in UTM metres (including its duplicate-edge deletion, a quirk kept
  for comparability), control points every 50 m on every edge, snap 4 m, minimum path 0.001 m.
  Tiles whose truth has no roads or whose proposal has no lines are skipped: every score is nan,
  which a mean over tiles must exclude (`numpy.nanmean`), as the reference's mean does.
- `authors`: the authors' port: as `ours`, but control points (every 20 px) only on edges whose
  length exceeds their bounding-box diagonal by at least 3 % (`curved_eps` 0.03).
TOPO (`graph_metrics.topo`) is computed beside APLS on the same graphs, in metres whenever the
tile's ground size is known, else in pixels.
"""
import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, get_args

import networkx as nx
import numpy as np

from evaluation.graph_metrics import apls_spacenet
from evaluation.graph_metrics.apls import apls
from evaluation.graph_metrics.core import RoadArrays
from evaluation.graph_metrics.topo import TopoSettings, topo
from roads.graph import lines_to_graph
from utils.settings import check

Units = Literal["pixels", "metres"]


@dataclass(frozen=True)
class Preset:
    """Distances of a preset in its units, and its curvature threshold for control points."""
    delta: float
    snap: float
    min_path: float
    curved_eps: float
    units: Units


APLS_PRESETS = {
    "ours": Preset(20.0, 10.0, 3.0, -1.0, "pixels"),
    "spacenet": Preset(50.0, 4.0, 0.001, -1.0, "metres"),
    "authors": Preset(20.0, 10.0, 3.0, 0.03, "pixels"),
}
"""The named presets; the distances of `ours` and `authors` hold in pixels or in metres."""

PresetName = Literal[tuple(APLS_PRESETS)]
"""The names of `APLS_PRESETS`, the choices of `AplsSettings.mode` that a config may name."""

DEFAULT_TOPO = TopoSettings()

NAN_SCORES = {"apls": math.nan, "apls_gt_to_prop": math.nan, "apls_prop_to_gt": math.nan,
              "topo_precision": math.nan, "topo_recall": math.nan, "topo_f1": math.nan}


@dataclass(frozen=True)
class AplsSettings:
    """How APLS is computed: a preset and, where not None, its distances overridden.

    units: "pixels" or "metres" (None: the preset's; `spacenet` works in metres only);
    curved_eps: control points only on edges at least this curved (negative: every edge; None: the
    preset's); metres_per_pixel: ground size for rasters without georeference (a georeferenced
    tile's per-axis `pixel_size_m` takes precedence; setting it alone implies metres).
    """
    mode: PresetName = "ours"
    delta: float | None = None
    snap: float | None = None
    min_path: float | None = None
    curved_eps: float | None = None
    units: Units | None = None
    metres_per_pixel: float | None = None

    def __post_init__(self) -> None:
        check(self.mode in APLS_PRESETS, "mode",
              f"must be one of {', '.join(APLS_PRESETS)}, got {self.mode!r}")
        for name, minimum in (("delta", None), ("snap", 0.0), ("min_path", 0.0),
                              ("metres_per_pixel", None)):
            value = getattr(self, name)
            if value is None:
                continue
            check(isinstance(value, (int, float)) and math.isfinite(value), name,
                  f"must be a finite number, got {value!r}")
            check(value > 0 if minimum is None else value >= minimum, name,
                  f"must be {'> 0' if minimum is None else '>= 0'}, got {value}")
        check(self.curved_eps is None or (isinstance(self.curved_eps, (int, float))
                                          and math.isfinite(self.curved_eps)), "curved_eps",
              f"must be a finite number, got {self.curved_eps!r}")
        check(self.units is None or self.units in get_args(Units), "units",
              f"must be 'pixels' or 'metres', got {self.units!r}")
        check(not (self.mode == "spacenet" and self.units == "pixels"), "units",
              "the spacenet mode works in metres")

    @property
    def resolved_units(self) -> str:
        if self.units is not None:
            return self.units
        return "metres" if self.metres_per_pixel is not None else APLS_PRESETS[self.mode].units

    def resolved(self) -> dict:
        """{delta, snap, min_path, curved_eps, units} with the preset's values filled in."""
        preset = APLS_PRESETS[self.mode]
        units = self.resolved_units
        defaults = (preset.delta, preset.snap, preset.min_path)
        given = (self.delta, self.snap, self.min_path)
        delta, snap, min_path = (d if g is None else float(g) for g, d in zip(given, defaults,
                                                                              strict=True))
        curved_eps = preset.curved_eps if self.curved_eps is None else float(self.curved_eps)
        return {"delta": delta, "snap": snap, "min_path": min_path, "curved_eps": curved_eps,
                "units": units}


def _ground_scale(settings: AplsSettings, pixel_size_m: tuple[float, float] | None
                  ) -> tuple[float, float] | None:
    if pixel_size_m is not None:
        return (float(pixel_size_m[0]), float(pixel_size_m[1]))
    if settings.metres_per_pixel is not None:
        return (settings.metres_per_pixel, settings.metres_per_pixel)
    return None


def score_graphs(truth: nx.Graph, proposal: nx.Graph, settings: AplsSettings = AplsSettings(),
                 topo_settings: TopoSettings | None = DEFAULT_TOPO,
                 pixel_size_m: tuple[float, float] | None = None) -> dict[str, float]:
    """APLS (and TOPO unless `topo_settings` is None) of two road graphs in pixel coordinates, in
    the `ours` or `authors` mode. Keys as `score_tile`'s."""
    if settings.mode == "spacenet":
        raise ValueError("mode: score_graphs takes the ours or authors mode; use score_tile")
    values = settings.resolved()
    scale = _ground_scale(settings, pixel_size_m)
    if values["units"] == "metres" and scale is None:
        raise ValueError("units: metres need the tile's pixel_size_m or metres_per_pixel")
    metric = {"pixel_size_m": scale} if values["units"] == "metres" else {}
    result = apls(truth, proposal, delta=values["delta"], snap=values["snap"],
                  min_path=values["min_path"], curved_eps=values["curved_eps"], **metric)
    scores = {"apls": result.apls, "apls_gt_to_prop": result.gt_to_prop,
              "apls_prop_to_gt": result.prop_to_gt}
    if topo_settings is not None:
        factor = scale if scale is not None else (1.0, 1.0)
        scores.update(_topo_scores(RoadArrays.from_graph(truth, factor),
                                   RoadArrays.from_graph(proposal, factor), topo_settings))
    return scores


def _topo_scores(truth: RoadArrays, proposal: RoadArrays, settings: TopoSettings
                 ) -> dict[str, float]:
    result = topo(truth, proposal, settings)
    return {"topo_precision": result.precision, "topo_recall": result.recall,
            "topo_f1": result.f1}


def score_tile(truth_lines_px: list[np.ndarray], proposal_lines_px: list[np.ndarray],
               settings: AplsSettings = AplsSettings(),
               topo_settings: TopoSettings | None = DEFAULT_TOPO,
               to_lonlat: Callable[[np.ndarray], np.ndarray] | None = None,
               pixel_size_m: tuple[float, float] | None = None) -> dict[str, float]:
    """APLS and TOPO of one tile; the evaluation pipeline (`evaluation.pipeline`) calls it per tile.

    truth_lines_px / proposal_lines_px: (N, 2) float pixel (x, y) polylines (truth: GeoJSON lines
    projected to pixels or the edges of the mask's graph; proposal: the edges of our predicted
    graph, `roads.graph.graph_to_lines`). to_lonlat: pixel -> lon/lat of a georeferenced tile (the
    spacenet mode then works in UTM exactly like the reference); pixel_size_m: (sx, sy) metres per
    pixel of a georeferenced tile. With neither, the spacenet mode needs `metres_per_pixel`
    (lengths then Euclidean on the scaled pixels).

    Returns apls, apls_gt_to_prop, apls_prop_to_gt, topo_precision, topo_recall, topo_f1 (TOPO
    keys absent when `topo_settings` is None). A tile the spacenet mode skips scores nan
    everywhere (exclude it from the mean); see the module docstring for the other modes.
    """
    if settings.mode != "spacenet":
        return score_graphs(lines_to_graph(truth_lines_px), lines_to_graph(proposal_lines_px),
                            settings, topo_settings, pixel_size_m)
    values = settings.resolved()
    scale = _ground_scale(settings, pixel_size_m)
    if to_lonlat is None and scale is None:
        raise ValueError("to_lonlat: the spacenet mode needs the tile's georeference "
                         "(to_lonlat) or its ground size (pixel_size_m or metres_per_pixel)")
    if to_lonlat is not None:
        truth = apls_spacenet.geojson_graph([to_lonlat(line) for line in truth_lines_px],
                                            apls_spacenet.GROUND_TRUTH_FIRST_ID)
        proposal = apls_spacenet.wkt_graph(proposal_lines_px, to_lonlat)
    else:
        truth = apls_spacenet.geojson_graph(truth_lines_px, apls_spacenet.GROUND_TRUTH_FIRST_ID,
                                            planar_scale=scale)
        proposal = apls_spacenet.wkt_graph(proposal_lines_px, None, planar_scale=scale)
    return score_reference_graphs(truth, proposal, settings, topo_settings,
                                  has_proposal=any(len(line) for line in proposal_lines_px),
                                  values=values)


def score_reference_graphs(truth: nx.MultiGraph, proposal: nx.MultiGraph,
                           settings: AplsSettings, topo_settings: TopoSettings | None,
                           has_proposal: bool, values: dict | None = None) -> dict[str, float]:
    """Scores of the spacenet mode on graphs built by `graph_metrics.apls_spacenet`."""
    values = settings.resolved() if values is None else values
    scores = dict(NAN_SCORES)
    if topo_settings is None:
        for key in ("topo_precision", "topo_recall", "topo_f1"):
            del scores[key]
    result = None
    if has_proposal:
        result = apls_spacenet.score(truth, proposal, delta=values["delta"], snap=values["snap"],
                                     min_path=values["min_path"],
                                     curved_eps=values["curved_eps"])
    if result is None:
        return scores
    scores.update(apls=result.apls, apls_gt_to_prop=result.gt_to_prop,
                  apls_prop_to_gt=result.prop_to_gt)
    if topo_settings is not None:
        scores.update(_topo_scores(apls_spacenet.ref_graph(truth).roads,
                                   apls_spacenet.ref_graph(proposal).roads, topo_settings))
    return scores
