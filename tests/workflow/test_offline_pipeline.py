"""The real state machine, end to end, through the offline runner: every branch a user can meet."""

from __future__ import annotations

import json

import numpy as np
import pytest

from offline.runner import OfflineAWS
from offline.sample_data import generate

pytestmark = pytest.mark.slow  # whole executions with the real handlers

# gateTolerancePercent 1000: a second run always replaces the model here (tests/workflow/test_evaluation.py tests the gate).
# Raw numbers ("standardize": false), so that these tests can send the CSV's own rows to the endpoint; the default
# treatments are in tests/workflow/test_score_api.py.
FAST = {
    "pollSeconds": 0,
    "maxTrainingJobs": 4,
    "maxParallelTrainingJobs": 2,
    "k": 5,
    "gateTolerancePercent": 1000,
    "standardize": False,
}
KEY = "incoming/transactions.csv"


@pytest.fixture(scope="module")
def sample(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("sample"), rows=6000, seed=11)


def run(aws: OfflineAWS, name: str, **overrides):
    return aws.run({"dataKey": KEY, **FAST, **overrides}, name=name, timeout=240)


@pytest.fixture
def stack(sample):
    with OfflineAWS() as aws:
        aws.upload(sample.csv_path, KEY)
        yield aws


def endpoint(aws):
    return aws.client("sagemaker").describe_endpoint(EndpointName=aws.endpoint_name)


def test_success_deploys_the_best_model_and_the_endpoint_answers(stack, sample):
    result = run(stack, "ok-1")
    assert result.status == "SUCCEEDED", result.cause
    out = result.output
    assert out["outcome"] == "deployed" and out["deployment"] == "created"
    assert out["trainingJobs"]["completed"] == 4
    best = out["bestTrainingJob"]
    sm = stack.client("sagemaker")
    tuning = sm.describe_hyper_parameter_tuning_job(HyperParameterTuningJobName=out["tuningJob"])
    assert best["trainingJobName"] == tuning["BestTrainingJob"]["TrainingJobName"]
    summaries = sm.list_training_jobs_for_hyper_parameter_tuning_job(HyperParameterTuningJobName=out["tuningJob"])[
        "TrainingJobSummaries"
    ]
    assert best["testMsd"] == min(s["FinalHyperParameterTuningJobObjectiveMetric"]["Value"] for s in summaries)
    assert endpoint(stack)["EndpointStatus"] == "InService"
    assert endpoint(stack)["EndpointConfigName"] == out["endpointConfig"]

    rows = sample.csv_path.read_text().splitlines()[1:6]
    answer = stack.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=stack.endpoint_name, ContentType="text/csv", Accept="application/json", Body="\n".join(rows)
    )
    predictions = json.loads(answer["Body"].read())["predictions"]
    assert len(predictions) == 5
    assert all(0 <= p["closest_cluster"] < 5 and p["distance_to_cluster"] >= 0 for p in predictions)


def test_a_second_run_updates_the_same_endpoint_in_place(stack):
    first = run(stack, "twice-1")
    second = run(stack, "twice-2", seed=7)
    assert (first.status, second.status) == ("SUCCEEDED", "SUCCEEDED"), second.cause
    assert second.output["deployment"] == "updated"
    assert second.output["previousEndpointConfig"] == first.output["endpointConfig"]
    assert second.output["endpoint"] == first.output["endpoint"]
    assert endpoint(stack)["EndpointConfigName"] == second.output["endpointConfig"]


def test_tuning_job_failure_reason_reaches_the_cause(stack):
    stack.standin.faults.tuning_job_fails = "InternalServerError: injected tuning failure"
    result = run(stack, "tuning-fails")
    assert result.status == "FAILED"
    assert result.error == "TuningJobFailed"
    assert "InternalServerError: injected tuning failure" in result.cause


def test_every_training_job_failing_is_reported_with_their_reason(stack):
    stack.standin.faults.training_jobs_fail = "ClientError: injected bad data"
    result = run(stack, "training-fails")
    assert result.status == "FAILED"
    assert result.error in {"TuningJobFailed", "NoBestTrainingJob"}
    assert "ClientError: injected bad data" in result.cause


def test_endpoint_creation_failure_is_reported(stack):
    stack.standin.faults.endpoint_creation_fails = "injected: the model did not pass the ping health check"
    result = run(stack, "endpoint-fails")
    assert result.status == "FAILED"
    assert result.error == "EndpointFailed"
    assert "injected: the model did not pass the ping health check" in result.cause


