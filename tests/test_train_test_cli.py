"""train.py and test.py end to end on tiny data: files written, resume, metrics."""
import csv
import json
from pathlib import Path

import rasterio
import torch
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from tests.conftest import run_command, tiny_config


def run_folder(save_dir: Path, kind: str = "models") -> Path:
    (folder,) = sorted((save_dir / kind / "toy-spacenet").iterdir())[-1:]
    return folder


def test_training_writes_checkpoints_config_and_tensorboard(config_file, tmp_path):
    result = run_command("train.py", "-c", str(config_file))
    assert result.returncode == 0, result.stderr
    models = run_folder(tmp_path / "saved")
    assert {"checkpoint-epoch1.pth", "checkpoint-epoch2.pth", "model_best.pth", "config.json",
            "resolved.json"} <= {p.name for p in models.iterdir()}
    # Every value the run read, those the config leaves to the code's defaults included.
    resolved = json.loads((models / "resolved.json").read_text())
    assert resolved["trainer"]["epochs"] == 2 and resolved["trainer"]["early_stop"] == 10
    assert resolved["arch"] == {"type": "StackedHourglassRoadNet", "args": {
        "num_stacks": 2, "depth": 3, "num_blocks": 1, "num_feats": 16, "block": "ga"}}
    assert resolved["loss"]["args"]["conn_weight"] == 1.0
    assert resolved["data_loader"]["args"]["crop_size"] == 64
    assert resolved["data_loader"]["args"]["labels"] == {"disk_margin_m": 0.9,
                                                         "min_quarter_radius": 1.0}
    assert resolved["predictor"]["threshold"] == 0.5
    assert resolved["metrics"]["apls"]["mode"] == "ours" and resolved["metrics"]["rho"] == 3
    assert resolved["graph"]["connectivity"]["max_gap_m"] == 30.0
    state = torch.load(models / "checkpoint-epoch2.pth", weights_only=True)
    assert state["epoch"] == 2 and state["arch"] == "StackedHourglassRoadNet"
    assert state["config"]["trainer"]["epochs"] == 2
    logs = run_folder(tmp_path / "saved", "log")
    assert "epoch 2" in (logs / "info.log").read_text()
    events = EventAccumulator(str(logs)).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/loss", "train/seg/final", "train/conn/stack1", "train/lr", "val/loss",
            "val/road_iou", "val/conn_miou"} <= scalars
    assert len(events.Scalars("train/loss")) == 2
    (panel,) = events.Images("val/image_mask_probability_connectivity")[-1:]
    # image, true mask, road probability, true and predicted connectivity, side by side
    assert panel.width > 4 * panel.height
    assert "trainable parameters" in result.stderr


def test_resume_continues_epochs_and_schedule(tmp_path, tiny_dataset):
    config = tiny_config(tiny_dataset, tmp_path / "saved")
    config["trainer"]["epochs"] = 1
    config["lr_scheduler"]["args"]["T_max"] = 2
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert run_command("train.py", "-c", str(path)).returncode == 0
    first = run_folder(tmp_path / "saved") / "checkpoint-epoch1.pth"
    result = run_command("train.py", "-r", str(first), "--epochs", "2")
    assert result.returncode == 0, result.stderr
    assert "resumed from" in result.stderr
    second = run_folder(tmp_path / "saved") / "checkpoint-epoch2.pth"
    state = torch.load(second, weights_only=True)
    assert state["epoch"] == 2
    assert state["lr_scheduler"]["last_epoch"] == 2
    assert state["lr_scheduler"]["T_max"] == 2


