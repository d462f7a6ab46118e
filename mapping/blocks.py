"""A scene cut into blocks: the unit of work, of resumption and of sharing among processes.

A block is a rectangle of the scene (its core); the blocks tile the scene without overlap, in
row-major order. Work on a block reads its core plus a margin around it (a halo, clipped to the
scene), so that what is decided inside the core does not depend on where the block ends.
"""
from dataclasses import dataclass


@dataclass(frozen=True)
class Block:
    """Block `index` of the grid: rows [top, top + height) and columns [left, left + width)."""

    index: int
    top: int
    left: int
    height: int
    width: int

    @property
    def name(self) -> str:
        """A file name stem that sorts like the grid: the pixel offsets of its upper-left corner,
        e.g. `r004096_c012288`."""
        return f"r{self.top:06d}_c{self.left:06d}"

    def expanded(self, margin: int, shape: tuple[int, int]) -> tuple[int, int, int, int]:
        """(top, left, height, width) of the core grown by `margin` pixels on every side, clipped
        to a scene of `shape` (H, W)."""
        top, left = max(self.top - margin, 0), max(self.left - margin, 0)
        bottom = min(self.top + self.height + margin, shape[0])
        right = min(self.left + self.width + margin, shape[1])
        return top, left, bottom - top, right - left


def block_grid(shape: tuple[int, int], size: int) -> list[Block]:
    """The blocks of `size` x `size` pixels (smaller at the bottom and right edges) of a scene of
    `shape` (H, W), in row-major order."""
    if size < 1:
        raise ValueError(f"block: must be a positive number of pixels, got {size}")
    height, width = shape
    return [Block(index, top, left, min(size, height - top), min(size, width - left))
            for index, (top, left) in enumerate((top, left) for top in range(0, height, size)
                                                for left in range(0, width, size))]


def blocks_of_rank(blocks: list[Block], rank: int, world_size: int) -> list[Block]:
    """The blocks process `rank` of `world_size` works on: every world_size-th, so that each
    process gets blocks from the whole scene (a busy city centre is shared, not one process's
    lot)."""
    return blocks[rank::world_size]
