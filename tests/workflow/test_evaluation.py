"""Evaluate before deploying, verify after: the report, the relative quality gate, approval and the endpoint check,
through the real state machine and handlers offline."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from botocore.exceptions import ClientError

from kmeans_pipeline.model.artifact import read_centroids
from kmeans_pipeline.model.scoring import score
from kmeans_pipeline.model.tolerance import compare
from kmeans_pipeline.schemas.report import read_report
from offline.runner import OfflineAWS
from offline.sample_data import generate
from testkit.stacks import reset_faults, without_endpoint

pytestmark = pytest.mark.slow  # whole executions with the real handlers

KEY = "incoming/transactions.csv"
# Raw numbers ("standardize": false) unless a test says otherwise: the report's centroids are then the model's.
FAST = {
    "dataKey": KEY,
    "pollSeconds": 0,
    "maxTrainingJobs": 2,
    "maxParallelTrainingJobs": 2,
    "k": 5,
    "standardize": False,
}


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("sample"), rows=4000, seed=5)


@pytest.fixture(scope="module")
def shared(sample):
    with OfflineAWS() as aws:
        aws.upload(sample.csv_path, KEY)
        yield aws


@pytest.fixture
def stack(shared):
    """The module's stack (each test's executions have their own names), with no fault left from an earlier test."""
    yield shared
    reset_faults(shared)


@pytest.fixture
def first_deploy(stack):
    return without_endpoint(stack)


def run(aws, name, approve=None, **overrides):
    return aws.run({**FAST, **overrides}, name=name, timeout=240, approve=approve)


def read_json(aws, uri):
    bucket, key = uri[5:].split("/", 1)
    return json.loads(aws.client("s3").get_object(Bucket=bucket, Key=key)["Body"].read())


def published(result) -> list[dict]:
    """What the execution published to the topic, besides approval requests."""
    found = []
    for event in result.history:
        details = event.get("taskScheduledEventDetails") or {}
        if event["type"] == "TaskScheduled" and details.get("resource") == "publish":
            found.append(json.loads(details["parameters"]))
    return found


def endpoint_config(aws):
    return aws.client("sagemaker").describe_endpoint(EndpointName=aws.endpoint_name)["EndpointConfigName"]


def test_first_deploy_writes_the_report_promotes_and_checks_the_endpoint(first_deploy):
    result = run(first_deploy, "first")
    assert result.status == "SUCCEEDED", result.cause
    out = result.output
    evaluation, check = out["evaluation"], out["endpointCheck"]
    assert evaluation["gate"]["decision"] == "promote" and "first deploy" in evaluation["gate"]["reason"]
    assert check["passed"] and check["checkedRows"] == min(1000, out["dataset"]["testRows"])

    report = read_json(first_deploy, evaluation["reportUri"])
    assert evaluation["reportUri"].endswith(f"reports/{out['runId']}/report.json")
    assert report["k"] == 5 and len(report["clusters"]) == 5 and len(report["centroids"]) == 5
    assert sum(c["size"] for c in report["clusters"]) == report["evaluatedRows"] == out["dataset"]["testRows"]
    assert report["anomalyPercentile"] == 99 and report["thresholds"]["overall"] > 0
    # The report's numbers are the model's: its centroids score the test set to the same mean squared distance.
    centroids = read_centroids(out["bestTrainingJob"]["artifactUri"], s3=first_deploy.client("s3"))
    np.testing.assert_allclose(report["centroids"], centroids, rtol=1e-6)
    assert report["evaluationMsd"] == pytest.approx(out["bestTrainingJob"]["testMsd"], rel=1e-3)
    assert 0 < report["flagged"]["perClusterShare"] < 0.05
    assert report["headline"] == evaluation["headline"] and report["headline"].startswith("promote")
    # The JSON contract (docs/usage.md, "The report"): these camelCase keys, and it reads back through the model.
    assert list(report) == [
        *("schemaVersion", "runId", "executionName", "trainingJob", "hyperparameters", "modelArtifact", "dataset"),
        *("featureColumns", "treatment", "featureNames", "k", "kChoice", "testMsd", "evaluationMsd", "evaluatedRows"),
        *("anomalyPercentile", "smallClusters", "thresholds", "centroids", "modelCentroids", "clusters", "distance"),
        *("flagged", "gate", "headline", "baseline"),
    ]
    assert list(report["clusters"][0]) == [
        *("index", "size", "share", "distance", "threshold", "ownThreshold", "small", "closestShare", "normalRange"),
        *("flaggedShare", "nearestInside", "farthestBeyond", "centroid"),
    ]
    assert read_report(report, evaluation["reportUri"]).to_json() == report


def test_a_worse_model_is_not_deployed_and_the_serving_one_keeps_serving(stack):
    assert run(stack, "good").status == "SUCCEEDED"
    serving = endpoint_config(stack)
    # Two clusters for five lines of business: much worse than the serving model on the same test rows.
    result = run(stack, "worse", k=2, gateTolerancePercent=0)
    assert result.status == "SUCCEEDED", result.cause
    out = result.output
    gate = out["evaluation"]["gate"]
    assert out["outcome"] == "kept" and gate["decision"] == "keep"
    assert gate["newMsd"] > gate["servingMsd"] and "keeps serving" in gate["reason"]
    assert endpoint_config(stack) == serving
    [announcement] = published(result)
    assert "the serving model is kept" in announcement["Subject"]
    scores = dict(re.findall(r"^(New|Serving) model test MSD: ([\d.e+]+)$", announcement["Message"], re.M))
    assert float(scores["New"]) == pytest.approx(gate["newMsd"]) and float(scores["Serving"]) == pytest.approx(
        gate["servingMsd"]
    )
    assert gate["reason"] in announcement["Message"]
    names = stack.state_output(result.arn, "Resolve run configuration")["names"]
    made = stack.sagemaker_resources(names)
    assert made["tuningJob"] and not made["model"] and not made["endpointConfig"]  # nothing was made to deploy


def test_a_model_as_good_as_the_serving_one_is_promoted(stack):
    assert run(stack, "one").status == "SUCCEEDED"
    result = run(stack, "two", gateTolerancePercent=1000)
    assert result.status == "SUCCEEDED", result.cause
    gate = result.output["evaluation"]["gate"]
    assert gate["decision"] == "promote" and gate["servingMsd"] is not None
    assert endpoint_config(stack) == result.output["endpointConfig"]


def test_approval_pauses_notifies_and_deploys_when_approved(stack):
    result = run(stack, "approved", approve=True, approval=True, gateTolerancePercent=1000)
    assert result.status == "SUCCEEDED", result.cause
    [request] = stack.approval_requests(result.arn)
    assert result.output["evaluation"]["headline"] in request["message"]
    assert "aws stepfunctions send-task-success --task-token" in request["message"]
    assert '"approved":true' in request["message"].replace(" ", "")
    assert endpoint_config(stack) == result.output["endpointConfig"]


def test_a_rejection_ends_the_run_and_leaves_the_endpoint_untouched(stack):
    assert run(stack, "serving").status == "SUCCEEDED"
    serving = endpoint_config(stack)
    result = run(stack, "rejected", approve=False, approval=True, gateTolerancePercent=1000)
    assert result.status == "FAILED"
    assert result.error == "ModelRejected"
    assert "rejected by offline runner: rejected by --reject" in result.cause and "was not touched" in result.cause
    assert endpoint_config(stack) == serving


def test_an_unanswered_approval_times_out_with_a_clear_cause(first_deploy):
    result = run(first_deploy, "unanswered", approval=True, approvalTimeoutSeconds=1)
    assert result.status == "FAILED"
    assert result.error == "ApprovalTimedOut"
    assert "within 1 seconds" in result.cause
    with pytest.raises(ClientError, match="Could not find endpoint"):
        endpoint_config(first_deploy)  # a first deploy that was never approved: no endpoint


def test_a_failed_endpoint_check_puts_the_previous_config_back(stack):
    assert run(stack, "before").status == "SUCCEEDED"
    serving = endpoint_config(stack)
    stack.standin.faults.endpoint_answers_wrong = True
    result = run(stack, "wrong-answers", gateTolerancePercent=1000)
    assert result.status == "FAILED"
    assert result.error == "EndpointVerificationFailed"
    assert "disagree with the model's centroids" in result.cause and "serves again" in result.cause
    endpoint = stack.client("sagemaker").describe_endpoint(EndpointName=stack.endpoint_name)
    assert (endpoint["EndpointStatus"], endpoint["EndpointConfigName"]) == ("InService", serving)


def test_an_endpoint_answering_squared_distances_fails_its_check_with_a_cause_that_says_so(stack):
    assert run(stack, "before-squared").status == "SUCCEEDED"
    serving = endpoint_config(stack)
    stack.standin.faults.endpoint_answers_squared = True
    result = run(stack, "squared-answers", gateTolerancePercent=1000)
    assert (result.status, result.error) == ("FAILED", "EndpointVerificationFailed")
    assert "look like SQUARED distances" in result.cause and "serves again" in result.cause
    assert endpoint_config(stack) == serving


def test_a_first_deploy_that_fails_its_check_leaves_no_endpoint(first_deploy):
    first_deploy.standin.faults.endpoint_answers_wrong = True
    result = run(first_deploy, "first-wrong")
    assert result.status == "FAILED" and result.error == "EndpointVerificationFailed"
    assert "first deploy and is being deleted" in result.cause
    try:
        status = first_deploy.client("sagemaker").describe_endpoint(EndpointName=first_deploy.endpoint_name)[
            "EndpointStatus"
        ]
    except ClientError as exc:
        status = exc.response["Error"]["Code"]
    assert status in {"Deleting", "ValidationException"}  # going or gone: nothing serves the failed model


def test_offline_scoring_equals_the_endpoints_answer(stack, sample):
    result = run(stack, "scored", gateTolerancePercent=1000)
    assert result.status == "SUCCEEDED", result.cause
    rows = np.loadtxt(sample.csv_path, delimiter=",", skiprows=1, max_rows=300)
    body = "\n".join(",".join(repr(float(v)) for v in row) for row in rows)
    answer = stack.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=stack.endpoint_name, ContentType="text/csv", Accept="application/json", Body=body
    )
    predictions = json.loads(answer["Body"].read())["predictions"]
    centroids = read_centroids(result.output["bestTrainingJob"]["artifactUri"], s3=stack.client("s3"))
    closest = np.array([p["closest_cluster"] for p in predictions], dtype=np.int64)
    distance = np.array([p["distance_to_cluster"] for p in predictions])
    assert compare(rows, centroids, closest, distance) is None  # within float32 error of the model's centroids
    assert (closest == score(rows, centroids)[0]).mean() > 0.99


def test_a_standardised_run_trains_evaluates_and_checks_in_standard_units(stack):
    result = run(stack, "standardised", standardize=True, gateTolerancePercent=1000)
    assert result.status == "SUCCEEDED", result.cause
    out = result.output
    treatment = out["dataset"]["treatment"]
    assert [(c["kind"], c["standardize"]) for c in treatment["columns"]] == [("numeric", True), ("numeric", True)]
    assert "features/" in out["dataset"]["testUri"] and out["endpointCheck"]["passed"]
    report = read_json(stack, out["evaluation"]["reportUri"])
    assert report["treatment"] == treatment and report["schemaVersion"] == 2
    # The report's centroids are in dollars and codes; the model's are in standard deviations.
    model = read_centroids(out["bestTrainingJob"]["artifactUri"], s3=stack.client("s3"))
    mean = np.array([c["mean"] for c in treatment["columns"]])
    std = np.array([c["std"] for c in treatment["columns"]])
    weight = np.array([c["weights"][0] for c in treatment["columns"]])  # the default correlation weights
    assert (weight >= 1).all()
    np.testing.assert_allclose(report["centroids"], model / weight * std + mean, rtol=1e-5)
    np.testing.assert_allclose(report["modelCentroids"], model, rtol=1e-6)
