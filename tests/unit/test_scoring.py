"""Offline scoring: the direct float32 formula, an answer a float32 endpoint could give (the stand-in's endpoint,
which uses the batched formula, agrees within the endpoint check's tolerance); standardisation; distance summaries
and anomaly flags."""

from __future__ import annotations

import csv
import io
import json
import time

import boto3
import numpy as np
import pytest
from moto import mock_aws

import kmeans_cli as cli
from kmeans_pipeline.model import scoring
from kmeans_pipeline.model.scoring import anomaly_score, flag, percentiles, score, summarise
from kmeans_pipeline.model.tolerance import compare
from offline.standin import Faults, SageMakerStandIn, Timing
from offline.standin.kmeans import predict
from offline.standin.ndarray import write_model_tar_gz
from testkit.aws import ACCOUNT, IMAGE, REGION

BUCKET = "scoring-test"


def direct_float32(X, C) -> tuple[np.ndarray, np.ndarray]:
    """The direct formula written out: float32 differences, float32 sums of squares, the first nearest centroid."""
    X, C = np.asarray(X, dtype=np.float32), np.asarray(C, dtype=np.float32)
    with np.errstate(over="ignore"):
        squared = np.array([[np.sum((x - c) ** 2, dtype=np.float32) for c in C] for x in X], dtype=np.float32)
    closest = squared.argmin(axis=1) if len(X) else np.zeros(0, dtype=np.int64)
    return closest, np.sqrt(squared[np.arange(len(X)), closest], dtype=np.float32)


def assert_same_answer(X, C, **kwargs) -> None:
    idx, dist = score(X, C, **kwargs)
    assert idx.dtype == np.int64 and dist.dtype == np.float32
    want_idx, want_dist = score(X, C)  # chunking never changes an answer
    np.testing.assert_array_equal(idx, want_idx)
    assert dist.tobytes() == want_dist.tobytes()
    if len(X) <= 600:
        direct_idx, direct_dist = direct_float32(X, C)
        np.testing.assert_array_equal(idx, direct_idx)
        np.testing.assert_allclose(dist, direct_dist, rtol=4 * np.finfo(np.float32).eps * np.shape(C)[1])
    if np.isfinite(dist).all():  # an answer a float32 endpoint could give, as the stand-in's endpoint gives
        served_idx, served_dist = predict(X, C)
        assert compare(X, C, idx, dist.astype(np.float64)) is None
        assert compare(X, C, served_idx, served_dist.astype(np.float64)) is None


# ------------------------------------------------------------------------------------------------------------
# score: the direct float32 formula, within float32 error of any endpoint
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "n,k,dim,scale",
    [(1, 1, 1, 1.0), (500, 3, 2, 10.0), (3000, 7, 5, 1e3), (257, 20, 33, 0.01), (2000, 2, 1, 1e6), (100, 50, 200, 1.0)],
)
def test_direct_float32_and_within_tolerance_of_the_standins_endpoint_on_random_data(n, k, dim, scale):
    rng = np.random.default_rng(n + k + dim)
    X = rng.normal(scale=scale, size=(n, dim)) * rng.uniform(0.01, 10, size=(n, 1))  # float64, as parsed
    C = rng.normal(scale=scale, size=(k, dim)).astype(np.float32)
    assert_same_answer(X, C)
    assert_same_answer(X, C, chunk=1)
    assert_same_answer(X.astype(np.float32), C, chunk=97)


