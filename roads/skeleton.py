"""Pixel graph of a one-pixel-wide skeleton: junction and end clusters, and the paths between them.

A skeleton pixel with exactly two skeleton neighbours (8-connectivity) is a path pixel; any other
is a node pixel, and 8-connected node pixels form one node (a junction's few pixels, an end). An
edge is a maximal run of path pixels with the node pixels it touches at both ends. A closed ring of
path pixels gets a node on its first pixel in raster order and one edge from it back to itself.
Clusters that touch no path pixel (specks, tiny blobs) are dropped: they carry no road.

Nodes are numbered in raster order of their first pixel; edges are traced from each node pixel in
raster order, leaving it in the neighbour order (-1,-1), (-1,0), (-1,1), (0,-1), (0,1), (1,-1),
(1,0), (1,1). This is the order of sknw (Yan Xiaolong's skeleton-network package, the usual tool
of road extraction papers), so graphs and metrics do not depend on which of the two built them;
sknw itself stores coordinates as int16 and node labels as uint16, so it returns wrong columns
past 32,767 and crashes past about 65,500 nodes. Here every index is int64 and the working image
is one byte a pixel: any size, any number of nodes.
"""
from dataclasses import dataclass

import numba
import numpy as np

# States of the working image (padded by one background pixel on every side).
_BACKGROUND, _PATH, _NODE, _LABELLED, _SPECK, _RING_NODE = 0, 1, 2, 3, 4, 5


@dataclass(frozen=True)
class SkeletonGraph:
    """Nodes and edges of a skeleton, as arrays.

    centroids: (N, 2) float (row, col) mean of each node's pixels.
    edges: (E, 2) int64 node ids (u, v) of each edge, u == v for a ring.
    offsets: (E + 1,) int64; edge i's pixels are `pixels[offsets[i]:offsets[i + 1]]`.
    pixels: (P, 2) int64 (row, col): each edge's node pixel at u, its path pixels, its node pixel
        at v.
    """

    centroids: np.ndarray
    edges: np.ndarray
    offsets: np.ndarray
    pixels: np.ndarray

    def edge_pixels(self, index: int) -> np.ndarray:
        return self.pixels[self.offsets[index]:self.offsets[index + 1]]


def skeleton_graph(skeleton: np.ndarray) -> SkeletonGraph:
    """The node clusters and edge paths of an (H, W) skeleton (bool or 0/nonzero)."""
    skeleton = np.asarray(skeleton)
    if skeleton.ndim != 2:
        raise ValueError(f"skeleton: expected an (H, W) array, got shape {skeleton.shape}")
    state = np.pad(skeleton != 0, 1).view(np.uint8)
    width = state.shape[1]
    steps = np.array([dr * width + dc for dr in (-1, 0, 1) for dc in (-1, 0, 1)
                      if (dr, dc) != (0, 0)], dtype=np.int64)
    flat = state.ravel()
    count = int(np.count_nonzero(flat))
    sums, sizes, node_pixels, node_ids = _label_nodes(flat, steps, width, count)
    edges, offsets, path, rings = _trace_edges(flat, steps, node_pixels, node_ids, len(sizes),
                                               count)
    centroids = np.concatenate([sums / sizes[:, None].astype(float),
                                _unpadded(rings, width).astype(float)])
    return SkeletonGraph(centroids, edges, offsets, _unpadded(path, width))


def _unpadded(flat_indices: np.ndarray, width: int) -> np.ndarray:
    """(N, 2) (row, col) in the skeleton of flat indices into the padded image."""
    rows, cols = np.divmod(flat_indices, width)
    return np.stack([rows - 1, cols - 1], axis=1)


