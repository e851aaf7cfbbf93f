"""The evaluation report's one model: what it refuses (naming the field), what it tolerates (keys of a later
release), and what its readers do with a report that does not validate: the scoring API answers 503."""

from __future__ import annotations

import json

import boto3
import pytest

from kmeans_pipeline.schemas.report import ReportError, read_report
from kmeans_pipeline.steps.score_records import score_records
from testkit.aws import REGION
from testkit.reports import evaluation_report

CENTROIDS = [[0.0, 0.0], [10.0, 10.0], [-10.0, 5.0]]


def test_a_report_reads_back_as_it_was_written_in_camel_case():
    body = evaluation_report(CENTROIDS, per_cluster=[1.0, 2.0, None], overall=3.0, small=(2,))
    report = read_report(json.dumps(body, indent=1), "report.json")
    assert report.to_json() == body
    assert report.small_clusters.clusters == [2] and report.thresholds.per_cluster == [1.0, 2.0, None]
    assert {"schemaVersion", "modelCentroids", "smallClusters", "featureNames"} <= set(body)
    assert {"ownThreshold", "closestShare", "normalRange", "nearestInside", "farthestBeyond"} <= set(
        body["clusters"][0]
    )


def test_keys_of_a_later_release_are_ignored_and_a_missing_field_is_named():
    body = evaluation_report(CENTROIDS, chosenK={"k": 3, "criterion": "silhouette"})
    assert read_report(body, "later.json").k == 3
    del body["thresholds"]
    with pytest.raises(
        ReportError, match=r"report later.json is not a valid evaluation report: thresholds: Field required"
    ):
        read_report(body, "later.json")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"{not json", "report r.json is not JSON"),
        (b"[]", "report r.json is not a JSON object"),
        (b" " * (64 * 1024 * 1024 + 1), "is over 67,108,864 bytes"),
    ],
)
def test_what_is_not_a_report_is_named(data, message):
    with pytest.raises(ReportError, match=message):
        read_report(data, "r.json")


class _SageMaker:
    """The three calls that say which model an endpoint serves."""

    def describe_endpoint(self, EndpointName):
        return {"EndpointStatus": "InService", "EndpointConfigName": f"{EndpointName}-config-broken"}

    def describe_endpoint_config(self, EndpointConfigName):
        return {"ProductionVariants": [{"ModelName": "kmeans-dev-abc123"}]}

    def describe_model(self, ModelName):
        return {"PrimaryContainer": {"ModelDataUrl": "s3://pipeline-data/models/abc123/model.tar.gz"}}


def test_the_scoring_api_answers_503_naming_the_field_of_a_report_that_does_not_validate(bucket):
    s3 = boto3.client("s3", region_name=REGION)
    broken = evaluation_report(CENTROIDS, thresholds={"overall": 1.0, "perCluster": [1.0]})
    s3.put_object(Bucket=bucket, Key="reports/abc123/report.json", Body=json.dumps(broken).encode())
    event = {"body": "tranCode,Amount\n1,2\n", "headers": {"content-type": "text/csv"}}
    response = score_records(event, "kmeans-dev", bucket, _SageMaker(), s3, None).to_http()  # type: ignore[arg-type]
    assert response["statusCode"] == 503
    assert json.loads(response["body"])["error"] == (
        "The serving model kmeans-dev-abc123 cannot be used: report s3://pipeline-data/reports/abc123/report.json "
        "is not a valid evaluation report: thresholds.perCluster has 1 values for k=3"
    )