def test_ties_go_to_the_first_centroid_as_in_the_container():
    C = np.array([[0, 0], [2, 0], [0, 0], [1, 1], [1, -1]], dtype=np.float32)  # 0 and 2 coincide
    X = np.array([[1, 0], [0, 0], [1, 0.5], [-5, 0], [3, 0], [1, 0]], dtype=np.float64)
    idx, dist = score(X, C)
    assert idx.tolist() == [0, 0, 3, 0, 1, 0]  # (1, 0) is 1 from every centroid: the first wins
    assert_same_answer(X, C)
    rng = np.random.default_rng(3)
    grid_c = rng.integers(-3, 4, size=(12, 3)).astype(np.float32)
    grid_x = rng.integers(-4, 5, size=(5000, 3)).astype(np.float64)  # integer lattices: many exact ties
    assert_same_answer(grid_x, grid_c)


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")  # in the stand-in's predict
def test_large_values_overflow_as_in_the_container():
    C = np.array([[0, 0], [1e19, 0], [-3e38, 3e38]], dtype=np.float32)
    X = np.array([[1e19, 1], [2e19, 0], [3.4e38, -3.4e38], [1e30, 1e30], [1e-30, -1e-30], [0, 0]])
    idx, dist = score(X, C)
    assert np.isinf(dist[2]) and np.isinf(dist[3])  # float32 squares overflow, as the container's do
    assert_same_answer(X, C)
    rng = np.random.default_rng(11)
    X = rng.normal(size=(1000, 4)) * 10.0 ** rng.integers(-20, 20, size=(1000, 1))
    C = (rng.normal(size=(6, 4)) * 10.0 ** rng.integers(-20, 20, size=(6, 1))).astype(np.float32)
    assert_same_answer(X, C)


def test_memory_bounded_chunks_give_the_same_answer(monkeypatch):
    rng = np.random.default_rng(5)
    X, C = rng.normal(size=(999, 16)), rng.normal(size=(9, 16)).astype(np.float32)
    monkeypatch.setattr(scoring, "_CHUNK_BYTES", 4 * 9 * 16 * 3)  # three rows at a time
    assert_same_answer(X, C)


def test_score_shapes():
    C = np.ones((3, 2), dtype=np.float32)
    idx, dist = score(np.zeros((0, 2)), C)
    assert idx.shape == dist.shape == (0,)
    assert score([], C)[0].shape == (0,)
    with pytest.raises(ValueError, match="feature_dim is 2"):
        score(np.zeros((4, 3)), C)
    with pytest.raises(ValueError, match="centroids must have shape"):
        score(np.zeros((4, 3)), np.zeros(3))


# ------------------------------------------------------------------------------------------------------------
# The offline endpoint answers what score() says
# ------------------------------------------------------------------------------------------------------------


@pytest.fixture
def endpoint():
    with mock_aws():
        session = boto3.session.Session(region_name=REGION)
        s3 = session.client("s3")
        s3.create_bucket(Bucket=BUCKET)
        standin = SageMakerStandIn(
            region=REGION,
            account_id=ACCOUNT,
            faults=Faults(),
            timing=Timing(endpoint_seconds=0.05, endpoint_delete_seconds=0.01),
        )
        standin.install()
        try:
            centroids = np.random.default_rng(8).normal(scale=5.0, size=(6, 3)).astype(np.float32)
            centroids[4] = centroids[1]  # a duplicate: ties must be broken the same way
            s3.put_object(Bucket=BUCKET, Key="model/model.tar.gz", Body=write_model_tar_gz(centroids))
            sm = session.client("sagemaker")
            sm.create_model(
                ModelName="m",
                ExecutionRoleArn=f"arn:aws:iam::{ACCOUNT}:role/r",
                PrimaryContainer={"Image": IMAGE, "ModelDataUrl": f"s3://{BUCKET}/model/model.tar.gz"},
            )
            sm.create_endpoint_config(
                EndpointConfigName="m",
                ProductionVariants=[
                    {
                        "VariantName": "AllTraffic",
                        "ModelName": "m",
                        "InstanceType": "ml.m5.large",
                        "InitialInstanceCount": 1,
                        "InitialVariantWeight": 1.0,
                    }
                ],
            )
            sm.create_endpoint(EndpointName="e", EndpointConfigName="m")
            deadline = time.monotonic() + 10
            while sm.describe_endpoint(EndpointName="e")["EndpointStatus"] == "Creating":
                assert time.monotonic() < deadline
                time.sleep(0.02)
            assert sm.describe_endpoint(EndpointName="e")["EndpointStatus"] == "InService"
            yield session.client("sagemaker-runtime"), s3, centroids
        finally:
            standin.uninstall()


