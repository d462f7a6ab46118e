"""Datasets of road tiles: training crops or whole tiles with segmentation and connectivity targets.

`RoadDataset` needs image and mask folders only (Massachusetts, DeepGlobe, prepared SpaceNet) and
hands over each tile's GeoJSON and GeoTIFF paths, where it has them, for the APLS ground truth.
`ImageFolderDataset` serves images without ground truth for prediction.
"""
import logging
import math
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from torch.utils.data import Dataset

from data_loader.label_cache import LabelCache
from data_loader.tiles import (
    IMAGE_SUFFIXES,
    RasterOptions,
    RasterSource,
    Tile,
    check_tile,
    list_tiles,
    read_mask,
    read_raster,
)
from data_loader.transforms import (
    SPACENET_MEAN,
    SPACENET_STD,
    Augmentation,
    LabelledImage,
    normalize,
)
from roads.classes import IGNORE_INDEX
from roads.extraction import REFERENCE_METRES_PER_PIXEL, GraphSettings
from roads.georeference import read_georeference
from roads.labels import LabelParams, LabelSettings, quarter_mask
from utils.errors import DataError
from utils.settings import check, from_config

logger = logging.getLogger("data")

LABEL_CACHE_DIR = Path(".cache") / "connectivity"


def raster_options(bands: list[int] | None, nodata_color: list[float] | None) -> RasterOptions:
    """RasterOptions from the config's `data_loader.args.bands` and `nodata_color`."""
    for key, value in (("bands", bands), ("nodata_color", nodata_color)):
        check(value is None or isinstance(value, (list, tuple)), key,
              f"expected a list or null, got {value!r}")
    return RasterOptions(None if bands is None else tuple(bands),
                         None if nodata_color is None else tuple(nodata_color))


class ImageReading(NamedTuple):
    """How a dataset reads and normalises its images (`image_reading`)."""
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    raster_options: RasterOptions
    metres_per_pixel: float | None


def image_reading(mean: tuple[float, ...] = SPACENET_MEAN, std: tuple[float, ...] = SPACENET_STD,
                  bands: list[int] | None = None, nodata_color: list[float] | None = None,
                  metres_per_pixel: float | None = None) -> ImageReading:
    """The loader arguments of the same names that say how images are read, checked: a bad one
    raises `ValueError("std: ...")`, which the config layer reports under its key (`build`)."""
    check(metres_per_pixel is None or metres_per_pixel > 0, "metres_per_pixel",
          f"must be > 0, got {metres_per_pixel}")
    return ImageReading(channel_stats(mean, "mean"), channel_stats(std, "std"),
                        raster_options(bands, nodata_color), metres_per_pixel)


_warned_keys: set[str] = set()


