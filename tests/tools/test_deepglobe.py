"""DeepGlobe: preparation of the `<id>_sat.jpg` / `<id>_mask.png` folder into splits, its errors,
and one epoch of `configs/deepglobe.json` through train.py."""
import hashlib
import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from data_loader.datasets import RoadDataset
from tests.conftest import run_command
from tools.deepglobe import main as prepare_main
from utils.errors import DataError

# DeepGlobe-style ids; with val 0.2 and test 0.2 the hash rule puts 2 in train, 1 in val, 3 in test.
IDS = ("100034", "100081", "100129", "100703", "100712", "100773")
SPLIT_ARGS = ["--val-fraction", "0.2", "--test-fraction", "0.2"]
SIZE = 128


def write_deepglobe(folder: Path, ids=IDS, size: int = SIZE) -> dict[str, np.ndarray]:
    """DeepGlobe's train/ layout with one drawn road per tile; masks are RGB PNGs whose road
    edges are blurred, as DeepGlobe's are noisy. Returns each id's expected 0/255 mask."""
    folder.mkdir(parents=True)
    (folder / "metadata.csv").write_text("image_id,split\n")  # other files are ignored
    expected = {}
    for number, tile_id in enumerate(ids):
        rng = np.random.default_rng(number)
        mask = np.zeros((size, size, 3), np.uint8)
        row = 20 + 15 * number
        cv2.line(mask, (0, row), (size - 1, size - 1 - row), (255, 255, 255), 9)
        mask = cv2.GaussianBlur(mask, (5, 5), 1.5)
        image = rng.integers(60, 120, (size, size, 3), dtype=np.uint8)
        image[mask[..., 0] > 0] = 200
        cv2.imwrite(str(folder / f"{tile_id}_sat.jpg"), image)
        cv2.imwrite(str(folder / f"{tile_id}_mask.png"), mask)
        expected[tile_id] = np.where(mask[..., 0] >= 128, 255, 0).astype(np.uint8)
    return expected


def hash_split(tile_id: str, val: float, test: float) -> str:
    """The documented rule, restated: SHA-256 of the id, its first 8 bytes as a fraction."""
    position = int.from_bytes(hashlib.sha256(tile_id.encode()).digest()[:8], "big") / 2**64
    return "val" if position < val else "test" if position < val + test else "train"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> tuple[Path, Path, dict[str, np.ndarray]]:
    root = tmp_path_factory.mktemp("deepglobe")
    expected = write_deepglobe(root / "raw" / "train")
    # The folder above train/ is accepted too.
    prepare_main([str(root / "raw"), str(root / "data"), *SPLIT_ARGS])
    return root / "raw" / "train", root / "data", expected


def test_preparation_splits_by_the_hash_of_the_id_and_binarises_the_masks(prepared):
    raw, data, expected = prepared
    splits = {tile_id: hash_split(tile_id, 0.2, 0.2) for tile_id in IDS}
    assert sorted(splits.values()) == ["test"] * 3 + ["train"] * 2 + ["val"]
    for tile_id, split in splits.items():
        image = data / split / "images" / f"{tile_id}.jpg"
        assert image.is_symlink() and image.resolve() == (raw / f"{tile_id}_sat.jpg").resolve()
        mask = cv2.imread(str(data / split / "masks" / f"{tile_id}.png"), cv2.IMREAD_UNCHANGED)
        assert mask.ndim == 2 and np.array_equal(mask, expected[tile_id])
        others = [other for other in ("train", "val", "test") if other != split]
        assert not any((data / other / "masks" / f"{tile_id}.png").exists() for other in others)
    # The loader reads the prepared split at DeepGlobe's ground size.
    (val_id,) = [tile_id for tile_id, split in splits.items() if split == "val"]
    item = RoadDataset(data, "val", training=False, metres_per_pixel=0.5)[0]
    assert item["stem"] == val_id and item["pixel_size_m"] == (0.5, 0.5)
    assert np.array_equal(item["mask"].numpy(), expected[val_id] // 255)
    assert item["conn"].shape == (SIZE, SIZE) and (item["conn"] == 2).any()


def test_rerun_is_idempotent_and_other_fractions_are_refused(tmp_path):
    write_deepglobe(tmp_path / "train", IDS[:3])
    prepare_main([str(tmp_path / "train"), str(tmp_path / "data"), *SPLIT_ARGS])
    before = sorted(p.relative_to(tmp_path) for p in (tmp_path / "data").rglob("*.*"))
    prepare_main([str(tmp_path / "train"), str(tmp_path / "data"), *SPLIT_ARGS])
    assert sorted(p.relative_to(tmp_path) for p in (tmp_path / "data").rglob("*.*")) == before
    # 100081 (hash 0.23) moves from test to val: its old file would put it in two splits.
    with pytest.raises(DataError, match=r"test/images/100081\.jpg: not a tile of this split"):
        prepare_main([str(tmp_path / "train"), str(tmp_path / "data"), "--val-fraction", "0.3"])


@pytest.mark.parametrize("damage, culprit, message", [
    ("missing", "100081_sat.jpg", "image without its mask 100081_mask.png"),
    ("small", "100081_mask.png", "mask is 64x64 .* but its image is 128x128"),
    ("orphan", "999_mask.png", "mask without its image 999_sat.jpg"),
])
def test_bad_pairs_stop_before_writing_in_one_line_naming_the_file(tmp_path, damage, culprit,
                                                                    message):
    raw = tmp_path / "train"
    write_deepglobe(raw, IDS[:2], size=SIZE)
    if damage == "missing":
        os.remove(raw / "100081_mask.png")
    elif damage == "small":
        cv2.imwrite(str(raw / "100081_mask.png"), np.zeros((64, 64), np.uint8))
    else:
        cv2.imwrite(str(raw / "999_mask.png"), np.zeros((SIZE, SIZE), np.uint8))
    with pytest.raises(DataError, match=f"{culprit}: {message}") as error:
        prepare_main([str(raw), str(tmp_path / "data")])
    assert "\n" not in str(error.value) and str(raw) in str(error.value)
    assert not (tmp_path / "data").exists()


def test_one_epoch_of_the_deepglobe_config_writes_a_checkpoint(prepared, tmp_path):
    _, data, _ = prepared
    overrides = {
        "data_loader.args.data_dir": str(data), "data_loader.args.num_workers": 0,
        "data_loader.args.batch_size": 2, "data_loader.args.crop_size": 64,
        "data_loader.args.crops_per_tile": 1, "arch.args.num_blocks": 1,
        "arch.args.num_feats": 16, "predictor.window": 64, "predictor.margin": 8,
        "predictor.batch_size": 4, "lr_scheduler.args.T_max": 1, "trainer.epochs": 1,
        "trainer.save_dir": str(tmp_path / "saved"), "trainer.save_period": 1,
        "trainer.val_period": 1, "trainer.tensorboard": False,
    }
    sets = [argument for key, value in overrides.items()
            for argument in ("--set", f"{key}={json.dumps(value)}")]
    result = run_command("train.py", "-c", "configs/deepglobe.json", *sets)
    assert result.returncode == 0, result.stderr
    (run,) = (tmp_path / "saved" / "models" / "deepglobe").iterdir()
    state = torch.load(run / "checkpoint-epoch1.pth", weights_only=True)
    assert state["epoch"] == 1 and "val/road_iou" in state["log"]
    assert state["config"]["data_loader"]["args"]["metres_per_pixel"] == 0.5
