"""Road-graph metrics, free of torch: APLS (ours and the SpaceNet 3 reference pipeline) and TOPO.

- `core`: `RoadArrays`, the array form of a road graph, and the steps the metrics share
  (control points, snapping onto segments, cutting a graph, the harmonic mean of two directions).
- `apls`: our APLS on the road-graph contract (`roads.graph`).
- `apls_spacenet`: the SpaceNet 3 reference scorer's graph construction and scoring.
- `topo`: TOPO (Biagioni and Eriksson).
- `tile`: the scores of one tile under a named APLS preset (`APLS_PRESETS`), TOPO beside them.

Imports run one way: `core` <- `apls`, `apls_spacenet`, `topo` <- `tile`; no sibling imports
another's private names. The command line is `python -m tools.apls`.
"""
