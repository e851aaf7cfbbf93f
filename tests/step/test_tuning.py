"""Steps 3 and 4: the tuning job request SageMaker receives, and every status the check step can meet."""

from __future__ import annotations

import boto3
import pytest
from botocore.stub import Stubber

from kmeans_pipeline.errors import SageMakerRequestError, SageMakerThrottlingError
from kmeans_pipeline.schemas.dataset import Dataset, KChoice, SourceObject
from kmeans_pipeline.steps.check_tuning import check_tuning
from kmeans_pipeline.steps.resolve_run import resolve_run
from kmeans_pipeline.steps.start_tuning import start_tuning, tuning_request
from testkit.aws import REGION, Recorder

START = "2026-11-23T10:00:00.000Z"


def make_config(settings, **overrides):
    return resolve_run({"dataKey": "incoming/t.csv", **overrides}, "tune-run", START, settings, None)


def make_dataset(settings, train_rows=80_000, test_rows=20_000, dim=2, k=7) -> Dataset:
    return Dataset(
        train_uri=f"s3://{settings.data_bucket}/datasets/r/train/",
        test_uri=f"s3://{settings.data_bucket}/datasets/r/test/",
        train_rows=train_rows,
        test_rows=test_rows,
        skipped_blank_lines=0,
        feature_columns=[f"f{i}" for i in range(dim)],
        feature_dim=dim,
        content_type="text/csv;label_size=0",
        source=SourceObject(bucket=settings.data_bucket, key="incoming/t.csv", etag='"x"', size=10),
        k_choice=KChoice(k=k, source="run", reason=f"k={k}: set by the run's input (k)"),
    )


def test_tuning_request_is_what_the_article_and_aws_facts_ask_for(settings, aws):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    recorder = Recorder(sagemaker)
    config, dataset = make_config(settings, k=7), make_dataset(settings, dim=3)
    started = start_tuning(config, dataset, settings, sagemaker)

    [request] = recorder.requests("CreateHyperParameterTuningJob")
    assert started.tuning_job_name == request["HyperParameterTuningJobName"] == config.names.tuning_job
    assert len(started.tuning_job_name) <= 32
    tuning = request["HyperParameterTuningJobConfig"]
    assert tuning["Strategy"] == "Bayesian"
    assert tuning["HyperParameterTuningJobObjective"] == {"Type": "Minimize", "MetricName": "test:msd"}
    assert tuning["TrainingJobEarlyStoppingType"] == "Auto"
    assert tuning["RandomSeed"] == config.seed == 42  # the run's seed (botocore's model: an integer >= 0)
    assert (
        make_config(settings, seed=7).seed
        == tuning_request(make_config(settings, seed=7), dataset, settings)["HyperParameterTuningJobConfig"][
            "RandomSeed"
        ]
    )
    assert tuning["ResourceLimits"] == {"MaxNumberOfTrainingJobs": 10, "MaxParallelTrainingJobs": 2}
    ranges = {r["Name"]: r for r in tuning["ParameterRanges"]["IntegerParameterRanges"]}
    assert (ranges["extra_center_factor"]["MinValue"], ranges["extra_center_factor"]["MaxValue"]) == ("4", "10")
    assert (ranges["mini_batch_size"]["MinValue"], ranges["mini_batch_size"]["MaxValue"]) == ("3000", "15000")
    assert tuning["ParameterRanges"]["CategoricalParameterRanges"] == [
        {"Name": "init_method", "Values": ["kmeans++", "random"]}
    ]

    definition = request["TrainingJobDefinition"]
    assert definition["StaticHyperParameters"] == {"k": "7", "feature_dim": "3"}
    assert definition["AlgorithmSpecification"]["TrainingImage"].endswith("/kmeans:1")
    assert definition["RoleArn"] == settings.sagemaker_role_arn
    channels = {c["ChannelName"]: c for c in definition["InputDataConfig"]}
    assert set(channels) == {"train", "test"}
    for name, uri in (("train", dataset.train_uri), ("test", dataset.test_uri)):
        assert channels[name]["ContentType"] == "text/csv;label_size=0"
        assert channels[name]["DataSource"]["S3DataSource"]["S3Uri"] == uri
    assert definition["OutputDataConfig"]["KmsKeyId"] == settings.kms_key_arn
    assert definition["OutputDataConfig"]["S3OutputPath"] == f"s3://{settings.data_bucket}/{config.model_prefix}"
    assert definition["ResourceConfig"]["VolumeKmsKeyId"] == settings.kms_key_arn
    assert definition["EnableNetworkIsolation"] is True
    assert definition["EnableInterContainerTrafficEncryption"] is True
    tags = {t["Key"]: t["Value"] for t in request["Tags"]}
    assert tags["Project"] == "kmeans" and tags["Environment"] == "dev" and tags["Owner"] == "ml-platform"
    assert tags["RunId"] == config.run_id


