"""City scale: the graph step out of core on scenes of growing size, and its seams.

    python -m benchmarks.bench_city --sizes 10000 40000 [--block 4096]
    python -m benchmarks.bench_city --seams 10000 --seam-blocks 1024 2048 4096

Each scene is a synthetic road probability raster (`benchmarks.synthetic.
write_road_probability_scene`: a street lattice with arterials, occlusions and blobs of false
positives, as a poorly trained network predicts a city; SpaceNet's 0.3 m pixels), written window by
window. `--sizes`: `python -m tools.graph_roads` on it, as a user runs it, one process per scene;
seconds, seconds per megapixel, km2 per hour and the command's peak resident memory. `--seams`:
the graph of the whole scene in memory (`roads.extraction.extract_graph`) against the block-wise
graphs stitched at the seams (`mapping.stitch`) for each block size: the junctions and ends that
differ, edges, total road length, and APLS and TOPO F1 (ours, `evaluation.graph_metrics.tile.
score_graphs`, SpaceNet's 0.3 m pixels in metres) of the stitched graph against the whole one,
scored on every 2000 px window of the scene (both graphs clipped to it: APLS of a whole city graph
would take hours) and reported as the mean and the minimum over the windows; 1 when they are the
same roads.
"""
import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import rasterio

from benchmarks.harness import machine_line, measured_command, time_call
from benchmarks.synthetic import SPACENET_METRES_PER_PIXEL, write_road_probability_scene
from evaluation.graph_metrics.tile import AplsSettings, score_graphs
from evaluation.predictor import PredictorSettings
from mapping.blocks import block_grid
from mapping.stitch import Rasters, assemble, block_graph, clip_to_core, halo_needed, stitch
from roads.extraction import GraphSettings, extract_graph
from roads.graph import graph_to_lines, lines_to_graph
from utils.errors import run_cli

REPO = Path(__file__).resolve().parents[1]
PIXEL = (SPACENET_METRES_PER_PIXEL, SPACENET_METRES_PER_PIXEL)
SCORE_WINDOW = 2000


def graph_command(scene: Path, out: Path, block: int) -> dict:
    """One `tools.graph_roads` run on `scene`: its time, rate and peak memory."""
    seconds, peak, _ = measured_command(
        ["-m", "tools.graph_roads", str(scene), "--out", str(out), "--block", str(block)],
        REPO)
    with rasterio.open(scene) as dataset:
        size = dataset.width
    megapixels = size * size / 1e6
    km2 = megapixels * SPACENET_METRES_PER_PIXEL ** 2
    edges = len(json.loads((out / f"{scene.stem}.geojson").read_text())["features"])
    return {"size": size, "block": block, "seconds": round(seconds, 1),
            "seconds_per_megapixel": round(seconds / megapixels, 3),
            "km2_per_hour": round(km2 / (seconds / 3600)), "peak_rss_gib": round(peak, 2),
            "edges": edges}


def seams(scene: Path, blocks: list[int]) -> list[dict]:
    """The stitched graph against the whole-scene graph, for each block size."""
    threshold = PredictorSettings().threshold
    with rasterio.open(scene) as dataset:
        probability = dataset.read(1)
    mask = probability / 255.0 > threshold
    settings = GraphSettings()
    whole_timing = time_call(lambda: extract_graph(mask, settings, pixel_size_m=PIXEL))
    whole = whole_timing.value
    valid = np.ones_like(mask)

    def read(top: int, left: int, height: int, width: int) -> Rasters:
        window = (slice(top, top + height), slice(left, left + width))
        return Rasters(mask[window], probability[window], None, valid[window])

    halo = halo_needed(settings, PIXEL)
    epsilon = settings.pixels(PIXEL)["simplify_epsilon"]
    rows = []
    for size in blocks:
        timing = time_call(lambda size=size: assemble(stitch(
            (block_graph(read, block, mask.shape, halo, settings, PIXEL)
             for block in block_grid(mask.shape, size)), epsilon)))
        stitched = timing.value
        scores = windowed_scores(whole, stitched, mask.shape)
        rows.append({"scene": mask.shape[0], "block": size, "halo": halo,
                     "whole_nodes": whole.number_of_nodes(),
                     "stitched_nodes": stitched.number_of_nodes(),
                     "junctions_and_ends_differing": len(_ends(whole) ^ _ends(stitched)),
                     "whole_edges": whole.number_of_edges(),
                     "stitched_edges": stitched.number_of_edges(),
                     "length_difference": round(_length(stitched) / _length(whole) - 1, 6),
                     "apls_mean": round(float(np.mean(scores["apls"])), 4),
                     "apls_min": round(float(np.min(scores["apls"])), 4),
                     "topo_f1_mean": round(float(np.mean(scores["topo_f1"])), 4),
                     "topo_f1_min": round(float(np.min(scores["topo_f1"])), 4),
                     "windows": len(scores["apls"]), "whole_seconds": round(whole_timing.median, 1),
                     "stitched_seconds": round(timing.median, 1)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def windowed_scores(truth, proposal, shape: tuple[int, int]) -> dict[str, list[float]]:
    """APLS and TOPO F1 of `proposal` against `truth` on every SCORE_WINDOW window of a scene of
    `shape`, both graphs clipped to the window."""
    truth_lines, proposal_lines = graph_to_lines(truth), graph_to_lines(proposal)
    scores: dict[str, list[float]] = {"apls": [], "topo_f1": []}
    settings = AplsSettings(units="metres")
    for top in range(0, shape[0], SCORE_WINDOW):
        for left in range(0, shape[1], SCORE_WINDOW):
            window = (left - 0.5, top - 0.5, left + SCORE_WINDOW - 0.5, top + SCORE_WINDOW - 0.5)
            graphs = [lines_to_graph([piece - (left, top) for line in lines
                                      for piece, _, _ in clip_to_core(line, window)])
                      for lines in (truth_lines, proposal_lines)]
            if graphs[0].number_of_edges() == 0:
                continue
            result = score_graphs(*graphs, settings, pixel_size_m=PIXEL)
            scores["apls"].append(result["apls"])
            scores["topo_f1"].append(result["topo_f1"])
    return scores


def _ends(graph) -> set:
    return {(tuple(np.round(graph.nodes[node]["pos"], 6)), degree)
            for node, degree in graph.degree() if degree != 2}


def _length(graph) -> float:
    return sum(length for *_, length in graph.edges(data="length"))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_city",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[10000, 40000])
    parser.add_argument("--block", type=int, default=4096)
    parser.add_argument("--seams", type=int, help="scene size of the seam comparison")
    parser.add_argument("--seam-blocks", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    print(machine_line())
    with tempfile.TemporaryDirectory() as temporary:
        folder = Path(temporary)
        for size in args.sizes:
            scene = folder / f"city{size}.tif"
            write_road_probability_scene(size, args.seed, scene)
            print(json.dumps(graph_command(scene, folder / f"out{size}", args.block)),
                  flush=True)
            scene.unlink()
        if args.seams:
            scene = folder / f"seams{args.seams}.tif"
            write_road_probability_scene(args.seams, args.seed, scene)
            seams(scene, args.seam_blocks)


if __name__ == "__main__":
    run_cli(main)
