"""The stacked multi-head hourglass network for joint road segmentation and connectivity
(Xu et al. 2023, arXiv:2312.04744)."""
import math
from typing import NamedTuple

import torch.nn.functional as F
from torch import Tensor, nn

from base import BaseModel
from model.blocks import ATTENTION_KINDS, ResidualBlock, residual_group
from model.heads import FinalClassifier, TaskHead
from model.hourglass import Hourglass
from roads.classes import CONNECTIVITY_CLASSES, SEGMENTATION_CLASSES


class RoadOutputs(NamedTuple):
    """Logits of every stack, then the final full-resolution ones.

    segmentation: [(B, 2, H/4, W/4)] * num_stacks + [(B, 2, H, W)]
    connectivity: [(B, 5, H/4, W/4)] * num_stacks + [(B, 5, H, W)]
    (H/4 rounded up when H is not a multiple of 4.)
    """

    segmentation: list[Tensor]
    connectivity: list[Tensor]


class Stem(nn.Sequential):
    """Downsampling to 1/4 resolution: (B, 3, H, W) -> (B, channels, H/4, W/4)."""

    def __init__(self, channels: int, attention: str) -> None:
        super().__init__(
            nn.Conv2d(3, 64, 7, stride=2, padding=3),
            nn.BatchNorm2d(64),
            nn.ReLU(inplace=True),
            ResidualBlock(64, 64, attention),
            nn.MaxPool2d(2),
            ResidualBlock(64, 64, attention),
            ResidualBlock(64, channels, attention),
        )


class Stack(nn.Module):
    """One hourglass stack with its segmentation and connectivity heads.

    (B, C, h, w) -> features y (B, C, h, w), segmentation (B, seg_classes, h, w),
    connectivity (B, conn_classes, h, w).
    """

    def __init__(self, depth: int, channels: int, num_blocks: int, attention: str,
                 seg_classes: int, conn_classes: int) -> None:
        super().__init__()
        self.hourglass = Hourglass(depth, channels, num_blocks, attention)
        self.refine = residual_group(channels, num_blocks, attention)
        self.fuse = nn.Sequential(
            nn.Conv2d(channels, channels, 1), nn.BatchNorm2d(channels), nn.ReLU(inplace=True)
        )
        self.segmentation_head = TaskHead(channels, seg_classes)
        self.connectivity_head = TaskHead(channels, conn_classes)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        y = self.fuse(self.refine(self.hourglass(x)))
        return y, self.segmentation_head(y), self.connectivity_head(y)


class Reinjection(nn.Module):
    """Feeds a stack's features and both tasks' predictions into the next stack's input.

    The authors apply two 1x1 convolutions to the features and sum them; one is equivalent.
    """

    def __init__(self, channels: int, seg_classes: int, conn_classes: int) -> None:
        super().__init__()
        self.features = nn.Conv2d(channels, channels, 1)
        self.segmentation = nn.Conv2d(seg_classes, channels, 1)
        self.connectivity = nn.Conv2d(conn_classes, channels, 1)

    def forward(self, x: Tensor, y: Tensor, seg: Tensor, conn: Tensor) -> Tensor:
        return x + self.features(y) + self.segmentation(seg) + self.connectivity(conn)


class StackedHourglassRoadNet(BaseModel):
    """Stacked multi-head hourglass with global-aware blocks (Xu et al., arXiv:2312.04744).

    Both tasks share the whole trunk and own only light heads. Input (B, 3, H, W) normalised RGB of
    any size: it is reflect-padded to a multiple of 32 and the outputs cropped back.
    """

    def __init__(self, num_stacks: int = 2, depth: int = 3, num_blocks: int = 3,
                 num_feats: int = 128, block: str = "ga") -> None:
        super().__init__()
        if block not in ATTENTION_KINDS:
            raise ValueError(f"block: must be one of {ATTENTION_KINDS}, got {block!r}")
        seg_classes, conn_classes = SEGMENTATION_CLASSES, CONNECTIVITY_CLASSES
        self.num_stacks = num_stacks
        self.stride = 4 * 2**depth
        self.stem = Stem(num_feats, block)
        self.stacks = nn.ModuleList(
            Stack(depth, num_feats, num_blocks, block, seg_classes, conn_classes)
            for _ in range(num_stacks)
        )
        self.reinjections = nn.ModuleList(
            Reinjection(num_feats, seg_classes, conn_classes) for _ in range(num_stacks - 1)
        )
        self.segmentation_classifier = FinalClassifier(num_feats, seg_classes)
        self.connectivity_classifier = FinalClassifier(num_feats, conn_classes)
        self.apply(initialise)

    def forward(self, image: Tensor) -> RoadOutputs:
        height, width = image.shape[-2:]
        x = self.stem(pad_to_multiple(image, self.stride))
        segmentation, connectivity = [], []
        for i, stack in enumerate(self.stacks):
            y, seg, conn = stack(x)
            segmentation.append(seg)
            connectivity.append(conn)
            if i < len(self.reinjections):
                x = self.reinjections[i](x, y, seg, conn)
        segmentation.append(self.segmentation_classifier(y))
        connectivity.append(self.connectivity_classifier(y))
        quarter = (math.ceil(height / 4), math.ceil(width / 4))
        return RoadOutputs(
            segmentation=[crop(t, quarter) for t in segmentation[:-1]] + [crop(segmentation[-1], (height, width))],
            connectivity=[crop(t, quarter) for t in connectivity[:-1]] + [crop(connectivity[-1], (height, width))],
        )


def pad_to_multiple(image: Tensor, multiple: int) -> Tensor:
    """Pad (B, C, H, W) at the bottom and right to multiples of `multiple` by reflection.

    Reflection needs the pad to be smaller than the side, so tiny inputs are edge-replicated instead.
    """
    height, width = image.shape[-2:]
    pad_h, pad_w = -height % multiple, -width % multiple
    if pad_h == 0 and pad_w == 0:
        return image
    mode = "reflect" if pad_h < height and pad_w < width else "replicate"
    return F.pad(image, (0, pad_w, 0, pad_h), mode=mode)


def crop(tensor: Tensor, size: tuple[int, int]) -> Tensor:
    """The top-left (..., size[0], size[1]) window of a tensor."""
    return tensor[..., : size[0], : size[1]]


def initialise(module: nn.Module) -> None:
    """He-normal convolutions (fan-out: N(0, sqrt(2 / (k*k*C_out)))), zero biases, unit BatchNorm."""
    if isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
        fan_out = module.kernel_size[0] * module.kernel_size[1] * module.out_channels
        nn.init.normal_(module.weight, 0.0, math.sqrt(2.0 / fan_out))
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.BatchNorm2d):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)
