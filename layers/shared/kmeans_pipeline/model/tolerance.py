"""How far a correct K-Means endpoint's answer may be from numpy's, whatever float32 arithmetic it uses.

The container's arithmetic is not documented (only that its answers are float32). The bound below holds for any
float32 evaluation (IEEE, round to nearest) of the squared Euclidean distance in which every term passes through at
most ``m`` roundings, in any summation order: the direct sum of ``(x_i - c_i)^2``, or the batched expansion
``|x|^2 - 2 x.c + |c|^2`` (then ``max(., 0)``), sequential, pairwise or blocked (BLAS), with or without FMA
(Higham, *Accuracy and Stability of Numerical Algorithms*, 2.2, Lemma 3.1 and 4.2). Per row ``x``, centroid ``c``
and ``n`` features:

    u = 2^-24, u64 = 2^-53, gamma_m(u) = m u / (1 - m u)
    u_in = u + u64 + u u64                 the row we send as text, parsed to float32 (perhaps through a double)
    A = sum (|x_i| + |c_i|)^2              the terms' magnitudes (both formulas)
    B = 2 u_in sum |x_i - c_i| |x_i| + u_in^2 sum x_i^2                           rounding the row to float32
    E = gamma_m(u) (1 + u_in)^2 A + B + gamma_{n+2}(u64) A + 4 n 2^-150           (our float64 reference, underflow)

and |S_endpoint - S64| <= E, where S64 is numpy's float64 squared distance (a centroid's float32 values are exact in
float64). ``m = n + 2`` covers both formulas; the default ``m = 2n + 2`` also covers an augmented-vector GEMM
(``[x, 1, |x|^2] . [-2c, |c|^2, 1]``) and costs a factor of 2 (sqrt 2 near 0). Near a centroid the batched
formula's subtraction cancels, so a fixed relative tolerance would fail correct answers there; this one does not.
The distance follows from ``|sqrt(a) - sqrt(b)| <= min(sqrt|a - b|, |a - b| / sqrt(b))``, plus the float32 square
root's rounding and one more rounding of the answer on its way out. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

U32 = 2.0**-24
U64 = 2.0**-53
U_IN = U32 + U64 + U32 * U64  # a float64 text value -> float32, even through a double (double rounding)
U_OUT = U32  # the float32 answer -> JSON -> float64: at most one more float32 rounding
_SAFETY = 1.0 + 1e-12  # the bound itself is computed in float64
_CHUNK = 1 << 22  # rows x k x features float64 values held at once (32 MiB)


def gamma(m: int, u: float) -> float:
    if m * u >= 1:
        raise ValueError(f"gamma_{m} is undefined for u = {u}")
    return m * u / (1.0 - m * u)


@dataclass(frozen=True)
class Tolerance:
    """Per (row, cluster): numpy's float64 squared distance and distance, and how far a float32 answer may be."""

    squared: np.ndarray  # S64, (rows, k)
    squared_bound: np.ndarray  # E: |the endpoint's squared distance - S64| <= E
    distance: np.ndarray  # sqrt(S64)
    distance_bound: np.ndarray  # |the endpoint's distance - distance| <= this