def test_failed_update_rolls_back_and_the_old_model_keeps_serving(stack, sample):
    first = run(stack, "before-update")
    assert first.status == "SUCCEEDED", first.cause
    stack.standin.faults.endpoint_update_fails = "injected: update failed health check"
    second = run(stack, "update-fails", seed=3)
    assert second.status == "FAILED"
    assert second.error == "EndpointUpdateRolledBack"
    assert "injected: update failed health check" in second.cause
    assert first.output["endpointConfig"] in second.cause
    described = endpoint(stack)
    assert described["EndpointStatus"] == "InService"
    assert described["EndpointConfigName"] == first.output["endpointConfig"]
    answer = stack.client("sagemaker-runtime").invoke_endpoint(
        EndpointName=stack.endpoint_name, ContentType="text/csv", Body="1,45.0"
    )
    assert "predictions" in json.loads(answer["Body"].read())


def test_throttled_creates_are_retried_and_the_run_succeeds(stack, monkeypatch):
    # One SDK attempt per call, so that every throttle reaches the state machine's Retry.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")
    stack.standin.faults.throttle_creates = 2
    result = run(stack, "throttled")
    assert result.status == "SUCCEEDED", result.cause
    failed = [e for e in result.history if e["type"] == "TaskFailed"]
    assert len(failed) == 2 * 5  # two throttles for each of the five Creates (the model version's too)
    assert all(e["taskFailedEventDetails"]["error"] == "SageMakerThrottlingError" for e in failed)


def test_a_non_numeric_value_fails_naming_the_line(stack, sample):
    lines = sample.csv_path.read_text().splitlines()
    lines[42] = "3,twelve"
    stack.upload("\n".join(lines).encode(), "incoming/bad.csv")
    result = run(stack, "bad-value", dataKey="incoming/bad.csv")
    assert result.status == "FAILED"
    assert result.error == "DataValidationError"
    assert result.cause.startswith("Merge the ranges failed: ")
    assert "line 43, column Amount: 'twelve' is not a number" in result.cause


def test_the_upload_and_schedule_input_shapes_start_the_same_workflow(stack):
    upload_event = {
        "version": "0",
        "id": "1",
        "detail-type": "Object Created",
        "source": "aws.s3",
        "account": "123456789012",
        "time": "2026-11-23T10:00:00Z",
        "region": "us-east-1",
        "resources": [],
        "detail": {"version": "0", "bucket": {"name": stack.bucket}, "object": {"key": KEY, "size": 1}},
    }
    # The upload and schedule shapes carry no overrides, so the stack's defaults apply (pollSeconds 60):
    # stop once the run is past its first poll, which is enough to show the shape was understood.
    arn = stack.start(upload_event, "from-upload")
    config = stack.state_output(arn, "Resolve run configuration")
    assert config["trigger"] == "upload" and config["source"]["key"] == KEY
    stack.client("stepfunctions").stop_execution(executionArn=arn)
    arn = stack.start({"detail-type": "Scheduled Event", "source": "aws.events", "detail": {}}, "from-schedule")
    config = stack.state_output(arn, "Resolve run configuration")
    assert config["trigger"] == "schedule" and config["source"]["key"] == "incoming/transactions.csv"
    stack.client("stepfunctions").stop_execution(executionArn=arn)


def test_best_model_is_within_five_percent_of_scikit_learn(stack):
    from sklearn.cluster import KMeans

    result = run(stack, "quality", maxTrainingJobs=6)
    assert result.status == "SUCCEEDED", result.cause
    s3 = stack.client("s3")
    dataset = result.output["dataset"]

    def load(uri):
        bucket, prefix = uri[5:].split("/", 1)
        keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=prefix)["Contents"]]
        text = "".join(s3.get_object(Bucket=bucket, Key=k)["Body"].read().decode() for k in keys)
        return np.loadtxt(text.splitlines(), delimiter=",")

    train, test = load(dataset["trainUri"]), load(dataset["testUri"])
    reference = KMeans(n_clusters=5, n_init=10, random_state=0).fit(train)
    reference_msd = float(np.mean(np.min(((test[:, None, :] - reference.cluster_centers_[None]) ** 2).sum(-1), axis=1)))
    assert result.output["bestTrainingJob"]["testMsd"] <= 1.05 * reference_msd


def test_several_training_instances_read_their_own_shards(sample):
    with OfflineAWS(parameters={"TrainingInstanceCount": "2", "ShardMegabytes": "1"}) as aws:
        aws.upload(sample.csv_path, KEY)
        result = run(aws, "sharded")
        assert result.status == "SUCCEEDED", result.cause
        assert result.output["dataset"]["trainShards"] == 2
        tuning = aws.client("sagemaker").describe_hyper_parameter_tuning_job(
            HyperParameterTuningJobName=result.output["tuningJob"]
        )
        definition = tuning["TrainingJobDefinition"]
        assert definition["ResourceConfig"]["InstanceCount"] == 2
        distribution = {
            c["ChannelName"]: c["DataSource"]["S3DataSource"]["S3DataDistributionType"]
            for c in definition["InputDataConfig"]
        }
        assert distribution == {"train": "ShardedByS3Key", "test": "FullyReplicated"}
