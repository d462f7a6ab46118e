"""Sliding-window prediction on whole tiles, shared by validation and test.py.

A tile is cut into overlapping square windows (stride = window - 2 * margin, the last window of each
row and column shifted inward so that it ends at the border). Every output pixel is taken from the
window in which it lies farthest from an inner edge, i.e. from a window edge that is not the tile
border: the `margin` pixels next to inner edges, where the network sees zero padding instead of the
neighbouring image, are discarded, while pixels at the tile border are kept as they are.
With `tta`, each window is also predicted under the 8 transforms of the dihedral group D4 and the
logits are averaged after undoing each transform; the (window, transform) pairs of a whole tile
are batched together, so that TTA costs 8 plain passes.

Precision: `fp32` runs the network as trained, in float32 (bit-for-bit today's results); `auto`
runs it under bf16 autocast with channels-last tensors where the device computes bf16 natively
(CUDA, or CPUs with AVX-512 BF16 / AMX; see `fast_dtype_for`), fp16 on older GPUs, and fp32
elsewhere. Speed-ups and agreement with fp32 (mask IoU 0.997 on a trained network) are in
benchmarks/RESULTS.md.
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


PRECISIONS = ("fp32", "auto")


def fast_dtype_for(device: torch.device) -> torch.dtype | None:
    """The reduced precision that speeds up inference on `device`; None where fp32 is fastest.

    CUDA: bf16 where the GPU supports it, else fp16 (inference needs no gradient scaler). CPU:
    bf16 where the cores compute it natively (AVX-512 BF16 or AMX); elsewhere oneDNN emulates
    bf16, which is slower than fp32.
    """
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and (torch.cpu._is_avx512_bf16_supported()
                                 or torch.cpu._is_amx_tile_supported()):
        return torch.bfloat16
    return None


@dataclass(frozen=True)
class PredictorSettings:
    """How whole tiles are predicted, and the one threshold that makes their masks.

    window: side of the square windows (pixels); margin: pixels discarded next to inner window
    edges; batch_size: windows (each TTA transform counting as one) per forward pass; tta: average
    the 8 D4 transforms; precision: `fp32` (the network as trained, exactly) or `auto` (reduced
    precision and channels-last where the device computes it natively, see `fast_dtype_for`);
    compile: run the network through torch.compile, compiled on the first tile and reused for the
    others (pays off over many tiles only: compiling takes minutes on a few CPU cores);
    threshold: the road probability above which a pixel is road, the one threshold of every mask
    that the evaluation pipeline scores, writes and turns into graphs (it reads it from its
    predictor's settings); 0.5 is the argmax of the two segmentation logits.
    """
    window: int = 512
    margin: int = 72
    batch_size: int = 4
    tta: bool = False
    precision: str = "auto"
    compile: bool = False
    threshold: float = 0.5

    def __post_init__(self) -> None:
        for name in ("window", "margin", "batch_size"):
            value = getattr(self, name)
            check(isinstance(value, int) and not isinstance(value, bool), name,
                  f"expected an integer, got {value!r}")
        for name in ("tta", "compile"):
            value = getattr(self, name)
            check(isinstance(value, bool), name, f"expected true or false, got {value!r}")
        check(self.margin >= 0, "margin", f"must be >= 0, got {self.margin}")
        check(self.window > 2 * self.margin, "window",
              f"must exceed 2 * margin = {2 * self.margin}, got {self.window}")
        check(self.batch_size >= 1, "batch_size", f"must be >= 1, got {self.batch_size}")
        check(self.precision in PRECISIONS, "precision",
              f"must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        check(0.0 <= self.threshold < 1.0, "threshold",
              f"must lie in [0, 1), got {self.threshold}")


class SlidingWindowPredictor:
    """Whole-tile logits from a network trained on crops.

    model: forward((B, 3, h, w)) for any h, w returns an object whose `segmentation` and
    `connectivity` are lists of logits, the last entries at full resolution: (B, 2, h, w) and
    (B, 5, h, w). device defaults to the device of the model's parameters. The predictor reads
    the model's current weights at every call, so one predictor serves a whole training run.
    """

    def __init__(self, model: nn.Module, settings: PredictorSettings = PredictorSettings(),
                 device: torch.device | None = None):
        if device is None:
            parameter = next(model.parameters(), None)
            device = parameter.device if parameter is not None else torch.device("cpu")
        self.model = model
        self.settings = settings
        self.device = torch.device(device)
        self.transforms = D4_TRANSFORMS if settings.tta else D4_TRANSFORMS[:1]
        self.autocast_dtype = fast_dtype_for(self.device) if settings.precision == "auto" else None
        # Channels-last only with reduced precision: fp32 stays bit-for-bit the eager network.
        self.memory_format = (torch.channels_last if self.autocast_dtype is not None
                              else torch.contiguous_format)
        self._network = torch.compile(model) if settings.compile else model

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
        """The kept part of every window of `source` as the network predicts it (averaged over
        the TTA transforms), window by window: memory follows the batch, not the image.

        Every (window, transform) pair runs in batches of `batch_size`; a window is yielded once
        all its transforms are in. Each window is read from the source once.
        """
        height, width = source.shape
        windows = list(itertools.product(
            axis_windows(height, self.settings.window, self.settings.margin),
            axis_windows(width, self.settings.window, self.settings.margin)))
        was_training = self.model.training
        self.model.eval()
        try:
            # window index -> {transform index: (seg, conn) logits undone}
            pending: dict[int, dict[int, tuple[torch.Tensor, torch.Tensor]]] = {}
            crops: dict[int, torch.Tensor] = {}
            for batch in self._batches(len(windows), windows[0][0].size, windows[0][1].size):
                for w, _ in batch:
                    if w not in crops:
                        rows, columns = windows[w]
                        crops[w] = source.read(rows.start, columns.start, rows.size,
                                               columns.size).to(self.device)
                seg, conn = self._forward(torch.stack(
                    [self.transforms[t].apply(crops[w]) for w, t in batch]))
                for k, (w, t) in enumerate(batch):
                    undo = self.transforms[t].undo
                    pending.setdefault(w, {})[t] = undo(seg[k]), undo(conn[k])
                    if len(pending[w]) < len(self.transforms):
                        continue
                    # Summed in transform order, so that the result does not depend on batching.
                    outputs = pending.pop(w)
                    del crops[w]
                    seg_mean = sum(outputs[i][0] for i in range(len(outputs))) / len(outputs)
                    conn_mean = sum(outputs[i][1] for i in range(len(outputs))) / len(outputs)
                    region, crop = _kept(windows[w])
                    yield WindowLogits(region, seg_mean[(slice(None), *crop)].cpu(),
                                       conn_mean[(slice(None), *crop)].cpu())
        finally:
            self.model.train(was_training)

    def _batches(self, count: int, height: int, width: int) -> Iterator[list[tuple[int, int]]]:
        """(window index, transform index) pairs for `count` windows of height x width pixels,
        in batches of at most `batch_size` pairs whose transformed crops have one shape (transforms
        that swap the axes of a non-square window go to separate batches)."""
        groups: dict[tuple[int, ...], list[int]] = {}
        for t, transform in enumerate(self.transforms):
            shape = tuple(transform.apply(torch.empty(height, width, device="meta")).shape)
            groups.setdefault(shape, []).append(t)
        size = self.settings.batch_size
        for group in groups.values():
            pairs = [(w, t) for w in range(count) for t in group]
            for first in range(0, len(pairs), size):
                yield pairs[first:first + size]

    def _forward(self, crops: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """crops: (B, 3, h, w) on the device. Returns float32 logits (B, 2, h, w), (B, 5, h, w)."""
        crops = crops.contiguous(memory_format=self.memory_format)
        with torch.inference_mode(), self._autocast():
            output = self._network(crops)
        return output.segmentation[-1].float(), output.connectivity[-1].float()

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.autocast_dtype)


def _kept(window: tuple[AxisWindow, AxisWindow]) -> tuple[tuple[slice, slice], tuple[slice, slice]]:
    """(region of the image, part of the crop) (rows, columns) slices of the kept part of a
    (row, column) window."""
    rows, columns = window
    region = (slice(rows.keep_start, rows.keep_stop), slice(columns.keep_start, columns.keep_stop))
    crop = (slice(rows.keep_start - rows.start, rows.keep_stop - rows.start),
            slice(columns.keep_start - columns.start, columns.keep_stop - columns.start))
    return region, crop
