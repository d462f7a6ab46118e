"""APLS and TOPO of a proposed road network against the ground truth, from files.

    python -m tools.apls [--mode ours|spacenet|authors] --gt TRUTH.geojson --pred PRED.geojson
    python -m tools.apls --mode spacenet --gt TRUTH.geojson --pred submission.csv --image TILE.tif

The last line printed is one JSON object: the scores, the mode and the settings it resolved.
"""
import argparse
import json
import math
import sys
from dataclasses import asdict
from pathlib import Path

import numpy as np

from evaluation.graph_metrics import apls_spacenet as spacenet
from evaluation.graph_metrics.tile import (
    APLS_PRESETS,
    AplsSettings,
    score_graphs,
    score_reference_graphs,
)
from evaluation.graph_metrics.topo import TopoSettings
from roads.graph import lines_to_graph
from utils.errors import DataError, UserError, run_cli


def _positive(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def _non_negative(text: str) -> float:
    value = float(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be non-negative, got {text}")
    return value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m tools.apls",
        description="APLS and TOPO of a proposed road network against the ground truth; the last "
                    "line printed is one JSON object. Modes ours and authors: GeoJSON in pixel "
                    "coordinates. Mode spacenet (the SpaceNet 3 reference pipeline): lon/lat "
                    "GeoJSON, or --pred submission.csv (ImageId,WKT_Pix) with --image TILE.tif.")
    parser.add_argument("--mode", choices=list(APLS_PRESETS), default="ours", help="preset")
    parser.add_argument("--gt", required=True, help="ground-truth GeoJSON")
    parser.add_argument("--pred", required=True, help="proposed GeoJSON, or a submission CSV")
    parser.add_argument("--image", default=None,
                        help="GeoTIFF of the tile (or a folder holding it) for a submission CSV")
    parser.add_argument("--delta", type=_positive, default=None,
                        help="control-point spacing (default: the preset's)")
    parser.add_argument("--snap", type=_non_negative, default=None, help="snapping distance")
    parser.add_argument("--min-path", type=_non_negative, default=None,
                        help="shortest path compared")
    parser.add_argument("--curved-eps", type=float, default=None,
                        help="control points only on edges at least this curved (< 0: all)")
    parser.add_argument("--metres-per-pixel", type=_positive, default=None,
                        help="ours/authors: read the distances in metres (rasters without "
                             "georeference)")
    parser.add_argument("--hole-size", type=_positive, default=TopoSettings.hole_size,
                        help="TOPO hole size")
    parser.add_argument("--topo-interval", type=_positive, default=TopoSettings.interval,
                        help="TOPO spacing of holes and marbles")
    parser.add_argument("--topo-radius", type=_positive, default=TopoSettings.subgraph_radius,
                        help="TOPO subgraph radius")
    args = parser.parse_args(argv)
    try:
        settings = AplsSettings(mode=args.mode, delta=args.delta, snap=args.snap,
                                min_path=args.min_path, curved_eps=args.curved_eps,
                                metres_per_pixel=args.metres_per_pixel)
    except ValueError as error:
        raise UserError(str(error)) from None
    topo_settings = TopoSettings(args.hole_size, args.topo_interval, args.topo_radius)
    truth_lines = _read_lines(args.gt)
    if args.mode == "spacenet":
        truth = spacenet.geojson_graph(truth_lines, spacenet.GROUND_TRUTH_FIRST_ID)
        if args.pred.lower().endswith(".csv"):
            if args.image is None:
                raise UserError("--image: a submission CSV needs the tile's GeoTIFF")
            image_id = spacenet.image_id_of(args.gt)
            to_lonlat = spacenet.geotiff_to_lonlat(_geotiff_of(args.image, image_id))
            proposal_lines = spacenet.read_submission(args.pred, image_id)
            proposal = spacenet.wkt_graph(proposal_lines, to_lonlat)
        else:
            proposal_lines = _read_lines(args.pred)
            proposal = spacenet.geojson_graph(proposal_lines, spacenet.GEOJSON_PROPOSAL_FIRST_ID)
        scores = score_reference_graphs(truth, proposal, settings, topo_settings,
                                        has_proposal=bool(proposal_lines))
    else:
        scores = score_graphs(lines_to_graph(truth_lines),
                              lines_to_graph(_read_lines(args.pred)),
                              settings, topo_settings)
    skipped = math.isnan(scores["apls"])
    output = {"apls": scores["apls"], "gt_to_prop": scores["apls_gt_to_prop"],
              "prop_to_gt": scores["apls_prop_to_gt"], "topo_precision": scores["topo_precision"],
              "topo_recall": scores["topo_recall"], "topo_f1": scores["topo_f1"],
              "mode": args.mode, **settings.resolved(), "topo": asdict(topo_settings),
              "skipped": skipped}
    if skipped:
        print("note: tile skipped (no ground-truth roads or no proposal lines), as the reference "
              "does; its scores are null", file=sys.stderr)
    print(json.dumps({k: None if isinstance(v, float) and math.isnan(v) else v
                      for k, v in output.items()}))


def _read_lines(path: str) -> list[np.ndarray]:
    """LineString parts of a GeoJSON file; a note on stderr counts the features skipped."""
    lines, skipped = spacenet.read_lonlat_lines(path)
    if skipped:
        print(f"note: {path}: skipped {skipped} feature(s) that are not LineStrings "
              f"(Polygon, Point, ...)", file=sys.stderr)
    return lines


def _geotiff_of(image: str, image_id: str) -> Path:
    """The GeoTIFF given, or the one in the folder given whose name ends with the ImageId."""
    path = Path(image)
    if path.is_dir():
        matches = sorted(p for p in path.iterdir()
                         if p.suffix.lower() in (".tif", ".tiff") and p.stem.endswith(image_id))
        if not matches:
            raise DataError(f"{path}: ImageId {image_id} has no GeoTIFF here")
        return matches[0]
    if not path.is_file():
        raise DataError(f"{path}: ImageId {image_id} has no GeoTIFF (file not found)")
    return path


if __name__ == "__main__":
    run_cli(main)
