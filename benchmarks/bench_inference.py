"""Whole-tile inference paths side by side: speed-up, agreement with fp32 and split metrics.

    python -m benchmarks.bench_inference [--checkpoint CKPT] [--data-dir DIR --split S]
        [--paths fp32 auto ...] [--repeats N] [--tiles N] [--json OUT]

Every path predicts the same tiles in one process, the paths alternating tile by tile, so that
other processes on the machine slow all of them alike; the speed-ups are ratios of medians and
medians of the per-tile ratios to the first path (the baseline). Paths (`PATHS`): fp32, auto
(reduced precision and channels-last where the device computes it natively), auto-compile (the
same under torch.compile; its compilation is the first, untimed tile), and their -tta variants
(8-fold D4 test-time augmentation).

Network: the checkpoint's (its config's arch), or the paper's defaults with seeded random
weights. Tiles: the split's whole tiles (normalized with the checkpoint config's mean/std when
given), scored against their masks and connectivity labels with `RoadMetrics`; without
--data-dir, seeded normal noise tiles of --tile-size pixels (`benchmarks.synthetic.noise_tiles`).
Masks and classes are post-processed as the evaluation pipeline does (`Prediction.paste`: road
probability above the predictor's threshold, 0.5 by default). Agreement: road mask IoU
(`RoadMetrics`) and connectivity class agreement with the baseline's prediction of the same
tile. Compute: convolution FLOPs per tile (`torch.utils.flop_counter`, a multiply-add counting
2), and the rate each path reaches, also as a fraction of the rate of a 2048^3 matrix product in
its dtype measured in the same process (the practical peak of the machine at that moment).
"""
import argparse
import copy
import itertools
import json
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.harness import interleaved, machine_description, machine_line, time_call
from benchmarks.synthetic import SPACENET_TILE_PX, noise_tiles, tile_km2
from data_loader.datasets import RoadDataset
from evaluation.metrics import RoadMetrics
from evaluation.postprocess import Prediction
from evaluation.predictor import PredictorSettings, SlidingWindowPredictor, axis_windows
from model.network import StackedHourglassRoadNet
from utils.checkpoint import load_checkpoint, load_model_state
from utils.errors import ConfigError, run_cli

PATHS = {
    "fp32": dict(precision="fp32"),
    "auto": dict(precision="auto"),
    "auto-compile": dict(precision="auto", compile=True),
    "fp32-tta": dict(precision="fp32", tta=True),
    "auto-tta": dict(precision="auto", tta=True),
    "auto-compile-tta": dict(precision="auto", compile=True, tta=True),
}


def network(checkpoint: Path | None) -> tuple[nn.Module, dict]:
    """The network to time and the data_loader args of its config ({} without a checkpoint)."""
    if checkpoint is None:
        torch.manual_seed(0)
        return StackedHourglassRoadNet(), {}
    state = load_checkpoint(checkpoint)
    config = state.get("config", {})
    model = StackedHourglassRoadNet(**config.get("arch", {}).get("args", {}))
    load_model_state(model, state, checkpoint)
    return model, config.get("data_loader", {}).get("args", {})


def tiles(args: argparse.Namespace, loader_args: dict) -> list[dict]:
    """Items with `image` (3, H, W) and, from a dataset, `mask` and `conn` (H, W)."""
    if args.data_dir is None:
        return [{"image": tile} for tile in noise_tiles(args.tile_size, args.tiles,
                                                        torch.Generator().manual_seed(0))]
    stats = {key: loader_args[key] for key in ("mean", "std") if key in loader_args}
    dataset = RoadDataset(args.data_dir, args.split, training=False, **stats)
    return [dataset[i] for i in range(min(args.tiles, len(dataset)))]


def tile_flops(model: nn.Module, height: int, width: int, settings: PredictorSettings) -> int:
    """Convolution FLOPs of one (height, width) tile: every window (and transform) run."""
    rows = axis_windows(height, settings.window, settings.margin)
    columns = axis_windows(width, settings.window, settings.margin)
    meta = copy.deepcopy(model).to("meta").eval()
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        meta(torch.empty(1, 3, rows[0].size, columns[0].size, device="meta"))
    # A transform that swaps the axes runs the same convolutions on the transposed window.
    return counter.get_total_flops() * len(rows) * len(columns) * (8 if settings.tta else 1)


