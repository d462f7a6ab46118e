"""Augmentation keeps image, mask and labels aligned at both resolutions, and is reproducible."""
import cv2
import numpy as np
import pytest

from data_loader.transforms import (
    Augmentation,
    LabelledImage,
    normalize,
    random_crop,
    shift_hsv,
)
from roads.labels import quarter_mask

TILE, CROP = 96, 32


def block_max(labels: np.ndarray) -> np.ndarray:
    """A stand-in 1/4-resolution label: the max of each 4x4 block (any pooling would do here)."""
    h, w = labels.shape
    return labels.reshape(h // 4, 4, w // 4, 4).max(axis=(1, 3))


def grey_encoded_tile(seed: int = 0) -> LabelledImage:
    """A tile whose grey image encodes its labels: grey = 128 * mask + 25 * conn.

    Grey pixels survive RGB -> HSV -> RGB exactly, so a zero HSV shift leaves the code readable.
    """
    rng = np.random.default_rng(seed)
    mask = rng.random((TILE, TILE)) < 0.4
    conn = np.where(mask, rng.integers(1, 5, (TILE, TILE)), 0).astype(np.uint8)
    grey = (128 * mask + 25 * conn).astype(np.uint8)
    return LabelledImage(np.dstack([grey] * 3), mask, quarter_mask(mask), conn, block_max(conn))


def dihedral(array: np.ndarray) -> list[np.ndarray]:
    """The 8 images of an array under flips and rotations by k*90 degrees."""
    return [np.rot90(a, k) for a in (array, array[:, ::-1]) for k in range(4)]


def locate(crop: np.ndarray, tile: np.ndarray) -> tuple[int, int, int]:
    """(row, col, dihedral element) at which a transformed crop was taken from the tile.

    Only offsets that are multiples of 4 are searched: a crop found nowhere else fails the test.
    """
    size = crop.shape[0]
    found = [(row, col, element)
             for row in range(0, tile.shape[0] - size + 1, 4)
             for col in range(0, tile.shape[1] - size + 1, 4)
             for element, image in enumerate(dihedral(tile[row:row + size, col:col + size]))
             if np.array_equal(image, crop)]
    assert len(found) == 1
    return found[0]


def test_quarter_mask_area_average_with_edge_padding():
    mask = np.zeros((8, 8), bool)
    mask[0:2, 0:4] = True      # 8 of 16 pixels: a tie counts as road
    mask[0:4, 4] = True        # 4 of 16 pixels: not road
    mask[4:8, 4:8] = True
    np.testing.assert_array_equal(quarter_mask(mask), [[True, False], [False, True]])
    ragged = np.zeros((5, 6), bool)
    ragged[4, 0:4] = True      # the last row is replicated into 3 padding rows: 4 rows of 4
    out = quarter_mask(ragged)
    assert out.shape == (2, 2)
    np.testing.assert_array_equal(out, [[False, False], [True, False]])


def test_random_crop_offsets_are_multiples_of_four_and_quarters_match():
    tile = grey_encoded_tile()
    rows = set()
    for seed in range(20):
        crop = random_crop(tile, CROP, np.random.default_rng(seed))
        row, col, element = locate(crop.mask, tile.mask)
        assert element == 0
        rows.add(row)
        np.testing.assert_array_equal(crop.conn, tile.conn[row:row + CROP, col:col + CROP])
        np.testing.assert_array_equal(crop.mask_quarter, quarter_mask(crop.mask))
        np.testing.assert_array_equal(crop.conn_quarter, block_max(crop.conn))
    assert len(rows) > 5


def test_augmentation_keeps_everything_aligned():
    tile = grey_encoded_tile()
    augment = Augmentation(CROP, p=0.5, hue_shift=0, saturation_shift=0, value_shift=0)
    elements = set()
    for seed in range(40):
        out = augment(tile, np.random.default_rng(seed))
        assert out.image.shape == (CROP, CROP, 3) and out.conn_quarter.shape == (CROP // 4,) * 2
        assert all(a.flags.c_contiguous for a in (out.image, out.mask, out.conn))
        np.testing.assert_array_equal(out.image[..., 0], 128 * out.mask + 25 * out.conn)
        np.testing.assert_array_equal(out.mask_quarter, quarter_mask(out.mask))
        np.testing.assert_array_equal(out.conn_quarter, block_max(out.conn))
        elements.add(locate(out.mask, tile.mask)[2])
    assert elements == set(range(8))


def test_augmentation_is_reproducible_from_the_generator():
    tile = grey_encoded_tile()
    tile = LabelledImage(np.random.default_rng(1).integers(0, 256, (TILE, TILE, 3), np.uint8),
                         tile.mask, tile.mask_quarter, tile.conn, tile.conn_quarter)
    augment = Augmentation(CROP, p=0.5)
    first = augment(tile, np.random.default_rng(7))
    second = augment(tile, np.random.default_rng(7))
    other = augment(tile, np.random.default_rng(8))
    for name in ("image", "mask", "mask_quarter", "conn", "conn_quarter"):
        np.testing.assert_array_equal(getattr(first, name), getattr(second, name))
    assert not np.array_equal(first.image, other.image)


def hue_of(rgb: tuple[int, int, int]) -> int:
    return int(cv2.cvtColor(np.array([[rgb]], np.uint8), cv2.COLOR_RGB2HSV)[0, 0, 0])


def test_hsv_hue_wraps_at_180():
    magenta = np.full((2, 2, 3), (255, 0, 255), np.uint8)
    assert hue_of((255, 0, 255)) == 150
    shifted = shift_hsv(magenta, 40, 0, 0)
    assert hue_of(tuple(shifted[0, 0])) == 10           # 150 + 40 = 190 -> 10, an orange
    np.testing.assert_array_equal(shift_hsv(magenta, 30, 0, 0)[0, 0], (255, 0, 0))
    red = np.full((1, 1, 3), (255, 0, 0), np.uint8)
    assert hue_of(tuple(shift_hsv(red, -30, 0, 0)[0, 0])) == 150


def test_hsv_saturation_and_value_clip():
    white = np.full((1, 1, 3), 255, np.uint8)
    np.testing.assert_array_equal(shift_hsv(white, 0, 0, 15)[0, 0], (255, 255, 255))
    np.testing.assert_array_equal(shift_hsv(white, 0, -5, -15)[0, 0], (240, 240, 240))
    np.testing.assert_array_equal(shift_hsv(white, 0, 5, 0)[0, 0], (255, 250, 250))  # S 0 -> 5
    black = np.zeros((1, 1, 3), np.uint8)
    np.testing.assert_array_equal(shift_hsv(black, 0, 0, -15)[0, 0], (0, 0, 0))


def test_normalize():
    image = np.zeros((2, 3, 3), np.uint8)
    image[..., 0] = 255
    out = normalize(image, (0.5, 0.0, 0.5), (0.25, 1.0, 0.5))
    assert out.shape == (3, 2, 3) and out.dtype == np.float32
    np.testing.assert_allclose(out[:, 0, 0], (2.0, 0.0, -1.0))


@pytest.mark.parametrize("crop_size", [0, 100, 250])
def test_crop_size_must_be_a_multiple_of_32(crop_size):
    # The parameter's name; the config layer adds the key (data_loader.args.crop_size).
    with pytest.raises(ValueError, match="^crop_size: "):
        Augmentation(crop_size)


def test_crop_larger_than_tile_names_the_crop_size():
    with pytest.raises(ValueError, match="^crop_size: 128 is larger than a 96x96 tile"):
        random_crop(grey_encoded_tile(), 128, np.random.default_rng(0))
