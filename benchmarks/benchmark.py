"""One-command speed benchmark: training throughput, whole-tile inference and the data side.

    python -m benchmarks.benchmark [--quick] [--device cpu|cuda] [--json OUT.json]
        [--data-dir dataset/toy-spacenet] [--workers 0 2 8] [--steps N] [--warmup N] [--tiles N]
        [--cpu-compile]

Training: the real step (forward, JointLoss on every output, backward, Adam step) on a fixed batch
of synthetic crops with real connectivity labels (`benchmarks.synthetic.training_batch`), in three
settings: eager fp32 (PyTorch's
defaults, so cuDNN convolutions run in TF32 on Ampere and later GPUs); mixed precision
(bf16 where supported, else fp16 with a GradScaler, as the trainer chooses) with channels-last
tensors; and the same under torch.compile. Warm-up steps are excluded and CUDA is synchronised
around each timed step; seconds per step are the mean over the timed steps. Peak memory
(`benchmarks.harness.PeakMemory`): torch.cuda.max_memory_allocated on the GPU, the process's peak
resident set (VmHWM) on the CPU, both reset after the warm-up. On the CPU, mixed precision is CPU
autocast bf16; torch.compile is skipped unless --cpu-compile is given, because compiling the
network takes minutes on a few cores.

Inference: random 1300x1300 tiles through `SlidingWindowPredictor` (window 512, margin 72) with
its default `precision="auto"` (bf16 or fp16 and channels-last where the device computes them
natively, see `evaluation.predictor.fast_dtype_for`), without and with 8-fold TTA; km2 per hour
at 0.3 m per pixel. `benchmarks.bench_inference` compares the precisions side by side.

Data: connectivity labels of a drawn 1300x1300 road network (`bench_labels`), loader crops per
second from the toy dataset (`bench_loader`: cold label cache, warm disk cache, warm memory),
mask -> road graph and APLS seconds per tile (`bench_apls`' street network); medians.

--quick runs a small network on small crops and a 650x650 tile (a quarter of a SpaceNet tile's
area; km2/h counts the area processed), and says so in its output. --steps, --warmup and --tiles
shorten a full run on a slow machine.

The JSON (--json) holds: date, command, quick, device, machine (cpu_model, cpu_cores, memory_gib,
gpu, torch, cuda, python, platform, torch_threads, load_average: `benchmarks.harness`, at the
start), load_average (start, end: the machine's 1, 5 and 15-minute load averages, which tell
whether other processes competed), settings (the `Settings` fields,
parameters, workers), training (per mode: mode, status, precision, images_per_s,
seconds_per_step, peak_memory_mib, memory_kind; numbers None where not measured), inference
(without and with TTA: tta, tile_size, tile_km2, precision, seconds_per_tile, tiles_per_s,
km2_per_h, peak_memory_mib, memory_kind), data (labels_seconds_per_tile, graph_seconds_per_tile,
apls_seconds_per_tile, loader_crop_size, loader_batch_size, loader: per worker count workers,
cold_crops_per_s, warm_disk_crops_per_s, warm_memory_crops_per_s), targets (amp_speedup,
inference_km2_per_h, loader_8_workers_crops_per_s: value, target, met) and targets_apply (a full
run on CUDA).
"""
import argparse
import datetime
import gc
import json
import os
import sys
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch

from benchmarks.bench_loader import loader_passes
from benchmarks.harness import PeakMemory, machine_description, machine_line, time_call
from benchmarks.synthetic import (
    SPACENET_TILE_PX,
    noise_tiles,
    perturbed_graph,
    straight_roads_mask,
    street_graph,
    tile_km2,
    training_batch,
)
from evaluation.graph_metrics.apls import apls
from evaluation.predictor import PredictorSettings, SlidingWindowPredictor
from model.loss import JointLoss
from model.network import StackedHourglassRoadNet
from roads.graph import mask_to_graph
from roads.labels import connectivity_labels
from trainer.trainer import autocast_dtype_for, forward_loss, optimize
from utils.errors import ConfigError, run_cli

