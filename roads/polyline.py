"""Polylines: (N, 2) float (x, y) vertex arrays, the geometry of every road graph edge."""
import numpy as np


def polyline_length(pts: np.ndarray) -> float:
    """Length of an (N, 2) polyline in pixels."""
    return float(np.linalg.norm(np.diff(pts, axis=0), axis=1).sum())


def as_polyline(line) -> np.ndarray:
    pts = np.asarray(line, dtype=float)
    if pts.ndim != 2 or pts.shape[1] != 2:
        raise ValueError(f"expected an (N, 2) polyline, got shape {pts.shape}")
    return pts


def without_repeats(pts: np.ndarray, tolerance: float) -> np.ndarray:
    if len(pts) == 0:
        return pts
    moved = np.linalg.norm(np.diff(pts, axis=0), axis=1) > tolerance
    return pts[np.concatenate([[True], moved])]


def oriented(pts: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The polyline `pts` read from `start` to `end` (it may be stored either way round)."""
    forward = np.linalg.norm(pts[0] - start) + np.linalg.norm(pts[-1] - end)
    backward = np.linalg.norm(pts[0] - end) + np.linalg.norm(pts[-1] - start)
    return pts if forward <= backward else pts[::-1]