def test_mini_batch_size_never_exceeds_the_training_rows(settings):
    request = tuning_request(make_config(settings), make_dataset(settings, train_rows=5000), settings)
    ranges = {
        r["Name"]: r for r in request["HyperParameterTuningJobConfig"]["ParameterRanges"]["IntegerParameterRanges"]
    }
    assert ranges["mini_batch_size"]["MaxValue"] == "5000"
    small = tuning_request(make_config(settings), make_dataset(settings, train_rows=900), settings)
    names = [r["Name"] for r in small["HyperParameterTuningJobConfig"]["ParameterRanges"]["IntegerParameterRanges"]]
    assert "mini_batch_size" not in names
    assert small["TrainingJobDefinition"]["StaticHyperParameters"]["mini_batch_size"] == "900"


def test_a_retried_start_finds_its_own_tuning_job(settings, aws):
    sagemaker = boto3.client("sagemaker", region_name=REGION)
    config, dataset = make_config(settings), make_dataset(settings)
    first = start_tuning(config, dataset, settings, sagemaker)
    again = start_tuning(config, dataset, settings, sagemaker)
    assert (first.reused, again.reused) == (False, True)
    assert again.tuning_job_name == first.tuning_job_name


# --- check_tuning against every status DescribeHyperParameterTuningJob can return ----------------------------


def describe_response(status, best=None, reason=None, counters=None):
    response = {
        "HyperParameterTuningJobName": "kmeans-dev-abc",
        "HyperParameterTuningJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:hyper-parameter-tuning-job/kmeans-dev-abc",
        "HyperParameterTuningJobConfig": {
            "Strategy": "Bayesian",
            "ResourceLimits": {"MaxNumberOfTrainingJobs": 10, "MaxParallelTrainingJobs": 2},
        },
        "HyperParameterTuningJobStatus": status,
        "CreationTime": "2026-11-23T10:00:00Z",
        "TrainingJobStatusCounters": counters
        or {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 0, "Stopped": 0},
        "ObjectiveStatusCounters": {"Succeeded": 0, "Pending": 0, "Failed": 0},
    }
    if best:
        response["BestTrainingJob"] = best
    if reason is not None:
        response["FailureReason"] = reason
    return response


BEST = {
    "TrainingJobName": "kmeans-dev-abc-003-1a2b3c4d",
    "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/kmeans-dev-abc-003-1a2b3c4d",
    "CreationTime": "2026-11-23T10:00:00Z",
    "TrainingJobStatus": "Completed",
    "TunedHyperParameters": {"extra_center_factor": "6", "init_method": "kmeans++", "mini_batch_size": "4000"},
    "FinalHyperParameterTuningJobObjectiveMetric": {"MetricName": "test:msd", "Value": 1.25},
}


def stubbed():
    client = boto3.client("sagemaker", region_name=REGION)
    return client, Stubber(client)


def test_in_progress_reports_progress_and_best_so_far(settings):
    client, stub = stubbed()
    stub.add_response(
        "describe_hyper_parameter_tuning_job",
        describe_response(
            "InProgress",
            best=BEST,
            counters={"Completed": 3, "InProgress": 2, "RetryableError": 0, "NonRetryableError": 1, "Stopped": 0},
        ),
    )
    with stub:
        status = check_tuning(make_config(settings), "kmeans-dev-abc", client)
    assert status.outcome == "running"
    assert status.training_jobs == {"completed": 3, "inProgress": 2, "failed": 1, "stopped": 0}
    assert status.best_so_far == 1.25 and status.budget == 10