def test_offline_scoring_agrees_with_what_the_offline_endpoint_answers(endpoint, tmp_path):
    runtime, s3, centroids = endpoint
    rng = np.random.default_rng(21)
    X = np.vstack(
        [
            rng.normal(scale=8.0, size=(300, 3)),
            centroids[[1, 4, 0]].astype(np.float64),  # exactly on centroids (ties between 1 and 4)
            rng.integers(-3, 4, size=(50, 3)).astype(np.float64),
        ]
    )
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in X)
    answer = runtime.invoke_endpoint(EndpointName="e", ContentType="text/csv", Accept="application/json", Body=body)
    predictions = json.loads(answer["Body"].read())["predictions"]
    served_cluster = [p["closest_cluster"] for p in predictions]
    served_distance = [p["distance_to_cluster"] for p in predictions]

    # The artifact as read by the portable reader, from the same S3 object the endpoint loaded.
    from kmeans_pipeline.model.artifact import read_centroids

    model = read_centroids(f"s3://{BUCKET}/model/model.tar.gz", s3=s3)
    np.testing.assert_array_equal(model, centroids)
    # The endpoint answers with its own float32 arithmetic: within float32 error of the offline answer, not bit for bit.
    assert compare(X, model, np.array(served_cluster, dtype=np.int64), np.array(served_distance)) is None
    closest, distance = score(X, model)
    assert compare(X, model, closest, distance.astype(np.float64)) is None
    assert distance.astype(np.float64).tolist() != served_distance
    assert served_cluster[300:303] == [1.0, 1.0, 0.0]  # ties go to the first centroid there too

    # The command line writes score()'s numbers.
    (tmp_path / "rows.csv").write_text(body + "\n")
    out = io.StringIO()
    with open(tmp_path / "rows.csv", newline="") as source:
        cli.score_csv(model, source, out, chunk_rows=64)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    assert [int(r[3]) for r in rows] == closest.tolist()
    assert [r[4] for r in rows] == [repr(float(d)) for d in distance]


# ------------------------------------------------------------------------------------------------------------
# Summaries and flags
# ------------------------------------------------------------------------------------------------------------


def test_percentiles():
    empty = percentiles([])
    assert empty == {"p50": None, "p90": None, "p95": None, "p99": None, "p999": None, "max": None}
    assert percentiles(np.float32([7.5])) == {k: 7.5 for k in empty}
    p = percentiles(np.arange(1001, dtype=np.float32))  # 0..1000: the p-th percentile is 10 p
    assert p == pytest.approx({"p50": 500.0, "p90": 900.0, "p95": 950.0, "p99": 990.0, "p999": 999.0, "max": 1000.0})
    assert all(type(v) is float for v in p.values())


def test_summarise_by_hand():
    closest = np.array([0, 0, 0, 0, 1, 1, 1])
    distance = np.array([1, 2, 3, 4, 10, 20, 30], dtype=np.float32)
    s = summarise(closest, distance, k=3, percentile=90.0, min_count=4)
    json.dumps(s)  # JSON-ready
    c0, c1, c2 = s["clusters"]
    # Linear interpolation: cluster 0 at rank 0.9 x 3 = 2.7 -> 3.7; all at 5.4 -> 24. Cluster 1 has 3 distances,
    # fewer than min_count: its own percentile would be its largest distance, so it shows none.
    assert c0["index"] == 0 and c0["size"] == 4 and c0["share"] == pytest.approx(4 / 7)
    assert c0["ownThreshold"] == pytest.approx(3.7) and c0["threshold"] is None
    assert c1 == {
        "index": 1,
        "size": 3,
        "share": pytest.approx(3 / 7),
        "threshold": None,
        "ownThreshold": None,
        "distance": {
            "p50": 20.0,
            "p90": pytest.approx(28.0),
            "p95": pytest.approx(29.0),
            "p99": pytest.approx(29.8),
            "p999": pytest.approx(29.98),
            "max": 30.0,
        },
    }
    assert c2 == {
        "index": 2,
        "size": 0,
        "share": 0.0,
        "threshold": None,
        "ownThreshold": None,
        "distance": {"p50": None, "p90": None, "p95": None, "p99": None, "p999": None, "max": None},
    }
    assert s["threshold"] == pytest.approx(24.0)
    assert s["distance"]["max"] == 30.0 and s["distance"]["p50"] == 4.0
    # Every record against the overall threshold: only 30 > 24.
    assert s["flagged"] == {
        "perCluster": 1,
        "perClusterShare": pytest.approx(1 / 7),
        "overall": 1,
        "overallShare": pytest.approx(1 / 7),
    }
    assert s["k"] == 3 and s["records"] == 7 and s["percentile"] == 90.0


