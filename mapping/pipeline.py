"""A scene or mosaic to road network files, block by block: predict, extract, stitch, write.

1. predict: each block's core plus the predictor's margin is predicted (sliding windows, as
   for tiles) and its core written to the work folder (`mapping.work`);
2. graph: each block's road graph is extracted from its core plus a halo of the scene's
   prediction and clipped to the core (`mapping.stitch.block_graph`);
3. stitch and write (one process): the block graphs become one network, written block by block
   as a GeoPackage, GeoJSON and GraphML (`mapping.vector`), and the prediction as COGs.

Under `torchrun` the processes share the blocks of steps 1 and 2 and wait for each other between
the steps; each block is computed the same way whichever process takes it, so the outputs equal
a single process's. Blocks already in the work folder are skipped: an interrupted run resumes.
Memory follows the block size, never the scene's.
"""
import logging
import shutil
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from affine import Affine
from tqdm import tqdm

from data_loader.transforms import normalize
from evaluation.postprocess import Prediction
from evaluation.predictor import SlidingWindowPredictor
from mapping.blocks import Block, block_grid, blocks_of_rank
from mapping.stitch import Rasters, block_graph, halo_needed, stitch
from mapping.vector import NetworkWriter
from mapping.work import BYTES_PER_PIXEL, WorkFolder
from roads.extraction import GraphSettings
from roads.georeference import Georeference
from utils.distributed import DistributedContext, gather_objects
from utils.errors import UserError

logger = logging.getLogger("mapping")

DEFAULT_BLOCK = 4096
"""Block side in pixels: 16.8 M pixels, about 0.5 GB at the peak of the graph step with its halo,
and few enough seams that stitching stays a small part of the run."""


@dataclass(frozen=True)
class Scene:
    """What the mapping needs of an input: its (H, W), its georeference (None: pixels only) and a
    `read(top, left, height, width)` giving (h, w, 3) uint8 RGB and (h, w) bool valid."""

    shape: tuple[int, int]
    georeference: Georeference | None
    read: Callable[[int, int, int, int], tuple[np.ndarray, np.ndarray]]


class _BlockSource:
    """The predictor's ImageSource over one window of a scene, normalised as in training; the
    validity of what it read is kept in `valid`."""

    def __init__(self, scene: Scene, window: tuple[int, int, int, int], mean, std) -> None:
        self.scene, self.mean, self.std = scene, mean, std
        self.top, self.left, height, width = window
        self.shape = (height, width)
        self.valid = np.zeros(self.shape, dtype=bool)

    def read(self, top: int, left: int, height: int, width: int) -> torch.Tensor:
        image, valid = self.scene.read(self.top + top, self.left + left, height, width)
        self.valid[top:top + height, left:left + width] = valid
        return torch.from_numpy(normalize(image, self.mean, self.std))


def check_disk(out: Path, shape: tuple[int, int]) -> None:
    """A one-line error before any work when `out`'s disk cannot hold the run's files."""
    needed = BYTES_PER_PIXEL * shape[0] * shape[1]
    folder = Path(out)
    while not folder.exists():
        folder = folder.parent
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise UserError(f"{out}: about {needed / 1e9:.1f} GB needed for a {shape[1]} x "
                        f"{shape[0]} px scene, {free / 1e9:.1f} GB free on its disk")


def _progress(blocks: list[Block], what: str, context: DistributedContext,
              pixel_area_m2: float | None) -> Iterable[Block]:
    """The blocks with a progress bar (rank 0) giving km2 (or megapixels) done and time left."""
    bar = tqdm(blocks, desc=what, unit="block", dynamic_ncols=True, disable=not context.is_main)
    done = 0.0
    for block in bar:
        yield block
        pixels = block.height * block.width
        if pixel_area_m2:
            done += pixels * pixel_area_m2 / 1e6
            bar.set_postfix_str(f"{done:.2f} km2")
        else:
            done += pixels / 1e6
            bar.set_postfix_str(f"{done:.1f} Mpx")


def _pixel_area(georeference: Georeference | None) -> float | None:
    if georeference is None:
        return None
    sx, sy = georeference.pixel_size_m()
    return sx * sy


def predict_blocks(scene: Scene, predictor: SlidingWindowPredictor, mean, std,
                   work: WorkFolder, blocks: list[Block],
                   context: DistributedContext) -> None:
    """Step 1 for this process's blocks that the work folder lacks."""
    margin = predictor.settings.margin
    mine = [block for block in blocks_of_rank(blocks, context.rank, context.world_size)
            if not work.block_raster(block).exists()]
    for block in _progress(mine, "predict", context, _pixel_area(scene.georeference)):
        window = block.expanded(margin, scene.shape)
        source = _BlockSource(scene, window, mean, std)
        prediction = Prediction.empty(source.shape)
        for logits in predictor.windows(source):
            prediction.paste(logits.region, logits.segmentation, logits.connectivity,
                             predictor.settings.threshold)
        core = (slice(block.top - window[0], block.top - window[0] + block.height),
                slice(block.left - window[1], block.left - window[1] + block.width))
        work.write_prediction(block, prediction.probability[core], prediction.mask[core],
                              prediction.connectivity[core], source.valid[core],
                              _block_georeference(scene.georeference, block))


def _block_georeference(georeference: Georeference | None, block: Block) -> Georeference | None:
    if georeference is None:
        return None
    return Georeference(georeference.crs,
                        georeference.transform * Affine.translation(block.left, block.top),
                        (block.height, block.width))


