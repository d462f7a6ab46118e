"""The connectivity classes (SPEC 2): ids, the ignore label and their colours, in one place."""
import numpy as np

SEGMENTATION_CLASSES = 2
"""Background and road: the segmentation head's softmax classes (road probability = class 1)."""
CONNECTIVITY_CLASSES = 5
IGNORE_INDEX = 255
"""Label of pixels that no loss or metric counts (no-data, padding)."""
BACKGROUND, DEAD_END, ROAD, THREE_WAY, FOUR_OR_MORE = range(CONNECTIVITY_CLASSES)

# RGB per class: black background, white road, and saturated disks that stay apart on it.
PALETTE = {
    BACKGROUND: (0, 0, 0),
    DEAD_END: (230, 25, 75),
    ROAD: (255, 255, 255),
    THREE_WAY: (60, 180, 75),
    FOUR_OR_MORE: (0, 130, 200),
    IGNORE_INDEX: (128, 128, 128),
}


def colorize(labels: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 RGB picture of (H, W) integer labels (classes 0..4, 255 grey)."""
    labels = np.asarray(labels)
    unknown = np.setdiff1d(np.unique(labels), list(PALETTE))
    if unknown.size:
        raise ValueError(f"labels hold values outside the classes: {unknown.tolist()}")
    lookup = np.zeros((256, 3), dtype=np.uint8)
    for value, rgb in PALETTE.items():
        lookup[value] = rgb
    return lookup[labels.astype(np.uint8)]
