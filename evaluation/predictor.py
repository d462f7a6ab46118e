"""Sliding-window prediction on whole tiles (SPEC section 5), shared by validation and test.py.

A tile is cut into overlapping square windows (stride = window - 2 * margin, the last window of each
row and column shifted inward so that it ends at the border). Every output pixel is taken from the
window in which it lies farthest from an inner edge, i.e. from a window edge that is not the tile
border: the `margin` pixels next to inner edges, where the network sees zero padding instead of the
neighbouring image, are discarded, while pixels at the tile border are kept as they are.
With `tta`, each window is also predicted under the 8 transforms of the dihedral group D4 and the
logits are averaged after undoing each transform.
"""
import contextlib
import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import NamedTuple, Protocol

import numpy as np
import torch
from torch import nn

from utils.settings import check


class D4Transform(NamedTuple):
    """One symmetry of the square acting on the last two (H, W) dimensions of a tensor."""
    name: str
    apply: Callable[[torch.Tensor], torch.Tensor]
    undo: Callable[[torch.Tensor], torch.Tensor]


def _rotate(k: int) -> Callable[[torch.Tensor], torch.Tensor]:
    return lambda x: torch.rot90(x, k, dims=(-2, -1))


def _flip_rows(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-2)


def _flip_columns(x: torch.Tensor) -> torch.Tensor:
    return x.flip(-1)


def _transpose(x: torch.Tensor) -> torch.Tensor:
    return x.transpose(-2, -1)


def _anti_transpose(x: torch.Tensor) -> torch.Tensor:
    """Reflection about the anti-diagonal: out[..., i, j] = x[..., H-1-j, W-1-i]."""
    return x.transpose(-2, -1).flip(-2, -1)


D4_TRANSFORMS: tuple[D4Transform, ...] = (
    D4Transform("identity", lambda x: x, lambda x: x),
    D4Transform("rot90", _rotate(1), _rotate(-1)),
    D4Transform("rot180", _rotate(2), _rotate(-2)),
    D4Transform("rot270", _rotate(3), _rotate(-3)),
    D4Transform("hflip", _flip_columns, _flip_columns),
    D4Transform("vflip", _flip_rows, _flip_rows),
    D4Transform("transpose", _transpose, _transpose),
    D4Transform("anti_transpose", _anti_transpose, _anti_transpose),
)


class ImageSource(Protocol):
    """An image the predictor reads window by window: a tensor in memory, or a raster on disk."""

    @property
    def shape(self) -> tuple[int, int]:
        """(H, W) of the image."""

    def read(self, top: int, left: int, height: int, width: int) -> torch.Tensor:
        """(3, height, width) float32, normalized, of the window at (top, left)."""


class TensorSource:
    """An ImageSource over a (3, H, W) normalized tensor in memory."""

    def __init__(self, image: torch.Tensor) -> None:
        self.image = image

    @property
    def shape(self) -> tuple[int, int]:
        return tuple(self.image.shape[-2:])

    def read(self, top: int, left: int, height: int, width: int) -> torch.Tensor:
        return self.image[:, top:top + height, left:left + width]


class WindowLogits(NamedTuple):
    """The kept part of one window: `region` (rows, columns) slices of the image and the float32
    CPU logits there, segmentation (2, h, w) and connectivity (5, h, w)."""

    region: tuple[slice, slice]
    segmentation: torch.Tensor
    connectivity: torch.Tensor


class AxisWindow(NamedTuple):
    """A window along one axis: pixels [start, start + size), of which [keep_start, keep_stop)
    (tile coordinates) go to the output."""
    start: int
    size: int
    keep_start: int
    keep_stop: int


def axis_windows(length: int, window: int, margin: int) -> list[AxisWindow]:
    """Windows covering one axis of `length` pixels, each with the part of it that is kept.

    A tile shorter than the window is one window of the tile's length. Otherwise the starts are
    0, stride, 2 * stride, ... and the last start is length - window. A pixel is kept from the
    window in which its distance to the nearest inner edge is largest (first window on ties).
    Along one axis these distances are tent-shaped, so each window keeps one interval, and since
    every pixel lies at least `margin` pixels inside one of the windows on the regular grid or the
    last one, every kept pixel is at least `margin` pixels from the inner edges of its window.
    Windows that would keep nothing are left out.
    """
    size = min(window, length)
    stride = window - 2 * margin
    starts = [*range(0, length - size, stride), length - size]
    positions = np.arange(length)
    # distance[i, p]: distance of pixel p to the nearest inner edge of window i (-1 outside it).
    distance = np.full((len(starts), length), -1.0)
    for i, start in enumerate(starts):
        stop = start + size
        to_left = positions - start if start > 0 else np.full(length, np.inf)
        to_right = stop - 1 - positions if stop < length else np.full(length, np.inf)
        inside = slice(start, stop)
        distance[i, inside] = np.minimum(to_left, to_right)[inside]
    owner = distance.argmax(axis=0)
    windows = []
    for i, start in enumerate(starts):
        kept = np.flatnonzero(owner == i)
        if kept.size:
            windows.append(AxisWindow(start, size, int(kept[0]), int(kept[-1]) + 1))
    return windows


