"""Training augmentation: random crop, HSV jitter, flips, rotations by k*90 degrees.

All randomness comes from a `np.random.Generator` passed in, so that a sample depends only on the
generator's seed, never on global state or on which worker process draws it. Geometric transforms
apply identically to the image, the mask and the connectivity labels at full and 1/4 resolution;
connectivity classes are invariant under the dihedral group, so labels are moved, never remapped.
"""
from dataclasses import dataclass, fields, replace

import cv2
import numpy as np

from roads.labels import QUARTER
from utils.settings import check

SPACENET_MEAN = (0.334, 0.329, 0.326)
SPACENET_STD = (0.161, 0.153, 0.144)

# The hourglass halves the 1/4-resolution features three times, so inputs must divide by 32;
# quarter-resolution labels crop exactly only at offsets that are multiples of 4 (QUARTER).
CROP_MULTIPLE = 32


@dataclass(frozen=True)
class LabelledImage:
    """An image with its targets, all as numpy arrays.

    image (H, W, 3) uint8 RGB; mask (H, W) bool; conn (H, W) uint8 classes 0..4 or 255;
    mask_quarter and conn_quarter (ceil(H/4), ceil(W/4)) the same at 1/4 resolution.
    """

    image: np.ndarray
    mask: np.ndarray
    mask_quarter: np.ndarray
    conn: np.ndarray
    conn_quarter: np.ndarray

    def map_geometry(self, transform) -> "LabelledImage":
        """Apply the same array transform (a flip, a rotation) to every field."""
        return LabelledImage(*(transform(getattr(self, field.name)) for field in fields(self)))


def random_crop(sample: LabelledImage, crop_size: int, rng: np.random.Generator) -> LabelledImage:
    """A crop_size x crop_size window whose offsets are multiples of 4, so the quarter labels
    crop at exactly offset/4 and cover the same ground."""
    height, width = sample.mask.shape
    check(height >= crop_size and width >= crop_size, "crop_size",
          f"{crop_size} is larger than a {height}x{width} tile")
    row = QUARTER * int(rng.integers(0, (height - crop_size) // QUARTER + 1))
    col = QUARTER * int(rng.integers(0, (width - crop_size) // QUARTER + 1))
    full = np.s_[row : row + crop_size, col : col + crop_size]
    q_row, q_col, q_size = row // QUARTER, col // QUARTER, crop_size // QUARTER
    quarter = np.s_[q_row : q_row + q_size, q_col : q_col + q_size]
    return LabelledImage(
        sample.image[full],
        sample.mask[full],
        sample.mask_quarter[quarter],
        sample.conn[full],
        sample.conn_quarter[quarter],
    )


def shift_hsv(image: np.ndarray, hue: int, saturation: int, value: int) -> np.ndarray:
    """(H, W, 3) uint8 RGB with hue shifted modulo 180 (OpenCV units) and saturation and value
    shifted with clipping to 0..255."""
    hsv = cv2.cvtColor(image, cv2.COLOR_RGB2HSV).astype(np.int16)
    hsv[..., 0] = (hsv[..., 0] + hue) % 180
    hsv[..., 1] = np.clip(hsv[..., 1] + saturation, 0, 255)
    hsv[..., 2] = np.clip(hsv[..., 2] + value, 0, 255)
    return cv2.cvtColor(hsv.astype(np.uint8), cv2.COLOR_HSV2RGB)


def normalize(image: np.ndarray, mean: tuple[float, ...], std: tuple[float, ...]) -> np.ndarray:
    """(3, H, W) float32 from an (H, W, 3) uint8 image: /255, then per-channel (x - mean) / std."""
    scaled = image.astype(np.float32) / 255.0
    scaled -= np.asarray(mean, dtype=np.float32)
    scaled /= np.asarray(std, dtype=np.float32)
    return np.ascontiguousarray(scaled.transpose(2, 0, 1))


@dataclass(frozen=True)
class Augmentation:
    """The training transform: crop, then each of HSV jitter, horizontal flip, vertical flip and
    rotation by k*90 degrees (k in 1..3) with probability `p`.

    Shift ranges are the authors' (inclusive, uniform integers): hue +-30, saturation +-5,
    value +-15. The three HSV shifts are drawn together as one jitter, as in their code.
    Cropping comes first so the colour conversion works on the small window only.
    """

    crop_size: int = 256
    p: float = 0.5
    hue_shift: int = 30
    saturation_shift: int = 5
    value_shift: int = 15

    def __post_init__(self):
        check(self.crop_size > 0 and self.crop_size % CROP_MULTIPLE == 0, "crop_size",
              f"{self.crop_size} must be a positive multiple of {CROP_MULTIPLE} (the network "
              "downsamples by 32)")
        check(0.0 <= self.p <= 1.0, "p", f"{self.p} must lie in [0, 1]")

    def __call__(self, sample: LabelledImage, rng: np.random.Generator) -> LabelledImage:
        sample = random_crop(sample, self.crop_size, rng)
        if rng.random() < self.p:
            hue, saturation, value = (
                int(rng.integers(-limit, limit + 1))
                for limit in (self.hue_shift, self.saturation_shift, self.value_shift)
            )
            sample = replace(sample, image=shift_hsv(sample.image, hue, saturation, value))
        if rng.random() < self.p:
            sample = sample.map_geometry(lambda array: array[:, ::-1])
        if rng.random() < self.p:
            sample = sample.map_geometry(lambda array: array[::-1])
        if rng.random() < self.p:
            turns = int(rng.integers(1, 4))
            sample = sample.map_geometry(lambda array: np.rot90(array, turns))
        return sample.map_geometry(np.ascontiguousarray)
