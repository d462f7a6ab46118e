"""Evaluate a trained network on whole tiles: `python test.py -r saved/models/.../model_best.pth`.

Writes masks, road probabilities, connectivity pictures, overlays, road graphs, the SpaceNet 3
submission and the metrics (IoU, F1, relaxed F1, connectivity mIoU, APLS) under --out.
"""
import argparse
import logging
import math
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import data_loader.data_loaders as module_data
import model.network as module_arch
from data_loader.datasets import ImageFolderDataset
from roads.geo import read_road_lines
from roads.georeference import read_georeference
from data_loader.tiles import Tile, read_image
from evaluation.metrics import RoadMetrics
from trainer.trainer import autocast_dtype_for
from evaluation.apls import apls
from utils.checkpoint import load_checkpoint, load_model_state
from utils.config import ConfigParser
from utils.errors import ConfigError, run_cli
from evaluation.writer import PredictionWriter, write_tables
from evaluation.predictor import SlidingWindowPredictor
from roads.graph import lines_to_graph, mask_to_graph

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
    config = ConfigParser.from_args(parser, [], args)
    options = config.options
    logging.basicConfig(level=logging.INFO, format="%(message)s", force=True)

    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    network = config.init_obj("arch", module_arch)
    load_model_state(network, load_checkpoint(config.resume), config.resume)
    network.to(device)
    tta = options.tta or config["predictor"].get("tta", False)
    predictor = SlidingWindowPredictor(
        network, device=device, autocast_dtype=autocast_dtype_for(device, config["trainer"].get("amp", True)),
        **{**config.checked_section("predictor", SlidingWindowPredictor), "tta": tta})
    out = Path(options.out) if options.out else config.resume.parent / "test"
    try:
        writer = PredictionWriter(out)
    except OSError as error:
        raise ConfigError(f"--out: cannot write to {out}: {error.strerror}") from None
    evaluation = config["metrics"]
    settings = {"checkpoint": str(config.resume), "tta": tta, "window": predictor.window,
                "margin": predictor.margin, "rho": evaluation["rho"],
                "apls_settings": evaluation.get("apls", {})}
    if options.images:
        predict_folder(Path(options.images), predictor, writer, config)
        write_tables(out, {**settings, "images": options.images, "n_tiles": len(writer.stems)}, [])
    else:
        summary, rows = evaluate_split(options.split, predictor, writer, config)
        write_tables(out, {**summary, **settings, "split": options.split}, rows)
        print_table(summary)
    writer.write_submission()
    logger.info("outputs written to %s", out)


def evaluate_split(split: str, predictor: SlidingWindowPredictor, writer: PredictionWriter,
                   config: ConfigParser) -> tuple[dict, list[dict]]:
    """Predict every tile of a split, score it and write its outputs; the split's metrics and rows."""
    loader_args = {**config["data_loader"]["args"], "split": split, "training": False,
                   "batch_size": 1, "shuffle": False}
    loader = config.find_type("data_loader", module_data)(**loader_args)
    tiles = {tile.stem: tile for tile in loader.dataset.tiles}
    graph_args = config.checked_section("graph", mask_to_graph)
    apls_args = config.checked_section("metrics.apls", apls)
    metrics = RoadMetrics(rho=config["metrics"]["rho"])
    rows, graph_sources = [], set()
    for batch in tqdm(loader, desc=f"test {split}", dynamic_ncols=True):
        tile = tiles[batch["stem"][0]]
        seg, conn = predictor(batch["image"][0])
        probability = seg.softmax(0)[1].numpy()
        predicted_conn = conn.argmax(0).numpy()
        true_mask = batch["mask"][0].numpy().astype(bool)
        scores = metrics.update(probability > 0.5, true_mask, predicted_conn, batch["conn"][0].numpy())
        transform = read_georeference(tile.image_path)
        graph = mask_to_graph(probability > 0.5, **graph_args)
        truth, source = ground_truth_graph(tile, transform, true_mask, graph_args)
        graph_sources.add(source)
        scores["apls"] = apls(truth, graph, **apls_args).apls
        writer.write(tile.stem, read_image(tile.image_path), probability, predicted_conn, graph,
                     transform, true_mask)
        rows.append({"stem": tile.stem, **{k: round(v, 6) for k, v in scores.items()}})
    summary = metrics.result()
    summary["apls"] = float(np.mean([row["apls"] for row in rows])) if rows else math.nan
    summary["apls_ground_truth"] = "+".join(sorted(graph_sources))
    summary["n_tiles"] = len(rows)
    return summary, rows


def ground_truth_graph(tile: Tile, transform, true_mask: np.ndarray, graph_args: dict):
    """The tile's true road graph: from its GeoJSON when it has one and a georeference, else its mask."""
    if tile.geojson_path is not None and transform is not None:
        lines = [transform.to_pixel(line.coords) for line in read_road_lines(tile.geojson_path)]
        return lines_to_graph(lines), "geojson"
    return mask_to_graph(true_mask, **graph_args), "mask"


def predict_folder(folder: Path, predictor: SlidingWindowPredictor, writer: PredictionWriter,
                   config: ConfigParser) -> None:
    """Predict every image of `folder` (no ground truth): masks, probabilities, connectivity, graphs."""
    normalisation = {key: config["data_loader"]["args"][key] for key in ("mean", "std")}
    graph_args = config.checked_section("graph", mask_to_graph)
    for item in tqdm(ImageFolderDataset(folder, **normalisation), desc="predict", dynamic_ncols=True):
        seg, conn = predictor(item["image"])
        probability = seg.softmax(0)[1].numpy()
        transform = read_georeference(Path(item["image_path"]))
        graph = mask_to_graph(probability > 0.5, **graph_args)
        writer.write(item["stem"], item["raw_image"].numpy(), probability, conn.argmax(0).numpy(),
                     graph, transform)


def print_table(summary: dict) -> None:
    print(f"{'metric':<20}{'value':>10}")
    for key, value in summary.items():
        text = f"{value:>10.4f}" if isinstance(value, float) else f"{value!s:>10}"
        print(f"{key:<20}{text}")


if __name__ == "__main__":
    run_cli(main)
