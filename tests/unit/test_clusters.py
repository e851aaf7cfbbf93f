"""Choosing k from the data and judging small clusters (kmeans_pipeline.model.clusters), on constructed data."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import davies_bouldin_score

from kmeans_pipeline.model import clusters
from kmeans_pipeline.model.clusters import choose_k, davies_bouldin, judge_small_clusters, kmeans
from kmeans_pipeline.schemas.dataset import ColumnTreatment, FeatureTreatment


def groups(n_groups: int, dim: int = 2, rows: int = 300, seed: int = 0, spread: float = 1.0) -> np.ndarray:
    """``n_groups`` round groups of ``rows`` rows each, their centres at least 20 spreads apart."""
    rng = np.random.default_rng(seed)
    centres = np.zeros((n_groups, dim))
    for i in range(n_groups):
        angle = 2 * np.pi * i / n_groups
        centres[i, :2] = 20 * spread * max(1.0, n_groups / 3) * np.array([np.cos(angle), np.sin(angle)])
    return np.concatenate([rng.normal(c, spread, size=(rows, dim)) for c in centres])


@pytest.mark.parametrize("n_groups", [2, 3, 4, 5, 6])
@pytest.mark.parametrize("dim", [2, 7])
def test_the_criterion_finds_the_number_of_clear_groups(n_groups, dim):
    X = groups(n_groups, dim, seed=n_groups * 10 + dim)
    choice = choose_k(X, list(range(2, 11)), seed=1)
    assert choice.k == n_groups, choice.reason
    assert [c.k for c in choice.candidates] == list(range(2, 11))
    best = min(choice.candidates, key=lambda c: c.davies_bouldin)
    assert best.k == n_groups and f"k={n_groups}" in choice.reason


def test_the_criterion_does_not_always_prefer_more_clusters():
    # Unlike the sum of squared distances (test:msd), which falls with every k, the index rises past the groups.
    X = groups(3, seed=5)
    choice = choose_k(X, list(range(2, 9)), seed=0)
    by_k = {c.k: c.davies_bouldin for c in choice.candidates}
    assert by_k[3] < by_k[8] and choice.k == 3
    sse = [kmeans(X, k, np.random.default_rng(0))[2] for k in range(2, 9)]
    assert all(a > b for a, b in zip(sse, sse[1:]))


def test_davies_bouldin_agrees_with_scikit_learn():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(500, 4))
    _, labels, _ = kmeans(X, 5, rng)
    assert davies_bouldin(X, labels) == pytest.approx(davies_bouldin_score(X, labels), rel=1e-9)
    assert davies_bouldin(X, labels + 3) == pytest.approx(davies_bouldin_score(X, labels), rel=1e-9)


def test_davies_bouldin_of_clusters_sharing_a_mean_is_infinite_and_of_one_cluster_undefined():
    X = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, -1.0], [0.0, 1.0]])
    assert davies_bouldin(X, np.array([0, 0, 1, 1])) == np.inf
    assert np.isnan(davies_bouldin(X, np.array([0, 0, 0, 0])))


def test_kmeans_recovers_groups_and_is_seeded():
    X = groups(4, seed=3)
    C, labels, _ = kmeans(X, 4, np.random.default_rng(7))
    assert sorted(np.bincount(labels).tolist()) == [300] * 4
    again = kmeans(X, 4, np.random.default_rng(7))
    assert np.array_equal(C, again[0]) and np.array_equal(labels, again[1])
    with pytest.raises(ValueError, match="k must be within 1..3"):
        kmeans(X[:3], 4, np.random.default_rng(0))


def test_the_same_rows_and_seed_give_the_same_choice_and_the_sample_is_bounded():
    X = groups(5, dim=3, rows=1500, seed=4)
    first, second = choose_k(X, [2, 3, 4, 5, 6], seed=9), choose_k(X, [2, 3, 4, 5, 6], seed=9)
    assert first == second and first.k == 5
    assert first.sample_rows == clusters.SAMPLE_ROWS == 4000


def test_candidates_beyond_the_distinct_records_are_skipped():
    X = np.repeat(np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]]), 50, axis=0)
    choice = choose_k(X, list(range(2, 7)), seed=0)
    assert choice.k == 3 and choice.skipped == [4, 5, 6]
    assert [c.k for c in choice.candidates] == [2, 3] and "only 3 distinct records" in choice.reason
    one = choose_k(np.ones((20, 2)), [8, 9], seed=0)
    assert one.k == 2 and one.candidates == [] and "only 1 distinct record" in one.reason


def test_the_default_range_grows_with_the_training_rows_from_8_to_16():
    assert (clusters.K_FLOOR, clusters.K_CEILING) == (8, 16)
    assert clusters.candidate_range(80_000) == list(range(8, 17))
    assert clusters.candidate_range(300) == list(range(8, 13))  # sqrt(150) = 12.2
    assert clusters.candidate_range(170) == [8, 9]
    assert clusters.candidate_range(20) == [8] == clusters.candidate_range(0)
    assert clusters.candidate_range(1000, 2, 4) == [2, 3, 4]
    for low, high in ((1, 4), (5, 4)):
        with pytest.raises(ValueError, match="2 <= low <= high"):
            clusters.candidate_range(1000, low, high)
    with pytest.raises(ValueError, match="at least 2"):
        choose_k(groups(2), [1, 2], seed=0)


# ------------------------------------------------------------------------------------------------------------
# Small clusters
# ------------------------------------------------------------------------------------------------------------

TREATMENT = FeatureTreatment(
    columns=[
        ColumnTreatment(column="code", kind="category", levels=[1.0, 2.0, 5.0]),
        ColumnTreatment(column="amount", kind="log", standardize=True, mean=0.0, std=1.0),
    ]
)


def rows(code: int, n: int, amount: float) -> np.ndarray:
    Z = np.zeros((n, 4))
    Z[:, [1.0, 2.0, 5.0].index(code)] = 1.0
    Z[:, 3] = amount
    return Z


def test_a_small_cluster_that_is_one_level_of_a_category_is_a_kind_of_record():
    # Code 5 (the demo's wire transfers): a rare kind of record, all of it in small cluster 2.
    Z = np.concatenate([rows(1, 500, 0.0), rows(2, 450, 1.0), rows(5, 40, 4.0), rows(1, 10, 9.0)])
    closest = np.repeat([0, 1, 2, 3], [500, 450, 40, 10])
    wire, odd = judge_small_clusters(Z, closest, 4, [2, 3], TREATMENT)
    assert (wire.index, wire.anomalous, wire.column, wire.level) == (2, False, "code", 5.0)
    assert wire.level_share == 1.0 and wire.share_of_level == 1.0 and wire.large_cluster is None
    assert "100% of its 40 training records have code=5" in wire.reason
    # Cluster 3 is code 1, but code 1 is mostly elsewhere... and makes up all of large cluster 0: part of a kind.
    assert (odd.anomalous, odd.level, odd.large_cluster) == (False, 1.0, 0)
    assert "also makes up 100% of large cluster 0" in odd.reason


def test_a_small_cluster_no_category_explains_is_anomalous():
    # Cluster 2 mixes codes 1 and 2 (60/40): no level holds 80% of it; large clusters are mixed too.
    mixed = np.concatenate([rows(1, 300, 0.0), rows(2, 300, 0.0)])
    Z = np.concatenate([mixed, mixed + [0, 0, 0, 2.0], rows(1, 12, 8.0), rows(2, 8, 8.0)])
    closest = np.repeat([0, 1, 2], [600, 600, 20])
    (judged,) = judge_small_clusters(Z, closest, 3, [2], TREATMENT)
    assert judged.anomalous and judged.column is None
    assert "no level of a category column holds 80% of its 20 training records" in judged.reason
    numeric = FeatureTreatment(columns=[ColumnTreatment(column="x", kind="numeric")])
    (alone,) = judge_small_clusters(np.zeros((5, 1)), np.array([0, 0, 0, 0, 1]), 2, [1], numeric)
    assert alone.anomalous and "no category column" in alone.reason


def test_a_rare_level_spread_over_a_small_cluster_and_others_does_not_explain_it():
    # 90% of cluster 2 is code 5, but only half of the code-5 records are in it and no large cluster is code 5.
    Z = np.concatenate([rows(1, 500, 0.0), rows(2, 400, 0.0), rows(5, 45, 3.0), rows(5, 45, 0.5), rows(1, 5, 3.0)])
    closest = np.repeat([0, 1, 0, 2, 2], [500, 400, 45, 45, 5])
    (judged,) = judge_small_clusters(Z, closest, 3, [2], TREATMENT)
    assert judged.anomalous


def test_an_empty_small_cluster_is_anomalous():
    Z = rows(1, 10, 0.0)
    (judged,) = judge_small_clusters(Z, np.zeros(10, dtype=np.int64), 2, [1], TREATMENT)
    assert judged.anomalous and judged.training_rows == 0