def label_settings(labels: LabelSettings | dict | None, graph: dict | None
                   ) -> tuple[LabelSettings, GraphSettings]:
    """The label and graph settings of a config's `data_loader.args.labels` (built already, or
    its JSON object) and `graph`."""
    if not isinstance(labels, LabelSettings):
        labels = from_config(LabelSettings, labels, "data_loader.args.labels")
    return labels, from_config(GraphSettings, graph, "graph")


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
        mask          (h, w) int64, 1 = road, 0 = background, 255 = invalid pixel (ignored)
        mask_quarter  (ceil(h/4), ceil(w/4)) int64, 4x4 area average >= 0.5, 255 where the
                      4x4 average of validity is < 0.5
        conn          (h, w) int64, connectivity classes 0..4 or 255 (ignore)
        conn_quarter  (ceil(h/4), ceil(w/4)) int64
        stem          str, the tile's file stem
        image_path    str, the tile's image (a GeoTIFF's georeference places GeoJSON labels)
        geojson_path  str, the tile's road labels, "" when it has none

    Images are read by `data_loader.tiles` with `bands` (1-based band numbers of R, G, B) and
    `nodata_color` (the dataset's no-data color: [0, 0, 0] for raw SpaceNet, [255, 255, 255] for
    Massachusetts Roads); a pixel is invalid where the image says so (alpha, mask, nodata value,
    nodata_color) or where `valid/<stem>.png` is 0.

    Connectivity labels are derived from the whole tile's mask (a crop border would invent dead
    ends) and cached on disk under `label_cache_dir`, by default `<data_dir>/.cache/connectivity`
    (another folder serves read-only datasets).
    """

    def __init__(self, data_dir: str | Path, split: str = "train", training: bool = True,
                 crop_size: int = 256, crops_per_tile: int = 1, augment_p: float = 0.5,
                 mean: tuple[float, ...] = SPACENET_MEAN, std: tuple[float, ...] = SPACENET_STD,
                 labels: LabelSettings | dict | None = None, seed: int = 0,
                 label_cache_dir: str | Path | None = None, bands: list[int] | None = None,
                 nodata_color: list[float] | None = None, graph: dict | None = None,
                 metres_per_pixel: float | None = None) -> None:
        self.data_dir = Path(data_dir)
        self.mean, self.std, self.raster_options, self.metres_per_pixel = image_reading(
            mean, std, bands, nodata_color, metres_per_pixel)
        self.split = split
        self.training = training
        self.crops_per_tile = crops_per_tile if training else 1
        check(self.crops_per_tile >= 1, "crops_per_tile", f"{crops_per_tile} must be >= 1")
        self.seed = seed
        # Augmentation names the probability `p`; this check names the parameter given here.
        check(0.0 <= augment_p <= 1.0, "augment_p", f"{augment_p} must lie in [0, 1]")
        self.augmentation = Augmentation(crop_size, augment_p) if training else None
        self.tiles = list_tiles(self.data_dir / split, require_masks=True)
        for tile in self.tiles:
            height, width = check_tile(tile, self.raster_options)
            check(not training or min(height, width) >= crop_size, "crop_size",
                  f"{crop_size} is larger than {tile.image_path} ({height}x{width})")
        self.label_cache_dir = Path(self.data_dir / LABEL_CACHE_DIR if label_cache_dir is None
                                    else label_cache_dir)
        self.label_settings, self.graph_settings = label_settings(labels, graph)
        self._label_caches: dict[LabelParams, LabelCache] = {}
        self._pixel_sizes: dict[str, tuple[float, float] | None] = {}
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
        """The whole tile with its targets at full and 1/4 resolution, IGNORE_INDEX at invalid
        pixels of the masks."""
        image, mask, valid = self._read_tile(tile)
        conn, conn_quarter = self.label_cache(tile).labels(tile.mask_path, mask, valid)
        mask_quarter = quarter_mask(mask).astype(np.uint8)
        mask = mask.astype(np.uint8)
        if not valid.all():
            mask[~valid] = IGNORE_INDEX
            mask_quarter[~quarter_mask(valid)] = IGNORE_INDEX
        return LabelledImage(image, mask, mask_quarter, conn, conn_quarter)

    def precompute_labels(self, index: int) -> bool:
        """Derive and cache the labels of tile `index` unless they are cached (what a loader
        would read); True if they were derived."""
        tile = self.tiles[index]
        _, mask, valid = self._read_tile(tile)
        return self.label_cache(tile).precompute(tile.mask_path, mask, valid)

    def _read_tile(self, tile: Tile) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(image (H, W, 3) uint8, mask (H, W) bool, valid (H, W) bool) of a tile."""
        raster = read_raster(tile.image_path, self.raster_options)
        mask = read_mask(tile.mask_path, raster.image.shape[:2])
        valid = raster.valid
        if tile.valid_path is not None:
            valid = valid & read_mask(tile.valid_path, mask.shape)
        return raster.image, mask, valid

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

    def label_cache(self, tile: Tile) -> LabelCache:
        """The label cache of the tile's LabelParams: the ground-unit settings in its pixels."""
        params = self.label_settings.params(self.graph_settings, self.pixel_size_m(tile))
        if params not in self._label_caches:
            self._label_caches[params] = LabelCache(params, self.label_cache_dir)
        return self._label_caches[params]

    def pixel_size_m(self, tile: Tile) -> tuple[float, float] | None:
        """Ground size of the tile's pixels (x, y) in metres: from its georeference, else the
        dataset's `metres_per_pixel`, else unknown (None: ground units then assume
        REFERENCE_METRES_PER_PIXEL, said once)."""
        if tile.stem not in self._pixel_sizes:
            georeference = read_georeference(tile.image_path)
            if georeference is not None:
                size = georeference.pixel_size_m()
            elif self.metres_per_pixel is not None:
                size = (self.metres_per_pixel, self.metres_per_pixel)
            else:
                size = None
                if "metres_per_pixel" not in _warned_keys:
                    _warned_keys.add("metres_per_pixel")
                    logger.warning("%s has no georeference and data_loader.args.metres_per_pixel "
                                   "is not set: ground units assume %s m per pixel",
                                   tile.image_path, REFERENCE_METRES_PER_PIXEL)
            self._pixel_sizes[tile.stem] = size
        return self._pixel_sizes[tile.stem]


