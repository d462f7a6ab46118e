"""The graph methods side by side on a split: APLS (ours and spacenet presets), TOPO and time.

    python -m experiments.graph_methods -r BEST [--split val] [-c CONFIG] [--set KEY=VALUE]
        [--vary KEY=V1,V2 ...] [--out results.json]

Each tile is predicted once through the evaluation pipeline (`evaluation.pipeline.Evaluator`,
the config's predictor and threshold); then every variant extracts its graph from that same
prediction (`evaluation.postprocess.predicted_graph`) and is scored against the same truth
(`evaluation.graph_metrics.tile.score_tile`, with the config's APLS settings and with the `spacenet`
preset's). Variants: `skeleton`, `connectivity`, and `connectivity` with each of its three steps
switched off (`graph.connectivity.junctions`, `gap_closing`, `spurs`). Time per tile is the wall
time of the graph extraction alone (one thread), the median over the split's tiles.

`--vary KEY=V1,V2` (a key of the `graph` section, `connectivity.` for the method's own; values in
JSON) replaces the step variants with both methods at each value, one key changed at a time: how
the graph defaults are judged on whole tiles. The truth graph keeps the config's settings, so a
variant changes the predicted graph alone (a larger spur length must not also prune the truth).
"""
import argparse
import copy
import functools
import json
import math
import statistics
from dataclasses import fields, replace
from pathlib import Path
from typing import Any

import cv2
import torch

import model.network as module_arch
from benchmarks.harness import interleaved
from data_loader.data_loaders import whole_tiles
from evaluation.graph_metrics.tile import score_tile
from evaluation.pipeline import Evaluator, MetricSettings, evaluation_settings
from evaluation.postprocess import predicted_graph, truth_lines
from evaluation.predictor import PredictorSettings, SlidingWindowPredictor
from evaluation.presets import PRESETS
from roads.extraction import GraphSettings
from roads.graph import graph_to_lines
from utils.checkpoint import load_checkpoint, load_model_state, write_json
from utils.config import ConfigParser
from utils.errors import UserError, run_cli

STEPS = ("junctions", "gap_closing", "spurs")
COLUMNS = ("apls", "apls_spacenet", "topo_precision", "topo_recall", "topo_f1", "seconds")


def variants(graph: GraphSettings, vary: dict[str, list[Any]] | None = None
             ) -> dict[str, GraphSettings]:
    """The graph settings compared, all else as in the config: both methods, then either the
    connectivity method with each of its steps off or, given `vary` ({key: values}), both methods
    at each value of each key."""
    connectivity = replace(graph, method="connectivity")
    named = {"skeleton": replace(graph, method="skeleton"), "connectivity": connectivity}
    if not vary:
        for step in STEPS:
            named[f"connectivity, {step.replace('_', ' ')} off"] = replace(
                connectivity, connectivity=replace(graph.connectivity, **{step: False}))
        return named
    for key, values in vary.items():
        for value in values:
            for method in ("skeleton", "connectivity"):
                named[f"{method}, {key}={value}"] = changed(named[method], key, value)
    return named


def changed(graph: GraphSettings, key: str, value: Any) -> GraphSettings:
    """`graph` with one key (`connectivity.KEY` for the method's own) set to `value`."""
    section, _, name = key.rpartition(".")
    if section not in ("", "connectivity"):
        raise UserError(f"--vary {key}: not a key of the graph section")
    target = graph.connectivity if section else graph
    if name not in {field.name for field in fields(target)}:
        raise UserError(f"--vary {key}: not a key of the graph section")
    if section:
        return replace(graph, connectivity=replace(graph.connectivity, **{name: value}))
    return replace(graph, **{name: value})


