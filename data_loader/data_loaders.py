"""Data loaders named by the config's `data_loader.type`."""
import sys
from pathlib import Path

from base.base_data_loader import BaseDataLoader
from data_loader.datasets import RoadDataset
from data_loader.transforms import SPACENET_MEAN, SPACENET_STD
from roads.labels import LabelSettings
from utils.config import ConfigParser
from utils.settings import build, check

DEFAULT_LABELS = LabelSettings()


class RoadDataLoader(BaseDataLoader):
    """Loader of a `<data_dir>/<split>/{images,masks}` dataset (Massachusetts, DeepGlobe style).

    `bands` and `nodata_color` say how images become RGB and which pixels are no-data
    (see `RoadDataset`); `labels` is the config's `data_loader.args.labels` object, which the
    config layer builds as `LabelSettings` (so that a run records every field it used).

    Training: batches of random crops, `crops_per_tile` per tile per epoch. Evaluation
    (`training=False`): whole tiles. `split_loader("val")` gives the evaluation loader of another
    split with the same data folder, normalisation and label parameters.
    """

    def __init__(self, data_dir: str, split: str = "train", batch_size: int = 4,
                 crop_size: int = 256, crops_per_tile: int = 8, shuffle: bool = True,
                 num_workers: int = 2, augment_p: float = 0.5,
                 mean: tuple[float, ...] = SPACENET_MEAN, std: tuple[float, ...] = SPACENET_STD,
                 labels: LabelSettings = DEFAULT_LABELS, seed: int = 0, training: bool = True,
                 label_cache_dir: str | None = None, bands: list[int] | None = None,
                 nodata_color: list[float] | None = None, metres_per_pixel: float | None = None,
                 graph: dict | None = None) -> None:
        check(Path(data_dir).is_dir(), "data_dir", f"folder '{data_dir}' does not exist")
        check(batch_size >= 1, "batch_size", f"must be >= 1, got {batch_size}")
        check(num_workers >= 0, "num_workers", f"must be >= 0, got {num_workers}")
        self.data_dir = data_dir
        self.split = split
        self.dataset_args = dict(crop_size=crop_size, crops_per_tile=crops_per_tile,
                                 augment_p=augment_p, mean=mean, std=std, labels=labels,
                                 label_cache_dir=label_cache_dir, bands=bands,
                                 nodata_color=nodata_color, metres_per_pixel=metres_per_pixel,
                                 graph=graph)
        dataset = RoadDataset(data_dir, split, training=training, seed=seed,
                                     **self.dataset_args)
        super().__init__(dataset, batch_size, shuffle, num_workers, seed, training)

    def split_loader(self, split: str) -> "RoadDataLoader":
        """Whole-tile evaluation loader of `split` (e.g. "val", "test"): batch 1, in stem order."""
        return type(self)(self.data_dir, split, batch_size=1, shuffle=False,
                          num_workers=self.num_workers, seed=self.seed, training=False,
                          **self.dataset_args)


class SpaceNetDataLoader(RoadDataLoader):
    """Loader of a prepared SpaceNet 3 dataset (`python -m tools.spacenet`): images, masks and
    the GeoJSON labels that give APLS its ground truth."""


def whole_tiles(config: ConfigParser, split: str) -> BaseDataLoader:
    """The whole tiles of `split` (images, truth, labels) as the config's loader reads them,
    batch 1, in stem order: what `test.py` and the benchmarks evaluate. The config's arguments
    are checked as `init_obj` checks them; a bad value is an error naming its key."""
    module, graph = sys.modules[__name__], config.section("graph")
    args = config.arguments("data_loader", module, graph=graph)
    return build(config.find_type("data_loader", module),
                 {**args, "split": split, "training": False, "batch_size": 1, "shuffle": False},
                 "data_loader.args", graph=graph)
