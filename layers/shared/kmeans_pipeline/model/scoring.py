"""Offline K-Means scoring as the endpoint answers, plus the distance statistics of a report.

``score`` computes what SageMaker's K-Means container returns for each record (``closest_cluster``,
``distance_to_cluster``) with the direct float32 formula: float32 differences, float32 sums of squares, the first of
equally close centroids, a float32 square root. The container's own arithmetic is not documented (it may use the
batched formula); its answers agree with these within float32 error (``model.tolerance`` bounds it). numpy only, in
chunks of bounded memory.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

PERCENTILES = {"p50": 50.0, "p90": 90.0, "p95": 95.0, "p99": 99.0, "p999": 99.9}
# Bytes of the (rows, k, feature_dim) float32 differences held at once.
_CHUNK_BYTES = 64 * 1024 * 1024


def score(X, centroids, chunk: int = 8192) -> tuple[np.ndarray, np.ndarray]:
    """(closest cluster int64, Euclidean distance float32) of each row of X, the direct float32 formula."""
    X = np.asarray(X, dtype=np.float32)
    C = np.asarray(centroids, dtype=np.float32)
    if C.ndim != 2 or C.shape[0] < 1:
        raise ValueError(f"centroids must have shape (k, feature_dim) with k >= 1, got {C.shape}")
    if X.size == 0:
        X = X.reshape(0, C.shape[1])
    if X.ndim != 2 or X.shape[1] != C.shape[1]:
        raise ValueError(f"rows have shape {X.shape}, the model's feature_dim is {C.shape[1]}")
    k, dim = C.shape
    # The result of each row does not depend on how many rows share a chunk; only memory does.
    rows = max(1, min(int(chunk), _CHUNK_BYTES // (4 * k * dim)))
    closest = np.empty(len(X), dtype=np.int64)
    distance = np.empty(len(X), dtype=np.float32)
    for start in range(0, len(X), rows):
        with np.errstate(over="ignore"):  # huge values overflow float32 to inf, in the container too
            diff = X[start : start + rows, None, :] - C[None, :, :]
            squared = np.einsum("nkd,nkd->nk", diff, diff, dtype=np.float32)
        best = squared.argmin(axis=1)
        closest[start : start + rows] = best
        distance[start : start + rows] = np.sqrt(squared[np.arange(len(best)), best], dtype=np.float32)
    return closest, distance


def percentiles(distances) -> dict:
    """{"p50", "p90", "p95", "p99", "p999", "max"} of the distances (linear interpolation); None when empty."""
    d = np.asarray(distances, dtype=np.float64).ravel()
    if d.size == 0:
        return {**{name: None for name in PERCENTILES}, "max": None}
    values = np.percentile(d, list(PERCENTILES.values()))
    return {**{name: float(v) for name, v in zip(PERCENTILES, values)}, "max": float(d.max())}


def _limits(closest, distance, thresholds: list[float | None], overall: float | None):
    """Each record's threshold: its cluster's, the overall one where the cluster has none, else infinity."""
    closest = np.asarray(closest, dtype=np.int64)
    distance = np.asarray(distance, dtype=np.float64)
    if closest.shape != distance.shape or closest.ndim != 1:
        raise ValueError(f"closest {closest.shape} and distance {distance.shape} must be two equal 1-D arrays")
    if len(closest) and (closest.min() < 0 or closest.max() >= len(thresholds)):
        raise ValueError(
            f"closest clusters range over {closest.min()}..{closest.max()}, but there are "
            f"{len(thresholds)} cluster thresholds"
        )
    fallback = math.inf if overall is None else float(overall)
    # A cluster threshold of 0 (its records all sit on the centroid) says nothing about how far is far.
    limits = np.array([fallback if t is None or t <= 0 else float(t) for t in thresholds], dtype=np.float64)
    return distance, limits[closest] if len(closest) else np.zeros(0)


def flag(closest, distance, thresholds: list[float | None], overall: float | None) -> np.ndarray:
    """True where a record lies beyond its cluster's threshold (the overall one where the cluster has none, or 0).

    A record whose cluster has no threshold and no overall threshold is given is never flagged.
    """
    distance, limits = _limits(closest, distance, thresholds, overall)
    return distance > limits


def anomaly_score(closest, distance, thresholds: list[float | None], overall: float | None) -> np.ndarray:
    """Distance over the record's threshold (as in ``flag``): the same number means the same in every cluster,
    and above 1 is exactly what ``flag`` flags. Always finite: a distance of 0 scores 0, and beyond an overall
    threshold of 0 (nearly every test record on its centroid) a distance d scores 1 + d."""
    distance, limits = _limits(closest, distance, thresholds, overall)
    with np.errstate(divide="ignore", invalid="ignore"):
        out = np.where(distance > 0, distance / limits, 0.0)
    out = np.where((limits == 0) & (distance > 0), 1.0 + distance, out)
    return np.where(distance > limits, np.maximum(out, np.nextafter(1.0, 2.0)), np.minimum(out, 1.0))


# A cluster's own percentile is shown only where it has this many test distances: below it, the 99th percentile is
# the cluster's largest distance or close to it.
MIN_CLUSTER_DISTANCES = 50


def summarise(closest, distance, k: int, percentile: float = 99.0, min_count: int = MIN_CLUSTER_DISTANCES) -> dict:
    """Per-cluster and overall distance statistics, the anomaly threshold and flagged shares (JSON-ready).

    Every record is scored against the overall threshold (the percentile of all distances): no cluster has a
    threshold of its own (``threshold`` None, which every reader takes as "the overall one"). Each cluster shows its
    own percentile (``ownThreshold``) where it has at least ``min_count`` distances, as a description of its spread.
    Per-cluster thresholds ranked the quality suite's anomalies no better than the overall one on any set, and
    worse on three (docs/benchmarks.md)."""
    closest = np.asarray(closest, dtype=np.int64)
    distance = np.asarray(distance, dtype=np.float64)
    if not 0 <= percentile <= 100:
        raise ValueError(f"percentile must be within 0..100, got {percentile}")
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    if closest.shape != distance.shape or closest.ndim != 1:
        raise ValueError(f"closest {closest.shape} and distance {distance.shape} must be two equal 1-D arrays")
    if len(closest) and (closest.min() < 0 or closest.max() >= k):
        raise ValueError(f"closest clusters range over {closest.min()}..{closest.max()}, outside 0..{k - 1}")
    n = len(closest)
    order = np.argsort(closest, kind="stable")
    bounds = np.searchsorted(closest[order], np.arange(k + 1))
    overall = float(np.percentile(distance, percentile)) if n else None
    clusters: list[dict[str, Any]] = []
    for index in range(k):
        d = distance[order[bounds[index] : bounds[index + 1]]]
        own = float(np.percentile(d, percentile)) if d.size and d.size >= min_count else None
        clusters.append(
            {
                "index": index,
                "size": int(d.size),
                "share": d.size / n if n else 0.0,
                "distance": percentiles(d),
                "threshold": None,
                "ownThreshold": own,
            }
        )
    per_cluster = flag(closest, distance, [cluster["threshold"] for cluster in clusters], overall)
    beyond_overall = flag(closest, distance, [None] * k, overall)
    return {
        "k": int(k),
        "records": int(n),
        "percentile": float(percentile),
        "clusters": clusters,
        "distance": percentiles(distance),
        "threshold": overall,
        "flagged": {
            "perCluster": int(per_cluster.sum()),
            "perClusterShare": float(per_cluster.mean()) if n else 0.0,
            "overall": int(beyond_overall.sum()),
            "overallShare": float(beyond_overall.mean()) if n else 0.0,
        },
    }


# Which clusters are "large", after CBLOF (He, Xu and Deng, 2003, with its usual alpha = 0.9 and beta = 5): the
# biggest clusters, in order, until they hold LARGE_SHARE of the records or the next one is SIZE_RATIO times
# smaller, whichever comes first.
LARGE_SHARE = 0.9
SIZE_RATIO = 5.0


def small_clusters(closest, k: int, large_share: float = LARGE_SHARE, size_ratio: float = SIZE_RATIO) -> list[int]:
    """The clusters CBLOF calls small, given each record's closest cluster: those left after the biggest ones, in
    order, hold ``large_share`` of the records or the next one is ``size_ratio`` times smaller than the last one
    taken. Empty clusters are small; with no records, none is."""
    sizes = np.bincount(np.asarray(closest, dtype=np.int64), minlength=k)[:k]
    if sizes.sum() == 0:
        return []
    order = np.argsort(-sizes, kind="stable")
    taken = 0
    for rank, index in enumerate(order):
        taken += int(sizes[index])
        if taken >= large_share * sizes.sum():
            break
        if rank + 1 < k and sizes[index] >= size_ratio * sizes[order[rank + 1]]:
            break
    return sorted(int(i) for i in order[rank + 1 :])


def refer(X, closest, distance, centroids, small: list[int]) -> tuple[np.ndarray, np.ndarray]:
    """The cluster each record is scored against, and its distance to it: its closest cluster, unless that one is
    in ``small``; then the nearest of the others (computed as ``score`` computes).

    A small cluster is not a normal pattern of its own: where anomalies come in groups, K-Means gives them a
    cluster, and distance to it would call them normal.
    """
    closest = np.array(closest, dtype=np.int64)
    distance = np.array(distance, dtype=np.float32)
    if not small:
        return closest, distance
    C = np.asarray(centroids, dtype=np.float32)
    large = np.setdiff1d(np.arange(len(C)), small)
    if large.size == 0:
        raise ValueError(f"every one of the {len(C)} clusters is small: none is left to score against")
    moved = np.flatnonzero(np.isin(closest, small))
    if moved.size:
        nearest, far = score(np.asarray(X, dtype=np.float32)[moved], C[large])
        closest[moved], distance[moved] = large[nearest], far
    return closest, distance