# The targets, for a full run on one H100.
TARGET_AMP_SPEEDUP = 2.5
TARGET_KM2_PER_HOUR = 10_000.0
TARGET_LOADER_WORKERS = 8


@dataclass(frozen=True)
class Settings:
    """Sizes and repetitions of one benchmark run."""
    arch: dict = field(default_factory=dict)  # StackedHourglassRoadNet arguments ({}: the paper's)
    batch_size: int = 16
    crop_size: int = 256
    warmup_steps: int = 3
    steps: int = 10
    tile_size: int = SPACENET_TILE_PX
    window: int = PredictorSettings.window
    margin: int = PredictorSettings.margin
    window_batch: int = PredictorSettings.batch_size
    tiles: int = 3
    loader_crops_per_tile: int = 8
    label_tile_size: int = SPACENET_TILE_PX
    label_runs: int = 5
    apls_runs: int = 5


FULL = Settings()
# Chosen so that the whole quick run takes about a minute on two CPU cores; the network keeps
# both stacks (and so the reinjection) with one block per group and 32 channels.
QUICK = Settings(arch=dict(num_stacks=2, num_blocks=1, num_feats=32), batch_size=4, crop_size=128,
                 warmup_steps=2, steps=10, tile_size=SPACENET_TILE_PX // 2, tiles=2,
                 loader_crops_per_tile=2)


class TrainingMode(NamedTuple):
    name: str
    amp: bool
    channels_last: bool
    compile: bool


TRAINING_MODES = (
    TrainingMode("eager fp32", amp=False, channels_last=False, compile=False),
    TrainingMode("amp + channels-last", amp=True, channels_last=True, compile=False),
    TrainingMode("amp + channels-last + compile", amp=True, channels_last=True, compile=True),
)


def release_memory(device: torch.device) -> None:
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


def amp_dtype(device: torch.device) -> torch.dtype:
    """The trainer's choice on the GPU; on the CPU autocast runs bf16 (the trainer uses none)."""
    return autocast_dtype_for(device, True) if device.type == "cuda" else torch.bfloat16


def precision_name(dtype: torch.dtype | None, device: torch.device) -> str:
    """How a row computes: its autocast dtype, or fp32 (PyTorch's defaults, under which cuDNN
    convolutions run in TF32 on Ampere and later GPUs: the baseline of the AMP target)."""
    if dtype is None:
        tf32 = device.type == "cuda" and torch.backends.cudnn.allow_tf32
        return "fp32 (cuDNN convs TF32)" if tf32 else "fp32"
    name = str(dtype).removeprefix("torch.")
    return name + " + GradScaler" if dtype == torch.float16 else name


