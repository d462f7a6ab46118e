import json
import os

import cv2
import networkx as nx
import numpy as np
import pytest
import rasterio
import torch

from benchmarks import (
    bench_apls,
    bench_city,
    bench_graph,
    bench_labels,
    bench_loader,
    bench_precompute,
    bench_scene,
)
from benchmarks.benchmark import Settings, main, precision_name, report, run_benchmark
from benchmarks.harness import PeakMemory, interleaved, machine_line, time_call
from benchmarks.synthetic import (
    noise_tiles,
    occluded_probability,
    occlusion_bands,
    perturbed_graph,
    spacenet_georeference,
    straight_roads_mask,
    street_graph,
    tile_km2,
    write_mirrored_mosaic,
)
from evaluation.predictor import PredictorSettings, fast_dtype_for
from model.network import StackedHourglassRoadNet
from tests.conftest import REPO, drawn, run_command
from tools.toy.generate import generate
from utils.errors import ConfigError

TINY = Settings(arch=dict(num_stacks=1, num_blocks=1, num_feats=16), batch_size=2, crop_size=64,
                warmup_steps=1, steps=1, tile_size=96, window=64, margin=8, window_batch=4,
                tiles=1, loader_crops_per_tile=1, label_tile_size=128, label_runs=1, apls_runs=1)


def positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0


def test_benchmark_at_tiny_size_reports_every_documented_number(tmp_path):
    generate(tmp_path / "toy", seed=0, counts={"train": 2, "val": 0, "test": 0}, size=96)
    measured = run_benchmark(TINY, torch.device("cpu"), tmp_path / "toy", workers=[0], quick=True)
    result = json.loads(json.dumps(measured))

    assert {"date", "quick", "device", "machine", "load_average", "settings", "training",
            "inference", "data", "targets", "targets_apply"} <= result.keys()
    assert len(result["load_average"]["start"]) == len(result["load_average"]["end"]) == 3
    assert result["device"] == "cpu" and result["quick"] is True
    assert result["targets_apply"] is False
    assert {"cpu_model", "cpu_cores", "memory_gib", "gpu", "torch", "torch_threads",
            "load_average"} <= result["machine"].keys()
    assert result["machine"]["load_average"] == result["load_average"]["start"]
    assert result["machine"]["gpu"] is None and result["machine"]["torch"] == torch.__version__
    assert positive(result["settings"]["parameters"]) and result["settings"]["workers"] == [0]

    eager, amp, compiled = result["training"]
    assert (eager["mode"], eager["precision"]) == ("eager fp32", "fp32")
    assert (amp["mode"], amp["precision"]) == ("amp + channels-last", "bfloat16")
    for row in (eager, amp):
        assert row["status"] == "measured"
        assert all(positive(row[key])
                   for key in ("images_per_s", "seconds_per_step", "peak_memory_mib"))
        # batch 2 per step
        assert row["images_per_s"] == pytest.approx(2 / row["seconds_per_step"])
    # torch.compile is skipped on the CPU without --cpu-compile.
    assert compiled["status"].startswith("n/a") and compiled["images_per_s"] is None

    assert [row["tta"] for row in result["inference"]] == [False, True]
    expected = precision_name(fast_dtype_for(torch.device("cpu")), torch.device("cpu"))
    assert [row["precision"] for row in result["inference"]] == [expected, expected]
    for row in result["inference"]:
        assert row["tile_size"] == 96
        # (96 px * 0.3 m)^2 = 28.8^2 m^2 = 829.44 m^2
        assert row["tile_km2"] == pytest.approx(829.44e-6)
        assert row["km2_per_h"] == pytest.approx(3600 * 829.44e-6 / row["seconds_per_tile"])
        assert all(positive(row[key])
                   for key in ("seconds_per_tile", "tiles_per_s", "peak_memory_mib"))

    data = result["data"]
    assert all(positive(data[key]) for key in
               ("labels_seconds_per_tile", "graph_seconds_per_tile", "apls_seconds_per_tile"))
    [loader] = data["loader"]
    assert loader["workers"] == 0
    assert all(positive(loader[key]) for key in
               ("cold_crops_per_s", "warm_disk_crops_per_s", "warm_memory_crops_per_s"))

    targets = result["targets"]
    speedup = amp["images_per_s"] / eager["images_per_s"]
    assert targets["amp_speedup"]["value"] == pytest.approx(speedup)
    assert targets["amp_speedup"]["target"] == 2.5
    assert targets["inference_km2_per_h"]["value"] == result["inference"][0]["km2_per_h"]
    # No 8-worker loader row in this run: the loader target is not measured.
    assert targets["loader_8_workers_crops_per_s"]["met"] is None

    table = report(result)
    assert "eager fp32" in table and "n/a (CUDA only" in table and "km2/h" in table
    assert table.splitlines()[1] == machine_line(result["machine"])


