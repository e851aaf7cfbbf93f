"""What the clusters are, decided from the data before and after training: how many (``choose_k``) and, of the small
ones, which are a kind of record and which are a group of anomalies (``judge_small_clusters``). numpy only.

**k.** SageMaker cannot tune ``k`` for its built-in K-Means, and ``test:msd`` (the tuning objective) always falls as
k grows, so k is chosen before tuning: numpy k-means (k-means++ seeding, Lloyd iterations, best of ``N_INIT``) on a
seeded sample of at most ``SAMPLE_ROWS`` treated training rows, for each candidate k, and the k with the lowest
Davies-Bouldin index (Davies and Bouldin, 1979: the mean over clusters of the worst ratio of two clusters' spreads
to the distance between their centres; lower is better, and it does not always prefer more clusters). Ties go to
the smaller k. The default candidates (``candidate_range``) run from ``K_FLOOR`` to sqrt(training rows / 2), at most
``K_CEILING``: too few clusters merge normal modes (on the demo's sample the contextual anomalies of card purchases
and ATM withdrawals need k >= 7), and too many split normal records into small clusters of a few records each, or,
past 16, make the index prefer the largest k on its sample; docs/benchmarks.md has the measurements.

**Small clusters.** CBLOF's small clusters (``scoring.small_clusters``) are either a rare kind of record (the demo's
wire transfers) or a group of anomalies (malignant tumours among benign ones); geometry does not tell them apart.
A category column does: a small cluster is a kind of record when at least ``EXPLAINED_SHARE`` of its training rows
share one level of a category column and that level either has at least ``EXPLAINED_SHARE`` of its rows in the
cluster, or also makes up at least ``EXPLAINED_SHARE`` of a large cluster (K-Means split a kind of record in two).
Every other small cluster's records are scored against the nearest large cluster (CBLOF's rule).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from kmeans_pipeline.schemas.dataset import FeatureTreatment

# The candidates when neither the run nor the stack sets k.
K_FLOOR = 8
K_CEILING = 16
SAMPLE_ROWS = 4000
N_INIT = 3
MAX_ITER = 100
TOL = 1e-6
CRITERION = "Davies-Bouldin index (lowest wins)"
# A small cluster is a kind of record when one level of a category column explains this share of it.
EXPLAINED_SHARE = 0.8


# ------------------------------------------------------------------------------------------------------------
# k-means and the criterion
# ------------------------------------------------------------------------------------------------------------


def _squared(X: np.ndarray, C: np.ndarray) -> np.ndarray:
    return np.maximum((X * X).sum(1)[:, None] - 2.0 * (X @ C.T) + (C * C).sum(1)[None, :], 0.0)


def kmeans(
    X: np.ndarray, k: int, rng: np.random.Generator, n_init: int = N_INIT, max_iter: int = MAX_ITER
) -> tuple[np.ndarray, np.ndarray, float]:
    """(centroids, labels, sum of squared distances) of the best of ``n_init`` k-means++ seedings refined by Lloyd's
    iterations. A cluster left empty keeps its centroid."""
    X = np.asarray(X, dtype=np.float64)
    n = len(X)
    if not 1 <= k <= n:
        raise ValueError(f"k must be within 1..{n} (the rows), got {k}")
    best: tuple[np.ndarray, np.ndarray, float] | None = None
    for _ in range(n_init):
        C = np.empty((k, X.shape[1]))
        C[0] = X[rng.integers(n)]
        nearest = _squared(X, C[:1])[:, 0]
        for j in range(1, k):
            total = nearest.sum()
            C[j] = X[rng.choice(n, p=nearest / total)] if total > 0 else X[rng.integers(n)]
            nearest = np.minimum(nearest, _squared(X, C[j : j + 1])[:, 0])
        previous = np.inf
        for _ in range(max_iter):
            D = _squared(X, C)
            labels = D.argmin(1)
            sse = float(D[np.arange(n), labels].sum())
            counts = np.bincount(labels, minlength=k)
            sums = np.zeros_like(C)
            np.add.at(sums, labels, X)
            filled = counts > 0
            C[filled] = sums[filled] / counts[filled, None]
            if previous - sse <= TOL * max(previous, 1e-300):
                break
            previous = sse
        D = _squared(X, C)
        labels = D.argmin(1)
        sse = float(D[np.arange(n), labels].sum())
        if best is None or sse < best[2]:
            best = (C.copy(), labels, sse)
    assert best is not None
    return best


def davies_bouldin(X: np.ndarray, labels: np.ndarray) -> float:
    """The Davies-Bouldin index of a labelling: the mean over its clusters of max_j (s_i + s_j) / |c_i - c_j|,
    c a cluster's mean and s the mean distance of its rows to it. Infinite when two clusters share a mean; NaN
    with fewer than two clusters."""
    X = np.asarray(X, dtype=np.float64)
    present, labels = np.unique(labels, return_inverse=True)
    if len(present) < 2:
        return float("nan")
    counts = np.bincount(labels)
    C = np.zeros((len(present), X.shape[1]))
    np.add.at(C, labels, X)
    C /= counts[:, None]
    spread = np.bincount(labels, weights=np.sqrt(((X - C[labels]) ** 2).sum(1))) / counts
    between = np.sqrt(_squared(C, C))
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (spread[:, None] + spread[None, :]) / between
    ratio = np.where(between == 0, np.inf, ratio)
    np.fill_diagonal(ratio, -np.inf)
    return float(ratio.max(1).mean())


@dataclass(frozen=True)
class Candidate:
    k: int
    davies_bouldin: float
    smallest_cluster: int


@dataclass(frozen=True)
class KChoice:
    """The k chosen, every candidate's criterion, and why the chosen one won."""

    k: int
    candidates: list[Candidate]
    sample_rows: int
    reason: str
    skipped: list[int] = field(default_factory=list)


