import json

import pytest
import torch

from benchmarks.benchmark import Settings, main, precision_name, report, run_benchmark
from evaluation.predictor import fast_dtype_for
from tests.conftest import run_command
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
    assert {"cpu_model", "cpu_cores", "memory_gib", "gpu", "torch"} <= result["machine"].keys()
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
