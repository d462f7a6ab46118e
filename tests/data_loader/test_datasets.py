"""Datasets and loaders on a tiny SpaceNet-layout folder written by the tests."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import rasterio
import torch
import torch.distributed as dist
from torch.utils.data import DistributedSampler

from base.base_data_loader import BaseDataLoader, ShardSampler
from data_loader.data_loaders import RoadDataLoader, SpaceNetDataLoader
from data_loader.datasets import ImageFolderDataset, RoadDataset
from roads.labels import connectivity_labels, quarter_mask
from utils.errors import ConfigError, DataError
from utils.settings import arguments, build

MEAN, STD = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)
CROP = 64


def cross_mask(height: int, width: int) -> np.ndarray:
    """(H, W) bool: a road across the tile at rows 60..67 and one from the top border down to a
    dead end at row 110 in columns 60..67, meeting in a 4-way junction at about (64, 64)."""
    mask = np.zeros((height, width), bool)
    mask[60:68, :] = True
    mask[0:111, 60:68] = True
    return mask


def write_tile(split_dir: Path, stem: str, mask: np.ndarray, suffix: str) -> None:
    """Grey image 255 on roads and 0 elsewhere, so that the image shows its own mask."""
    for folder in ("images", "masks"):
        (split_dir / folder).mkdir(parents=True, exist_ok=True)
    image = np.dstack([mask.astype(np.uint8) * 255] * 3)
    if suffix == ".tif":
        with rasterio.open(split_dir / "images" / f"{stem}.tif", "w", driver="GTiff",
                           height=image.shape[0], width=image.shape[1], count=3, dtype="uint8",
                           crs="EPSG:4326", transform=rasterio.Affine(1e-5, 0, -115.3, 0, -1e-5,
                                                                      36.2)) as dataset:
            dataset.write(image.transpose(2, 0, 1))
    else:
        cv2.imwrite(str(split_dir / "images" / f"{stem}{suffix}"), image)
    cv2.imwrite(str(split_dir / "masks" / f"{stem}.png"), mask.astype(np.uint8) * 255)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("toy")
    write_tile(root / "train", "t0", cross_mask(128, 128), ".tif")
    write_tile(root / "train", "t1", cross_mask(128, 128)[:, ::-1], ".tif")
    write_tile(root / "val", "v0", cross_mask(130, 122), ".png")
    (root / "val" / "geojson").mkdir()
    (root / "val" / "geojson" / "v0.geojson").write_text('{"type": "FeatureCollection", '
                                                         '"features": []}')
    return root


def loader_args(data_dir: Path, **overrides) -> dict:
    args = dict(data_dir=str(data_dir), split="train", batch_size=4, crop_size=CROP,
                crops_per_tile=2, shuffle=True, num_workers=0, augment_p=0.5, mean=MEAN, std=STD,
                labels={}, seed=0, training=True)
    return args | overrides


def batches(loader) -> list[dict]:
    return list(loader)


def test_training_batch_keys_shapes_dtypes(data_dir):
    loader = SpaceNetDataLoader(**loader_args(data_dir))
    assert len(loader.dataset) == 4
    (batch,) = batches(loader)
    assert set(batch) == {"image", "mask", "mask_quarter", "conn", "conn_quarter", "stem",
                          "geojson_path", "image_path"}
    assert batch["image"].shape == (4, 3, CROP, CROP) and batch["image"].dtype == torch.float32
    for key, size in (("mask", CROP), ("conn", CROP), ("mask_quarter", CROP // 4),
                      ("conn_quarter", CROP // 4)):
        assert batch[key].shape == (4, size, size) and batch[key].dtype == torch.int64
    assert set(batch["mask"].unique().tolist()) <= {0, 1}
    assert set(batch["conn"].unique().tolist()) <= {0, 1, 2, 3, 4, 255}
    assert sorted(batch["stem"]) == ["t0", "t0", "t1", "t1"]
    assert batch["geojson_path"] == [""] * 4


def test_augmented_crops_keep_image_mask_and_labels_aligned(data_dir):
    loader = RoadDataLoader(**loader_args(data_dir, augment_p=1.0, crops_per_tile=6))
    for batch in loader:
        grey = (batch["image"] * STD[0] + MEAN[0]).mean(dim=1) * 255
        mask, conn = batch["mask"].bool(), batch["conn"]
        # HSV jitter moves a grey 255 or 0 by at most 15 + 5: the image still shows the mask.
        assert torch.equal(grey > 127, mask)
        assert torch.all(conn[mask] > 0) and torch.all(mask[conn == 2])
        for m, m4 in zip(batch["mask"].numpy(), batch["mask_quarter"].numpy(), strict=False):
            np.testing.assert_array_equal(m4, quarter_mask(m))


def test_crop_labels_are_crops_of_whole_tile_labels(data_dir):
    dataset = RoadDataset(data_dir, "train", crop_size=CROP, crops_per_tile=8, augment_p=0.0,
                          mean=MEAN, std=STD)
    # The tile's labels in its own pixels: its georeference gives about 1 m per pixel.
    params = dataset.label_cache(dataset.tiles[0]).params
    assert params.spur_length < 15 and dataset.pixel_size_m(dataset.tiles[0])[1] > 1.0
    full, quarter = connectivity_labels(cross_mask(128, 128), params)
    for index in range(8):
        item = dataset[index]
        conn, conn4 = item["conn"].numpy(), item["conn_quarter"].numpy()
        starts = range(0, 128 - CROP + 1, 4)
        offsets = [(r, c) for r in starts for c in starts
                   if np.array_equal(full[r:r + CROP, c:c + CROP], conn)
                   and np.array_equal(quarter[r // 4:(r + CROP) // 4, c // 4:(c + CROP) // 4],
                                      conn4)]
        assert offsets, f"crop {index} is no 4-aligned crop of the whole-tile labels"


def test_whole_tile_split_loader(data_dir):
    train = SpaceNetDataLoader(**loader_args(data_dir))
    val = train.split_loader("val")
    assert val.batch_size == 1 and not val.dataset.training
    (item,) = batches(val)  # whole tiles differ in size: items come without a batch dimension
    assert item["image"].shape == (3, 130, 122)
    assert item["mask_quarter"].shape == item["conn_quarter"].shape == (33, 31)
    full, quarter = connectivity_labels(cross_mask(130, 122))
    np.testing.assert_array_equal(item["conn"].numpy(), full)
    np.testing.assert_array_equal(item["conn_quarter"].numpy(), quarter)
    np.testing.assert_array_equal(item["mask_quarter"].numpy(),
                                  quarter_mask(cross_mask(130, 122)))
    assert item["conn"][64, 64] == 4 and item["conn"][105, 64] == 1
    assert item["conn"][0, 64] == 2  # a road cut by the border is no dead end
    torch.testing.assert_close(item["image"][:, 64, 64], torch.full((3,), 2.0))
    assert item["stem"] == "v0" and item["geojson_path"].endswith("val/geojson/v0.geojson")
    assert item["raw_image"].shape == (130, 122, 3) and item["raw_image"].dtype == torch.uint8
    assert list((data_dir / ".cache" / "connectivity").glob("*.npz"))


def test_reproducible_for_a_seed_and_new_crops_each_epoch(data_dir):
    def epoch_batches(workers: int, seed: int = 0) -> list[list[dict]]:
        loader = RoadDataLoader(**loader_args(data_dir, batch_size=2, num_workers=workers,
                                              seed=seed))
        runs = []
        for epoch in (0, 1, 0):
            loader.set_epoch(epoch)
            runs.append(batches(loader))
        return runs

    def same(a: list[dict], b: list[dict]) -> bool:
        return all(x["stem"] == y["stem"] and torch.equal(x["image"], y["image"])
                   and torch.equal(x["conn"], y["conn"]) for x, y in zip(a, b, strict=True))

    serial = epoch_batches(0)
    assert same(serial[0], serial[2]) and not same(serial[0], serial[1])
    assert not same(serial[0], epoch_batches(0, seed=1)[0])
    parallel = epoch_batches(2)  # persistent workers must see set_epoch too
    assert all(same(s, p) for s, p in zip(serial, parallel, strict=False))


def test_sampler_order_depends_on_seed_and_epoch_only():
    dataset = list(range(10))
    loader = BaseDataLoader(dataset, batch_size=10, shuffle=True, num_workers=0, seed=3)
    orders = {}
    for epoch in (0, 1, 0, 1):
        loader.set_epoch(epoch)
        order = next(iter(loader)).tolist()
        assert sorted(order) == dataset
        assert orders.setdefault(epoch, order) == order
    assert orders[0] != orders[1]
    sequential = BaseDataLoader(dataset, batch_size=10, shuffle=False, num_workers=0)
    assert next(iter(sequential)).tolist() == dataset


def test_distributed_sampler_under_a_process_group(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'group'}", rank=0,
                            world_size=1)
    try:
        loader = BaseDataLoader(list(range(6)), batch_size=6, shuffle=True, num_workers=0, seed=0)
        assert isinstance(loader.sampler.sampler, DistributedSampler)
        loader.set_epoch(4)
        assert loader.sampler.sampler.epoch == 4
        assert sorted(next(iter(loader)).tolist()) == list(range(6))
        evaluation = BaseDataLoader(list(range(3)), batch_size=1, shuffle=False, num_workers=0,
                                    training=False)
        assert isinstance(evaluation.sampler.sampler, ShardSampler) and len(evaluation) == 3
    finally:
        dist.destroy_process_group()


def test_evaluation_shards_hold_every_item_once():
    shards = [list(ShardSampler(list(range(7)), rank, 3)) for rank in range(3)]
    assert shards == [[0, 3, 6], [1, 4], [2, 5]]


def configured(args: dict) -> SpaceNetDataLoader:
    """The loader as `ConfigParser.init_obj` builds it from the config's `data_loader.args`."""
    key = "data_loader.args"
    return build(SpaceNetDataLoader, arguments(SpaceNetDataLoader, args, key), key)


