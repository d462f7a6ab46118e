"""The work folder of a mapping run: what each block made, on disk, so a run resumes and shares.

    <out>/work/run.json              the run's parameters; a resumed run must match them
    <out>/work/blocks/<block>.tif    a block's prediction: probability x 255, mask 0/255 and
                                     connectivity classes (255: no data), 3 bands uint8
    <out>/work/prediction.vrt        the blocks as one raster, read window by window
    <out>/work/graphs/<block>.pkl    the part of the road graph the block owns

Every file appears under its final name only once complete (written beside it and renamed), so a
block whose file exists is done, whichever process made it and however the run was stopped.
"""
import json
import pickle
import shutil
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import rasterio
import rasterio.shutil

from mapping.blocks import Block
from mapping.stitch import BlockGraph, Rasters
from roads.classes import IGNORE_INDEX, PALETTE
from roads.georeference import Georeference, open_raster
from utils.checkpoint import atomic_write, write_json
from utils.errors import UserError

PREDICTION_BANDS = ("probability", "mask", "connectivity")

BYTES_PER_PIXEL = 1.2
"""Disk a run needs per scene pixel, an estimate with room to spare: the block rasters and the
three COGs, deflated, took 0.07 bytes a pixel on a toy-spacenet tile, the COGs alone 0.07 on a
real Massachusetts tile; a noisy probability compresses worse, and the worst case is about 7
(3 bands incompressible, the COGs with their overviews). The network files are small beside."""


class WorkFolder:
    def __init__(self, out: Path) -> None:
        self.root = Path(out) / "work"
        self.blocks = self.root / "blocks"
        self.graphs = self.root / "graphs"
        self.vrt = self.root / "prediction.vrt"

    def start(self, parameters: dict) -> None:
        """Create the folder, or check that the run found in it had the same `parameters`."""
        record = self.root / "run.json"
        if record.exists():
            found = json.loads(record.read_text())
            if found != parameters:
                changed = sorted(key for key in {*found, *parameters}
                                 if found.get(key) != parameters.get(key))
                raise UserError(f"{self.root}: holds a run with other {', '.join(changed)}; "
                                "use another --out, or delete the folder to start afresh")
            return
        for folder in (self.blocks, self.graphs):
            folder.mkdir(parents=True, exist_ok=True)
        write_json(parameters, record)

    def block_raster(self, block: Block) -> Path:
        return self.blocks / f"{block.name}.tif"

    def block_graph(self, block: Block) -> Path:
        return self.graphs / f"{block.name}.pkl"

    def write_prediction(self, block: Block, probability: np.ndarray, mask: np.ndarray,
                         classes: np.ndarray, valid: np.ndarray,
                         georeference: Georeference | None) -> None:
        """A block's core: (h, w) uint8 probability x 255, bool mask, uint8 classes, bool valid."""
        bands = np.stack([probability, np.where(mask, 255, 0),
                          np.where(valid, classes, IGNORE_INDEX)]).astype(np.uint8)
        profile = {"driver": "GTiff", "height": block.height, "width": block.width, "count": 3,
                   "dtype": "uint8", "compress": "deflate", "tiled": True, "blockxsize": 256,
                   "blockysize": 256}
        if georeference is not None:
            profile |= {"crs": rasterio.crs.CRS.from_wkt(georeference.crs.to_wkt()),
                        "transform": georeference.transform}
        path = self.block_raster(block)
        temporary = path.with_name(f".{path.name}.tmp")
        with rasterio.open(temporary, "w", **profile) as dataset:
            dataset.write(bands)
        temporary.replace(path)

    def write_graph(self, graph: BlockGraph) -> None:
        with atomic_write(self.block_graph(graph.block), "block graph") as file:
            pickle.dump(graph, file, protocol=pickle.HIGHEST_PROTOCOL)

    def read_graph(self, block: Block) -> BlockGraph:
        with open(self.block_graph(block), "rb") as file:
            return pickle.load(file)

    def write_vrt(self, shape: tuple[int, int], georeference: Georeference | None,
                  blocks: list[Block]) -> None:
        """The block rasters as one 3-band raster of the scene (a GDAL VRT of their windows)."""
        height, width = shape
        lines = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">']
        if georeference is not None:
            a, b, c, d, e, f = georeference.transform[:6]
            lines.append(f"  <SRS>{escape(georeference.crs.to_wkt())}</SRS>")
            lines.append(f"  <GeoTransform>{c!r}, {a!r}, {b!r}, {f!r}, {d!r}, {e!r}"
                         "</GeoTransform>")
        for band in range(1, len(PREDICTION_BANDS) + 1):
            lines.append(f'  <VRTRasterBand dataType="Byte" band="{band}">')
            for block in blocks:
                lines += [
                    "    <SimpleSource>",
                    f'      <SourceFilename relativeToVRT="1">blocks/{block.name}.tif'
                    "</SourceFilename>",
                    f"      <SourceBand>{band}</SourceBand>",
                    f'      <SrcRect xOff="0" yOff="0" xSize="{block.width}" '
                    f'ySize="{block.height}"/>',
                    f'      <DstRect xOff="{block.left}" yOff="{block.top}" '
                    f'xSize="{block.width}" ySize="{block.height}"/>',
                    "    </SimpleSource>"]
            lines.append("  </VRTRasterBand>")
        lines.append("</VRTDataset>")
        with atomic_write(self.vrt, "VRT") as file:
            file.write(("\n".join(lines) + "\n").encode())

    def reader(self):
        """A `read(top, left, height, width) -> Rasters` over the scene's prediction, and the
        open dataset to close when done."""
        dataset = open_raster(self.vrt)

        def read(top: int, left: int, height: int, width: int) -> Rasters:
            window = rasterio.windows.Window(left, top, width, height)
            probability, mask, classes = dataset.read(window=window)
            return Rasters(mask > 0, probability, classes, classes != IGNORE_INDEX)

        return read, dataset

    def write_cogs(self, out: Path, name: str) -> list[Path]:
        """The scene's probability, mask and classes as Cloud-Optimized GeoTIFFs in `out`."""
        written = []
        with open_raster(self.vrt) as dataset:
            for band, (kind, resampling) in enumerate(
                    (("prob", "average"), ("mask", "nearest"), ("conn", "nearest")), start=1):
                path = Path(out) / f"{name}-{kind}.tif"
                temporary = path.with_name(f".{path.name}.tmp")
                profile = {"driver": "GTiff", "count": 1, "dtype": "uint8",
                           "height": dataset.height, "width": dataset.width,
                           "crs": dataset.crs, "transform": dataset.transform,
                           "tiled": True, "blockxsize": 512, "blockysize": 512,
                           "compress": "deflate", "BIGTIFF": "IF_SAFER",
                           "nodata": IGNORE_INDEX if kind == "conn" else None}
                staged = temporary.with_suffix(".staged.tif")
                with rasterio.open(staged, "w", **profile) as target:
                    if kind == "conn":  # before the pixels: GDAL cannot change it after
                        target.write_colormap(1, {value: (*rgb, 255)
                                                  for value, rgb in PALETTE.items()})
                    for _, window in target.block_windows(1):
                        target.write(dataset.read(band, window=window), 1, window=window)
                rasterio.shutil.copy(staged, temporary, driver="COG", compress="deflate",
                                     blocksize=512, overview_resampling=resampling,
                                     BIGTIFF="IF_SAFER")
                staged.unlink()
                temporary.replace(path)
                written.append(path)
        return written

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
