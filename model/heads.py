"""Task heads: light per-stack heads at 1/4 resolution and the full-resolution classifiers."""
from torch import nn


class TaskHead(nn.Sequential):
    """Intermediate logits of one task at 1/4 resolution: (B, C, H, W) -> (B, classes, H, W)."""

    def __init__(self, channels: int, classes: int, hidden: int = 32) -> None:
        super().__init__(
            nn.Conv2d(channels, hidden, 3, padding=1),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, classes, 1),
        )


def conv_bn_relu(conv: nn.Module, channels: int) -> nn.Sequential:
    return nn.Sequential(conv, nn.BatchNorm2d(channels), nn.ReLU(inplace=True))


class FinalClassifier(nn.Sequential):
    """LinkNet-style decoder block then two x2 transposed convolutions to full resolution.

    (B, C, H/4, W/4) -> (B, classes, H, W).
    """

    def __init__(self, channels: int, classes: int, hidden: int = 32) -> None:
        super().__init__(
            conv_bn_relu(nn.Conv2d(channels, hidden, 1), hidden),
            conv_bn_relu(nn.ConvTranspose2d(hidden, hidden, 3, stride=1, padding=1), hidden),
            conv_bn_relu(nn.Conv2d(hidden, 2 * hidden, 1), 2 * hidden),
            nn.ConvTranspose2d(2 * hidden, hidden, 3, stride=2, padding=1, output_padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(hidden, hidden, 3, padding=1),
            nn.LeakyReLU(0.2, inplace=True),
            nn.ConvTranspose2d(hidden, classes, 2, stride=2),
        )
