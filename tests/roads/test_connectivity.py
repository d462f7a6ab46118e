"""Connectivity labels of drawn masks: classes, disks, invariance, 1/4 resolution, cache, CLI."""
import os

import cv2
import numpy as np
import pytest

from data_loader import label_cache
from data_loader.label_cache import LabelCache
from roads.classes import DEAD_END, FOUR_OR_MORE, IGNORE_INDEX, ROAD, THREE_WAY, colorize
from roads.ends import CutEnds
from roads.extraction import GraphSettings
from roads.labels import (
    LabelParams,
    LabelSettings,
    connectivity_labels,
    node_disks,
    render_labels,
)
from tests.conftest import drawn
from tools.labels import main
from utils.errors import ConfigError, DataError
from utils.settings import from_config


def ring(center=(100, 80), radius=50, width=24, size=(200, 200)) -> np.ndarray:
    mask = np.zeros(size, dtype=np.uint8)
    cv2.circle(mask, center, radius, 255, width)
    return mask


def five_way() -> np.ndarray:
    angles = np.arange(5) * 2 * np.pi / 5
    ends = [(int(100 + 150 * np.cos(a)), int(100 + 150 * np.sin(a))) for a in angles]
    return drawn(*[((100, 100), end, 24) for end in ends])


STRAIGHT = drawn(((0, 100), (199, 100), 30))
DEAD_END_ROAD = drawn(((0, 100), (150, 100), 30))
T_JUNCTION = drawn(((0, 100), (199, 100), 30), ((100, 100), (100, 199), 24))
CROSSING = drawn(((0, 100), (199, 100), 30), ((100, 0), (100, 199), 24))
# A T-junction and a dead end, no symmetry: each flip or rotation moves its disks differently.
ASYMMETRIC = drawn(((0, 60), (199, 60), 30), ((70, 60), (120, 170), 22))
MASKS = {
    "straight": STRAIGHT, "dead_end": DEAD_END_ROAD, "t": T_JUNCTION, "crossing": CROSSING,
    "five_way": five_way(), "ring": ring(),
    "lollipop": ring() | drawn(((100, 130), (100, 199), 24)),
    "asymmetric": ASYMMETRIC,
}


def classes(labels: np.ndarray) -> set[int]:
    return set(np.unique(labels).tolist())


@pytest.mark.parametrize("name, expected, disk_classes", [
    ("straight", {0, 2}, []),
    ("dead_end", {0, 1, 2}, [DEAD_END]),
    ("t", {0, 2, 3}, [THREE_WAY]),
    ("crossing", {0, 2, 4}, [FOUR_OR_MORE]),
    ("five_way", {0, 2, 4}, [FOUR_OR_MORE]),
    ("ring", {0, 2}, []),
    ("lollipop", {0, 2, 3}, [THREE_WAY]),
])
def test_classes_of_drawn_roads(name, expected, disk_classes):
    disks = node_disks(MASKS[name])
    assert sorted(disks[:, 3].astype(int).tolist()) == disk_classes
    full, quarter = connectivity_labels(MASKS[name])
    assert classes(full) == expected and classes(quarter) == expected


def test_road_pixels_are_the_mask_and_disks_span_the_road():
    full, _ = connectivity_labels(T_JUNCTION)
    road = T_JUNCTION > 0
    assert np.all(full[~road] != ROAD) and np.all(full[road] != 0)
    (x, y, radius, _), = node_disks(T_JUNCTION)
    # The inscribed circle at the junction touches the far edge of the 30 px road: radius ~15-16.
    assert 15 <= radius - LabelParams().disk_margin <= 17
    assert full[100, 100] == THREE_WAY
    assert np.all(full[85:116, 100] == THREE_WAY)  # across the 30 px road


def test_dead_end_disk_sits_at_the_end_not_at_the_cut_border():
    full, _ = connectivity_labels(DEAD_END_ROAD)
    (x, y, radius, node_class), = node_disks(DEAD_END_ROAD)
    assert node_class == DEAD_END and abs(y - 100) <= 1 and 140 <= x <= 150
    assert 15 <= radius - LabelParams().disk_margin <= 16.5
    assert full[100, 150] == DEAD_END and not np.any(full[:, :100] == DEAD_END)


