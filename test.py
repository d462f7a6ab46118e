"""Evaluate a trained network on whole tiles: `python test.py -r saved/models/.../model_best.pth`.

Writes masks, road probabilities, connectivity pictures, overlays, road graphs, the SpaceNet 3
submission and the metrics (IoU, F1, relaxed F1, connectivity mIoU, APLS) under --out, through the
evaluation pipeline that validation runs too. Under `torchrun` the tiles are split across the
processes and one metrics file and one submission are written.
"""
import argparse
import logging
from pathlib import Path

from tqdm import tqdm

import data_loader.data_loaders as module_data
import model.network as module_arch
from base.base_data_loader import BaseDataLoader
from data_loader.datasets import ImageFolderDataset
from evaluation.pipeline import evaluate, evaluation_settings
from evaluation.predictor import PredictorSettings, SlidingWindowPredictor
from evaluation.presets import PRESETS
from evaluation.writer import PredictionWriter, write_tables
from utils.checkpoint import load_checkpoint, load_model_state, write_json
from utils.config import ConfigParser
from utils.distributed import init_distributed, shutdown_distributed
from utils.errors import ConfigError, run_cli
from utils.settings import as_dict, build

logger = logging.getLogger("test")


def main(args: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("-r", "--resume", required=True, help="checkpoint to evaluate")
    parser.add_argument("-c", "--config", help="config file (default: the checkpoint's config)")
    parser.add_argument("-d", "--device", help="CUDA device id to use")
    parser.add_argument("--split", default="test", help="split of data_loader.args.data_dir (default test)")
    parser.add_argument("--out", help="output folder (default: test/ beside the checkpoint)")
    parser.add_argument("--tta", action="store_true", help="average the 8 flips and rotations")
    parser.add_argument("--images", help="predict every image of this folder (no ground truth)")
    parser.add_argument("--preset", choices=sorted(PRESETS), default="ours",
                        help="evaluate as a published pipeline does (evaluation/presets.py)")
    config = ConfigParser.from_args(parser, [], args)
    options = config.options
    config.update(PRESETS[options.preset])
    predictor_settings = config.settings(PredictorSettings, "predictor",
                                         **({"tta": True} if options.tta else {}))
    settings = evaluation_settings(config)
    context = init_distributed()
    logging.basicConfig(level=logging.INFO if context.is_main else logging.WARNING,
                        format="%(message)s", force=True)
    try:
        network = config.init_obj("arch", module_arch)
        load_model_state(network, load_checkpoint(config.resume), config.resume)
        network.to(context.device)
        predictor = SlidingWindowPredictor(network, predictor_settings, device=context.device)
        out = Path(options.out) if options.out else config.resume.parent / "test"
        try:
            writer = PredictionWriter(out)
        except OSError as error:
            raise ConfigError(f"--out: cannot write to {out}: {error.strerror}") from None
        items = (image_folder(Path(options.images), config) if options.images
                 else module_data.whole_tiles(config, options.split))
        summary, rows = evaluate(predictor, tqdm(items, desc="test", dynamic_ncols=True,
                                                 disable=not context.is_main),
                                 settings, writer)
        writer.write_submission()
        if context.is_main:
            described = {"checkpoint": str(config.resume), "preset": options.preset,
                         "threshold": predictor_settings.threshold,
                         **{key: getattr(predictor_settings, key)
                            for key in ("tta", "window", "margin")},
                         "inference_precision": predictor_settings.precision,
                         "rho": settings.metrics.rho,
                         "apls_settings": {"mode": settings.metrics.apls.mode,
                                           **settings.metrics.apls.resolved()},
                         "topo_settings": (as_dict(settings.metrics.topo)
                                           if settings.metrics.topo else None),
                         "graph": as_dict(settings.graph)}
            source = {"images": options.images} if options.images else {"split": options.split}
            write_tables(out, {**summary, **described, **source}, rows)
            write_json(config.resolved(), out / "resolved.json")
            if not options.images:
                print_table(summary)
            logger.info("outputs written to %s", out)
    finally:
        shutdown_distributed()


def image_folder(folder: Path, config: ConfigParser) -> BaseDataLoader:
    """The images of a folder without truth, normalised as the config's training data."""
    args = config.arguments("data_loader", module_data)
    dataset = build(ImageFolderDataset, {key: args[key] for key in (
        "mean", "std", "bands", "nodata_color")}, "data_loader.args", folder)
    return BaseDataLoader(dataset, batch_size=1, shuffle=False, num_workers=args["num_workers"],
                          training=False)


def print_table(summary: dict) -> None:
    print(f"{'metric':<20}{'value':>10}")
    for key, value in summary.items():
        text = f"{value:>10.4f}" if isinstance(value, float) else f"{value!s:>10}"
        print(f"{key:<20}{text}")


if __name__ == "__main__":
    run_cli(main)