@dataclass(frozen=True)
class PredictorSettings:
    """The `predictor` section: sliding windows, their batch, test-time augmentation, and the
    road-probability threshold that makes every mask the pipeline evaluates, writes and turns
    into graphs (0.5: the argmax of the two segmentation logits, SPEC 5)."""

    window: int = 512
    margin: int = 72
    batch_size: int = 4
    tta: bool = False
    threshold: float = 0.5

    def __post_init__(self) -> None:
        check(self.margin >= 0 and self.window > 2 * self.margin, "window",
              f"({self.window}) must exceed 2 * margin ({self.margin}) and margin must be >= 0")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        check(0.0 <= self.threshold < 1.0, "threshold", f"must lie in [0, 1), got {self.threshold}")


class SlidingWindowPredictor:
    """Whole-tile logits from a network trained on crops.

    model: forward((B, 3, h, w)) for any h, w returns an object whose `segmentation` and
    `connectivity` are lists of logits, the last entries at full resolution: (B, 2, h, w) and
    (B, 5, h, w). device defaults to the device of the model's parameters.
    """

    def __init__(self, model: nn.Module, settings: PredictorSettings = PredictorSettings(),
                 device: torch.device | None = None,
                 autocast_dtype: torch.dtype | None = None):
        window, margin, batch_size = settings.window, settings.margin, settings.batch_size
        if device is None:
            parameter = next(model.parameters(), None)
            device = parameter.device if parameter is not None else torch.device("cpu")
        self.model = model
        self.window = window
        self.margin = margin
        self.batch_size = batch_size
        self.transforms = D4_TRANSFORMS if settings.tta else D4_TRANSFORMS[:1]
        self.device = torch.device(device)
        self.autocast_dtype = autocast_dtype

    def __call__(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """image: (3, H, W) float, normalized. Returns float32 CPU logits (2, H, W) segmentation
        and (5, H, W) connectivity."""
        if image.dim() != 3:
            raise ValueError(f"image must be (3, H, W), got shape {tuple(image.shape)}")
        _, height, width = image.shape
        segmentation = connectivity = None
        for window in self.windows(TensorSource(image)):
            if segmentation is None:
                segmentation = torch.empty(window.segmentation.shape[0], height, width)
                connectivity = torch.empty(window.connectivity.shape[0], height, width)
            segmentation[(slice(None), *window.region)] = window.segmentation
            connectivity[(slice(None), *window.region)] = window.connectivity
        return segmentation, connectivity

    def windows(self, source: "ImageSource") -> Iterator["WindowLogits"]:
        """The kept part of every window of `source`, as the network predicts it, in batches of
        `batch_size` windows: memory depends on the batch, not on the scene."""
        height, width = source.shape
        windows = list(itertools.product(axis_windows(height, self.window, self.margin),
                                         axis_windows(width, self.window, self.margin)))
        was_training = self.model.training
        self.model.eval()
        try:
            for first in range(0, len(windows), self.batch_size):
                batch = windows[first:first + self.batch_size]
                crops = torch.stack([source.read(r.start, c.start, r.size, c.size)
                                     for r, c in batch])
                with torch.no_grad():
                    seg, conn = self._predict_crops(crops.to(self.device))
                for k, (r, c) in enumerate(batch):
                    kept = (slice(None), slice(r.keep_start - r.start, r.keep_stop - r.start),
                            slice(c.keep_start - c.start, c.keep_stop - c.start))
                    yield WindowLogits((slice(r.keep_start, r.keep_stop),
                                        slice(c.keep_start, c.keep_stop)),
                                       seg[k][kept], conn[k][kept])
        finally:
            self.model.train(was_training)

    def _predict_crops(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """crops: (B, 3, h, w) on the device. Returns float32 CPU logits (B, 2, h, w), (B, 5, h, w)
        averaged over the transforms."""
        seg_sum = conn_sum = 0.0
        for transform in self.transforms:
            with self._autocast():
                output = self.model(transform.apply(crops).contiguous())
            seg_sum = seg_sum + transform.undo(output.segmentation[-1].float())
            conn_sum = conn_sum + transform.undo(output.connectivity[-1].float())
        count = len(self.transforms)
        return (seg_sum / count).cpu(), (conn_sum / count).cpu()

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)
