"""Where to put the nodes of a small graph: stress majorization, deterministic.

Shared by :func:`labkit.plots.topology` (plotly) and :func:`labkit.diagrams.topology`
(SVG), so the same lab is laid out the same way in both.
"""

from __future__ import annotations

import numpy as np

__all__ = ["stress_layout"]


def stress_layout(n: int, edges: list[tuple[int, int]], iterations: int = 300) -> np.ndarray:
    """Stress majorization (SMACOF) on hop distances: deterministic, even edge lengths.

    Starts from classical MDS (eigenvector signs fixed), so the same topology is
    always drawn the same way; disconnected parts sit one hop beyond the rest.
    """
    if n == 1:
        return np.zeros((1, 2))
    adj: list[list[int]] = [[] for _ in range(n)]
    for a, b in edges:
        adj[a].append(b)
        adj[b].append(a)
    dist = np.full((n, n), np.inf)
    for src in range(n):  # breadth-first search from every node (labs are small)
        dist[src, src] = 0
        frontier = [src]
        while frontier:
            nxt = []
            for u in frontier:
                for v in adj[u]:
                    if dist[src, v] == np.inf:
                        dist[src, v] = dist[src, u] + 1
                        nxt.append(v)
            frontier = nxt
    finite = dist[np.isfinite(dist)]
    dist[~np.isfinite(dist)] = finite.max() + 1
    centring = np.eye(n) - 1.0 / n
    gram = -0.5 * centring @ (dist ** 2) @ centring
    vals, vecs = np.linalg.eigh(gram)
    top = np.argsort(vals)[::-1][:2]
    pos = vecs[:, top] * np.sqrt(np.maximum(vals[top], 1e-9))
    for k in range(2):  # fix each axis' sign: deterministic drawing
        if pos[np.argmax(np.abs(pos[:, k])), k] < 0:
            pos[:, k] *= -1
    pos += 1e-3 * np.column_stack([np.cos(np.arange(n)), np.sin(np.arange(n))])  # break exact ties
    with np.errstate(divide="ignore"):
        w = np.where(dist > 0, 1.0 / dist ** 2, 0.0)
    laplacian = -w
    laplacian[np.diag_indices(n)] = w.sum(axis=1)
    v_inv = np.linalg.pinv(laplacian)
    for _ in range(iterations):
        cur = np.linalg.norm(pos[:, None, :] - pos[None, :, :], axis=-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            bm = np.where(cur > 1e-9, -w * dist / cur, 0.0)
        bm[np.diag_indices(n)] = 0.0
        bm[np.diag_indices(n)] = -bm.sum(axis=1)
        new = v_inv @ bm @ pos
        if np.abs(new - pos).max() < 1e-6:
            pos = new
            break
        pos = new
    pos -= pos.mean(axis=0)
    if pos[0, 0] > 1e-9:  # the first node on the left, and high: reading order
        pos[:, 0] *= -1
    if pos[0, 1] < -1e-9:
        pos[:, 1] *= -1
    scale = np.abs(pos).max() or 1.0
    return pos / scale
