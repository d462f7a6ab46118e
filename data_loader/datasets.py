"""Datasets of road tiles: training crops or whole tiles with segmentation and connectivity targets.

`RoadDataset` needs image and mask folders only (Massachusetts, DeepGlobe, prepared SpaceNet) and
hands over each tile's GeoJSON and GeoTIFF paths, where it has them, for the APLS ground truth.
`ImageFolderDataset` serves images without ground truth for prediction.
"""
import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from data_loader.label_cache import LabelCache
from roads.labels import LabelParams, quarter_mask
from data_loader.tiles import IMAGE_SUFFIXES, Tile, check_tile, list_tiles, read_image, read_mask
from data_loader.transforms import (
    SPACENET_MEAN,
    SPACENET_STD,
    Augmentation,
    LabelledImage,
    normalize,
)
from roads.extraction import SKELETON_KEYS
from roads.geo import read_geotransform
from utils.errors import ConfigError, DataError

logger = logging.getLogger("data")

LABEL_CACHE_DIR = Path(".cache") / "connectivity"


_warned_keys: set[str] = set()


def label_params(labels: dict | None, graph: dict | None = None) -> LabelParams:
    """LabelParams from the config's `data_loader.args.labels` object and the skeleton parameters
    of its `graph` section, which the labels share with the predicted graphs (defaults where
    absent). A skeleton parameter still given in `labels` (the layout of earlier versions) is
    used for the labels, with a one-line deprecation warning."""
    labels, graph = dict(labels or {}), graph or {}
    for key in SKELETON_KEYS:
        if key in labels and key not in _warned_keys:
            _warned_keys.add(key)
            logger.warning("config key 'data_loader.args.labels.%s' is deprecated: labels read "
                           "graph.%s, shared with the predicted graphs (this config's labels "
                           "still use %s)", key, key, labels[key])
    shared = {key: graph[key] for key in SKELETON_KEYS if key in graph}
    try:
        return LabelParams(**{**shared, **labels})
    except TypeError as error:
        raise ConfigError(f"data_loader.args.labels: {error}") from None