def tolerance(X, centroids, depth: int | None = None) -> Tolerance:
    """The bounds for every row of X (rows, n) against every centroid (k, n); ``depth`` is m (default 2n + 2)."""
    X = np.asarray(X, dtype=np.float64)
    C = np.asarray(centroids, dtype=np.float32).astype(np.float64)
    if C.ndim != 2 or X.ndim != 2 or X.shape[1] != C.shape[1]:
        raise ValueError(f"rows of shape {X.shape} and centroids of shape {C.shape} do not fit")
    rows, n = X.shape
    k = C.shape[0]
    m = 2 * n + 2 if depth is None else int(depth)
    g32, g64 = gamma(m, U32), gamma(n + 2, U64)
    S, A, B = np.empty((rows, k)), np.empty((rows, k)), np.empty((rows, k))
    step = max(1, _CHUNK // max(1, k * n))
    ax, ac = np.abs(X), np.abs(C)
    for lo in range(0, rows, step):
        x, a = X[lo : lo + step, None, :], ax[lo : lo + step, None, :]
        diff = x - C[None]
        S[lo : lo + step] = np.einsum("rkn,rkn->rk", diff, diff)
        A[lo : lo + step] = ((a + ac[None]) ** 2).sum(-1)
        B[lo : lo + step] = 2 * U_IN * (np.abs(diff) * a).sum(-1)
    B += U_IN**2 * (X**2).sum(1)[:, None]
    E = (g32 * (1 + U_IN) ** 2 * A + B + g64 * A + 4 * n * 2.0**-150) * _SAFETY
    d = np.sqrt(S)
    with np.errstate(divide="ignore", invalid="ignore"):
        near = np.where(d > 0, E / d, np.inf)
    T = np.minimum(np.sqrt(E), near)  # |sqrt(S_endpoint) - sqrt(S64)|
    out = (1 + U32) * (1 + U_OUT) - 1  # the float32 square root's rounding, then the answer's
    D = (T + out * (d * (1 + U64) + T) + 2 * U64 * d) * _SAFETY
    return Tolerance(squared=S, squared_bound=E, distance=d, distance_bound=D)


@dataclass(frozen=True)
class RowChecks:
    """Per row: numpy's closest cluster, whether the endpoint's cluster and distance are ones a float32 K-Means
    could give, whether its value looks like the squared distance, and whether the row can tell the two apart."""

    tolerance: Tolerance
    closest: np.ndarray
    cluster_ok: np.ndarray
    distance_ok: np.ndarray
    squared_like: np.ndarray
    telling: np.ndarray


def row_checks(X, centroids, closest, distance, depth: int | None = None) -> RowChecks:
    closest = np.asarray(closest, dtype=np.int64)
    distance = np.asarray(distance, dtype=np.float64)
    t = tolerance(X, centroids, depth)
    rows = np.arange(len(closest))
    best = t.squared.argmin(axis=1)
    S_j, E_j = t.squared[rows, closest], t.squared_bound[rows, closest]
    S_i, E_i = t.squared[rows, best], t.squared_bound[rows, best]
    # The endpoint picked the argmin of its own S-hat, and |S-hat - S64| <= E: cluster j may win only if it is as
    # near as the closest within both bounds. Compared squared, so no square root's error is added.
    cluster_ok = S_j - S_i <= E_j + E_i
    d_j, D_j = t.distance[rows, closest], t.distance_bound[rows, closest]
    distance_ok = np.abs(distance - d_j) <= D_j  # against cluster j's own distance, not the closest one's
    squared_like = np.abs(distance - S_j) <= E_j + 4 * U32 * S_j + D_j
    # Only rows whose d and d^2 differ by more than both bounds can tell squared distances from distances.
    telling = np.abs(S_j - d_j) > 2 * (D_j + E_j + 4 * U32 * S_j)
    return RowChecks(t, best, cluster_ok, distance_ok, squared_like, telling)


def compare(X, centroids, closest, distance, depth: int | None = None) -> str | None:
    """None when every answer is one a float32 K-Means could give for these centroids, else what differs.

    A row passes when the endpoint's cluster is as near as numpy's closest within the bounds, and its distance is
    within the bound of numpy's distance to that cluster. When every differing row that can tell says so, the
    message names the answers as squared distances.
    """
    return check(X, centroids, closest, distance, depth)[1]


def check(X, centroids, closest, distance, depth: int | None = None) -> tuple[int, str | None]:
    """(how many rows differ beyond float32 error, what differs or None): ``compare`` with the count."""
    closest = np.asarray(closest, dtype=np.int64)
    distance = np.asarray(distance, dtype=np.float64)
    r = row_checks(X, centroids, closest, distance, depth)
    bad = np.flatnonzero(~(r.cluster_ok & r.distance_ok))
    if not len(bad):
        return 0, None
    rows = np.arange(len(closest))
    t = r.tolerance
    d_j, D_j = t.distance[rows, closest], t.distance_bound[rows, closest]
    told = bad[r.telling[bad] & ~r.distance_ok[bad]]
    i = int(bad[0])
    parts = [
        f"{len(bad)} of {len(closest)} rows differ beyond float32 error "
        f"({int((~r.cluster_ok).sum())} name a cluster clearly farther than the closest, "
        f"{int((~r.distance_ok).sum())} give a distance off by more than its bound)",
        f"row {i} {np.asarray(X)[i].tolist()}: the endpoint says cluster {closest[i]} at {distance[i]:.9g}; the "
        f"model's centroids put cluster {closest[i]} at {d_j[i]:.9g} +/- {D_j[i]:.2g} and the closest, "
        f"cluster {r.closest[i]}, at {t.distance[i, r.closest[i]]:.9g}",
    ]
    if len(told) and bool(r.squared_like[told].all()):
        parts.append(
            f"the endpoint's values look like SQUARED distances: on all {len(told)} differing rows that can tell, "
            "distance_to_cluster equals the squared distance d^2, not d"
        )
    return len(bad), "; ".join(parts)


def power(X, centroids, relative: float = 0.01, depth: int | None = None) -> float:
    """The share of rows on which a distance wrong by ``relative`` (1 %) would be caught: the check's power.

    Near 0 for features that are large and far from 0 (magnitudes about 1e4): float32 cannot resolve such
    distances, so no check can, and the verification says so instead of passing silently."""
    t = tolerance(X, centroids, depth)
    if not len(t.squared):
        return 0.0
    rows = np.arange(len(t.squared))
    best = t.squared.argmin(axis=1)
    d, D = t.distance[rows, best], t.distance_bound[rows, best]
    return float(np.mean(D < relative * d))
