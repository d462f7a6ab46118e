"""Map the roads of a scene or a mosaic of any size with a trained network, block by block.

    python -m tools.map_roads -r saved/models/.../model_best.pth SCENE --out OUT
    torchrun --nproc_per_node=4 -m tools.map_roads -r CHECKPOINT SCENE --out OUT

SCENE is a GeoTIFF (any size), a GDAL VRT, or a folder of adjacent GeoTIFFs in one CRS and pixel
size (one area: a road network crosses their borders; gaps between them are no-data). Writes
`OUT/<name>.gpkg` (road lines with their length in metres and the predicted class of their ends,
junctions and dead ends as points), `<name>.geojson`, `<name>.graphml` (a routable graph with
lengths in metres) and the road probability, mask and connectivity classes as Cloud-Optimized
GeoTIFFs. Memory follows `--block`, not the scene; an interrupted run started again with the same
arguments resumes with the blocks it had done; under torchrun the processes share the blocks.
"""
import argparse
import logging
from pathlib import Path

import data_loader.data_loaders as module_data
import model.network as module_arch
from data_loader.datasets import image_reading
from evaluation.pipeline import evaluation_settings
from evaluation.predictor import PredictorSettings, SlidingWindowPredictor
from mapping.pipeline import DEFAULT_BLOCK, Scene, map_scene
from mapping.scene import Mosaic
from utils.checkpoint import load_checkpoint, load_model_state
from utils.config import ConfigParser
from utils.distributed import init_distributed, shutdown_distributed
from utils.errors import run_cli
from utils.settings import build


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.map_roads", description=__doc__.split(
        "\n\n")[0])
    parser.add_argument("scene", type=Path, help="GeoTIFF, VRT or folder of GeoTIFFs")
    parser.add_argument("-r", "--resume", required=True, help="checkpoint of a trained network")
    parser.add_argument("-c", "--config", help="config file (default: the checkpoint's config)")
    parser.add_argument("-d", "--device", help="CUDA device id to use")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--name", help="name of the output files (default: the scene's stem)")
    parser.add_argument("--block", type=int, default=DEFAULT_BLOCK,
                        help=f"block side in pixels (default {DEFAULT_BLOCK})")
    parser.add_argument("--halo", type=int,
                        help="pixels around a block that its graph sees (default: what the graph "
                             "settings reach)")
    parser.add_argument("--tta", action="store_true", help="average the 8 flips and rotations")
    parser.add_argument("--keep-work", action="store_true",
                        help="keep OUT/work (the blocks' rasters and graphs) after the run")
    config = ConfigParser.from_args(parser, [], args)
    options = config.options
    predictor_settings = config.settings(PredictorSettings, "predictor",
                                         **({"tta": True} if options.tta else {}))
    settings = evaluation_settings(config)
    # The training data's reading and normalisation, checked as the loader checks them.
    loader = config.arguments("data_loader", module_data)
    reading = build(image_reading, {key: loader[key] for key in (
        "mean", "std", "bands", "nodata_color", "metres_per_pixel")}, "data_loader.args")
    context = init_distributed()
    logging.basicConfig(level=logging.INFO if context.is_main else logging.WARNING,
                        format="%(message)s", force=True)
    try:
        with Mosaic.open(options.scene, reading.raster_options) as mosaic:
            network = config.init_obj("arch", module_arch)
            load_model_state(network, load_checkpoint(config.resume), config.resume)
            network.to(context.device)
            predictor = SlidingWindowPredictor(network, predictor_settings,
                                               device=context.device)

            def read(top: int, left: int, height: int, width: int):
                raster = mosaic.read(top, left, height, width)
                return raster.image, raster.valid

            scene = Scene(mosaic.shape, mosaic.georeference, read)
            metres = reading.metres_per_pixel
            pixel_size_m = (mosaic.georeference.pixel_size_m() if mosaic.georeference
                            else (metres, metres) if metres else None)
            parameters = {"scene": str(options.scene.resolve()), "shape": list(mosaic.shape),
                          "checkpoint": str(Path(config.resume).resolve()),
                          "block": options.block, "threshold": predictor_settings.threshold,
                          "tta": predictor_settings.tta}
            map_scene(scene, predictor, reading.mean, reading.std, settings.graph,
                      pixel_size_m, options.out, options.name or options.scene.stem,
                      options.block, options.halo, parameters, context, options.keep_work)
    finally:
        shutdown_distributed()


if __name__ == "__main__":
    run_cli(main)