@numba.njit(cache=True)
def _label_nodes(flat, steps, width, count):
    """Mark path and node pixels, then label 8-connected node clusters in raster order of their
    first pixel (clusters without a path neighbour are specks: not labelled). Returns each
    node's (row, col) pixel sums and pixel count, and its pixels' flat indices sorted with their
    node ids."""
    size = flat.size
    for p in range(size):
        if flat[p] == _BACKGROUND:
            continue
        neighbours = 0
        for step in steps:
            if flat[p + step] != _BACKGROUND:
                neighbours += 1
        flat[p] = _PATH if neighbours == 2 else _NODE
    sums = np.zeros((count, 2), dtype=np.float64)
    sizes = np.zeros(count, dtype=np.int64)
    labelled = np.empty(count, dtype=np.int64)
    labels = np.empty(count, dtype=np.int64)
    queue = np.empty(count, dtype=np.int64)
    nodes = 0
    total = 0
    for p in range(size):
        if flat[p] != _NODE:
            continue
        flat[p] = _LABELLED
        queue[0] = p
        head, tail, touches_path = 0, 1, False
        while head < tail:
            q = queue[head]
            head += 1
            for step in steps:
                r = q + step
                if flat[r] == _NODE:
                    flat[r] = _LABELLED
                    queue[tail] = r
                    tail += 1
                elif flat[r] == _PATH:
                    touches_path = True
        if not touches_path:
            for i in range(tail):
                flat[queue[i]] = _SPECK
            continue
        for i in range(tail):
            q = queue[i]
            sums[nodes, 0] += q // width - 1  # unpadded coordinates
            sums[nodes, 1] += q % width - 1
            labelled[total] = q
            labels[total] = nodes
            total += 1
        sizes[nodes] = tail
        nodes += 1
    order = np.argsort(labelled[:total])
    return sums[:nodes], sizes[:nodes], labelled[:total][order], labels[:total][order]


@numba.njit(cache=True)
def _node_of(flat, p, node_pixels, node_ids, ring_node, ring_id):
    """Node id of pixel p, or -1 if it is no node pixel."""
    if flat[p] == _LABELLED:
        return node_ids[np.searchsorted(node_pixels, p)]
    if flat[p] == _RING_NODE and p == ring_node:
        return ring_id
    return -1


@numba.njit(cache=True)
def _trace(flat, start, steps, node_pixels, node_ids, ring_node, ring_id, path, at):
    """Walk the path that starts at path pixel `start` until it meets a second node pixel; write
    [first node pixel met, path pixels..., second node pixel] into `path` from `at`. Returns the
    two node ids and the new end of `path`."""
    first, second = -1, -1
    p, following = start, start
    cursor = at + 1
    while True:
        path[cursor] = p
        flat[p] = _BACKGROUND
        cursor += 1
        for step in steps:
            r = p + step
            node = _node_of(flat, r, node_pixels, node_ids, ring_node, ring_id)
            if node >= 0:
                if first < 0:
                    first = node
                    path[at] = r
                else:
                    second = node
                    path[cursor] = r
            if flat[r] == _PATH:
                following = r
        if second >= 0:
            return first, second, cursor + 1
        if following == p:  # a path that meets no second node cannot occur in a skeleton
            raise ValueError("skeleton: a path pixel run ends without a node")
        p = following


@numba.njit(cache=True)
def _trace_edges(flat, steps, node_pixels, node_ids, nodes, count):
    """Trace every edge from the node pixels in raster order, then every ring. Returns (E, 2)
    node ids, (E + 1,) offsets into the flat pixel indices, those indices, and the flat index of
    each ring's node pixel."""
    edges = np.empty((count + 1, 2), dtype=np.int64)
    offsets = np.zeros(count + 2, dtype=np.int64)
    path = np.empty(3 * count + 3, dtype=np.int64)
    n_edges = 0
    at = 0
    for index in range(node_pixels.size):
        p = node_pixels[index]
        for step in steps:
            if flat[p + step] == _PATH:
                u, v, at = _trace(flat, p + step, steps, node_pixels, node_ids, -1, -1, path, at)
                edges[n_edges, 0], edges[n_edges, 1] = u, v
                n_edges += 1
                offsets[n_edges] = at
    rings = np.empty(count, dtype=np.int64)
    ring_id = nodes
    for p in range(flat.size):
        if flat[p] != _PATH:
            continue
        flat[p] = _RING_NODE
        for step in steps:
            if flat[p + step] == _PATH:
                u, v, at = _trace(flat, p + step, steps, node_pixels, node_ids, p, ring_id,
                                  path, at)
                edges[n_edges, 0], edges[n_edges, 1] = u, v
                n_edges += 1
                offsets[n_edges] = at
        flat[p] = _BACKGROUND
        rings[ring_id - nodes] = p
        ring_id += 1
    return edges[:n_edges], offsets[:n_edges + 1], path[:at], rings[:ring_id - nodes]
