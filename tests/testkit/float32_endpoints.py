"""float32 K-Means endpoints in many summation orders and both formulas, and data shaped like the pipeline's:
what the endpoint check's tolerance (kmeans_pipeline.model.tolerance) must accept."""

from __future__ import annotations

import numpy as np

f32 = np.float32


def _sequential(terms: np.ndarray, reverse: bool = False) -> np.ndarray:
    """Left-to-right float32 sum over the last axis, every addition rounded to float32."""
    order = range(terms.shape[-1] - 1, -1, -1) if reverse else range(terms.shape[-1])
    total = np.zeros(terms.shape[:-1], dtype=f32)
    for i in order:
        total = (total + terms[..., i]).astype(f32)
    return total


def _pairwise(terms: np.ndarray) -> np.ndarray:
    n = terms.shape[-1]
    if n == 1:
        return terms[..., 0].astype(f32)
    half = n // 2
    return (_pairwise(terms[..., :half]) + _pairwise(terms[..., half:])).astype(f32)


def _sum(terms: np.ndarray, order: str) -> np.ndarray:
    if order == "seq":
        return _sequential(terms)
    if order == "rev":
        return _sequential(terms, reverse=True)
    if order == "pairwise":
        return _pairwise(terms)
    if order == "numpy":  # numpy's own (unrolled pairwise) float32 sum
        return np.ascontiguousarray(terms).sum(axis=-1, dtype=f32)
    if order == "cumsum":
        return np.cumsum(terms, axis=-1, dtype=f32)[..., -1]
    raise ValueError(order)


VARIANTS = (
    "direct_seq",
    "direct_rev",
    "direct_pairwise",
    "direct_numpy",
    "direct_cumsum",
    "batched_seq",  # (|x|^2 - 2x.c) + |c|^2, sequential sums
    "batched_rev",  # |x|^2 + (|c|^2 - 2x.c), reversed sums
    "batched_blas",  # (|x|^2 + |c|^2) - 2 (X @ C.T), sgemm, pairwise norms
    "batched_cumsum",  # (|x|^2 - 2x.c) + |c|^2, cumulative sums
    "batched_aug",  # [|x|^2, |c|^2, -2 x_i c_i ...] summed left to right (an augmented GEMM)
)


def squared(X, C, variant: str) -> np.ndarray:
    """The endpoint's float32 squared distances (rows, k) as ``variant`` computes them."""
    X = np.asarray(X, dtype=np.float64).astype(f32)  # the container parses our text into float32
    C = np.asarray(C, dtype=f32)
    formula, order = variant.split("_")
    with np.errstate(over="ignore", invalid="ignore"):
        if formula == "direct":
            diff = (X[:, None, :] - C[None]).astype(f32)
            return _sum((diff * diff).astype(f32), order)
        if order == "blas":
            xx = _sum(X * X, "pairwise")[:, None]
            cc = _sum(C * C, "pairwise")[None, :]
            return ((xx + cc).astype(f32) - (f32(2) * (X @ C.T).astype(f32))).astype(f32)
        inner = {"seq": "seq", "rev": "rev", "cumsum": "cumsum", "aug": "seq"}[order]
        xx = _sum((X * X).astype(f32), inner)[:, None]
        cc = _sum((C * C).astype(f32), inner)[None, :]
        products = (X[:, None, :] * C[None]).astype(f32)
        if order == "aug":
            rows, k = products.shape[:2]
            terms = np.concatenate(
                [
                    np.broadcast_to(xx[:, :, None], (rows, k, 1)),
                    np.broadcast_to(cc[:, :, None], (rows, k, 1)),
                    (f32(-2) * products).astype(f32),
                ],
                axis=-1,
            )
            return _sequential(terms)
        minus_2xc = (f32(-2) * _sum(products, inner)).astype(f32)
        if order == "rev":
            return (xx + (cc + minus_2xc).astype(f32)).astype(f32)
        return ((xx + minus_2xc).astype(f32) + cc).astype(f32)


def answer(X, C, variant: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(closest, distance as the JSON's float64, the float32 squared distances) of a float32 endpoint."""
    S = np.maximum(squared(X, C, variant), f32(0))
    closest = S.argmin(axis=1)
    distance = np.sqrt(S[np.arange(len(S)), closest], dtype=f32)
    return closest, distance.astype(np.float64), S


def lloyd(data: np.ndarray, k: int, rng, iterations: int = 8) -> np.ndarray:
    """float32 centroids from a few rounds of Lloyd's algorithm."""
    C = data[rng.choice(len(data), k, replace=False)].copy()
    for _ in range(iterations):
        nearest = ((data[:, None, :] - C[None]) ** 2).sum(-1).argmin(1)
        for j in range(k):
            if (nearest == j).any():
                C[j] = data[nearest == j].mean(0)
    return C.astype(np.float32)


def demo_rows(rng, count: int) -> np.ndarray:
    """Rows shaped like the demo's features: tranCode one-hot (5 levels) and log1p(amount) z-scored."""
    codes = rng.choice(5, size=count, p=[0.45, 0.2, 0.2, 0.1, 0.05])
    mu = np.array([np.log(45), np.log(200), np.log(120), np.log(2500), np.log(5000)])
    amount = np.exp(rng.normal(mu[codes], np.array([0.6, 0.5, 0.25, 0.12, 0.35])[codes]))
    z = np.round((np.log1p(amount) - 5.0) / 1.5, 7)  # the channel's ~8 significant digits
    return np.column_stack([np.eye(5)[codes], z])


def near_and_far(rng, C: np.ndarray, count: int, spread: float) -> np.ndarray:
    """Rows near a centroid (noise 1e-7 .. 1e-1 x spread), typical, far, near-ties between two, exactly on one."""
    k, n = C.shape
    kind = rng.choice(5, size=count, p=[0.3, 0.3, 0.1, 0.15, 0.15])
    base = C[rng.integers(0, k, count)].astype(np.float64)
    scale = 10.0 ** rng.uniform(-7, -1, count) * spread
    X = base + rng.normal(size=(count, n)) * scale[:, None]
    typical = base + rng.normal(size=(count, n)) * spread
    far = base + rng.normal(size=(count, n)) * spread * 30
    other = C[rng.integers(0, k, count)].astype(np.float64)
    middle = (base + other) / 2 + rng.normal(size=(count, n)) * spread * 1e-7
    X = np.where((kind == 1)[:, None], typical, X)
    X = np.where((kind == 2)[:, None], far, X)
    X = np.where((kind == 3)[:, None], middle, X)
    return np.where((kind == 4)[:, None], base, X)