def training_throughput(mode: TrainingMode, settings: Settings, device: torch.device,
                        batch: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Images per second and peak memory of the full training step in one mode."""
    torch.manual_seed(0)
    memory_format = torch.channels_last if mode.channels_last else torch.contiguous_format
    model = StackedHourglassRoadNet(**settings.arch).to(device, memory_format=memory_format)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    criterion = JointLoss()
    dtype = amp_dtype(device) if mode.amp else None
    scaler = torch.amp.GradScaler("cuda", enabled=dtype == torch.float16)
    network = torch.compile(model) if mode.compile else model

    def step() -> None:
        loss = forward_loss(network, criterion, batch, dtype, mode.channels_last)["total"]
        # The trainer checks every loss too; a benchmark that trains on NaN would mean nothing.
        if not torch.isfinite(loss):
            raise RuntimeError(f"{mode.name}: non-finite loss {loss.item()}")
        optimize(loss, network, optimizer, scaler)

    peak = PeakMemory(device)
    seconds = time_call(step, settings.steps, warmup=settings.warmup_steps, device=device,
                        memory=peak).mean
    return {"mode": mode.name, "status": "measured", "precision": precision_name(dtype, device),
            "images_per_s": settings.batch_size / seconds, "seconds_per_step": seconds,
            "peak_memory_mib": peak.mib(), "memory_kind": peak.kind}


def training_rows(settings: Settings, device: torch.device, cpu_compile: bool) -> list[dict]:
    batch = {key: value.to(device) for key, value in training_batch(
        settings.crop_size, settings.batch_size, np.random.default_rng(0)).items()}
    rows = []
    for mode in TRAINING_MODES:
        if mode.compile and device.type == "cpu" and not cpu_compile:
            rows.append({"mode": mode.name, "status": "n/a (CUDA only; --cpu-compile measures it)",
                         "precision": None, "images_per_s": None, "seconds_per_step": None,
                         "peak_memory_mib": None})
            continue
        rows.append(training_throughput(mode, settings, device, batch))
        release_memory(device)  # the mode's network and optimizer, freed on return
    return rows


def inference_rows(settings: Settings, device: torch.device) -> list[dict]:
    """Whole tiles per second and km2 per hour without and with TTA (one untimed warm-up tile)."""
    torch.manual_seed(0)
    model = StackedHourglassRoadNet(**settings.arch).to(device)
    size = settings.tile_size
    [tile] = noise_tiles(size, 1, torch.Generator().manual_seed(0))
    area_km2 = tile_km2(size, size)
    rows = []
    for index, tta in enumerate((False, True)):
        predictor = SlidingWindowPredictor(model, PredictorSettings(
            settings.window, settings.margin, settings.window_batch, tta=tta), device=device)
        peak = PeakMemory(device)
        seconds = time_call(lambda predictor=predictor: predictor(tile), settings.tiles,
                            warmup=1 if index == 0 else 0, device=device, memory=peak).mean
        rows.append({"tta": tta, "tile_size": size, "tile_km2": area_km2,
                     "precision": precision_name(predictor.autocast_dtype, device),
                     "seconds_per_tile": seconds, "tiles_per_s": 1 / seconds,
                     "km2_per_h": 3600 * area_km2 / seconds,
                     "peak_memory_mib": peak.mib(), "memory_kind": peak.kind})
    del model
    release_memory(device)
    return rows


def data_rows(settings: Settings, data_dir: Path, workers: list[int]) -> dict[str, Any]:
    """Labels, loader, mask -> graph and APLS timings (medians; an untimed first label run loads
    the skeleton graph's numba code)."""
    mask = straight_roads_mask(settings.label_tile_size, 20, np.random.default_rng(0))
    labels = time_call(lambda: connectivity_labels(mask), settings.label_runs, warmup=1).median
    graph = time_call(lambda: mask_to_graph(mask), settings.label_runs).median
    rng = np.random.default_rng(0)
    gt = street_graph(rng)
    proposal = perturbed_graph(gt, rng)
    apls_seconds = time_call(lambda: apls(gt, proposal), settings.apls_runs).median
    loader = []
    for count in workers:
        with tempfile.TemporaryDirectory() as cache_dir:
            passes = loader_passes(data_dir, "train", settings.crop_size,
                                   settings.loader_crops_per_tile, settings.batch_size, count,
                                   Path(cache_dir))
        loader.append({"workers": count, "cold_crops_per_s": passes["cold"],
                       "warm_disk_crops_per_s": passes["warm disk"],
                       "warm_memory_crops_per_s": passes["warm memory"]})
    return {"labels_seconds_per_tile": labels, "graph_seconds_per_tile": graph,
            "apls_seconds_per_tile": apls_seconds, "loader": loader,
            "loader_crop_size": settings.crop_size, "loader_batch_size": settings.batch_size}


def target_checks(training: list[dict], inference: list[dict], data: dict) -> dict[str, dict]:
    """The issue's GPU targets on this run's numbers: value, target and met (None when a number
    is missing). The loader must beat the fastest training setting."""
    speed = {row["mode"]: row["images_per_s"] for row in training}
    eager, amp = speed[TRAINING_MODES[0].name], speed[TRAINING_MODES[1].name]
    fastest = max((value for value in speed.values() if value), default=None)
    loader = next((row["warm_memory_crops_per_s"] for row in data["loader"]
                   if row["workers"] == TARGET_LOADER_WORKERS), None)
    km2 = next(row["km2_per_h"] for row in inference if not row["tta"])

    def check(value: float | None, target: float | None, strict: bool = False) -> dict:
        met = None if value is None or target is None else (
            value > target if strict else value >= target)
        return {"value": value, "target": target, "met": met}

    return {
        "amp_speedup": check(amp / eager if amp and eager else None, TARGET_AMP_SPEEDUP),
        "inference_km2_per_h": check(km2, TARGET_KM2_PER_HOUR),
        f"loader_{TARGET_LOADER_WORKERS}_workers_crops_per_s": check(loader, fastest, strict=True),
    }


def format_number(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:,.{digits}f}"


def report(result: dict[str, Any]) -> str:
    """The human-readable table of a result."""
    s, m = result["settings"], result["machine"]
    lines = [f"{result['date']}  device {result['device']}  ({'QUICK: ' if result['quick'] else ''}"
             f"network {s['arch'] or 'paper defaults'}, {s['parameters'] / 1e6:.2f} M parameters)",
             machine_line(m),
             f"1-minute load average {result['load_average']['start'][0]:.2f} at start, "
             f"{result['load_average']['end'][0]:.2f} at end",
             "",
             f"training, batch {s['batch_size']} of {s['crop_size']}x{s['crop_size']} crops, "
             f"{s['steps']} timed steps after {s['warmup_steps']} warm-up; peak memory: "
             f"{result['inference'][0]['memory_kind']}",
             f"  {'mode':<32}{'precision':<22}{'images/s':>10}{'s/step':>10}{'peak MiB':>10}"]
    for row in result["training"]:
        if row["status"] != "measured":
            lines.append(f"  {row['mode']:<32}{row['status']}")
            continue
        lines.append(f"  {row['mode']:<32}{row['precision']:<22}{row['images_per_s']:>10.2f}"
                     f"{row['seconds_per_step']:>10.3f}{row['peak_memory_mib']:>10.0f}")
    first = result["inference"][0]
    lines += ["", f"inference, {first['tile_size']}x{first['tile_size']} tiles "
              f"({first['tile_km2']:.4f} km2), window {s['window']}, margin {s['margin']}, "
              f"{s['window_batch']} windows per batch, {first['precision']}, "
              f"{s['tiles']} timed tile(s)",
              f"  {'TTA':<8}{'s/tile':>10}{'tiles/s':>10}{'km2/h':>12}{'peak MiB':>10}"]
    for row in result["inference"]:
        lines.append(f"  {'x8' if row['tta'] else 'none':<8}{row['seconds_per_tile']:>10.3f}"
                     f"{row['tiles_per_s']:>10.3f}{row['km2_per_h']:>12,.1f}"
                     f"{row['peak_memory_mib']:>10.0f}")
    d = result["data"]
    side = s["label_tile_size"]
    lines += ["", "data side, per tile (median)",
              f"  {side}x{side} tile: connectivity labels {d['labels_seconds_per_tile']:.3f} s, "
              f"mask -> graph {d['graph_seconds_per_tile']:.3f} s; "
              f"APLS {d['apls_seconds_per_tile']:.3f} s "
              f"({SPACENET_TILE_PX}x{SPACENET_TILE_PX} street network)",
              f"  loader, {d['loader_crop_size']}px crops, batch {d['loader_batch_size']} "
              "(crops/s)",
              f"  {'workers':>9}{'cold':>10}{'warm disk':>11}{'warm memory':>13}"]
    for row in d["loader"]:
        lines.append(f"  {row['workers']:>9}{row['cold_crops_per_s']:>10.1f}"
                     f"{row['warm_disk_crops_per_s']:>11.1f}"
                     f"{row['warm_memory_crops_per_s']:>13.1f}")
    applies = result["targets_apply"]
    lines += ["", "issue targets (a full run on one H100" + ("" if applies else
              "; this run's numbers shown for reference only") + ")"]
    for name, check in result["targets"].items():
        met = {True: "met", False: "NOT met", None: "not measured"}[check["met"]] if applies else ""
        lines.append(f"  {name:<36}{format_number(check['value']):>12}  target "
                     f"{format_number(check['target'])}  {met}".rstrip())
    return "\n".join(lines)


def run_benchmark(settings: Settings, device: torch.device, data_dir: Path, workers: list[int],
                  quick: bool, cpu_compile: bool = False) -> dict[str, Any]:
    """Every measurement of the benchmark as one JSON-ready dict."""
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True  # as `seed_everything` sets it for training
    parameters = StackedHourglassRoadNet(**settings.arch).num_parameters()
    # Other processes on the machine slow every number down (on a small CPU, badly): the load
    # averages before and after say whether a run had the machine to itself.
    machine = machine_description(device)
    started = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    training = training_rows(settings, device, cpu_compile)
    inference = inference_rows(settings, device)
    data = data_rows(settings, data_dir, workers)
    return {
        "date": started,
        "quick": quick,
        "device": device.type,
        "machine": machine,
        "load_average": {"start": machine["load_average"], "end": list(os.getloadavg())},
        "settings": {**asdict(settings), "parameters": parameters, "workers": workers},
        "training": training,
        "inference": inference,
        "data": data,
        "targets": target_checks(training, inference, data),
        "targets_apply": device.type == "cuda" and not quick,
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.benchmark",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="small network, crops and tile: about a minute on two CPU cores")
    parser.add_argument("--device", choices=("cpu", "cuda"),
                        default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path, help="write the numbers to this JSON file")
    parser.add_argument("--data-dir", type=Path, default=Path("dataset/toy-spacenet"),
                        help="dataset whose train split the loader reads")
    parser.add_argument("--workers", type=int, nargs="+",
                        help="loader worker counts (default: those of 0, 2 and 8 up to the core "
                             "count)")
    parser.add_argument("--steps", type=int, help="timed training steps per mode")
    parser.add_argument("--warmup", type=int, help="untimed warm-up training steps per mode")
    parser.add_argument("--tiles", type=int, help="timed tiles per inference row")
    parser.add_argument("--cpu-compile", action="store_true",
                        help="also measure torch.compile on the CPU (compiling takes minutes)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if args.device == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda: CUDA is not available on this machine")
    if not (args.data_dir / "train").is_dir():
        raise ConfigError(f"--data-dir: '{args.data_dir}' has no train split folder")
    cores = os.cpu_count() or 1
    workers = args.workers or [n for n in (0, 2, TARGET_LOADER_WORKERS) if n <= cores]
    if min(workers) < 0 or any(value is not None and value < minimum for value, minimum in
                               ((args.steps, 1), (args.warmup, 0), (args.tiles, 1))):
        raise ConfigError("--workers and --warmup must be >= 0, --steps and --tiles >= 1")
    settings = QUICK if args.quick else FULL
    overrides = {"steps": args.steps, "warmup_steps": args.warmup, "tiles": args.tiles}
    settings = replace(settings, **{key: value for key, value in overrides.items()
                                    if value is not None})
    result = run_benchmark(settings, torch.device(args.device), args.data_dir, workers, args.quick,
                           args.cpu_compile)
    result = {"command": " ".join(["python -m benchmarks.benchmark", *(argv or sys.argv[1:])]),
              **result}
    print(report(result))
    if args.json is not None:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n")
        print(f"\nwrote {args.json}")


if __name__ == "__main__":
    run_cli(main)
