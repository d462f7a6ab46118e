"""The evaluation pipeline end to end on in-memory tiles and a stub network whose logits are known.

The stub says "road" exactly where the image's first channel is > 0 and gives those pixels the
connectivity class ROAD, every other pixel BACKGROUND, so every score follows from counting pixels.
Tiles are 96 x 128 px (windows of 64 px: 2 x 3 windows a tile), with straight rectangular roads:
- H: rows 44..52 across the whole width, 9 x 128 = 1152 px; its skeleton is one line at y = 48.
- V: columns 60..68 down the whole height, 9 x 96 = 864 px, 81 of them shared with H.
Tile `a` shows H and its truth is H (a perfect tile). Tile `b` shows H and V, its truth is H only:
the prediction has one extra road, 1935 - 1152 = 783 false positive pixels.
"""
import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from evaluation.pipeline import EvaluationSettings, evaluate
from evaluation.predictor import PredictorSettings, SlidingWindowPredictor
from evaluation.writer import PredictionWriter, write_tables
from roads.classes import BACKGROUND, CONNECTIVITY_CLASSES, ROAD

HEIGHT, WIDTH = 96, 128
TILE_PIXELS = HEIGHT * WIDTH
H_ROAD = (slice(44, 53), slice(None))
V_ROAD = (slice(None), slice(60, 69))

# Split counts, summed over tiles a and b.
TP, FP, FN = 1152 + 1152, 0 + 783, 0
ROAD_IOU = TP / (TP + FP + FN)                       # 2304 / 3087
PRECISION, RECALL = TP / (TP + FP), 1.0
F1 = 2 * TP / (2 * TP + FP + FN)                      # 4608 / 5391
# Relaxed (rho 3): V's pixels in rows 41..43 and 53..55 lie within 3 px of H, 6 x 9 = 54 px.
RELAXED_PRECISION = (1152 + 1152 + 54) / (1152 + 1935)
# Connectivity confusion: BACKGROUND->BACKGROUND 11136 + 10353, BACKGROUND->ROAD 783,
# ROAD->ROAD 2304; the other classes appear nowhere and are left out of the mean.
CONN_MIOU = ((11136 + 10353) / (11136 + 10353 + 783) + 2304 / (2304 + 783)) / 2
TILE_B_IOU = 1152 / 1935
TILE_B_CONN_MIOU = ((TILE_PIXELS - 1935) / (TILE_PIXELS - 1152) + TILE_B_IOU) / 2


class StubNetwork(nn.Module):
    """Logits known in advance: road (class 1 by +-20) where channel 0 > 0, and connectivity
    ROAD there, BACKGROUND elsewhere (by 20 against 0). Records the shapes it is given."""

    def __init__(self) -> None:
        super().__init__()
        self.shapes: list[tuple[int, ...]] = []

    def forward(self, x: torch.Tensor) -> SimpleNamespace:
        self.shapes.append(tuple(x.shape))
        road = (x[:, 0] > 0).float()
        segmentation = torch.stack([-20 * (2 * road - 1), 20 * (2 * road - 1)], dim=1)
        connectivity = torch.zeros(x.shape[0], CONNECTIVITY_CLASSES, *x.shape[2:])
        connectivity[:, ROAD] = 20 * road
        connectivity[:, BACKGROUND] = 20 * (1 - road)
        return SimpleNamespace(segmentation=[segmentation], connectivity=[connectivity])


def road_mask(*roads: tuple[slice, slice]) -> np.ndarray:
    """(H, W) bool mask of the given rectangular roads."""
    mask = np.zeros((HEIGHT, WIDTH), dtype=bool)
    for road in roads:
        mask[road] = True
    return mask


def make_item(folder: Path, stem: str, shown: np.ndarray, truth: np.ndarray | None) -> dict:
    """An evaluation item as the data loader makes it: the image shows `shown` (channel 0 +1 on
    road, -1 elsewhere), its PNG (no georeference) at `image_path`; truth None: no labels."""
    raw = np.repeat((shown * 255).astype(np.uint8)[..., None], 3, axis=2)
    path = folder / f"{stem}.png"
    cv2.imwrite(str(path), raw)
    image = torch.zeros(3, HEIGHT, WIDTH)
    image[0] = torch.from_numpy(np.where(shown, 1.0, -1.0))
    item = {"image": image, "raw_image": torch.from_numpy(raw), "stem": stem,
            "image_path": str(path), "geojson_path": ""}
    if truth is not None:
        item["mask"] = torch.from_numpy(truth.astype(np.int64))
        item["conn"] = torch.from_numpy(np.where(truth, ROAD, BACKGROUND).astype(np.int64))
    return item