def test_config_errors_name_the_key(data_dir, tmp_path):
    # The loader names its parameter ("crop_size: ..."); the config layer adds the key.
    with pytest.raises(ValueError, match=r"^crop_size: 48 must be"):
        SpaceNetDataLoader(**loader_args(data_dir, crop_size=48))
    with pytest.raises(ConfigError, match=r"data_loader\.args\.data_dir': folder '.*nowhere'"):
        configured(loader_args(tmp_path / "nowhere"))
    with pytest.raises(ConfigError, match=r"data_loader\.args\.labels\.disk_margn_m.*disk_margin"):
        configured(loader_args(data_dir, labels={"disk_margn_m": 3}))
    with pytest.raises(ConfigError, match=r"data_loader\.args\.crop_size': 160 is larger"):
        configured(loader_args(data_dir, crop_size=160))
    with pytest.raises(ConfigError, match=r"data_loader\.args\.crop_size': 48 must be"):
        configured(loader_args(data_dir, crop_size=48))
    with pytest.raises(ConfigError, match=r"data_loader\.args\.std"):
        configured(loader_args(data_dir, std=[0.1, 0.0, 0.1]))
    with pytest.raises(ConfigError, match=r"data_loader\.args\.augment_p': 1.5 must lie"):
        configured(loader_args(data_dir, augment_p=1.5))
    with pytest.raises(ConfigError, match=r"data_loader\.args\.bands': expected 3"):
        configured(loader_args(data_dir, bands=[0, 1, 2]))
    with pytest.raises(ConfigError, match=r"data_loader\.args\.nodata_color' expects an array"):
        configured(loader_args(data_dir, nodata_color=255))
    with pytest.raises(DataError, match=r"t0\.tif: bands \[4, 2, 1\] selects band 4"):
        configured(loader_args(data_dir, bands=[4, 2, 1]))