def test_cut_road_border_test_follows_the_road_width():
    # The skeleton stops ~a half-width before the border: 40 px roads stop ~20 px before it.
    wide = drawn(((0, 100), (199, 100), 40))
    assert len(node_disks(wide)) == 0
    # A dead end whose cap ends 12 px before the border is a dead end.
    assert node_disks(drawn(((0, 100), (172, 100), 30)))[:, 3].tolist() == [DEAD_END]


def test_empty_mask_and_odd_sizes():
    full, quarter = connectivity_labels(np.zeros((150, 203), dtype=bool))
    assert full.shape == (150, 203) and quarter.shape == (38, 51)
    assert full.dtype == quarter.dtype == np.uint8
    assert not full.any() and not quarter.any()


def dihedral_maps(height: int, width: int):
    """(array transform, (K, 2) x, y point transform) for flips, rotations and the transpose."""
    yield np.fliplr, lambda p: np.c_[width - 1 - p[:, 0], p[:, 1]]
    yield np.flipud, lambda p: np.c_[p[:, 0], height - 1 - p[:, 1]]
    yield np.rot90, lambda p: np.c_[p[:, 1], width - 1 - p[:, 0]]
    yield (lambda a: np.rot90(a, 2)), lambda p: np.c_[width - 1 - p[:, 0], height - 1 - p[:, 1]]
    yield np.transpose, lambda p: p[:, ::-1]


@pytest.mark.parametrize("name", ["asymmetric", "dead_end", "t", "five_way"])
def test_node_classes_are_invariant_under_flips_and_rotations(name):
    mask = MASKS[name]
    disks = node_disks(mask)
    full, quarter = connectivity_labels(mask)
    for transform, move in dihedral_maps(*mask.shape):
        moved = node_disks(np.ascontiguousarray(transform(mask)))
        assert sorted(moved[:, 3].tolist()) == sorted(disks[:, 3].tolist())
        for x, y, _, node_class in np.c_[move(disks[:, :2]), disks[:, 2:]]:
            same_class = moved[moved[:, 3] == node_class]
            assert np.min(np.hypot(same_class[:, 0] - x, same_class[:, 1] - y)) <= 2.0
        moved_full, moved_quarter = connectivity_labels(transform(mask))
        assert classes(moved_full) == classes(transform(full))
        assert classes(moved_quarter) == classes(transform(quarter))
        # Disks move by at most a pixel or two: the labels agree almost everywhere.
        assert np.mean(moved_full != transform(full)) < 0.01


def test_quarter_label_keeps_every_disk_of_narrow_roads():
    # 5 px roads, no disk margin: the dead-end disks have radius 2 at full resolution, 0.5 px at
    # 1/4 without the minimum radius; the road itself is thinner than a 4x4 block.
    narrow = drawn(((0, 40), (199, 40), 5), ((60, 40), (60, 150), 5), ((130, 40), (130, 0), 5),
                   ((130, 40), (130, 150), 5))
    params = LabelParams(spur_length=10, disk_margin=0)
    disks = node_disks(narrow, params)
    assert sorted(disks[:, 3].tolist()) == [DEAD_END, DEAD_END, THREE_WAY, FOUR_OR_MORE]
    assert np.all(disks[disks[:, 3] == DEAD_END, 2] / 4 < 1)
    full, quarter = connectivity_labels(narrow, params)
    assert classes(full) == classes(quarter) == {0, 1, 2, 3, 4}
    for x, y, _, node_class in disks:
        row, col = (int(round((v + 0.5) / 4 - 0.5)) for v in (y, x))
        assert quarter[row, col] == node_class


def test_render_places_quarter_disks_on_the_same_ground():
    disks = np.array([[10.0, 21.0, 0.5, DEAD_END], [33.5, 6.0, 8.0, THREE_WAY]])
    full, quarter = render_labels(np.zeros((40, 48), bool), disks)
    assert full[21, 10] == DEAD_END and np.count_nonzero(full == DEAD_END) == 1
    # Full pixel 10 lies in quarter block 2 (pixels 8..11), pixel 21 in block 5 (20..23).
    assert quarter[5, 2] == DEAD_END and np.count_nonzero(quarter == DEAD_END) <= 4
    assert np.count_nonzero(full == THREE_WAY) == pytest.approx(np.pi * 64, rel=0.1)
    assert np.count_nonzero(quarter == THREE_WAY) == pytest.approx(np.pi * 4, rel=0.35)