@pytest.fixture(scope="module")
def tiles(tmp_path_factory) -> dict[str, dict]:
    folder = tmp_path_factory.mktemp("images")
    return {"a": make_item(folder, "a", road_mask(H_ROAD), road_mask(H_ROAD)),
            "b": make_item(folder, "b", road_mask(H_ROAD, V_ROAD), road_mask(H_ROAD)),
            "c": make_item(folder, "c", road_mask(), None)}


def run(items: list[dict], out: Path) -> tuple[dict, list[dict], PredictionWriter, StubNetwork]:
    network = StubNetwork()
    predictor = SlidingWindowPredictor(
        network, PredictorSettings(window=64, margin=8, batch_size=4, precision="fp32"))
    writer = PredictionWriter(out)
    summary, rows = evaluate(predictor, items, EvaluationSettings(), writer)
    return summary, rows, writer, network


@pytest.fixture(scope="module")
def labelled(tiles, tmp_path_factory):
    """Tiles b then a (rows must come back sorted by stem), evaluated and written."""
    return run([tiles["b"], tiles["a"]], tmp_path_factory.mktemp("labelled") / "out")


def geojson_lines(path: Path) -> list[np.ndarray]:
    features = json.loads(path.read_text())["features"]
    assert all(feature["geometry"]["type"] == "LineString" for feature in features)
    return [np.array(feature["geometry"]["coordinates"]) for feature in features]


def test_the_stub_is_run_window_by_window(labelled):
    *_, network = labelled
    # 2 x 3 windows of 64 x 64 a tile, in batches of at most 4.
    assert sum(shape[0] for shape in network.shapes) == 12
    assert all(shape[1:] == (3, 64, 64) and shape[0] <= 4 for shape in network.shapes)


def test_summary_scores_the_split_from_pixel_counts(labelled):
    summary, *_ = labelled
    assert summary["n_tiles"] == 2
    assert summary["road_iou"] == pytest.approx(ROAD_IOU)
    assert summary["precision"] == pytest.approx(PRECISION)
    assert summary["recall"] == RECALL
    assert summary["f1"] == pytest.approx(F1)
    assert summary["mean_image_iou"] == pytest.approx((1 + TILE_B_IOU) / 2)
    assert summary["relaxed_precision"] == pytest.approx(RELAXED_PRECISION)
    assert summary["relaxed_recall"] == 1.0
    assert summary["conn_miou"] == pytest.approx(CONN_MIOU)
    assert summary["apls_tiles"] == 2
    assert summary["apls_ground_truth"] == "mask"


def test_rows_hold_each_tiles_scores_sorted_by_stem(labelled):
    summary, rows, *_ = labelled
    assert [row["stem"] for row in rows] == ["a", "b"]
    perfect, extra = rows
    for name in ("iou", "precision", "recall", "f1", "relaxed_f1", "conn_miou", "apls",
                 "apls_gt_to_prop", "apls_prop_to_gt"):
        assert perfect[name] == 1.0, name
    # Soft-IoU loss is -IoU: -1 on a perfect tile; the connectivity loss is 0 there.
    assert perfect["seg"] == pytest.approx(-1.0, abs=1e-6)
    assert perfect["conn"] == pytest.approx(0.0, abs=1e-6)
    assert extra["iou"] == pytest.approx(TILE_B_IOU, abs=1e-6)
    assert extra["precision"] == pytest.approx(TILE_B_IOU, abs=1e-6)
    assert extra["recall"] == 1.0
    assert extra["conn_miou"] == pytest.approx(TILE_B_CONN_MIOU, abs=1e-6)
    assert extra["seg"] > perfect["seg"]
    # Every true road is found in the cross (up to the skeletons' 1 px wiggles at the ends), but
    # the extra road's paths are not in the truth.
    assert extra["apls_gt_to_prop"] == pytest.approx(1.0, abs=1e-3)
    assert extra["apls_prop_to_gt"] < 1.0 and extra["apls"] < 1.0
    # The summary's graph scores and losses are the means of the tiles'.
    for name in ("apls", "apls_gt_to_prop", "apls_prop_to_gt", "topo_f1", "seg", "conn"):
        assert summary[name] == pytest.approx((perfect[name] + extra[name]) / 2, abs=1e-6), name