def test_bad_tile_fails_at_construction(tmp_path):
    write_tile(tmp_path / "train", "good", cross_mask(128, 128), ".png")
    write_tile(tmp_path / "train", "bad", cross_mask(128, 128), ".png")
    cv2.imwrite(str(tmp_path / "train" / "masks" / "bad.png"), np.zeros((128, 64), np.uint8))
    with pytest.raises(DataError, match=r"masks/bad\.png: mask is 128x64"):
        RoadDataset(tmp_path, "train", crop_size=CROP)


def test_image_folder_dataset(data_dir):
    dataset = ImageFolderDataset(data_dir / "train" / "images", mean=MEAN, std=STD)
    item = dataset[1]
    assert item["stem"] == "t1" and item["image_path"].endswith("t1.tif")
    scene = item["image"]  # read window by window, as the predictor does
    assert scene.shape == (128, 128) and scene.valid is None
    window = scene.read(32, 48, 64, 40)
    assert window.shape == (3, 64, 40) and window.dtype == torch.float32
    whole = scene.read(0, 0, 128, 128)
    assert whole[0, 64, 64] == 2.0  # the raw 255 of the image, normalized
    torch.testing.assert_close(whole[:, 32:96, 48:88], window)
    assert scene.valid.shape == (128, 128) and scene.valid.all()
    scene.close()
    with pytest.raises(DataError, match="no images"):
        ImageFolderDataset(data_dir / "val" / "geojson")