def matmul_rate(dtype: torch.dtype, size: int = 2048, runs: int = 3) -> float:
    """FLOP/s of a size^3 matrix product in `dtype` on the CPU (median of `runs`)."""
    a = torch.randn(size, size).to(dtype)
    b = torch.randn(size, size).to(dtype)
    return 2 * size**3 / time_call(lambda: a @ b, runs, warmup=1).median


def mask_and_classes(segmentation: torch.Tensor, connectivity: torch.Tensor,
                     threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The road mask and connectivity classes of a tile's logits, as the evaluation pipeline
    post-processes them."""
    prediction = Prediction.empty(tuple(segmentation.shape[1:]))
    prediction.paste((slice(None), slice(None)), segmentation, connectivity, threshold)
    return prediction.mask, prediction.connectivity


def in_turn(predictor: SlidingWindowPredictor, items: list[dict]) -> Callable[[], Any]:
    """A call that predicts the next of `items`' images, from the first one round again."""
    images = itertools.cycle([item["image"] for item in items])
    return lambda: predictor(next(images))


def run(args: argparse.Namespace) -> dict[str, Any]:
    machine = machine_description()
    model, loader_args = network(args.checkpoint)
    model.eval()
    items = tiles(args, loader_args)
    predictors = {name: SlidingWindowPredictor(model, PredictorSettings(
        batch_size=args.batch_size, **PATHS[name])) for name in args.paths}
    base = args.paths[0]
    # Warm-up on the first tile: compilation, allocator, oneDNN kernels.
    first_tile = interleaved({name: in_turn(predictor, items[:1])
                              for name, predictor in predictors.items()}, 1)
    outputs: dict[str, list[tuple[np.ndarray, np.ndarray]]] = {name: [] for name in args.paths}

    def keep_first_pass(name: str, round_index: int, logits: tuple) -> None:
        if round_index < len(items):
            outputs[name].append(mask_and_classes(*logits, predictors[name].settings.threshold))

    timings = interleaved({name: in_turn(predictor, items)
                           for name, predictor in predictors.items()},
                          args.repeats * len(items), on_result=keep_first_pass)
    seconds = {name: list(timing.seconds) for name, timing in timings.items()}
    height, width = items[0]["image"].shape[1:]
    km2 = tile_km2(height, width)
    peaks = {"fp32": matmul_rate(torch.float32), "bf16": matmul_rate(torch.bfloat16)}
    rows = []
    for name, predictor in predictors.items():
        median = statistics.median(seconds[name])
        flops = tile_flops(model, height, width, predictor.settings)
        pairs = list(zip(outputs[base], outputs[name], strict=True))
        dtype = "bf16" if predictor.autocast_dtype == torch.bfloat16 else "fp32"
        row = {
            "path": name, "settings": vars(predictor.settings).copy(),
            "compute_dtype": str(predictor.autocast_dtype or torch.float32).removeprefix("torch."),
            "first_tile_s": first_tile[name].median, "median_s_per_tile": median,
            "km2_per_h": 3600 * km2 / median,
            "speedup_of_medians": statistics.median(seconds[base]) / median,
            "median_paired_speedup": statistics.median(
                b / s for b, s in zip(seconds[base], seconds[name], strict=True)),
            "seconds": seconds[name], "gflop_per_tile": flops / 1e9,
            "gflop_per_s": flops / median / 1e9,
            "fraction_of_matmul_rate": flops / median / peaks[dtype],
            "mask_iou_vs_base": min(RoadMetrics().update(a[0], b[0])["iou"] for a, b in pairs),
            "conn_agreement_vs_base": min(float((a[1] == b[1]).mean()) for a, b in pairs),
        }
        if "mask" in items[0]:
            metrics = RoadMetrics()
            for (mask, conn), item in zip(outputs[name], items, strict=True):
                metrics.update(mask, item["mask"].numpy(), conn, item["conn"].numpy())
            row["metrics"] = metrics.result()
        rows.append(row)
    for row in rows[1:]:
        if "metrics" in row:
            row["metric_deltas_vs_base"] = {key: value - rows[0]["metrics"][key]
                                            for key, value in row["metrics"].items()}
    return {
        "command": " ".join(["python -m benchmarks.bench_inference", *sys.argv[1:]]),
        "date": time.strftime("%Y-%m-%d %H:%M"), "machine": machine,
        "torch": torch.__version__, "threads": torch.get_num_threads(),
        "load_average": list(os.getloadavg()),
        "network": "checkpoint " + str(args.checkpoint) if args.checkpoint else "paper defaults",
        "parameters": sum(p.numel() for p in model.parameters()),
        "tile": [int(height), int(width)], "tiles": len(items), "repeats": args.repeats,
        "matmul_gflop_per_s": {key: value / 1e9 for key, value in peaks.items()},
        "paths": rows,
    }


def report(result: dict[str, Any]) -> str:
    height, width = result["tile"]
    lines = [machine_line(result["machine"]),
             f"{result['date']}  {result['network']} ({result['parameters'] / 1e6:.2f} M "
             f"parameters); {result['tiles']} tile(s) of {height}x{width} x "
             f"{result['repeats']} repeat(s); load average {result['load_average'][0]:.2f} "
             "at the end",
             "2048^3 matmul GFLOP/s: " + ", ".join(
                 f"{key} {value:.0f}" for key, value in result["matmul_gflop_per_s"].items()),
             f"{'path':<18}{'dtype':<10}{'s/tile':>8}{'km2/h':>8}{'speed-up':>9}{'paired':>8}"
             f"{'GFLOP':>8}{'GFLOP/s':>9}{'of mm':>7}{'mask IoU':>10}{'conn agr':>9}"]
    for row in result["paths"]:
        lines.append(f"{row['path']:<18}{row['compute_dtype']:<10}{row['median_s_per_tile']:>8.2f}"
                     f"{row['km2_per_h']:>8.1f}{row['speedup_of_medians']:>8.2f}x"
                     f"{row['median_paired_speedup']:>7.2f}x{row['gflop_per_tile']:>8.0f}"
                     f"{row['gflop_per_s']:>9.1f}{row['fraction_of_matmul_rate']:>7.0%}"
                     f"{row['mask_iou_vs_base']:>10.4f}{row['conn_agreement_vs_base']:>9.4f}")
    for row in result["paths"]:
        if "metrics" in row:
            metrics = row["metrics"]
            deltas = row.get("metric_deltas_vs_base", {})
            lines.append(f"{row['path']:<18}" + "  ".join(
                f"{key} {metrics[key]:.4f}" + (f" ({deltas[key]:+.4f})" if key in deltas else "")
                for key in ("road_iou", "f1", "relaxed_f1", "conn_miou")))
    lines.append("first tile (warm-up, compilation) s: " + ", ".join(
        f"{row['path']} {row['first_tile_s']:.1f}" for row in result["paths"]))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_inference",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", type=Path, help="trained network (default: the paper's "
                        "network with random weights)")
    parser.add_argument("--data-dir", type=Path, help="dataset whose split's tiles to predict")
    parser.add_argument("--split", default="test")
    parser.add_argument("--tiles", type=int, default=3, help="tiles (at most the split's)")
    parser.add_argument("--tile-size", type=int, default=SPACENET_TILE_PX,
                        help="side of the noise tiles")
    parser.add_argument("--paths", nargs="+", choices=sorted(PATHS), default=["fp32", "auto"],
                        help="inference paths; the first is the baseline")
    parser.add_argument("--repeats", type=int, default=3, help="timed passes over the tiles")
    parser.add_argument("--batch-size", type=int, default=4, help="windows per forward pass")
    parser.add_argument("--json", type=Path, help="write the numbers to this JSON file")
    args = parser.parse_args(argv)
    for name in ("tiles", "tile_size", "repeats", "batch_size"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')}: must be >= 1")
    result = run(args)
    print(report(result))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    run_cli(main)