def parse_vary(assignments: list[str]) -> dict[str, list[Any]]:
    """{key: values} from `KEY=V1,V2` arguments (values in JSON)."""
    vary: dict[str, list[Any]] = {}
    for assignment in assignments:
        key, separator, values = assignment.partition("=")
        try:
            if not separator or not values:
                raise ValueError
            vary[key.strip()] = [json.loads(value) for value in values.split(",")]
        except ValueError:
            raise UserError(f"--vary {assignment}: expected KEY=V1,V2 with JSON values") from None
    return vary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-r", "--resume", required=True, help="checkpoint to evaluate")
    parser.add_argument("-c", "--config", help="config file (default: the checkpoint's config)")
    parser.add_argument("-d", "--device", help="CUDA device id to use")
    parser.add_argument("--split", default="val", help="split of data_loader.args.data_dir")
    parser.add_argument("--out", type=Path, help="also write the table as JSON here")
    parser.add_argument("--vary", action="append", default=[], metavar="KEY=V1,V2",
                        help="graph settings to compare, one key at a time (repeatable)")
    config = ConfigParser.from_args(parser, [], argv)
    torch.set_num_threads(1)  # the graph times are single-thread figures, as in bench_graph
    cv2.setNumThreads(1)
    settings = evaluation_settings(config, graphs=False)
    named = variants(settings.graph, parse_vary(config.options.vary))
    spacenet = copy.deepcopy(config)
    spacenet.update(PRESETS["spacenet"])
    metric_sets = {"apls": settings.metrics,
                   "apls_spacenet": spacenet.settings(MetricSettings, "metrics")}
    network = config.init_obj("arch", module_arch)
    load_model_state(network, load_checkpoint(config.resume), config.resume)
    predictor = SlidingWindowPredictor(network, config.settings(PredictorSettings, "predictor"))
    per_tile: dict[str, dict[str, list[float]]] = {name: {c: [] for c in COLUMNS} for name in named}
    for tile in Evaluator(predictor, settings).tiles(whole_tiles(config, config.options.split)):
        item, pixel_size_m = tile.item, tile.item.get("pixel_size_m")
        true_mask = item["mask"].numpy() == 1
        truth, _ = truth_lines(true_mask, item["geojson_path"], tile.georeference, settings.graph,
                               pixel_size_m)
        to_lonlat = tile.georeference.to_lonlat if tile.georeference else None
        timings = interleaved({name: functools.partial(predicted_graph, tile.prediction,
                                                       graph_settings, pixel_size_m, tile.valid)
                               for name, graph_settings in named.items()}, runs=1)
        for name, timing in timings.items():
            graph = timing.value
            per_tile[name]["seconds"].append(timing.median)
            lines = graph_to_lines(graph)
            for column, metrics in metric_sets.items():
                scores = score_tile(truth, lines, metrics.apls, metrics.topo, to_lonlat=to_lonlat,
                                    pixel_size_m=pixel_size_m)
                per_tile[name][column].append(scores["apls"])
                if column == "apls":
                    for key in ("topo_precision", "topo_recall", "topo_f1"):
                        per_tile[name][key].append(scores[key])
    table = {name: summary(columns) for name, columns in per_tile.items()}
    print(markdown(table, config.options.split, len(per_tile["skeleton"]["seconds"])))
    if config.options.out is not None:
        write_json(table, config.options.out)


def summary(columns: dict[str, list[float]]) -> dict[str, float]:
    """Means over the tiles (the spacenet preset's skipped tiles, nan, left out); the median time."""
    values = {}
    for column, scores in columns.items():
        kept = [score for score in scores if not math.isnan(score)]
        if column == "seconds":
            values[column] = statistics.median(kept)
        else:
            values[column] = statistics.fmean(kept) if kept else math.nan
    return values


def markdown(table: dict[str, dict[str, float]], split: str, tiles: int) -> str:
    lines = [f"{tiles} tiles of the {split} split",
             "| graph | APLS (ours) | APLS (spacenet) | TOPO precision | TOPO recall | TOPO F1 "
             "| s per tile |", "|---|---|---|---|---|---|---|"]
    for name, values in table.items():
        lines.append(f"| {name} | " + " | ".join(
            f"{values[c]:.3f}" for c in COLUMNS) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    run_cli(main)
