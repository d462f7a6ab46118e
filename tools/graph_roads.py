"""The road network of a road probability or mask raster of any size, from this repo or any model.

    python -m tools.graph_roads ROADS.tif --out OUT [--connectivity CLASSES.tif] [-c config.json]

ROADS is one band: a probability in [0, 1] (float), or 0..255 (uint8: a probability x 255, or a
0/255 mask); a pixel is road where the probability exceeds `--threshold`. Its no-data (GDAL mask,
nodata value) is no road and no dead end. With `--connectivity` (a raster of the classes 0..4 on
the same grid, as `tools.map_roads` and `test.py` write them) the graph method may be
`connectivity`. The graph settings come from the `graph` section of `-c` (default: the
repo's defaults, in metres, converted with the raster's pixel size). Writes `OUT/<name>.gpkg`,
`<name>.geojson` and `<name>.graphml` as `tools.map_roads` does, block by block (out of core,
resumable, shared among processes under torchrun).
"""
import argparse
import logging
from pathlib import Path

import numpy as np
import rasterio

from evaluation.predictor import PredictorSettings
from mapping.pipeline import DEFAULT_BLOCK, map_raster
from mapping.stitch import Rasters
from roads.classes import IGNORE_INDEX
from roads.extraction import GraphSettings
from roads.georeference import georeference_of, open_raster
from utils.config import read_json
from utils.distributed import init_distributed, shutdown_distributed
from utils.errors import DataError, UserError, run_cli
from utils.settings import from_config


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.graph_roads",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("roads", type=Path, help="road probability or mask raster (one band)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--name", help="name of the output files (default: the raster's stem)")
    parser.add_argument("--connectivity", type=Path, help="connectivity classes raster")
    parser.add_argument("-c", "--config", type=Path, help="config whose `graph` section to use")
    parser.add_argument("--threshold", type=float, default=PredictorSettings().threshold,
                        help="road probability above which a pixel is road (default %(default)s)")
    parser.add_argument("--metres-per-pixel", type=float,
                        help="ground size of a pixel, for a raster without georeference")
    parser.add_argument("--block", type=int, default=DEFAULT_BLOCK,
                        help=f"block side in pixels (default {DEFAULT_BLOCK})")
    parser.add_argument("--halo", type=int, help="pixels around a block that its graph sees")
    parser.add_argument("--keep-work", action="store_true", help="keep OUT/work after the run")
    options = parser.parse_args(args)
    if not 0 <= options.threshold < 1:
        raise UserError(f"--threshold: must lie in [0, 1), got {options.threshold}")
    section = read_json(options.config).get("graph") if options.config else None
    settings = from_config(GraphSettings, section, "graph")
    context = init_distributed()
    logging.basicConfig(level=logging.INFO if context.is_main else logging.WARNING,
                        format="%(message)s", force=True)
    try:
        with open_raster(options.roads) as roads:
            classes = open_raster(options.connectivity) if options.connectivity else None
            try:
                read = _reader(options.roads, roads, classes, options.threshold)
                if settings.method == "connectivity" and classes is None:
                    raise UserError("graph.method 'connectivity' needs --connectivity")
                georeference = georeference_of(roads, options.roads)
                pixel_size_m = (georeference.pixel_size_m() if georeference is not None else
                                (options.metres_per_pixel,) * 2 if options.metres_per_pixel
                                else None)
                parameters = {"roads": str(options.roads.resolve()),
                              "connectivity": str(options.connectivity or ""),
                              "shape": [roads.height, roads.width], "block": options.block,
                              "threshold": options.threshold}
                map_raster(read, (roads.height, roads.width), georeference, settings,
                           pixel_size_m, options.out, options.name or options.roads.stem,
                           options.block, options.halo, parameters, context, options.keep_work)
            finally:
                if classes is not None:
                    classes.close()
    finally:
        shutdown_distributed()


def _reader(path: Path, roads, classes, threshold: float):
    """`read(top, left, height, width) -> Rasters` over the road raster (and the classes)."""
    if roads.count != 1:
        raise DataError(f"{path}: expected one band (a road probability or mask), "
                        f"found {roads.count}")
    kind = np.dtype(roads.dtypes[0])
    if kind != np.uint8 and kind.kind != "f":
        raise DataError(f"{path}: expected a uint8 (0..255) or float (0..1) raster, got {kind}")
    if classes is not None and (classes.height, classes.width) != (roads.height, roads.width):
        raise DataError(f"{classes.name}: {classes.width} x {classes.height} px, the road raster "
                        f"{roads.width} x {roads.height}")

    def read(top: int, left: int, height: int, width: int) -> Rasters:
        window = rasterio.windows.Window(left, top, width, height)
        values = roads.read(1, window=window)
        valid = roads.read_masks(1, window=window) > 0
        probability = values / 255.0 if kind == np.uint8 else np.nan_to_num(values)
        valid &= np.isfinite(values) if kind.kind == "f" else True
        scaled = (np.clip(probability, 0, 1) * 255).round().astype(np.uint8)
        connectivity = None
        if classes is not None:
            connectivity = classes.read(1, window=window)
            valid &= connectivity != IGNORE_INDEX
        return Rasters(probability > threshold, scaled, connectivity, valid)

    return read


if __name__ == "__main__":
    run_cli(main)