def nodata_tile(root: Path) -> Path:
    """A 128 px PNG tile whose right 40 columns are white no-data (Massachusetts Roads style)
    with the mask's roads drawn on through them, and a validity file masking the top 8 rows."""
    write_tile(root / "train", "m0", cross_mask(128, 128), ".png")
    image = cv2.imread(str(root / "train/images/m0.png"))
    image[image == 255] = 200  # road grey: only the no-data is white
    image[:, 88:] = 255
    cv2.imwrite(str(root / "train/images/m0.png"), image)
    valid = np.full((128, 128), 255, np.uint8)
    valid[:8] = 0
    (root / "train" / "valid").mkdir()
    cv2.imwrite(str(root / "train/valid/m0.png"), valid)
    return root


def test_nodata_pixels_are_ignored_in_every_target(tmp_path):
    root = nodata_tile(tmp_path)
    dataset = RoadDataset(root, "train", training=False, nodata_color=[255, 255, 255],
                          mean=MEAN, std=STD)
    item = dataset[0]
    invalid = np.zeros((128, 128), bool)
    invalid[:, 88:] = invalid[:8] = True
    for key in ("mask", "conn"):
        np.testing.assert_array_equal(item[key].numpy() == 255, invalid, err_msg=key)
    mask = item["mask"].numpy()
    np.testing.assert_array_equal(mask[~invalid], cross_mask(128, 128)[~invalid])
    np.testing.assert_array_equal(item["mask_quarter"].numpy() == 255,
                                  quarter_mask(invalid))
    np.testing.assert_array_equal(item["conn_quarter"].numpy() == 255, quarter_mask(invalid))
    # The road to the top border ends in the invalid rows and the cross road runs into the
    # no-data: a 4-way junction remains, and no dead end is invented.
    conn = item["conn"].numpy()
    assert (conn[55:73, 55:73] == 4).any() and (conn[100:120, 55:73] == 1).any()
    assert not (conn[:, 72:88] == 1).any()  # the cut at the no-data edge (x = 88)
    # Training crops carry the 255s too.
    crops = RoadDataset(root, "train", crop_size=CROP, nodata_color=[255, 255, 255], seed=1)
    assert set(np.unique(crops[0]["mask"].numpy())) <= {0, 1, 255}
    # Without the no-data color only the validity file masks pixels.
    plain = RoadDataset(root, "train", training=False, mean=MEAN, std=STD)[0]
    top_rows = np.zeros((128, 128), bool)
    top_rows[:8] = True
    np.testing.assert_array_equal(plain["mask"].numpy() == 255, top_rows)


def test_image_folder_dataset_reads_raw_uint16_with_its_validity(tmp_path):
    raw = np.random.default_rng(0).integers(1, 2048, (3, 64, 64), dtype=np.uint16)
    raw[:, :, :10] = 0
    folder = tmp_path / "raw"
    folder.mkdir()
    with rasterio.open(folder / "scene.tif", "w", driver="GTiff", height=64, width=64, count=3,
                       dtype="uint16", crs="EPSG:32611", compress="lzw",
                       transform=rasterio.Affine(0.3, 0, 652_000, 0, -0.3, 4_000_000)) as out:
        out.write(raw)
    scene = ImageFolderDataset(folder, mean=MEAN, std=STD, nodata_color=[0, 0, 0])[0]["image"]
    stretched = scene.read(0, 0, 32, 64) * STD[0] + MEAN[0]  # back to [0, 1]
    bottom = scene.read(32, 0, 32, 64)
    assert stretched.dtype == bottom.dtype == torch.float32
    assert scene.valid.dtype == bool and scene.valid.sum() == 64 * 54
    assert stretched[:, :, 10:].mean() > 60 / 255 and (stretched[:, :, :10] == 0).all()
    scene.close()