def test_cache_returns_identical_labels_and_reuses_the_disk_file(tmp_path, monkeypatch):
    mask_path = tmp_path / "tile.png"
    cv2.imwrite(str(mask_path), ASYMMETRIC)
    expected = connectivity_labels(ASYMMETRIC)
    cache = LabelCache(LabelParams(), tmp_path / "cache")
    first = cache.labels(mask_path, ASYMMETRIC)
    files = list((tmp_path / "cache").iterdir())
    assert len(files) == 1 and files[0].suffix == ".npz"
    calls = []
    monkeypatch.setattr(label_cache, "node_disks",
                        lambda *args: calls.append(args) or np.zeros((0, 4)))
    second = LabelCache(LabelParams(), tmp_path / "cache").labels(mask_path, ASYMMETRIC)
    for a, b, c in zip(expected, first, second, strict=False):
        np.testing.assert_array_equal(a, b)
        np.testing.assert_array_equal(a, c)
    assert calls == []
    # A new mtime, or other parameters, derive anew.
    os.utime(mask_path, ns=(0, 10**9))
    LabelCache(LabelParams(), tmp_path / "cache").labels(mask_path, ASYMMETRIC)
    LabelCache(LabelParams(disk_margin=5), tmp_path / "cache").labels(mask_path, ASYMMETRIC)
    assert len(calls) == 2 and len(list((tmp_path / "cache").iterdir())) == 3


def test_cache_without_folder_keeps_labels_in_memory(tmp_path, monkeypatch):
    mask_path = tmp_path / "tile.png"
    cv2.imwrite(str(mask_path), T_JUNCTION)
    cache = LabelCache(LabelParams(), None)
    first = cache.labels(mask_path, T_JUNCTION)
    monkeypatch.setattr(label_cache, "node_disks", None)
    np.testing.assert_array_equal(cache.labels(mask_path, T_JUNCTION)[0], first[0])
    assert list(tmp_path.iterdir()) == [mask_path]


def test_label_params_reject_bad_values():
    with pytest.raises(ValueError, match="disk_margin: expected a number >= 0"):
        LabelParams(disk_margin=-1)
    with pytest.raises(ValueError, match="min_quarter_radius: must be >= 1"):
        LabelParams(min_quarter_radius=0.5)


def test_label_settings_are_ground_units_converted_per_tile():
    graph, labels = GraphSettings(), LabelSettings()
    assert labels.params(graph, None) == LabelParams()  # 0.3 m: the pixel defaults
    at_one_metre = labels.params(graph, (1.0, 1.0))
    assert at_one_metre.spur_length == pytest.approx(9.0)
    assert at_one_metre.disk_margin == pytest.approx(0.9)
    assert at_one_metre.min_object_area == 18 and at_one_metre.hole_area == 36
    assert at_one_metre.border_margin == pytest.approx(1.2)  # the graph section's road-end rule
    with pytest.raises(ConfigError, match="'data_loader.args.labels.disk_margin_m': must be"):
        from_config(LabelSettings, {"disk_margin_m": -1}, "data_loader.args.labels")


def test_colorize_palette():
    picture = colorize(np.array([[0, 1, 2], [3, 4, 255]], dtype=np.int64))
    assert picture.shape == (2, 3, 3) and picture.dtype == np.uint8
    assert picture[0, 0].tolist() == [0, 0, 0] and picture[1, 2].tolist() == [128, 128, 128]
    assert len({tuple(rgb) for rgb in picture.reshape(-1, 3).tolist()}) == 6
    with pytest.raises(ValueError, match="7"):
        colorize(np.array([[7]]))


def test_command_writes_class_ids_and_pictures(tmp_path):
    mask_path = tmp_path / "mask.png"
    cv2.imwrite(str(mask_path), CROSSING)
    main([str(mask_path), str(tmp_path / "conn.png"), "--quarter", str(tmp_path / "conn4.png")])
    full, quarter = connectivity_labels(CROSSING)
    for name, expected in (("conn.png", full), ("conn4.png", quarter)):
        written = cv2.imread(str(tmp_path / name), cv2.IMREAD_UNCHANGED)
        np.testing.assert_array_equal(written, expected)
    main([str(mask_path), str(tmp_path / "color.png"), "--color"])
    picture = cv2.cvtColor(cv2.imread(str(tmp_path / "color.png")), cv2.COLOR_BGR2RGB)
    np.testing.assert_array_equal(picture, colorize(full))


