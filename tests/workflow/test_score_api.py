"""The scoring API: raw records in, the serving model's treatment applied, the endpoint's answer, a score and an
anomaly flag per record out; bad records get their own error. Through the offline stack, with the default (auto)
treatments."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kmeans_pipeline.data.treatment import encode
from kmeans_pipeline.model.artifact import read_centroids
from kmeans_pipeline.model.scoring import anomaly_score, score
from kmeans_pipeline.schemas.report import read_report
from offline.__main__ import score_api
from offline.runner import OfflineAWS
from offline.sample_data import generate
from offline.standin.kmeans import predict

pytestmark = pytest.mark.slow  # whole executions with the real handlers

KEY = "incoming/transactions.csv"
FAST = {"dataKey": KEY, "pollSeconds": 0, "maxTrainingJobs": 2, "maxParallelTrainingJobs": 2, "k": 6}


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """A stack whose endpoint serves a model trained with the default treatments, and that model's report."""
    sample = generate(tmp_path_factory.mktemp("api"), rows=4000, seed=11)
    with OfflineAWS() as aws:
        aws.upload(sample.csv_path, KEY)
        aws.before_any_model = score_api(aws, "tranCode,Amount\n1,2\n")
        result = aws.run(FAST, "api-auto", timeout=240)
        assert result.status == "SUCCEEDED", result.cause
        bucket, key = result.output["evaluation"]["reportUri"][5:].split("/", 1)
        report = json.loads(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
        yield aws, result, report


def test_raw_records_get_the_endpoints_answer_on_the_treated_features_and_a_score(served):
    aws, result, report = served
    assert [c["kind"] for c in report["treatment"]["columns"]] == ["category", "log"]  # auto's decisions
    rows = np.array([[1, 45.5], [4, 2600.0], [2, 80.0], [1, 9000.0], [5, 4800.0]])
    body = "id,tranCode,Amount,merchant\n" + "".join(
        f'r{i},{int(c)},{a},"Shop, {i}"\n' for i, (c, a) in enumerate(rows)
    )
    status, answer = score_api(aws, body)
    assert status == 200, answer
    assert answer["endpointConfig"] == result.output["endpointConfig"] and answer["features"] == ["tranCode", "Amount"]
    assert (answer["records"], answer["scored"], answer["errors"]) == (5, 5, 0)
    # What the caller gets is what the model says of the treated features, scored against the report's thresholds.
    centroids = read_centroids(result.output["bestTrainingJob"]["artifactUri"], s3=aws.client("s3"))
    Z, _ = encode(read_report(report, "the run's").treatment, rows)
    closest, distance = predict(Z, centroids)  # the stand-in endpoint's own float32 arithmetic
    scores = anomaly_score(closest, distance, report["thresholds"]["perCluster"], report["thresholds"]["overall"])
    got = answer["results"]
    assert [r["record"] for r in got] == [0, 1, 2, 3, 4]
    assert [r["closest_cluster"] for r in got] == closest.tolist()
    assert [r["distance_to_cluster"] for r in got] == [float(d) for d in distance]
    np.testing.assert_allclose([r["score"] for r in got], scores, rtol=1e-12)
    assert [r["anomaly"] for r in got] == (scores > 1).tolist()
    assert answer["anomalies"] == int((scores > 1).sum())


def test_a_bad_record_gets_its_own_error_naming_the_field_and_the_others_are_scored(served):
    aws, _, _ = served
    body = "tranCode,Amount\n1,45.5\n2,twenty\n3,-12\n4\n1,inf\n7,60\n3,120\n"
    status, answer = score_api(aws, body)
    assert status == 200 and (answer["scored"], answer["errors"]) == (3, 4)
    by_record = {r["record"]: r for r in answer["results"]}
    assert by_record[1]["error"] == "record 1, field Amount: 'twenty' is not a number"
    assert by_record[2]["error"] == (
        "record 2, field Amount: -12 is negative, and the model takes log1p(Amount), which needs values >= 0"
    )
    assert by_record[3]["error"] == "record 3: 1 fields, but the header has 2"
    assert by_record[4]["error"] == "record 4, field Amount: 'inf' is not a finite number"
    # A level the model never saw is scored with none set, and said.
    assert "closest_cluster" in by_record[5] and by_record[5]["warnings"] == [
        "field tranCode: level 7 was not seen in training (levels 1, 2, 3, 4, 5); scored with none of them set"
    ]
    assert "warnings" not in by_record[6] and "error" not in by_record[0]


def test_json_records_are_scored_like_csv_and_a_missing_field_is_named(served):
    aws, _, _ = served
    status, csv_answer = score_api(aws, "Amount,tranCode\n45.5,1\n")
    records = {
        "records": [
            {"tranCode": 1, "Amount": 45.5},
            {"tranCode": "1", "Amount": "45.5"},
            {"tranCode": 1},
            {"tranCode": True, "Amount": 1},
            [1, 2],
        ]
    }
    status, answer = score_api(aws, json.dumps(records), "application/json")
    assert status == 200
    first, second, missing, boolean, listed = answer["results"]
    assert (
        first["distance_to_cluster"] == second["distance_to_cluster"] == csv_answer["results"][0]["distance_to_cluster"]
    )
    assert missing["error"] == "record 2: field Amount is missing"
    assert boolean["error"] == "record 3, field tranCode: true is not a number"
    assert listed["error"] == "record 4 is not an object of column values"


@pytest.mark.parametrize(
    ("body", "content_type", "status", "message"),
    [
        ("tranCode,Amount\n1,2\n", "application/xml", 415, "content-type application/xml is not text/csv"),
        ("{not json", "application/json", 400, "the body is not JSON"),
        ('{"rows": []}', "application/json", 400, 'expected {"records"'),
        ("", "text/csv", 400, "the CSV is empty"),
        ("tranCode,Amount\n" + "1,2\n" * 10_001, "text/csv", 413, "10,001 records in one request; send at most 10,000"),
    ],
)
def test_a_request_that_cannot_be_read_is_refused_whole_with_its_reason(served, body, content_type, status, message):
    aws, _, _ = served
    got, answer = score_api(aws, body, content_type)
    assert got == status and message in answer["error"]


def test_before_any_model_serves_the_api_says_so(served):
    status, answer = served[0].before_any_model  # asked before the first run
    assert status == 503 and answer["error"] == "Endpoint kmeans-dev serves no model yet: run the pipeline first"


def test_after_a_new_deployment_the_api_uses_the_new_models_treatment(served):
    aws, first, _ = served
    second = aws.run({**FAST, "standardize": True, "gateTolerancePercent": 1000}, "api-standardised", timeout=240)
    assert second.status == "SUCCEEDED", second.cause
    status, answer = score_api(aws, "tranCode,Amount\n7,60\n")
    assert (
        status == 200 and answer["endpointConfig"] == second.output["endpointConfig"] != first.output["endpointConfig"]
    )
    # tranCode is a z-scored number now: 7 is just a large code, not an unseen level.
    assert "warnings" not in answer["results"][0] and "closest_cluster" in answer["results"][0]


def test_with_small_clusters_anomalous_a_record_of_a_rare_group_is_scored_against_a_large_cluster(served):
    aws, _, _ = served
    run = aws.run({**FAST, "smallClusters": "anomalous", "gateTolerancePercent": 1000}, "api-small", timeout=240)
    assert run.status == "SUCCEEDED", run.cause
    bucket, key = run.output["evaluation"]["reportUri"][5:].split("/", 1)
    report = json.loads(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())
    small = report["smallClusters"]["clusters"]
    # Wire transfers are 5% of the sample: once the bigger lines of business hold 90% of it, theirs is small.
    assert report["smallClusters"]["rule"] == "anomalous" and small
    assert [c["index"] for c in report["clusters"] if c["small"]] == small
    assert all(c["size"] == 0 and c["threshold"] is None for c in report["clusters"] if c["small"])
    assert "scored against the nearest of the others" in report["headline"]

    rows = np.array([[5, 4800.0], [1, 45.5]])
    status, answer = score_api(aws, "tranCode,Amount\n5,4800\n1,45.5\n")
    assert status == 200 and answer["endpointConfig"] == run.output["endpointConfig"]
    wire, card = answer["results"]
    centroids = read_centroids(run.output["bestTrainingJob"]["artifactUri"], s3=aws.client("s3"))
    Z, _ = encode(read_report(report, "the run's").treatment, rows)
    closest, _ = predict(Z, centroids)
    # The endpoint's own answer is still given; the score is against the nearest cluster that is not small.
    assert wire["closest_cluster"] == closest[0] and closest[0] in small
    large = [i for i in range(report["k"]) if i not in small]
    nearest, far = score(Z[:1], centroids[large])
    assert wire["reference_cluster"] == large[int(nearest[0])] and wire["distance_to_reference"] == float(far[0])
    assert report["thresholds"]["perCluster"][wire["reference_cluster"]] is None  # one threshold for every cluster
    threshold = report["thresholds"]["overall"]
    assert wire["score"] == pytest.approx(float(far[0]) / threshold) and wire["anomaly"] is (wire["score"] > 1)
    # A card purchase is closest to a large cluster, and scored as before.
    assert card["closest_cluster"] not in small and "reference_cluster" not in card and card["anomaly"] is False