def test_test_py_writes_every_output(config_file, tmp_path, tiny_dataset):
    assert run_command("train.py", "-c", str(config_file), "--epochs", "1").returncode == 0
    checkpoint = run_folder(tmp_path / "saved") / "model_best.pth"
    out = tmp_path / "out"
    result = run_command("test.py", "-r", str(checkpoint), "--out", str(out), "--tta")
    assert result.returncode == 0, result.stderr
    stem = "AOI_2_Vegas_img4"
    for relative in (f"masks/{stem}.tif", f"prob/{stem}.tif", f"conn/{stem}.tif",
                     f"overlay/{stem}.jpg", f"graphs/{stem}.geojson", "metrics.json",
                     "per_image.csv", "submission.csv"):
        assert (out / relative).is_file(), relative
    # The rasters of a georeferenced tile lie on its grid, so they overlay it in QGIS.
    with rasterio.open(tiny_dataset / "test" / "images" / f"{stem}.tif") as image:
        for kind in ("masks", "prob", "conn"):
            with rasterio.open(out / kind / f"{stem}.tif") as written:
                assert written.crs == image.crs and written.transform == image.transform
                assert written.shape == image.shape and written.dtypes[0] == "uint8"
        with rasterio.open(out / "conn" / f"{stem}.tif") as classes:
            assert classes.colormap(1)[3][:3] == (60, 180, 75) and classes.nodata == 255
            assert classes.overviews(1) or max(classes.shape) <= 512
    metrics = json.loads((out / "metrics.json").read_text())
    for key in ("road_iou", "precision", "recall", "f1", "mean_image_iou", "relaxed_precision",
                "relaxed_recall", "relaxed_f1", "conn_miou", "apls"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["n_tiles"] == 1 and metrics["tta"] is True and metrics["rho"] == 3
    assert metrics["apls_ground_truth"] == "geojson"
    rows = list(csv.DictReader((out / "per_image.csv").open()))
    assert rows[0]["stem"] == stem and "apls" in rows[0]
    submission = (out / "submission.csv").read_text().splitlines()
    assert submission[0] == "ImageId,WKT_Pix"
    assert all(line.startswith(f"{stem},") for line in submission[1:])
    assert "road_iou" in result.stdout


def test_test_py_predicts_a_folder_without_ground_truth(config_file, tmp_path, tiny_dataset):
    assert run_command("train.py", "-c", str(config_file), "--epochs", "1").returncode == 0
    checkpoint = run_folder(tmp_path / "saved") / "checkpoint-epoch1.pth"
    out = tmp_path / "pred"
    images = tiny_dataset / "test" / "images"
    result = run_command("test.py", "-r", str(checkpoint), "--images", str(images), "--out", str(out))
    assert result.returncode == 0, result.stderr
    stem = "AOI_2_Vegas_img4"
    assert (out / "masks" / f"{stem}.tif").is_file() and (out / "conn" / f"{stem}.tif").is_file()
    assert not (out / "overlay" / f"{stem}.jpg").exists()
    graph = json.loads((out / "graphs" / f"{stem}.geojson").read_text())
    assert graph["type"] == "FeatureCollection"


def test_validation_and_test_py_report_identical_metrics(tmp_path, tiny_dataset):
    """One evaluation path: the metrics validation logged for a checkpoint are exactly those
    test.py writes for the same checkpoint and split (graphs and APLS included)."""
    config = tiny_config(tiny_dataset, tmp_path / "saved", epochs=1, val_graphs=True)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    assert run_command("train.py", "-c", str(path)).returncode == 0
    checkpoint = run_folder(tmp_path / "saved") / "checkpoint-epoch1.pth"
    logged = torch.load(checkpoint, weights_only=True)["log"]
    out = tmp_path / "out"
    result = run_command("test.py", "-r", str(checkpoint), "--split", "val", "--out", str(out))
    assert result.returncode == 0, result.stderr
    written = json.loads((out / "metrics.json").read_text())
    validation = {key.removeprefix("val/"): value for key, value in logged.items()
                  if key.startswith("val/")}
    assert {"road_iou", "relaxed_f1", "conn_miou", "apls", "loss"} <= set(validation)
    assert validation == {key: written[key] for key in validation}


def test_test_py_builds_graphs_with_the_connectivity_method(config_file, tmp_path):
    assert run_command("train.py", "-c", str(config_file), "--epochs", "1").returncode == 0
    checkpoint = run_folder(tmp_path / "saved") / "checkpoint-epoch1.pth"
    out = tmp_path / "out"
    result = run_command("test.py", "-r", str(checkpoint), "--out", str(out),
                         "--set", 'graph.method="connectivity"')
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["graph"]["method"] == "connectivity" and 0.0 <= metrics["apls"] <= 1.0
    resolved = json.loads((out / "resolved.json").read_text())
    assert resolved["graph"]["method"] == "connectivity"
    assert resolved["predictor"]["window"] == 64 and resolved["metrics"]["topo"]["interval"] == 30.0
    assert json.loads((out / "graphs" / "AOI_2_Vegas_img4.geojson").read_text())["features"] is not None