def test_missing_data_dir_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="--data-dir"):
        main(["--quick", "--data-dir", str(tmp_path / "nowhere")])


def test_inference_paths_side_by_side_on_a_trained_like_checkpoint(tmp_path):
    from benchmarks import bench_inference
    from model.network import StackedHourglassRoadNet

    generate(tmp_path / "toy", seed=0, counts={"train": 0, "val": 0, "test": 1}, size=96)
    arch = dict(num_stacks=1, num_blocks=1, num_feats=16)
    checkpoint = tmp_path / "tiny.pth"
    torch.save({"state_dict": StackedHourglassRoadNet(**arch).state_dict(),
                "config": {"arch": {"args": arch}}}, checkpoint)
    out = tmp_path / "inference.json"
    bench_inference.main(["--checkpoint", str(checkpoint), "--data-dir", str(tmp_path / "toy"),
                          "--tiles", "1", "--repeats", "2", "--json", str(out)])
    result = json.loads(out.read_text())
    assert result["tile"] == [96, 96] and result["tiles"] == 1
    assert result["machine"]["torch_threads"] == torch.get_num_threads()
    fp32, auto = result["paths"]
    assert (fp32["path"], auto["path"]) == ("fp32", "auto")
    assert fp32["compute_dtype"] == "float32" and fp32["speedup_of_medians"] == 1.0
    assert fp32["mask_iou_vs_base"] == 1.0 and fp32["conn_agreement_vs_base"] == 1.0
    assert len(auto["seconds"]) == 2 and positive(auto["median_paired_speedup"])
    # One 96x96 window: the FLOPs of the network on it, the same for both paths.
    assert fp32["gflop_per_tile"] == auto["gflop_per_tile"] > 0
    assert fp32["gflop_per_s"] == pytest.approx(fp32["gflop_per_tile"]
                                                / fp32["median_s_per_tile"])
    assert set(fp32["metrics"]) >= {"road_iou", "f1", "conn_miou"}
    assert set(auto["metric_deltas_vs_base"]) == set(auto["metrics"])


def test_interleaved_timing_takes_turns_after_untimed_warmup_rounds():
    now, calls, seen = [0.0], [], []

    def variant(name: str, cost: float):
        def call() -> str:
            calls.append(name)
            now[0] += cost
            return f"{name}{len(calls)}"
        return call

    timings = interleaved({"a": variant("a", 1.0), "b": variant("b", 3.0)}, 3, warmup=1,
                          clock=lambda: now[0],
                          on_result=lambda name, run, value: seen.append((name, run, value)))
    assert calls == ["a", "b"] * 4
    assert timings["a"].seconds == (1.0, 1.0, 1.0) and timings["b"].median == 3.0
    assert (timings["b"].low, timings["b"].high, timings["b"].mean) == (3.0, 3.0, 3.0)
    # The warm-up round's values (a1, b2) are not reported; the last timed value is kept.
    assert seen == [("a", 0, "a3"), ("b", 0, "b4"), ("a", 1, "a5"), ("b", 1, "b6"),
                    ("a", 2, "a7"), ("b", 2, "b8")]
    assert timings["b"].value == "b8"
    assert timings["a"].summary() == "median 1.000 s over 3 runs (min 1.000 s, max 1.000 s)"
    with pytest.raises(ValueError, match="runs"):
        time_call(lambda: None, 0)


