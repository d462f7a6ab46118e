"""The README's pictures, made from data on disk (nothing here is shipped with the repo).

    python -m tools.figures labels --data ../shared/real/massachusetts \
        --config configs/massachusetts-cpu.json [--split train] [--count 3] [--out docs/labels.jpg]
    python -m tools.figures graphs --image TILE --skeleton SKELETON.geojson \
        --connectivity CONNECTIVITY.geojson [--out docs/graphs.jpg]
    python -m tools.figures seams --image SCENE --network OUT/<name>.geojson --block 512 \
        [--out docs/seams.jpg]

`labels`: real crops with their connectivity labels drawn over them (dead ends red, 3-way green,
4-way blue), picked for having every kind of node. `graphs`: one tile's skeleton graph and
connectivity graph over the image, with the gaps the connectivity method closed marked: the
`graphs/<stem>.geojson` that `test.py` writes with `graph.method` skeleton and connectivity.
`seams`: the road network that `tools.map_roads` wrote for a scene, over the scene, with the seams
of its blocks drawn: roads run across them as one network.
"""
import argparse
import json
from pathlib import Path

import cv2
import numpy as np

from data_loader.datasets import label_settings
from data_loader.tiles import list_tiles, read_image, read_mask, read_raster
from roads.classes import DEAD_END, FOUR_OR_MORE, PALETTE, ROAD, THREE_WAY
from roads.labels import connectivity_labels
from utils.config import read_json
from utils.errors import run_cli


def labelled_picture(image: np.ndarray, labels: np.ndarray, opacity: float = 0.55) -> np.ndarray:
    """(H, W, 3) uint8: the image with road pixels and node disks painted in the label colors."""
    painted = image.copy()
    for value in (ROAD, DEAD_END, THREE_WAY, FOUR_OR_MORE):
        painted[labels == value] = PALETTE[value]
    blended = cv2.addWeighted(painted, opacity, image, 1 - opacity, 0)
    return np.where((labels > 0)[..., None], blended, image)


def labels_figure(data: Path, config: Path, split: str, count: int) -> np.ndarray:
    """`count` crops of `split`, those with the most kinds of node first, each with its labels."""
    settings = read_json(config)
    loader = settings["data_loader"]["args"]
    labels, graph = label_settings(loader.get("labels"), settings.get("graph"))
    size = loader.get("metres_per_pixel")
    params = labels.params(graph, (size, size) if size else None)
    scored = []
    for tile in list_tiles(data / split):
        mask = read_mask(tile.mask_path)
        labels, _ = connectivity_labels(mask, params)
        kinds = sum(bool((labels == value).any()) for value in (DEAD_END, THREE_WAY, FOUR_OR_MORE))
        nodes = cv2.connectedComponents(np.isin(labels, (DEAD_END, THREE_WAY, FOUR_OR_MORE))
                                        .astype(np.uint8))[0] - 1
        scored.append((-kinds, -nodes, tile.stem, tile, labels))
    scored.sort(key=lambda entry: entry[:3])
    panels = []
    for *_, tile, labels in scored[:count]:
        image = read_image(tile.image_path)
        panels.append(np.hstack([image, labelled_picture(image, labels)]))
    gap = np.full((8, panels[0].shape[1], 3), 255, np.uint8)
    return np.vstack([part for panel in panels for part in (panel, gap)][:-1])


def graph_picture(image: np.ndarray, graph_path: Path, to_pixel=None) -> np.ndarray:
    """The image with a predicted graph's GeoJSON LineStrings drawn (pixel coordinates), gap
    edges (property `gap`) in orange, others in blue, nodes in yellow."""
    picture = image.copy()
    collection = json.loads(graph_path.read_text())
    for feature in collection["features"]:
        points = np.asarray(feature["geometry"]["coordinates"], dtype=float)
        if to_pixel is not None:
            points = to_pixel(points)
        color = (255, 140, 0) if feature.get("properties", {}).get("gap") else (30, 90, 255)
        cv2.polylines(picture, [np.round(points).astype(np.int32)], False, color, 3, cv2.LINE_AA)
        for end in (points[0], points[-1]):
            cv2.circle(picture, tuple(int(v) for v in np.round(end)), 5, (255, 230, 0), -1)
    return picture


def seams_picture(scene: Path, network: Path, block: int) -> np.ndarray:
    """The scene with its road network (GeoJSON, lon/lat for a georeferenced scene) and the seams
    of `block` px blocks, dashed white."""
    raster = read_raster(scene)
    to_pixel = raster.georeference.to_pixel if raster.georeference is not None else None
    picture = graph_picture(raster.image, network, to_pixel)
    height, width = picture.shape[:2]
    for at in range(block, max(height, width), block):
        for start in range(0, max(height, width), 24):
            if at < width:
                cv2.line(picture, (at, start), (at, min(start + 12, height)), (255, 255, 255), 2)
            if at < height:
                cv2.line(picture, (start, at), (min(start + 12, width), at), (255, 255, 255), 2)
    return picture


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m tools.figures",
                                     description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="figure", required=True)
    labels = commands.add_parser("labels", help="connectivity labels over real crops")
    labels.add_argument("--data", type=Path, required=True, help="dataset root")
    labels.add_argument("--config", type=Path, required=True, help="config with the label settings")
    labels.add_argument("--split", default="train")
    labels.add_argument("--count", type=int, default=3)
    labels.add_argument("--out", type=Path, default=Path("docs/labels.jpg"))
    graphs = commands.add_parser("graphs", help="skeleton vs connectivity graph of one tile")
    graphs.add_argument("--image", type=Path, required=True, help="the tile's image")
    graphs.add_argument("--skeleton", type=Path, required=True, help="graphs/<stem>.geojson of "
                        "test.py with graph.method skeleton (pixel coordinates)")
    graphs.add_argument("--connectivity", type=Path, required=True,
                        help="the same with graph.method connectivity")
    graphs.add_argument("--out", type=Path, default=Path("docs/graphs.jpg"))
    seams = commands.add_parser("seams", help="a scene's network across its block seams")
    seams.add_argument("--image", type=Path, required=True, help="the scene (one raster)")
    seams.add_argument("--network", type=Path, required=True, help="<name>.geojson of map_roads")
    seams.add_argument("--block", type=int, required=True, help="the --block of map_roads")
    seams.add_argument("--out", type=Path, default=Path("docs/seams.jpg"))
    args = parser.parse_args(argv)
    if args.figure == "labels":
        figure = labels_figure(args.data, args.config, args.split, args.count)
    elif args.figure == "seams":
        figure = seams_picture(args.image, args.network, args.block)
    else:
        image = read_image(args.image)
        gap = np.full((image.shape[0], 8, 3), 255, np.uint8)
        figure = np.hstack([graph_picture(image, args.skeleton), gap,
                            graph_picture(image, args.connectivity)])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(args.out), cv2.cvtColor(figure, cv2.COLOR_RGB2BGR),
                [cv2.IMWRITE_JPEG_QUALITY, 85])
    print(f"wrote {args.out}")


if __name__ == "__main__":
    run_cli(main)
