"""Residual blocks with optional attention: the paper's GA-ResBlock and its ablations.

`ResidualBlock(..., attention="ga")` is the paper's global-aware residual block; "se" keeps only
the channel attention and "basic" is a plain ResNet basic block, for the ablation study.
"""
import torch
from torch import Tensor, nn

ATTENTION_KINDS = ("ga", "se", "basic")


class ChannelAttention(nn.Module):
    """Squeeze-and-excitation: rescale each channel by a gate computed from the global average.

    (B, C, H, W) -> (B, C, H, W).
    """

    def __init__(self, channels: int, reduction: int = 16) -> None:
        super().__init__()
        hidden = max(channels // reduction, 1)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1),
            nn.Conv2d(channels, hidden, 1, bias=False),
            nn.ReLU(inplace=True),
            nn.Conv2d(hidden, channels, 1, bias=False),
            nn.Sigmoid(),
        )

    def forward(self, z: Tensor) -> Tensor:
        return z * self.gate(z)


class SpatialAttention(nn.Module):
    """Parameter-free spatial gate: sigmoid of the channel mean, (B, C, H, W) -> (B, C, H, W)."""

    def forward(self, z: Tensor) -> Tensor:
        return z * torch.sigmoid(z.mean(dim=1, keepdim=True))


class GlobalAwareModule(nn.Sequential):
    """The GA module: channel attention, then spatial attention on the re-weighted features."""

    def __init__(self, channels: int) -> None:
        super().__init__(ChannelAttention(channels), SpatialAttention())


def make_attention(kind: str, channels: int) -> nn.Module:
    """The attention applied to a residual branch: "ga", "se" or "basic" (none)."""
    if kind == "ga":
        return GlobalAwareModule(channels)
    if kind == "se":
        return ChannelAttention(channels)
    if kind == "basic":
        return nn.Identity()
    raise ValueError(f"unknown block kind {kind!r}; expected one of {ATTENTION_KINDS}")


class ResidualBlock(nn.Module):
    """ResNet basic block whose residual branch passes through an attention module before the sum.

    (B, in_channels, H, W) -> (B, out_channels, H, W).
    """

    def __init__(self, in_channels: int, out_channels: int, attention: str = "ga") -> None:
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
            nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False),
            nn.BatchNorm2d(out_channels),
            make_attention(attention, out_channels),
        )
        self.shortcut: nn.Module = nn.Identity()
        if in_channels != out_channels:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels)
            )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.residual(x) + self.shortcut(x))


def residual_group(channels: int, num_blocks: int, attention: str) -> nn.Sequential:
    """`num_blocks` residual blocks at a constant width: a "group" of the hourglass."""
    return nn.Sequential(*(ResidualBlock(channels, channels, attention) for _ in range(num_blocks)))