def test_cpu_peak_memory_counts_from_the_reset():
    peak = PeakMemory(torch.device("cpu"))
    peak.reset()
    if peak.kind != "peak RSS (VmHWM)":
        pytest.skip("this kernel refuses to reset the resident-set peak")
    before = peak.mib()
    block = np.ones(64 * 2**20, dtype=np.uint8)  # written, so resident
    after = peak.mib()
    del block
    assert after - before >= 60


def test_machine_line_says_cores_threads_and_load():
    line = machine_line()
    assert line.startswith("machine: ") and f"{os.cpu_count()} cores" in line
    assert f"({torch.get_num_threads()} thread" in line and "load average" in line
    described = {"cpu_model": "Zen", "cpu_cores": 2, "memory_gib": 23.5, "gpu": None,
                 "torch": "2.0", "torch_threads": 1, "load_average": [1.0, 0.5, 0.25]}
    assert machine_line(described) == ("machine: Zen, 2 cores, 23.5 GiB, GPU none; torch 2.0 "
                                       "(1 thread); load average 1.00, 0.50, 0.25 (1, 5, 15 min)")


def test_synthetic_street_graph_and_its_perturbed_copy():
    rng = np.random.default_rng(0)
    truth = street_graph(rng)
    proposal = perturbed_graph(truth, rng)
    assert truth.number_of_edges() == 150 and nx.is_connected(truth)
    for _, _, data in truth.edges(data=True):
        assert data["length"] == pytest.approx(
            np.linalg.norm(np.diff(data["pts"], axis=0), axis=1).sum())
        assert ((data["pts"] > 0) & (data["pts"] < 1300)).all()
    # 15 streets missing, 5 cut in two, 10 spurs.
    assert proposal.number_of_edges() == 150 - 15 + 5 + 10
    assert tile_km2(1300, 1300) == pytest.approx(0.1521)
    assert spacenet_georeference().pixel_size_m() == pytest.approx((0.243, 0.300), abs=1e-3)


def test_synthetic_masks_tiles_and_occlusions():
    first = straight_roads_mask(128, 3, np.random.default_rng(1))
    assert first.shape == (128, 128) and set(np.unique(first)) == {0, 255}
    assert (first == straight_roads_mask(128, 3, np.random.default_rng(1))).all()
    a, b = noise_tiles(32, 2, torch.Generator().manual_seed(0))
    assert a.shape == (3, 32, 32) and not torch.equal(a, b)
    assert torch.equal(a, noise_tiles(32, 1, torch.Generator().manual_seed(0))[0])

    road = drawn(((0, 100), (399, 100), 20), size=(200, 400)) > 0  # 120 m of straight road
    occlusion = occlusion_bands(road, 1, np.random.default_rng(0))
    # A band 10 m long (33 px) across the whole road.
    columns = ((occlusion | ~road)[road.any(axis=1)]).all(axis=0)
    assert 30 <= columns.sum() <= 36
    visible = occluded_probability(road, occlusion) > PredictorSettings().threshold
    assert cv2.connectedComponents(visible.astype(np.uint8))[0] - 1 == 2  # cut in two


def test_mirrored_mosaic_repeats_the_tile_flipped_at_every_other_repeat(tmp_path):
    tile = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    write_mirrored_mosaic(tile, 150, tmp_path / "scene.tif")
    with rasterio.open(tmp_path / "scene.tif") as scene:
        assert scene.shape == (150, 150) and scene.crs.to_epsg() == 32619
        image = scene.read().transpose(1, 2, 0)
    assert (image[:48, :64] == tile).all()
    assert (image[:48, 64:128] == tile[:, ::-1]).all()
    assert (image[48:96, :64] == tile[::-1]).all()
    assert (image[96:144, 128:150] == tile[:, :22]).all()