def test_completed_describes_the_best_training_job_for_its_artifact(settings):
    client, stub = stubbed()
    stub.add_response("describe_hyper_parameter_tuning_job", describe_response("Completed", best=BEST))
    stub.add_response(
        "describe_training_job",
        {
            "TrainingJobName": BEST["TrainingJobName"],
            "TrainingJobArn": BEST["TrainingJobArn"],
            "ModelArtifacts": {"S3ModelArtifacts": "s3://b/models/r/x/output/model.tar.gz"},
            "TrainingJobStatus": "Completed",
            "SecondaryStatus": "Completed",
            "HyperParameters": {
                "k": "8",
                "feature_dim": "2",
                "_tuning_objective_metric": "test:msd",
                **BEST["TunedHyperParameters"],
            },
            "AlgorithmSpecification": {"TrainingInputMode": "File"},
            "ResourceConfig": {"VolumeSizeInGB": 30},
            "StoppingCondition": {},
            "CreationTime": "2026-11-23T10:00:00Z",
            "FinalMetricDataList": [
                {"MetricName": "test:msd", "Value": 1.25},
                {"MetricName": "test:ssd", "Value": 9.0},
            ],
        },
        {"TrainingJobName": BEST["TrainingJobName"]},
    )
    with stub:
        status = check_tuning(make_config(settings), "kmeans-dev-abc", client)
    assert status.outcome == "completed"
    assert status.best.artifact_uri == "s3://b/models/r/x/output/model.tar.gz"
    assert status.best.test_msd == 1.25
    assert status.best.hyperparameters["k"] == "8" and "_tuning_objective_metric" not in status.best.hyperparameters


REASON = "ClientError: Unable to read data channel 'train'. Requested content-type is 'text/csv;label_size=0'."


@pytest.mark.parametrize(
    ("status", "best", "reason", "error", "quoted"),
    [
        (
            "Failed",
            None,
            "Insufficient capacity for ml.m5.xlarge",
            "TuningJobFailed",
            "Insufficient capacity for ml.m5.xlarge",
        ),
        ("Failed", None, "", "TuningJobFailed", REASON),
        ("Stopped", None, None, "TuningJobStopped", "was stopped"),
        ("Completed", None, None, "NoBestTrainingJob", REASON),
        ("DeleteFailed", None, "boom", "TuningJobFailed", "boom"),
    ],
)
def test_every_failure_ends_with_sagemakers_own_reason(settings, status, best, reason, error, quoted):
    client, stub = stubbed()
    counters = {"Completed": 0, "InProgress": 0, "RetryableError": 0, "NonRetryableError": 2, "Stopped": 0}
    stub.add_response(
        "describe_hyper_parameter_tuning_job", describe_response(status, best=best, reason=reason, counters=counters)
    )
    stub.add_response(
        "list_training_jobs_for_hyper_parameter_tuning_job",
        {
            "TrainingJobSummaries": [
                {
                    "TrainingJobName": f"kmeans-dev-abc-00{i}-0000000{i}",
                    "TrainingJobArn": f"arn:aws:sagemaker:{REGION}:123456789012:training-job/x{i}",
                    "CreationTime": "2026-11-23T10:00:00Z",
                    "TrainingJobStatus": "Failed",
                    "TunedHyperParameters": {},
                    "FailureReason": REASON,
                }
                for i in (1, 2)
            ]
        },
    )
    with stub:
        result = check_tuning(make_config(settings), "kmeans-dev-abc", client)
    assert result.outcome == "failed"
    assert result.error == error
    assert quoted in result.cause and "kmeans-dev-abc" in result.cause
    assert result.cause.count(REASON) <= 1  # distinct reasons only


def test_throttled_describe_is_a_typed_error_the_state_machine_retries(settings):
    client, stub = stubbed()
    stub.add_client_error("describe_hyper_parameter_tuning_job", "ThrottlingException", "Rate exceeded")
    with stub, pytest.raises(SageMakerThrottlingError, match="Rate exceeded"):
        check_tuning(make_config(settings), "kmeans-dev-abc", client)


def test_other_sagemaker_errors_quote_sagemaker(settings):
    client, stub = stubbed()
    stub.add_client_error(
        "describe_hyper_parameter_tuning_job", "ResourceNotFound", "Amazon SageMaker can't find a tuning job"
    )
    with stub, pytest.raises(SageMakerRequestError, match="can't find a tuning job"):
        check_tuning(make_config(settings), "kmeans-dev-abc", client)