def test_summarise_of_nothing_and_bad_input():
    s = summarise(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32), k=2)
    assert s["threshold"] is None and [c["threshold"] for c in s["clusters"]] == [None, None]
    assert s["flagged"] == {"perCluster": 0, "perClusterShare": 0.0, "overall": 0, "overallShare": 0.0}
    with pytest.raises(ValueError, match="outside 0..1"):
        summarise(np.array([0, 2]), np.array([1.0, 2.0]), k=2)
    with pytest.raises(ValueError, match="percentile"):
        summarise(np.array([0]), np.array([1.0]), k=1, percentile=101)
    with pytest.raises(ValueError, match="equal 1-D"):
        summarise(np.array([0, 0]), np.array([1.0]), k=1)


def test_flag_uses_the_overall_threshold_where_a_cluster_has_none():
    closest = np.array([0, 0, 1, 1, 2, 2, 2])
    distance = np.array([3.7, 3.8, 28.0, 28.5, 23.0, 24.0, 25.0], dtype=np.float32)
    got = flag(closest, distance, [3.7, 28.0, None], overall=24.0)
    assert got.dtype == bool
    # 3.7 as float32 is just above the double 3.7: the comparison is of the float32 distance, as written.
    assert got.tolist() == [float(np.float32(3.7)) > 3.7, True, False, True, False, False, True]
    assert flag(closest, distance, [None, None, None], overall=None).tolist() == [False] * 7
    assert flag(closest, distance, [None] * 3, overall=24.0).tolist() == [False, False, True, True, False, False, True]
    assert flag([], [], [1.0], overall=None).shape == (0,)
    with pytest.raises(ValueError, match="3 cluster thresholds"):
        flag(np.array([3]), np.array([1.0]), [1.0, 2.0, 3.0], overall=1.0)


def test_summary_thresholds_flag_the_same_records_after_a_json_round_trip():
    rng = np.random.default_rng(9)
    C = rng.normal(scale=10, size=(5, 2)).astype(np.float32)
    closest, distance = score(rng.normal(scale=12, size=(4000, 2)), C)
    s = json.loads(json.dumps(summarise(closest, distance, k=5, percentile=99.0)))
    per_cluster = flag(closest, distance, [c["threshold"] for c in s["clusters"]], s["threshold"])
    assert int(per_cluster.sum()) == s["flagged"]["perCluster"]
    assert s["flagged"]["perClusterShare"] == pytest.approx(0.01, abs=0.005)


def test_the_anomaly_score_is_above_one_exactly_where_a_record_is_flagged():
    closest = np.array([0, 0, 1, 1, 2, 2, 0])
    distance = np.array([3.7, 3.8, 28.0, 28.5, 0.0, 25.0, np.float32(3.7)], dtype=np.float32)
    thresholds = [3.7, 28.0, None]
    scores = anomaly_score(closest, distance, thresholds, overall=24.0)
    np.testing.assert_allclose(scores[[1, 3, 5]], [3.8 / 3.7, 28.5 / 28.0, 25.0 / 24.0], rtol=1e-6)
    assert scores[4] == 0.0  # no distance, no anomaly
    assert (scores > 1).tolist() == flag(closest, distance, thresholds, overall=24.0).tolist()