class RoadDataset(Dataset):
    """Tiles of `<data_dir>/<split>` with masks and connectivity labels.

    Training (`training=True`): item i is a random `crop_size` crop of tile i // crops_per_tile,
    augmented with probability `augment_p` per transform; its randomness comes from a generator
    seeded by (seed, epoch, i), so a sample is the same whatever worker draws it, and `set_epoch`
    gives each epoch new crops. Evaluation: item i is tile i whole, not augmented.

    Each item is a dict:
        image         (3, h, w) float32, normalised with mean/std
        raw_image     (h, w, 3) uint8 RGB, evaluation items only (for overlays)
        pixel_size_m  (x, y) metres per pixel or None, evaluation items only
        mask          (h, w) int64, 1 = road
        mask_quarter  (ceil(h/4), ceil(w/4)) int64, 4x4 area average >= 0.5
        conn          (h, w) int64, connectivity classes 0..4 or 255 (ignore)
        conn_quarter  (ceil(h/4), ceil(w/4)) int64
        stem          str, the tile's file stem
        image_path    str, the tile's image (a GeoTIFF's georeference places GeoJSON labels)
        geojson_path  str, the tile's road labels, "" when it has none

    Connectivity labels are derived from the whole tile's mask (a crop border would invent dead
    ends) and cached on disk under `label_cache_dir`, by default `<data_dir>/.cache/connectivity`
    (another folder serves read-only datasets).
    """

    def __init__(self, data_dir: str | Path, split: str = "train", training: bool = True,
                 crop_size: int = 256, crops_per_tile: int = 1, augment_p: float = 0.5,
                 mean: tuple[float, ...] = SPACENET_MEAN, std: tuple[float, ...] = SPACENET_STD,
                 labels: dict | None = None, seed: int = 0,
                 label_cache_dir: str | Path | None = None, graph: dict | None = None,
                 metres_per_pixel: float | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.split = split
        self.training = training
        self.crops_per_tile = crops_per_tile if training else 1
        if self.crops_per_tile < 1:
            raise ConfigError(f"data_loader.args.crops_per_tile: {crops_per_tile} must be >= 1")
        self.mean, self.std = _channel_stats(mean, "mean"), _channel_stats(std, "std")
        self.seed = seed
        if metres_per_pixel is not None and not metres_per_pixel > 0:
            raise ConfigError(f"data_loader.args.metres_per_pixel: must be > 0, got {metres_per_pixel}")
        self.metres_per_pixel = metres_per_pixel
        self.augmentation = Augmentation(crop_size, augment_p) if training else None
        self.tiles = list_tiles(self.data_dir / split, require_masks=True)
        for tile in self.tiles:
            height, width = check_tile(tile)
            if training and min(height, width) < crop_size:
                raise ConfigError(f"data_loader.args.crop_size: {crop_size} is larger than "
                                  f"{tile.image_path} ({height}x{width})")
        cache_dir = self.data_dir / LABEL_CACHE_DIR if label_cache_dir is None else label_cache_dir
        self.label_cache = LabelCache(label_params(labels, graph), Path(cache_dir))
        # In shared memory, so that `set_epoch` in the main process reaches persistent workers.
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()

    def __len__(self) -> int:
        return len(self.tiles) * self.crops_per_tile

    def set_epoch(self, epoch: int) -> None:
        """Select the augmentation randomness of an epoch (training mode)."""
        self._epoch.fill_(epoch)

    def tile_of(self, index: int) -> Tile:
        return self.tiles[index // self.crops_per_tile]

    def labelled_tile(self, tile: Tile) -> LabelledImage:
        """The whole tile with its targets at full and 1/4 resolution."""
        image = read_image(tile.image_path)
        mask = read_mask(tile.mask_path, image.shape[:2])
        conn, conn_quarter = self.label_cache.labels(tile.mask_path, mask)
        return LabelledImage(image, mask, quarter_mask(mask), conn, conn_quarter)

    def __getitem__(self, index: int) -> dict:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        tile = self.tile_of(index)
        sample = self.labelled_tile(tile)
        if self.augmentation is not None:
            rng = np.random.default_rng([self.seed, int(self._epoch), index])
            sample = self.augmentation(sample, rng)
        item = {
            "image": torch.from_numpy(normalize(sample.image, self.mean, self.std)),
            "mask": torch.from_numpy(sample.mask.astype(np.int64)),
            "mask_quarter": torch.from_numpy(sample.mask_quarter.astype(np.int64)),
            "conn": torch.from_numpy(sample.conn.astype(np.int64)),
            "conn_quarter": torch.from_numpy(sample.conn_quarter.astype(np.int64)),
            "stem": tile.stem,
            "image_path": str(tile.image_path),
            "geojson_path": str(tile.geojson_path or ""),
        }
        if not self.training:
            item["raw_image"] = torch.from_numpy(sample.image)
            item["pixel_size_m"] = self.pixel_size_m(tile)
        return item

    def pixel_size_m(self, tile: Tile) -> tuple[float, float] | None:
        """Ground size of the tile's pixels (x, y) in metres: from its georeference, else the
        dataset's `metres_per_pixel`, else unknown (None)."""
        transform = read_geotransform(tile.image_path)
        if transform is not None:
            size = transform.metres_per_pixel()
            return size, size
        if self.metres_per_pixel is not None:
            return self.metres_per_pixel, self.metres_per_pixel
        return None


class ImageFolderDataset(Dataset):
    """The images of a folder, for prediction without ground truth.

    Each item: `image` (3, H, W) float32 normalised, `raw_image` (H, W, 3) uint8 RGB for overlays,
    `stem` str and `image_path` str.
    """

    def __init__(self, images_dir: str | Path, mean: tuple[float, ...] = SPACENET_MEAN,
                 std: tuple[float, ...] = SPACENET_STD) -> None:
        images_dir = Path(images_dir)
        if not images_dir.is_dir():
            raise DataError(f"{images_dir}: image folder not found")
        self.paths = sorted(p for p in images_dir.iterdir()
                            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise DataError(f"{images_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")
        self.mean, self.std = _channel_stats(mean, "mean"), _channel_stats(std, "std")

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        path = self.paths[index]
        image = read_image(path)
        return {
            "image": torch.from_numpy(normalize(image, self.mean, self.std)),
            "raw_image": torch.from_numpy(image),
            "stem": path.stem,
            "image_path": str(path),
        }


def _channel_stats(values, key: str) -> tuple[float, float, float]:
    values = tuple(float(v) for v in values)
    if len(values) != 3 or (key == "std" and min(values) <= 0):
        raise ConfigError(f"data_loader.args.{key}: expected 3 {'positive ' * (key == 'std')}"
                          f"numbers (R, G, B), got {list(values)}")
    return values
