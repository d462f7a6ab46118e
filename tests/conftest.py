"""Shared fixtures: a tiny toy dataset and a tiny config for end-to-end runs of the commands."""
import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from tools.toy.generate import generate

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory) -> Path:
    """Toy tiles of 128 x 128 px: 2 train, 1 val, 1 test."""
    root = tmp_path_factory.mktemp("toy")
    generate(root, seed=3, counts={"train": 2, "val": 1, "test": 1}, size=128)
    return root


def tiny_config(data_dir: Path, save_dir: Path, **trainer) -> dict:
    """config.json shrunk to seconds on a CPU: a narrow network, 64 px crops and windows."""
    config = json.loads((REPO / "config.json").read_text())
    config["arch"]["args"].update(num_blocks=1, num_feats=16)
    config["data_loader"]["args"].update(data_dir=str(data_dir), batch_size=2, crop_size=64,
                                         crops_per_tile=2, num_workers=0)
    config["lr_scheduler"]["args"]["T_max"] = 2
    config["predictor"] = {"window": 64, "margin": 8, "batch_size": 4}
    config["trainer"].update({"epochs": 2, "save_dir": str(save_dir), "save_period": 1,
                              "image_period": 1, "log_step": 1, "deterministic": True, **trainer})
    return config


@pytest.fixture
def config_file(tmp_path, tiny_dataset) -> Path:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(tiny_config(tiny_dataset, tmp_path / "saved")))
    return path


def run_command(*args: str, cwd: Path = REPO, timeout: int = 300) -> subprocess.CompletedProcess:
    """Run `python <args>` as a user would, from the repo root, and capture its output."""
    environment = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *args], cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, env=environment)


def drawn(*roads, size=(200, 200)) -> np.ndarray:
    """(H, W) uint8 0/255 mask of roads given as ((x0, y0), (x1, y1), width)."""
    mask = np.zeros(size, dtype=np.uint8)
    for start, end, width in roads:
        cv2.line(mask, start, end, 255, width)
    return mask