def test_writer_writes_each_tiles_outputs(labelled):
    _, _, writer, _ = labelled
    out = writer.out
    for stem, shown in (("a", road_mask(H_ROAD)), ("b", road_mask(H_ROAD, V_ROAD))):
        mask = cv2.imread(str(out / "masks" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(mask, np.where(shown, 255, 0))
        probability = cv2.imread(str(out / "prob" / f"{stem}.png"), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(probability, np.where(shown, 255, 0))
        # The ROAD class is white in the palette, BACKGROUND black.
        conn = cv2.imread(str(out / "conn" / f"{stem}.png"))
        np.testing.assert_array_equal(conn, np.repeat(np.where(shown, 255, 0)[..., None], 3, 2))
        assert cv2.imread(str(out / "overlay" / f"{stem}.jpg")).shape == (HEIGHT, WIDTH, 3)
    # Without georeference the graphs are in pixels: tile a's one road along y = 48 (the
    # skeleton may bend by 1 px at its ends), tile b's cross as four roads from the crossing to
    # the borders.
    (line,) = geojson_lines(out / "graphs" / "a.geojson")
    assert np.all(np.abs(line[:, 1] - 48) <= 1)
    assert line[:, 0].min() < 8 and line[:, 0].max() > WIDTH - 9
    assert len(geojson_lines(out / "graphs" / "b.geojson")) == 4


def test_submission_lists_every_linestring_by_stem(labelled):
    _, _, writer, _ = labelled
    with open(writer.write_submission(), newline="") as file:
        header, *rows = list(csv.reader(file))
    assert header == ["ImageId", "WKT_Pix"]
    assert [stem for stem, _ in rows] == ["a", "b", "b", "b", "b"]
    assert all(wkt.startswith("LINESTRING (") for _, wkt in rows)
    points = [point.split() for point in rows[0][1][len("LINESTRING ("):-1].split(", ")]
    assert all(abs(float(y) - 48) <= 1 for _, y in points)


def test_write_tables_matches_the_summary_and_rows(labelled):
    summary, rows, writer, _ = labelled
    write_tables(writer.out, summary, rows)
    saved = json.loads((writer.out / "metrics.json").read_text())
    assert saved.keys() == summary.keys()
    for key, value in summary.items():
        if isinstance(value, float) and math.isnan(value):
            assert math.isnan(saved[key]), key
        else:
            assert saved[key] == value, key
    with open(writer.out / "per_image.csv", newline="") as file:
        table = list(csv.DictReader(file))
    assert [row["stem"] for row in table] == ["a", "b"]
    for written, row in zip(table, rows, strict=True):
        assert written.keys() == row.keys()
        assert {k: float(v) for k, v in written.items() if k != "stem"} == pytest.approx(
            {k: v for k, v in row.items() if k != "stem"})


def test_a_tile_without_truth_is_written_and_counted_but_not_scored(tiles, labelled, tmp_path):
    labelled_summary, labelled_rows, *_ = labelled
    summary, rows, writer, _ = run([tiles["c"], tiles["b"], tiles["a"]], tmp_path / "out")
    assert summary["n_tiles"] == 3
    assert summary["apls_tiles"] == 2
    assert {k: v for k, v in summary.items() if k != "n_tiles"} == pytest.approx(
        {k: v for k, v in labelled_summary.items() if k != "n_tiles"}, nan_ok=True)
    assert rows == labelled_rows
    mask = cv2.imread(str(writer.out / "masks" / "c.png"), cv2.IMREAD_UNCHANGED)
    np.testing.assert_array_equal(mask, np.zeros((HEIGHT, WIDTH)))
    assert (writer.out / "prob" / "c.png").is_file() and (writer.out / "conn" / "c.png").is_file()
    assert not (writer.out / "overlay" / "c.jpg").exists()  # no truth to overlay
    assert geojson_lines(writer.out / "graphs" / "c.geojson") == []
    with open(writer.write_submission(), newline="") as file:
        assert list(csv.reader(file))[-1] == ["c", "LINESTRING EMPTY"]


def test_a_split_without_truth_reports_only_its_tile_count(tiles, tmp_path):
    summary, rows, writer, _ = run([tiles["c"]], tmp_path / "out")
    assert summary == {"n_tiles": 1}
    assert rows == []
    assert (writer.out / "masks" / "c.png").is_file()