class SceneSource:
    """An image of any size read window by window for prediction (the predictor's ImageSource):
    each window normalized as training images are, its validity kept in `valid` ((H, W) bool,
    filled as windows are read). The file opens on the first read, so that a source crosses
    DataLoader workers as a path."""

    def __init__(self, path: Path, options: RasterOptions, mean: tuple[float, float, float],
                 std: tuple[float, float, float]) -> None:
        self.path, self.options, self.mean, self.std = Path(path), options, mean, std
        with RasterSource(self.path, options) as source:  # checks the header now
            self.shape: tuple[int, int] = source.shape
            self.georeference = source.georeference
        self.valid: np.ndarray | None = None
        self._source: RasterSource | None = None

    def read(self, top: int, left: int, height: int, width: int) -> torch.Tensor:
        """(3, height, width) float32 normalized pixels of a window."""
        if self._source is None:
            self._source = RasterSource(self.path, self.options)
            self.valid = np.ones(self.shape, dtype=bool)
        raster = self._source.read((top, left, height, width))
        self.valid[top:top + height, left:left + width] = raster.valid
        return torch.from_numpy(normalize(raster.image, self.mean, self.std))

    def close(self) -> None:
        if self._source is not None:
            self._source.close()
            self._source = None

    def __getstate__(self) -> dict:
        return {**self.__dict__, "_source": None}


class ImageFolderDataset(Dataset):
    """The images of a folder, for prediction without ground truth, read like training images
    (`bands`, `nodata_color`; raw uint16 imagery stretched as by the preparation) and window by
    window, so that a scene of any size is never held whole.

    Each item: `image` a SceneSource (its `valid` filled as it is read), `stem` str and
    `image_path` str.
    """

    def __init__(self, images_dir: str | Path, mean: tuple[float, ...] = SPACENET_MEAN,
                 std: tuple[float, ...] = SPACENET_STD, bands: list[int] | None = None,
                 nodata_color: list[float] | None = None) -> None:
        images_dir = Path(images_dir)
        if not images_dir.is_dir():
            raise DataError(f"{images_dir}: image folder not found")
        self.paths = sorted(p for p in images_dir.iterdir()
                            if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
        if not self.paths:
            raise DataError(f"{images_dir}: no images ({', '.join(IMAGE_SUFFIXES)})")
        self.mean, self.std, self.raster_options, _ = image_reading(mean, std, bands,
                                                                    nodata_color)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        path = self.paths[index]
        return {"image": SceneSource(path, self.raster_options, self.mean, self.std),
                "stem": path.stem, "image_path": str(path)}


def channel_stats(values, key: str) -> tuple[float, float, float]:
    """The (R, G, B) `mean` or `std` of the config: three finite numbers, positive for std."""
    numbers = (isinstance(values, (list, tuple)) and len(values) == 3
               and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                       and math.isfinite(v) for v in values))
    check(numbers and (key != "std" or min(values) > 0), key,
          f"expected 3 {'positive ' * (key == 'std')}numbers (R, G, B), got {str(values)[:80]}")
    return tuple(float(v) for v in values)
