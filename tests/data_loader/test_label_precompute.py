import json

import numpy as np
import pytest

import data_loader.label_cache
from data_loader.datasets import RoadDataset
from roads.labels import connectivity_labels
from tools.labels import main
from tools.toy.generate import generate
from utils.errors import ConfigError, DataError


@pytest.fixture(scope="module")
def toy(tmp_path_factory):
    root = tmp_path_factory.mktemp("toy")
    generate(root, seed=0, counts={"train": 3, "val": 1, "test": 1}, size=160)
    return root


def no_derivation(*args, **kwargs):
    raise AssertionError("a label was derived although it was cached")


@pytest.mark.parametrize("workers", [1, pytest.param(2, marks=pytest.mark.slow)])
def test_precompute_fills_the_cache_the_loader_reads(toy, tmp_path, monkeypatch, capsys, workers):
    cache = tmp_path / "cache"
    main(["--precompute", str(toy), "--workers", str(workers), "--cache-dir", str(cache)])
    assert len(list(cache.glob("*.npz"))) == 5
    assert "5 tiles: 5 derived, 0 already cached" in capsys.readouterr().out

    monkeypatch.setattr(data_loader.label_cache, "node_disks", no_derivation)
    for split in ("train", "val", "test"):
        dataset = RoadDataset(toy, split, training=False, label_cache_dir=cache)
        for index in range(len(dataset)):
            item = dataset[index]
            params = dataset.label_cache(dataset.tiles[index]).params
            expected, _ = connectivity_labels(item["mask"].numpy().astype(bool), params)
            np.testing.assert_array_equal(item["conn"].numpy(), expected)
    main(["--precompute", str(toy), "--cache-dir", str(cache)])
    assert "5 tiles: 0 derived, 5 already cached" in capsys.readouterr().out


def test_precompute_uses_the_config_labels_and_cache_folder(toy, tmp_path, monkeypatch, capsys):
    cache = tmp_path / "from-config"
    labels = {"disk_margin_m": 1.5}
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"data_loader": {"args": {
        "labels": labels, "label_cache_dir": str(cache)}}}))
    main(["--precompute", str(toy), "--split", "val", "-c", str(config)])
    assert "1 tiles: 1 derived" in capsys.readouterr().out
    monkeypatch.setattr(data_loader.label_cache, "node_disks", no_derivation)
    dataset = RoadDataset(toy, "val", training=False, labels=labels, label_cache_dir=cache)
    params = dataset.label_cache(dataset.tiles[0]).params
    assert 5.0 <= params.disk_margin <= 6.2  # 1.5 m at the toy's 0.24 x 0.30 m pixels
    expected, _ = connectivity_labels(dataset[0]["mask"].numpy().astype(bool), params)
    np.testing.assert_array_equal(dataset[0]["conn"].numpy(), expected)


def test_precompute_errors_name_the_culprit(toy, tmp_path):
    with pytest.raises(ConfigError, match="^--workers"):
        main(["--precompute", str(toy), "--workers", "0"])
    with pytest.raises(DataError, match="nowhere"):
        main(["--precompute", str(tmp_path / "nowhere")])
    with pytest.raises(DataError, match="image folder not found"):
        main(["--precompute", str(toy), "--split", "missing"])
    with pytest.raises(SystemExit):
        main([])