def test_every_record_is_scored_against_the_overall_threshold_and_clusters_show_their_own_percentile():
    # Cluster 0 has 60 test distances, cluster 1 only 10: its 99th percentile would be its largest distance.
    rng = np.random.default_rng(3)
    closest = np.repeat([0, 1, 2], [60, 10, 55])
    distance = np.concatenate([rng.uniform(0, 1, 60), rng.uniform(0, 5, 10), np.zeros(55)]).astype(np.float32)
    s = summarise(closest, distance, k=3)
    c0, c1, c2 = s["clusters"]
    assert c0["ownThreshold"] == pytest.approx(np.percentile(distance[:60].astype(np.float64), 99))
    assert c1["ownThreshold"] is None and c2["ownThreshold"] == 0.0
    assert [c["threshold"] for c in s["clusters"]] == [None, None, None]
    overall = s["threshold"]
    assert overall == pytest.approx(np.percentile(distance.astype(np.float64), 99))
    scores = anomaly_score(closest, distance, [c["threshold"] for c in s["clusters"]], overall)
    np.testing.assert_allclose(scores, np.minimum(distance / overall, np.inf), rtol=1e-6)
    assert s["flagged"]["overall"] == s["flagged"]["perCluster"] == int((distance > overall).sum())


def test_the_anomaly_score_is_always_finite():
    # A cluster threshold of 0 (a report written before the rule above) falls back to the overall threshold.
    assert anomaly_score(np.array([0, 0]), np.array([0.0, 0.5]), [0.0], 2.0).tolist() == [0.0, 0.25]
    assert anomaly_score(np.array([0, 0]), np.array([0.0, 0.5]), [0.0], None).tolist() == [0.0, 0.0]
    # An overall threshold of 0 (nearly every test record on its centroid): beyond it, 1 + the distance, and flagged.
    scores = anomaly_score(np.array([0, 0, 0]), np.array([0.0, 0.5, 2.0]), [None], 0.0)
    assert scores.tolist() == [0.0, 1.5, 3.0] and np.isfinite(scores).all()
    assert (scores > 1).tolist() == flag(np.array([0, 0, 0]), np.array([0.0, 0.5, 2.0]), [None], 0.0).tolist()


# ------------------------------------------------------------------------------------------------------------
# Small clusters (smallClusters: anomalous)
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "sizes,small",
    [
        # The biggest clusters are taken until they hold 90% of the records: 50 + 30 + 12 = 92 of 100.
        ([30, 50, 12, 5, 3], [3, 4]),
        # Or until the next one is 5 times smaller: 41 + 40 hold 81%, and 40 >= 5 x 7.
        ([40, 41, 7, 6, 6], [2, 3, 4]),
        # An empty cluster is small; even clusters are all large.
        ([25, 25, 25, 25, 0], [4]),
        ([20] * 5, []),
    ],
)
def test_small_clusters_are_those_left_once_the_biggest_hold_most_records(sizes, small):
    closest = np.repeat(np.arange(len(sizes)), sizes)
    np.random.default_rng(0).shuffle(closest)
    assert scoring.small_clusters(closest, len(sizes)) == small


def test_no_records_make_no_cluster_small():
    assert scoring.small_clusters(np.zeros(0, dtype=np.int64), 3) == []


def test_a_record_closest_to_a_small_cluster_is_referred_to_the_nearest_large_one():
    centroids = np.array([[0, 0], [10, 0], [0, 10], [3, 0]], dtype=np.float32)
    X = np.array([[1, 0], [9, 1], [3.5, 0], [2.5, 9], [100, 100]], dtype=np.float32)
    closest, distance = score(X, centroids)
    assert closest.tolist() == [0, 1, 3, 2, 1]
    reference, referred = scoring.refer(X, closest, distance, centroids, [2, 3])
    # Only the records closest to clusters 2 and 3 move, each to the nearest of 0 and 1, at that distance, as
    # scoring against clusters 0 and 1 alone computes it.
    assert reference.tolist() == [0, 1, 0, 0, 1]
    only_large, d_large = score(X, centroids[:2])
    assert referred.tolist() == d_large.tolist() and reference.tolist() == only_large.tolist()
    assert referred.dtype == np.float32
    # With no small cluster, nothing moves; with every cluster small, there is nothing to score against.
    same, d = scoring.refer(X, closest, distance, centroids, [])
    assert same.tolist() == closest.tolist() and d.tolist() == distance.tolist()
    with pytest.raises(ValueError, match="every one of the 4 clusters is small"):
        scoring.refer(X, closest, distance, centroids, [0, 1, 2, 3])