def candidate_range(train_rows: int, low: int = K_FLOOR, high: int = K_CEILING) -> list[int]:
    """The default candidates: ``low`` up to sqrt(train_rows / 2) (Mardia, Kent and Bibby's rule of thumb for k),
    kept within ``low..high``: on a few hundred rows, a dozen clusters of twenty records each are mostly noise."""
    if not 2 <= low <= high:
        raise ValueError(f"the candidate k must satisfy 2 <= low <= high, got {low}..{high}")
    return list(range(low, max(low, min(high, math.isqrt(max(train_rows, 0) // 2))) + 1))


def choose_k(X: np.ndarray, candidates: list[int], seed: int, sample_rows: int = SAMPLE_ROWS) -> KChoice:
    """The candidate k with the lowest Davies-Bouldin index on a seeded sample of at most ``sample_rows`` rows of
    X (treated training rows). Candidates above the sample's number of distinct rows cannot be fitted and are
    skipped; when none is left, k is the number of distinct rows (at least 2)."""
    if not candidates or min(candidates) < 2:
        raise ValueError(f"candidates must be k values of at least 2, got {candidates}")
    rng = np.random.default_rng(seed)
    X = np.asarray(X, dtype=np.float64)
    if len(X) > sample_rows:
        X = X[np.sort(rng.choice(len(X), sample_rows, replace=False))]
    distinct = len(np.unique(X, axis=0)) if len(X) else 0
    fitted = [k for k in sorted(set(candidates)) if k <= distinct]
    skipped = [k for k in sorted(set(candidates)) if k > distinct]
    results = []
    for k in fitted:
        C, labels, _ = kmeans(X, k, rng)
        sizes = np.bincount(labels, minlength=k)
        results.append(Candidate(k, davies_bouldin(X, labels), int(sizes.min())))
    scored = [c for c in results if np.isfinite(c.davies_bouldin)]
    if not scored:
        k = max(2, min(distinct, min(candidates)))
        return KChoice(
            k,
            results,
            len(X),
            f"k={k}: the {len(X):,} sampled training rows hold only {distinct} distinct record(s), too few to "
            f"compare {min(candidates)}..{max(candidates)} clusters",
            skipped,
        )
    best = min(scored, key=lambda c: (c.davies_bouldin, c.k))
    others = sorted((c for c in scored if c.k != best.k), key=lambda c: (c.davies_bouldin, c.k))
    runner = f"; next best k={others[0].k} with {others[0].davies_bouldin:.4f}" if others else ""
    reason = (
        f"k={best.k}: the lowest Davies-Bouldin index ({best.davies_bouldin:.4f}) of k = "
        f"{', '.join(str(c.k) for c in results)}, each fitted by k-means++ and Lloyd (best of {N_INIT}) on "
        f"{len(X):,} sampled training rows{runner}"
    )
    if skipped:
        reason += f"; k = {', '.join(map(str, skipped))} skipped: the sample holds only {distinct} distinct records"
    return KChoice(best.k, results, len(X), reason, skipped)


# ------------------------------------------------------------------------------------------------------------
# Small clusters
# ------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SmallCluster:
    """What one small cluster is judged to be, and why."""

    index: int
    training_rows: int
    anomalous: bool
    reason: str
    column: str | None = None
    level: float | None = None
    level_share: float | None = None  # of the cluster's training rows at that level
    share_of_level: float | None = None  # of the level's training rows in this cluster
    large_cluster: int | None = None  # a large cluster that level also makes up


def _category_blocks(treatment: FeatureTreatment) -> list[tuple[str, int, list[float]]]:
    blocks, at = [], 0
    for column in treatment.columns:
        if column.kind == "category" and column.width:
            blocks.append((column.column, at, list(column.levels or [])))
        at += column.width
    return blocks


def judge_small_clusters(
    Z: np.ndarray, closest: np.ndarray, k: int, small: list[int], treatment: FeatureTreatment
) -> list[SmallCluster]:
    """Each small cluster judged from the training rows Z (model features) and their closest clusters: a kind of
    record (not anomalous) when one level of a category column explains it, else a group of anomalies."""
    Z = np.asarray(Z)
    closest = np.asarray(closest, dtype=np.int64)
    sizes = np.bincount(closest, minlength=k)
    large = [j for j in range(k) if j not in small and sizes[j] > 0]
    blocks = [(name, levels, Z[:, at : at + len(levels)] > 0.5) for name, at, levels in _category_blocks(treatment)]
    judged = []
    for index in small:
        members = closest == index
        rows = int(members.sum())
        if not rows:
            judged.append(SmallCluster(index, 0, True, "no training record is closest to it"))
            continue
        found = None
        for name, levels, hot in blocks:
            in_cluster = hot[members].mean(0)
            level_rows = hot.sum(0)
            for at in np.flatnonzero(in_cluster >= EXPLAINED_SHARE):
                share_of_level = float(hot[members, at].sum() / level_rows[at])
                if share_of_level >= EXPLAINED_SHARE:
                    found = SmallCluster(
                        index,
                        rows,
                        False,
                        f"{in_cluster[at]:.0%} of its {rows:,} training records have {name}={levels[at]:g}, and "
                        f"{share_of_level:.0%} of the {name}={levels[at]:g} records are in it: a kind of record "
                        "the data names, scored against its own centroid",
                        name,
                        float(levels[at]),
                        float(in_cluster[at]),
                        share_of_level,
                    )
                    break
                for j in large:
                    of_large = float(hot[closest == j, at].mean())
                    if of_large >= EXPLAINED_SHARE:
                        found = SmallCluster(
                            index,
                            rows,
                            False,
                            f"{in_cluster[at]:.0%} of its {rows:,} training records have {name}={levels[at]:g}, "
                            f"a level that also makes up {of_large:.0%} of large cluster {j}: part of a kind of "
                            "record the data names, scored against its own centroid",
                            name,
                            float(levels[at]),
                            float(in_cluster[at]),
                            share_of_level,
                            j,
                        )
                        break
                if found:
                    break
            if found:
                break
        why = (
            f"no level of a category column holds {EXPLAINED_SHARE:.0%} of its {rows:,} training records"
            if blocks
            else f"the data has no category column that could name its {rows:,} training records"
        )
        judged.append(
            found
            or SmallCluster(
                index, rows, True, f"{why}: a group of unusual records, scored against the nearest large cluster"
            )
        )
    return judged