def graph_blocks(read: Callable[[int, int, int, int], Rasters], shape: tuple[int, int],
                 settings: GraphSettings, pixel_size_m: tuple[float, float] | None,
                 work: WorkFolder, blocks: list[Block], halo: int,
                 context: DistributedContext, pixel_area_m2: float | None) -> None:
    """Step 2 for this process's blocks that the work folder lacks."""
    mine = [block for block in blocks_of_rank(blocks, context.rank, context.world_size)
            if not work.block_graph(block).exists()]
    for block in _progress(mine, "graph", context, pixel_area_m2):
        work.write_graph(block_graph(read, block, shape, halo, settings, pixel_size_m))


def write_network(work: WorkFolder, blocks: list[Block], settings: GraphSettings,
                  pixel_size_m: tuple[float, float] | None, georeference: Georeference | None,
                  out: Path, name: str) -> dict:
    """Step 3: stitch the block graphs in block order and write the network files; returns
    counts for the log."""
    epsilon = settings.pixels(pixel_size_m)["simplify_epsilon"]
    counts = {"nodes": 0, "edges": 0}
    with NetworkWriter(out, georeference, name) as writer:
        for batch in stitch((work.read_graph(block) for block in blocks), epsilon):
            writer.add(batch.nodes, batch.edges)
            counts["nodes"] += len(batch.nodes)
            counts["edges"] += len(batch.edges)
    return counts


def barrier() -> None:
    """Wait for every process (nothing to wait for alone)."""
    gather_objects(None)


def run_blocks(shape: tuple[int, int], block: int, parameters: dict, out: Path,
               context: DistributedContext) -> tuple[WorkFolder, list[Block]]:
    """The work folder (checked against `parameters`, created by rank 0) and the block grid."""
    work = WorkFolder(out)
    if context.is_main:
        check_disk(out, shape)
        work.start(parameters)
    barrier()
    return work, block_grid(shape, block)


def elapsed(start: float) -> str:
    minutes = (time.perf_counter() - start) / 60
    return f"{minutes:.1f} min" if minutes >= 1 else f"{minutes * 60:.0f} s"


def km2(shape: tuple[int, int], georeference: Georeference | None) -> float | None:
    area = _pixel_area(georeference)
    return None if area is None else shape[0] * shape[1] * area / 1e6


def log_done(what: str, shape: tuple[int, int], georeference: Georeference | None,
             start: float, counts: dict) -> None:
    area = km2(shape, georeference)
    hours = (time.perf_counter() - start) / 3600
    rate = (f", {area / hours:.0f} km2/h" if area and hours > 0 else "")
    logger.info("%s: %d x %d px%s in %s%s; %d nodes, %d edges", what, shape[1], shape[0],
                f" ({area:.2f} km2)" if area else "", elapsed(start), rate, counts["nodes"],
                counts["edges"])


def halo_for(settings: GraphSettings, pixel_size_m: tuple[float, float] | None,
             halo: int | None) -> int:
    """The graph halo: `halo` when given, else what the settings need (`halo_needed`)."""
    needed = halo_needed(settings, pixel_size_m)
    if halo is not None and halo < needed:
        logger.warning("--halo %d is below the %d px that the graph settings reach: roads may "
                       "break or double at block seams", halo, needed)
    return needed if halo is None else halo


def map_scene(scene: Scene, predictor: SlidingWindowPredictor, mean, std,
              settings: GraphSettings, pixel_size_m: tuple[float, float] | None, out: Path,
              name: str, block: int, halo: int | None, parameters: dict,
              context: DistributedContext, keep_work: bool = False) -> None:
    """Predict a scene and write its road network and prediction rasters under `out` (steps 1 to
    3 of the module docstring). Collective under torchrun: every process calls it."""
    start = time.perf_counter()
    halo = halo_for(settings, pixel_size_m, halo)
    work, blocks = run_blocks(scene.shape, block, parameters, out, context)
    predict_blocks(scene, predictor, mean, std, work, blocks, context)
    barrier()
    if context.is_main:
        work.write_vrt(scene.shape, scene.georeference, blocks)
    barrier()
    read, dataset = work.reader()
    try:
        graph_blocks(read, scene.shape, settings, pixel_size_m, work, blocks, halo, context,
                     _pixel_area(scene.georeference))
    finally:
        dataset.close()
    barrier()
    if context.is_main:
        counts = write_network(work, blocks, settings, pixel_size_m, scene.georeference, out,
                               name)
        work.write_cogs(out, name)
        if not keep_work:
            work.remove()
        log_done("mapped", scene.shape, scene.georeference, start, counts)
    barrier()


def map_raster(read: Callable[[int, int, int, int], Rasters], shape: tuple[int, int],
               georeference: Georeference | None, settings: GraphSettings,
               pixel_size_m: tuple[float, float] | None, out: Path, name: str, block: int,
               halo: int | None, parameters: dict, context: DistributedContext,
               keep_work: bool = False) -> None:
    """The road network of a scene's road probability or mask (steps 2 and 3)."""
    start = time.perf_counter()
    halo = halo_for(settings, pixel_size_m, halo)
    work, blocks = run_blocks(shape, block, parameters, out, context)
    graph_blocks(read, shape, settings, pixel_size_m, work, blocks, halo, context,
                 _pixel_area(georeference))
    barrier()
    if context.is_main:
        counts = write_network(work, blocks, settings, pixel_size_m, georeference, out, name)
        if not keep_work:
            work.remove()
        log_done("graph", shape, georeference, start, counts)
    barrier()
