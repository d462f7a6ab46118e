"""The hourglass (encoder-decoder block) of the stacked network, from 1/4 to 1/32 resolution."""
import torch.nn.functional as F
from torch import Tensor, nn

from model.blocks import residual_group


class Hourglass(nn.Module):
    """Recursive hourglass: pool, process, recurse, process, upsample, add the identity skip.

    (B, C, H, W) -> (B, C, H, W), with H and W divisible by 2**depth. The skip branch is the
    identity: the authors' code builds a residual group for it but never uses it, so none is made.
    """

    def __init__(self, depth: int, channels: int, num_blocks: int, attention: str) -> None:
        super().__init__()
        self.down = residual_group(channels, num_blocks, attention)
        self.inner: nn.Module = (
            Hourglass(depth - 1, channels, num_blocks, attention)
            if depth > 1
            else residual_group(channels, num_blocks, attention)
        )
        self.up = residual_group(channels, num_blocks, attention)

    def forward(self, x: Tensor) -> Tensor:
        low = self.up(self.inner(self.down(F.max_pool2d(x, 2))))
        return x + F.interpolate(low, scale_factor=2, mode="nearest")
