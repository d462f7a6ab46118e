"""Named evaluation presets: config changes that make `test.py` score a prediction the way a
published pipeline does, so a reported number says which pipeline made it ("APLS (authors)").

- `ours`: the config as it is (the defaults are documented in the README).
- `authors`: the mask-to-graph step of the authors' `utils/masks_to_csv.py`: pixels with road
  probability > 0.9; holes and objects under 300 px removed; the mask padded by 15 px of edge
  replication before skeletonising, and cropped back; terminal edges under 20 px pruned until
  stable; polylines simplified with a 2 px tolerance; no junction merging; and their APLS port
  (`metrics.apls.mode` "authors": control points every 20 px only on curved edges). Their IoU
  is a mean over images: our `mean_image_iou`.
- `spacenet`: the SpaceNet 3 reference scorer's whole APLS pipeline (`metrics.apls.mode`
  "spacenet", see `evaluation/graph_metrics/tile.py`) on our predicted graphs.
"""
from typing import Any

MODE_DISTANCES: dict[str, Any] = {"delta": None, "snap": None, "min_path": None}
"""The APLS distances left to the preset's mode (`AplsSettings` fills null from it). A preset names
a whole pipeline, so it sets them back even where a config pins distances for its own mode: a
config that states those of `ours` (20 / 10 / 3 px) would otherwise score "APLS (spacenet)" with
them."""

PRESETS: dict[str, dict[str, Any]] = {
    "ours": {},
    "authors": {
        "predictor": {"threshold": 0.9},
        "graph": {"min_object_area": 300, "hole_area": 300, "border_pad": 15,
                  "spur_length": 20.0, "simplify_epsilon": 2.0, "junction_merge_factor": 0.0},
        "metrics": {"apls": {"mode": "authors", **MODE_DISTANCES}},
    },
    "spacenet": {"metrics": {"apls": {"mode": "spacenet", **MODE_DISTANCES}}},
}