def test_every_script_runs_at_its_smallest_size(tiny_dataset, tmp_path, capsys):
    def output(script, *argv: str) -> list[str]:
        script.main(list(argv))
        lines = capsys.readouterr().out.splitlines()
        assert lines[0].startswith("machine: ")
        return lines[1:]

    labels = output(bench_labels, "--size", "128", "--roads", "3", "--runs", "2")
    assert "128x128 tile, 3 roads" in labels[0] and "median" in labels[1]
    scores = output(bench_apls, "--runs", "1", "--cpu")
    assert [line.split()[0] for line in scores[2:]] == ["ours", "authors", "spacenet", "topo"]
    assert all("s per tile (CPU, median of 1" in line for line in scores[2:])
    graphs = output(bench_graph, "--masks", str(tiny_dataset / "train" / "masks"),
                    "--runs", "1", "--occlusions", "1", "--apls")
    assert len(graphs) == 3 and "APLS" in graphs[0] and graphs[2].startswith("connectivity graph")
    loader = output(bench_loader, "--data-dir", str(tiny_dataset), "--crop-size", "64",
                    "--crops-per-tile", "1", "--batch-size", "2", "--workers", "0")
    workers, *rates = loader[2].split()
    assert workers == "0" and all(float(rate) > 0 for rate in rates)
    precomputed = output(bench_precompute, "--data-dir", str(tiny_dataset), "--workers", "1",
                         "--repeats", "1")
    assert precomputed[0].startswith("4 tiles") and "1 worker(s)" in precomputed[1]

    config = json.loads((REPO / "config.json").read_text())
    config["arch"]["args"].update(num_blocks=1, num_feats=16)
    config["predictor"] = {"window": 64, "margin": 8}
    checkpoint = tmp_path / "tiny.pth"
    torch.save({"state_dict": StackedHourglassRoadNet(**config["arch"]["args"]).state_dict(),
                "config": config}, checkpoint)
    tile = next((tiny_dataset / "test" / "images").glob("*.tif"))
    for command in ("test", "map"):
        [scene] = output(bench_scene, "-r", str(checkpoint), "--tile", str(tile), "--sizes", "96",
                         "--command", command)
        row = json.loads(scene)
        assert row["size"] == 96 and row["seconds"] > 0 and row["peak_rss_gib"] > 0
    graph, *stitched = output(bench_city, "--sizes", "600", "--block", "256", "--seams", "600",
                              "--seam-blocks", "256")
    assert json.loads(graph)["edges"] > 10 and json.loads(graph)["peak_rss_gib"] > 0
    seam = json.loads(stitched[0])
    assert seam["junctions_and_ends_differing"] == 0 and seam["apls_min"] >= 0.99
    assert seam["topo_f1_min"] >= 0.99


@pytest.mark.slow
def test_graph_methods_table_agrees_with_test_py(config_file, tmp_path):
    """`experiments.graph_methods` predicts once and scores five graph variants; its skeleton and
    connectivity rows are what `test.py --set graph.method=...` reports for the same split."""
    assert run_command("train.py", "-c", str(config_file), "--epochs", "1").returncode == 0
    (checkpoint,) = (tmp_path / "saved").glob("models/*/*/checkpoint-epoch1.pth")
    table_path = tmp_path / "graphs.json"
    result = run_command("-m", "experiments.graph_methods", "-r", str(checkpoint),
                         "--split", "test", "--out", str(table_path))
    assert result.returncode == 0, result.stderr
    table = json.loads(table_path.read_text())
    assert list(table) == ["skeleton", "connectivity", "connectivity, junctions off",
                           "connectivity, gap closing off", "connectivity, spurs off"]
    assert "| skeleton |" in result.stdout
    for method in ("skeleton", "connectivity"):
        out = tmp_path / method
        tested = run_command("test.py", "-r", str(checkpoint), "--split", "test", "--out",
                             str(out), "--set", f'graph.method="{method}"')
        assert tested.returncode == 0, tested.stderr
        metrics = json.loads((out / "metrics.json").read_text())
        for key in ("apls", "topo_precision", "topo_f1"):
            assert table[method][key] == pytest.approx(metrics[key], abs=1e-9, nan_ok=True), key
        assert table[method]["seconds"] > 0