def test_command_names_an_unreadable_mask(tmp_path):
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(DataError, match="broken.png"):
        main([str(bad), str(tmp_path / "out.png")])
    with pytest.raises(DataError, match="missing.png"):
        main([str(tmp_path / "missing.png"), str(tmp_path / "out.png")])


def test_unwritable_cache_folder_warns_and_keeps_labels_in_memory(tmp_path):
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should go")
    mask_path = tmp_path / "mask.png"
    cv2.imwrite(str(mask_path), T_JUNCTION)
    cache = LabelCache(LabelParams(), blocker / "cache")
    with pytest.warns(UserWarning, match="label cache not writable"):
        full, _ = cache.labels(mask_path, T_JUNCTION)
    assert THREE_WAY in full
    again, _ = cache.labels(mask_path, T_JUNCTION)
    np.testing.assert_array_equal(full, again)


def invalid_beyond(column: int, shape=(200, 200)) -> np.ndarray:
    """(H, W) bool validity: no image data from `column` on (a scene edge through the tile)."""
    valid = np.ones(shape, bool)
    valid[:, column:] = False
    return valid


def test_a_road_running_into_no_data_is_not_a_dead_end():
    # The road's cap ends at x = 165; its image stops at x = 160 (SpaceNet's black scene edge).
    assert len(node_disks(DEAD_END_ROAD, valid=invalid_beyond(160))) == 0
    # No-data far from the end changes nothing: the dead end stays.
    far = node_disks(DEAD_END_ROAD, valid=invalid_beyond(190))
    np.testing.assert_array_equal(far, node_disks(DEAD_END_ROAD))
    # A junction next to no-data stays a junction.
    assert node_disks(T_JUNCTION, valid=invalid_beyond(180))[:, 3].tolist() == [THREE_WAY]


def test_invalid_pixels_are_ignored_at_both_resolutions():
    valid = invalid_beyond(150)
    valid[:6] = False  # also a strip thinner than a 4x4 block's half at the top
    full, quarter = connectivity_labels(CROSSING, valid=valid)
    assert (full[~valid] == IGNORE_INDEX).all() and (full[valid] != IGNORE_INDEX).all()
    assert (quarter[:, 150 // 4 + 1:] == IGNORE_INDEX).all()
    assert (quarter[:1] == IGNORE_INDEX).all() and (quarter[2:, :36] != IGNORE_INDEX).all()
    plain_full, plain_quarter = connectivity_labels(CROSSING)
    np.testing.assert_array_equal(full[valid], plain_full[valid])
    assert full[100, 100] == FOUR_OR_MORE
    # All valid is the same as no validity at all.
    for a, b in zip(connectivity_labels(CROSSING, valid=np.ones((200, 200), bool)),
                    (plain_full, plain_quarter), strict=True):
        np.testing.assert_array_equal(a, b)


def test_cache_key_follows_the_validity(tmp_path, monkeypatch):
    mask_path = tmp_path / "tile.png"
    cv2.imwrite(str(mask_path), DEAD_END_ROAD)
    cache = LabelCache(LabelParams(), tmp_path / "cache")
    with_dead_end = cache.labels(mask_path, DEAD_END_ROAD)[0]
    cut = cache.labels(mask_path, DEAD_END_ROAD, invalid_beyond(160))[0]
    assert (with_dead_end == DEAD_END).any() and not (cut == DEAD_END).any()
    assert (cut[:, 160:] == IGNORE_INDEX).all()
    assert len(list((tmp_path / "cache").iterdir())) == 2
    np.testing.assert_array_equal(
        cache.labels(mask_path, DEAD_END_ROAD, np.ones((200, 200), bool))[0], with_dead_end)


def test_one_road_end_rule_for_the_tile_border_and_no_data():
    """A road end whose cross-section reaches the border or no-data (within the margin) is cut;
    an end well inside the valid area is not."""
    road = np.zeros((60, 100), bool)
    road[25:35, 0:40] = True  # from the left border to x = 39
    valid = np.ones_like(road)
    valid[:, 70:] = False
    ends = CutEnds(road, valid, margin=4.0)
    assert ends.is_cut(2.0, 30.0)  # at the tile border
    assert not ends.is_cut(35.0, 30.0)  # the free end, 30 px from no-data
    road[25:35, 40:66] = True  # now running to 4 px before the no-data
    ends = CutEnds(road, valid, margin=4.0)
    assert ends.is_cut(61.0, 30.0) and not CutEnds(road, None, margin=4.0).is_cut(61.0, 30.0)
